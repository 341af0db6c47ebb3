"""Optional cross-check against real Keras (TensorFlow backend) in a subprocess: `-m slow`.

Independent of the oracle: Keras's own layers and ops, in float64, on drawn configurations.
Skipped when the backend library is not installed. Configurations TensorFlow cannot run on CPU
are left out (each is a backend limitation, not a spec question): channels_first convolutions
("only supports NHWC on the CPU"), 3D pooling in float64 (no double kernel), dilated 3D
transposed conv ("does not yet support dilation rates larger than 1"), and ``ops.*`` with
strides > 1 and dilation > 1 together (``tf.nn.convolution`` raises; Keras's ops do not).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ref_strategies import configs

from conv_parity import kinds, reference

_WORKER = r"""
import io, json, sys
import numpy as np
import keras
keras.config.set_floatx("float64")
cases = json.loads(sys.stdin.buffer.readline())
data = np.load(io.BytesIO(sys.stdin.buffer.read()))
out = {}
for i, c in enumerate(cases):
    x = data[f"x{i}"]
    ws = [data[f"w{i}_{j}"] for j in range(c["n_w"])]
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in c["kwargs"].items()}
    try:
        if c["layer"].startswith("ops."):
            y = getattr(keras.ops, c["layer"][4:])(x, *ws, **kw)
        else:
            layer = getattr(keras.layers, c["layer"])(dtype="float64", **kw)
            layer.build(x.shape)
            layer.set_weights(ws)
            y = layer(x)
        out[f"y{i}"] = keras.ops.convert_to_numpy(y)
    except Exception as e:
        out[f"e{i}"] = np.array(f"{type(e).__name__}: {e}"[:300])
buf = io.BytesIO(); np.savez(buf, **out); sys.stdout.buffer.write(buf.getvalue())
"""


def _run_keras(backend: str, drawn: list) -> dict[str, np.ndarray]:
    cases, arrays = [], {}
    for i, d in enumerate(drawn):
        kw = {k: list(v) if isinstance(v, tuple) else v for k, v in d.call_kwargs.items()}
        cases.append({"layer": d.layer, "kwargs": kw, "n_w": len(d.weights)})
        arrays[f"x{i}"] = d.x.astype(np.float64)
        for j, w in enumerate(d.weights):
            arrays[f"w{i}_{j}"] = w
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run(
        [sys.executable, "-c", _WORKER], input=json.dumps(cases).encode() + b"\n" + buf.getvalue(),
        capture_output=True, env=env, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    return dict(np.load(io.BytesIO(proc.stdout)))


def _tf_cpu_can_run(d) -> bool:
    kind = kinds.get_kind(d.layer)
    kw = d.kwargs
    rank = len(d.input_shape) - 2
    if kind.is_pool:
        return rank < 3
    if kw["data_format"] == "channels_first":
        return False
    if kind.family == "conv_transpose" and max(kw["dilation_rate"]) > 1:
        return False
    return not (max(kw["strides"]) > 1 and max(kw["dilation_rate"]) > 1)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs tensorflow")
def test_agrees_with_keras_tensorflow_backend() -> None:
    drawn = []

    @settings(max_examples=12, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def collect(layer, data):
        d = data.draw(configs(layer, max_batch=2))
        if d.input_shape[0] and _tf_cpu_can_run(d):
            drawn.append(d)

    for layer in sorted(kinds.KINDS):
        collect(layer)
    results = _run_keras("tensorflow", drawn)
    failures, errors = [], []
    for i, d in enumerate(drawn):
        ref = reference.forward(d.layer, d.x, d.weights, **d.call_kwargs)
        if f"e{i}" in results:
            # A backend error on a config the spec accepts is the suite's business (error
            # parity), not a question about the reference's values: report, don't fail.
            errors.append((d.layer, d.call_kwargs, d.input_shape, str(results[f"e{i}"])[:200]))
            continue
        y = results[f"y{i}"]
        if y.shape != ref.shape or not np.allclose(y, ref, rtol=1e-9, atol=1e-9):
            err = "shape" if y.shape != ref.shape else float(np.abs(y - ref).max())
            failures.append((d.layer, d.call_kwargs, d.input_shape, err))
    if errors:
        warnings.warn("TensorFlow raised on:\n" + "\n".join(map(str, errors)), stacklevel=1)
    assert len(errors) < len(drawn) // 4, errors
    assert not failures, "\n".join(map(str, failures))
