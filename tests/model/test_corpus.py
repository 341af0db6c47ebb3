"""The model corpus (issue 24 item 10): ``conv-parity model`` on real architectures, no false alarm.

Each model of ``corpus_models`` is built here with seeded weights, saved as a ``.weights.h5``,
and checked through the real front door (``conv-parity model FILE --builder
corpus_models:build_NAME --json``, a process of its own with its own workers). The test then
asks what a user would: was every conv-family layer found (counted here by walking the model
independently of conv-parity's own walk), was each one checked or listed with the reason it
could not be, did nothing disagree (exit 0), and do the layers the architecture is known for
appear in the per-layer table (ViT's patch embedding, MobileNetV5's depthwise convs,
DeepLabV3's dilated ASPP convs).

``CONV_PARITY_CORPUS_BACKENDS`` narrows the backends (default: every installed one);
``CONV_PARITY_CORPUS_LOG`` names a JSON-lines file each model appends its measurements to
(found / checked, wall time, peak memory of the process tree, verdicts): docs/models.md's table.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from conv_parity.model.files import import_keras
from conv_parity.model.load import reseed

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import corpus_models  # noqa: E402  (found beside this file, as the workers find it)

keras = import_keras()

#: The public conv-family classes, found by name: independent of conv_parity.kinds.
_CONV_FAMILY = tuple(getattr(keras.layers, n) for n in dir(keras.layers)
                     if re.fullmatch(r"(\w*Conv\dD(Transpose)?|\w*Pooling\dD)", n))


def walk_conv_layers(model: Any) -> list[Any]:
    """Every conv-family layer inside ``model``, nested and subclassed blocks included, by
    Keras's own recursive layer walk (not conv-parity's)."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if isinstance(layer, _CONV_FAMILY)]


def _run_sampling_rss(args: list[str], env: dict[str, str], cwd: Path
                      ) -> tuple[int, str, str, int]:
    """(exit code, stdout, stderr, peak resident bytes of the process and its workers
    together). Output goes to files: a pipe nobody reads while sampling would fill (64 KiB)
    and block the CLI."""
    import psutil

    peak = 0
    with open(cwd / "stdout", "w+") as out, open(cwd / "stderr", "w+") as err:
        proc = subprocess.Popen(args, stdout=out, stderr=err, text=True, env=env, cwd=cwd)
        root = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.25)
        out.seek(0)
        err.seek(0)
        return proc.returncode, out.read(), err.read(), peak


def run_model_cli(name: str, tmp_path: Path) -> tuple[int, dict[str, Any], str, float, int]:
    """(exit code, report.json, stderr, seconds, peak bytes) of ``conv-parity model`` on the
    corpus model ``name``, its seeded weights saved in ``tmp_path``."""
    keras.utils.set_random_seed(0)
    model = corpus_models.BUILDERS[name]()
    reseed(model, 0)
    weights = tmp_path / f"{name}.weights.h5"
    model.save_weights(weights)
    env = {k: v for k, v in os.environ.items() if k != "CONV_PARITY_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])])
    args = [sys.executable, "-m", "conv_parity.cli", "model", str(weights),
            "--builder", f"corpus_models:build_{name}", "--json"]
    if os.environ.get("CONV_PARITY_CORPUS_BACKENDS"):
        args += ["--backends", os.environ["CONV_PARITY_CORPUS_BACKENDS"]]
    started = time.monotonic()
    rc, out, err, peak = _run_sampling_rss(args, env, tmp_path)
    seconds = time.monotonic() - started
    doc = json.loads(out) if out.strip().startswith("{") else {}
    return rc, doc, err, seconds, peak


def _named_convs(name: str, layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The layers the architecture is known for, from the per-layer table."""
    def channels(row: dict[str, Any]) -> int:
        first = row["config"].get("data_format") == "channels_first"
        return int(row["input_shape"][1 if first else -1])

    if name == "vit":  # patch embedding: kernel = stride = patch size
        return [r for r in layers if r["class"] == "Conv2D"
                and r["config"]["kernel_size"] == r["config"]["strides"] == [8, 8]]
    if name == "mobilenetv5":  # keras-hub writes depthwise convs as Conv2D(groups=channels)
        return [r for r in layers if r["class"] == "DepthwiseConv2D" or (
            r["class"] == "Conv2D" and r["config"]["groups"] == channels(r) > 1)]
    if name == "deeplabv3":  # the ASPP's dilated 3x3 convs, one per rate
        return [r for r in layers if r["class"] == "Conv2D"
                and r["config"]["dilation_rate"] in ([2, 2], [3, 3])]
    return []


_NAMED = {"vit": 1, "mobilenetv5": 3, "deeplabv3": 2}

#: Real bugs of a corpus model that conv-parity must report (exit 1), not miss: keras-hub
#: 0.32.0's ResNetBackbone.get_config leaves out data_format, so from_config (and a .keras
#: save -> load) rebuilds a channels_first backbone channels_last: its stem kernel is made for
#: 32 input channels (the image's width) instead of 3. Every worker loads the saved model the
#: same way, so the end to end is ``unsupported`` on every backend (the model itself fails).
#: (What the round trip says, what each end-to-end row says.)
_MODEL_BUGS = {"resnet_channels_first": (
    "weight shape (7, 7, 32, 64) is not compatible with provided weight shape (7, 7, 3, 64)",
    "variable.shape=(7, 7, 32, 64)"),
    # EfficientNetBackbone.get_config leaves out num_features: top_conv comes back with 1280
    "efficientnetv2": (
        "weight shape (1, 1, 16, 1280) is not compatible with provided weight shape (1, 1, 16, 32)",
        "variable.shape=(1, 1, 16, 1280)")}


def _record(name: str, doc: dict[str, Any], seconds: float, peak: int) -> None:
    log = os.environ.get("CONV_PARITY_CORPUS_LOG")
    if not log:
        return
    section = doc["model"]
    verdicts = Counter(r["verdict"] for r in doc["results"])
    e2e = Counter(r["verdict"] for r in (section.get("end_to_end") or {}).get("results", []))
    with open(log, "a") as fh:
        fh.write(json.dumps({
            "model": name, "found": section["coverage"]["found"],
            "checked": section["coverage"]["checked"],
            "not_checkable": section["coverage"]["not_checkable"],
            "distinct": section["distinct_cases"], "backends": section["backends"],
            "seconds": round(seconds, 1), "peak_mib": peak // 2**20,
            "layer_verdicts": dict(verdicts), "end_to_end": dict(e2e),
            "named": [r["name"] for r in _named_convs(name, section["layers"])],
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "(default)")}) + "\n")


@pytest.mark.slow  # one `conv-parity model` process with every backend's worker per model
@pytest.mark.parametrize("name", sorted(corpus_models.BUILDERS))
def test_corpus_model_is_found_checked_and_conforms(name: str, tmp_path: Path) -> None:
    if name in corpus_models.NEEDS_KERAS_HUB and importlib.util.find_spec("keras_hub") is None:
        pytest.skip("needs keras-hub (pip install --no-deps keras-hub==0.32.0 regex tokenizers; "
                    "the [models] extra)")
    rc, doc, err, seconds, peak = run_model_cli(name, tmp_path)
    assert rc == (1 if name in _MODEL_BUGS else 0), f"exit {rc}: {err[-4000:]}"
    _record(name, doc, seconds, peak)
    section = doc["model"]
    assert {r["verdict"] for r in doc["results"]} <= {"pass", "xfail"}, doc["results"]
    if name in _MODEL_BUGS:  # the model's own bug, found by the round trip; nothing else
        bad = [c for c in section["round_trip"]["checks"] if not c["ok"]]
        assert bad and _MODEL_BUGS[name][0] in bad[0]["problem"], section["round_trip"]
    keras.utils.set_random_seed(0)
    walked = walk_conv_layers(corpus_models.BUILDERS[name]())
    found = section["layers"]
    # every conv found: as many layers of each class as Keras's own walk (by class, since
    # automatic names count the layers a process made before: the CLI's are not this one's)
    layers = {r["name"]: r["class"] for r in found}  # a layer called at 2 shapes is 2 rows
    assert Counter(layers.values()) == Counter(type(x).__name__ for x in walked), (
        name, sorted(layers))
    for row in found:  # checked on every backend, or listed with the reason why not
        if row["checked"]:
            assert {r["backend"] for r in row["results"]} == set(section["backends"]), row
        else:
            assert row["reason"], row
    e2e = section["end_to_end"]
    if name in _MODEL_BUGS:
        assert all(r["verdict"] == "unsupported" and _MODEL_BUGS[name][1] in r["message"]
                   for r in e2e["results"]), e2e
    else:
        assert {r["verdict"] for r in e2e["results"]} <= {"pass", "xfail"}, e2e
    if name in _NAMED:
        named = _named_convs(name, found)
        assert len(named) >= _NAMED[name], (name, [(r["name"], r["config"]) for r in found])
        assert all(r["checked"] for r in named), named
    if name == "retinanet":  # dict outputs, each compared end to end by name
        compared = next(r["outputs"] for r in e2e["results"] if r.get("outputs"))
        assert len(compared) == 8 and any(c.endswith("classes_P3") for c in compared), compared
