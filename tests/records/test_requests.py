"""The typed request and reply records cross the pipe unchanged, and a pool failure reply
(a dict without the worker's fields) reads as a record too."""

from __future__ import annotations

import json

from conv_parity.requests import MixedDtypesReply, MixedDtypesRequest, ModelReply, ModelRequest


def _wire(header: dict) -> dict:
    return json.loads(json.dumps(header))  # headers travel as JSON


def test_model_request_round_trips() -> None:
    req = ModelRequest(files={"keras": "/tmp/m.keras", "source": None, "weights": None},
                       layers=("a/conv", "b"), inputs=("image", "mask"),
                       application={"name": "ResNet50", "kwargs": {"input_shape": [9, 9, 3]}},
                       imports=("my_pkg.layers",), cwd="/work")
    header = _wire(req.to_header())
    assert header["type"] == "model"
    assert ModelRequest.from_header(header) == req


def test_model_reply_round_trips_and_reads_pool_failures() -> None:
    reply = ModelReply("ok", weights_error=None, jitter={"output": 1e-7},
                       outputs=["output", "conv"], parts=1, seconds=0.5)
    assert ModelReply.from_header(_wire(reply.to_header())) == reply
    crash = ModelReply.from_header({"status": "crash", "stderr_tail": "Segmentation fault",
                                    "error": {"type": "WorkerCrash", "phase": "worker"}})
    assert crash.status == "crash" and crash.outputs == [] and crash.parts == 0
    assert crash.stderr_tail == "Segmentation fault"


def test_mixed_dtypes_records_round_trip() -> None:
    req = MixedDtypesRequest(({"op": "ops.conv", "x": "float32", "kernel": "float16"},))
    assert MixedDtypesRequest.from_header(_wire(req.to_header())) == req
    reply = MixedDtypesReply("ok", answers=[{"dtype": "float16"}], seconds=0.1)
    assert MixedDtypesReply.from_header(_wire(reply.to_header())) == reply
    timeout = MixedDtypesReply.from_header({"status": "timeout", "error": {"message": "slow"}})
    assert timeout.answers is None and timeout.error == {"message": "slow"}
