"""Call forms (issue 23): NumPy arrays and list arguments reach the call as such, the grid
draws them, and a NumPy form's verdict does not depend on what the worker ran before."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conv_parity import backends as targets
from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.explain.repro import render
from conv_parity.generate import grid
from conv_parity.generate.call_forms import PLAIN_OPS
from conv_parity.integers import is_integer
from conv_parity.modes import call_form

POOL = {"pool_size": 2, "strides": 2}


def test_list_forms_pass_every_tuple_argument_as_a_list_and_nothing_else() -> None:
    listed = ConvCase.make("ops.max_pool", POOL, (2, 7, 6, 3), call_form="list")
    assert call_form.kwargs(listed) == {"pool_size": [2, 2], "strides": [2, 2],
                                        "padding": "valid", "data_format": "channels_last"}
    conv = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 2),
                         call_form="numpy-list")
    kw = call_form.kwargs(conv)
    assert kw["kernel_size"] == [3, 3] and kw["dilation_rate"] == [1, 1]
    assert kw["filters"] == 2 and kw["padding"] == "valid"
    tensor = ConvCase.make("ops.max_pool", POOL, (2, 7, 6, 3))
    assert call_form.kwargs(tensor)["strides"] == (2, 2)
    assert call_form.kwargs(ConvCase.make("ops.max_pool", POOL, (2, 7, 6, 3),
                                          call_form="numpy"))["strides"] == (2, 2)


def test_numpy_arrays_keep_their_dtype_bfloat16_included() -> None:
    import ml_dtypes

    a = np.ones((2, 3), np.float32)
    assert call_form.as_numpy(a, "bfloat16").dtype == ml_dtypes.bfloat16
    assert call_form.as_numpy(a, "float64").dtype == np.float64


@pytest.mark.parametrize("mode", ["grad", "predict", "jit"])
def test_a_numpy_form_is_refused_where_the_mode_never_passes_arrays(mode: str) -> None:
    with pytest.raises(UsageError, match="only the eager mode"):
        ConvCase.make("ops.max_pool", POOL, (2, 7, 6, 3), mode=mode, call_form="numpy")
    ConvCase.make("ops.max_pool", POOL, (2, 7, 6, 3), mode=mode, call_form="list")


def test_the_repro_script_calls_as_the_case_does() -> None:
    case = ConvCase.make("ops.max_pool", POOL, (2, 7, 6, 3), dtype="float64",
                         call_form="numpy-list")
    text = render(case, "tensorflow")
    assert "'strides': [2, 2]" in text
    assert "as_array(x, DTYPE)" in text and "warm-up" in text
    compile(text, "repro.py", "exec")
    plain = render(ConvCase.make("ops.max_pool", POOL, (2, 7, 6, 3)), "tensorflow")
    assert "'strides': (2, 2)" in plain and "warm-up" not in plain


def test_every_profile_calls_every_op_in_every_form_and_a_selection_is_a_subset() -> None:
    smoke = grid.cases("smoke")
    for op in PLAIN_OPS:
        assert "numpy-list" in {c.call_form for c in smoke if c.layer == op}, op
    # smoke's float cases are float32; its integer cases (issue 23 item 3) are ops in each
    # integer dtype, drawn on purpose
    assert {c.dtype for c in smoke if not is_integer(c.dtype)} == {"float32"}
    default = grid.cases("default")
    for op in PLAIN_OPS:
        forms = {c.call_form for c in default if c.layer == op}
        assert forms == {"tensor", "numpy", "list", "numpy-list"}, (op, forms)
        assert {c.dtype for c in default if c.layer == op and c.call_form == "numpy"} == {
            "float32", "float16", "bfloat16", "float64"}
    assert {c.call_form for c in default if not c.kind.is_op} >= {"numpy", "list"}
    assert all(c.mode == "eager" for c in default if c.call_form.startswith("numpy"))
    only = grid.cases("default", layers=["ops.max_pool"])
    assert {c.id for c in only} <= {c.id for c in default}
    assert {c.call_form for c in only} == {"tensor", "numpy", "list", "numpy-list"}


_ORDER = """
import json, keras
from conv_parity import modes
from conv_parity.case import ConvCase
eager = modes.get("eager")
numpy = ConvCase.make("ops.max_pool", %r, (2, 7, 6, 3), dtype="float64", call_form="numpy")
tensor = ConvCase.make("ops.max_pool", %r, (2, 7, 6, 3), dtype="float64")
dtypes = [str(eager.run(keras, numpy, modes.seeded(numpy))["y"].dtype)]  # a fresh process
dtypes.append(str(eager.run(keras, tensor, modes.seeded(tensor))["y"].dtype))
dtypes.append(str(eager.run(keras, numpy, modes.seeded(numpy))["y"].dtype))  # after others
listed = ConvCase.make("ops.depthwise_conv", {"kernel_size": 3, "strides": 2}, (2, 9, 8, 3),
                       call_form="list")
try:
    eager.run(keras, listed, modes.seeded(listed))
    error = None
except TypeError as exc:
    error = str(exc)
print(json.dumps({"dtypes": dtypes, "error": error}))
"""


@pytest.mark.skipif(not targets.get("tensorflow").installed(), reason="tensorflow not installed")
def test_tensorflow_numpy_dtype_verdict_does_not_depend_on_earlier_calls() -> None:
    """TF's fast path keeps a float64 NumPy array's dtype on a process's first max_pool and
    drops it to float32 afterwards; the warm-up makes every call the second. A list strides
    reaches the op itself (tf-depthwise-op-list-arguments raises)."""
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    proc = subprocess.run([sys.executable, "-c", _ORDER % (POOL, POOL)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["dtypes"] == ["float32", "float64", "float32"], got
    assert got["error"] and "concatenate tuple" in got["error"]



def test_check_takes_a_call_form_and_refuses_an_unknown_one() -> None:
    from conv_parity.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["check", "ops.max_pool(pool_size=2)", "--input-shape", "1,4,4,1",
                              "--call-form", "numpy-list"])
    assert args.call_form == "numpy-list"
    assert parser.parse_args(["check", "Conv2D(2, 3)"]).call_form == "tensor"
    with pytest.raises((SystemExit, UsageError)):
        parser.parse_args(["check", "Conv2D(2, 3)", "--call-form", "torch"])
