"""Round trips: does the model come back the same after Keras serialises it?

Before Keras 3.15.0 a transposed conv's ``output_padding`` was missing from ``get_config``: a
``.keras`` save and reload silently changed the model's output shape while the weights still
loaded (keras#23014). Three checks catch that class of bug, in the process that loaded the
model (its backend is named in the result):

- per layer: every conv-family layer rebuilt with ``from_config(get_config())`` must carry the
  same canonical kwargs (the case's), so a key lost in ``get_config`` is named;
- ``get_config`` -> ``from_config`` of the whole model, weights copied, same output;
- ``.keras`` save -> load, same output (shape, then values, exactly: the same backend runs the
  same weights through the same graph).

Across backends: the end-to-end check loads the ``.keras`` saved here on every backend, and
each worker also builds a fresh model from its config, reads the ``.weights.h5`` this process
wrote (on its own backend) and runs it: the output must equal that worker's own output of the
``.keras`` model exactly (:func:`add_cross_backend` files those checks here).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from conv_parity.model.extract import Extraction


def _outputs(model: Any, x: np.ndarray) -> list[np.ndarray]:
    import keras

    got = model(keras.ops.convert_to_tensor(x), training=False)
    if not isinstance(got, (list, tuple)):
        got = [got]
    return [np.asarray(keras.ops.convert_to_numpy(t)) for t in got]


def same(before: list[np.ndarray], after: list[np.ndarray]) -> str | None:
    """None when equal, else what differs (got, expected)."""
    if len(before) != len(after):
        return f"{len(after)} outputs after, {len(before)} before"
    for i, (a, b) in enumerate(zip(after, before)):
        if a.shape != b.shape:
            return f"output {i} shape {a.shape} after the round trip != {b.shape} before"
        if not np.array_equal(a, b, equal_nan=True):
            err = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
            return f"output {i} values differ after the round trip (max |diff| {err:.3g})"
    return None


def layer_round_trips(model: Any, extraction: Extraction) -> list[dict[str, Any]]:
    """Per conv-family layer: kwargs after ``from_config(get_config())`` vs before."""
    from conv_parity.model.extract import layer_kwargs, leaves

    layers = dict(leaves(model))
    rows = []
    seen = set()
    for use in extraction.checkable:
        if use.path in seen or use.case is None:
            continue
        seen.add(use.path)
        layer = layers[use.path]
        rebuilt = type(layer).from_config(layer.get_config())
        kwargs, _ = layer_kwargs(use.case.kind, rebuilt.get_config())
        before = use.case.to_json()["kwargs"]
        problem = None
        if kwargs is None:
            problem = "the rebuilt layer's config is no longer expressible"
        else:
            from conv_parity.case import ConvCase

            after = ConvCase.make(use.cls, kwargs, use.input_shape, dtype=use.dtype)
            changed = {k: (before.get(k), v) for k, v in after.to_json()["kwargs"].items()
                       if before.get(k) != v}
            if changed:
                problem = "; ".join(f"{k}: {b!r} before, {a!r} after"
                                    for k, (b, a) in changed.items())
        rows.append({"layer": use.path, "class": use.cls, "ok": problem is None,
                     "problem": problem})
    return rows


def run(model: Any, x: np.ndarray, extraction: Extraction) -> dict[str, Any]:
    """The ``round_trip`` part of the model section."""
    import keras

    checks: list[dict[str, Any]] = []
    before = _outputs(model, x)

    def record(name: str, rebuild: Any) -> None:
        try:
            problem = same(before, _outputs(rebuild(), x))
        except Exception as exc:
            problem = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        checks.append({"check": name, "ok": problem is None, "problem": problem})

    def from_config() -> Any:
        clone = type(model).from_config(model.get_config())
        clone.set_weights(model.get_weights())
        return clone

    record("get_config -> from_config", from_config)
    with tempfile.TemporaryDirectory(prefix="conv-parity-rt-") as tmp:
        path = Path(tmp) / "model.keras"

        def save_load() -> Any:
            model.save(path)
            return keras.saving.load_model(path, safe_mode=True, compile=False)

        record(".keras save -> load", save_load)
    layers = layer_round_trips(model, extraction)
    ok = all(c["ok"] for c in checks) and all(r["ok"] for r in layers)
    return {"backend": keras.backend.backend(), "ok": ok, "checks": checks, "layers": layers}


def add_cross_backend(trips: dict[str, Any], end_to_end: dict[str, Any]) -> None:
    """Move the end-to-end check's weights round trips (``.weights.h5`` written here, read on
    each backend) into the ``round_trip`` section's checks."""
    checks = end_to_end.pop("weights_round_trips", [])
    trips["checks"].extend(checks)
    trips["ok"] = trips["ok"] and all(c["ok"] for c in checks)
