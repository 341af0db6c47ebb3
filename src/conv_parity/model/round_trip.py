"""Round trips: does the model come back the same after Keras serialises it?

Before Keras 3.15.0 a transposed conv's ``output_padding`` was missing from ``get_config``: a
``.keras`` save and reload silently changed the model's output shape while the weights still
loaded (keras#23014). These checks catch that class of bug without computing a number in this
process (whose backend is whatever ``KERAS_BACKEND`` or ``keras.json`` says, and may not run
the model at all: TF without oneDNN has no channels_first conv on CPU):

- per layer: every conv-family layer rebuilt with ``from_config(get_config())`` must carry the
  same canonical kwargs (the case's), so a key lost in ``get_config`` is named;
- ``get_config`` -> ``from_config`` of the whole model, and ``.keras`` save -> load: the same
  weights, exactly (every array, NaN included), and the same symbolic outputs (names, shapes,
  dtypes);

and, in every worker (:mod:`conv_parity.workers.whole_model`), on its own backend: a fresh
model from the config reads the ``.weights.h5`` written here and runs through the same probe
graph as the loaded ``.keras`` model; its outputs must equal that model's within the backend's
measured run-to-run jitter (exactly where the backend is deterministic).
:func:`add_cross_backend` files those checks here.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from conv_parity.model.extract import Extraction


def output_specs(model: Any, input_shapes: list[tuple[int, ...]]) -> list[tuple[str, Any, str]]:
    """(name, shape, dtype) of each model output, computed symbolically (no numbers)."""
    import keras

    from conv_parity.model.inputs import model_inputs
    from conv_parity.workers.layer_tree import flatten_named

    tensors = [keras.KerasTensor(shape, dtype=spec.dtype)
               for shape, spec in zip(input_shapes, model_inputs(model))]
    spec = model.compute_output_spec(tensors[0] if len(tensors) == 1 else tensors)
    return [(name, tuple(t.shape), str(t.dtype)) for name, t in flatten_named(spec)]


def spec_problem(before: list[tuple[str, Any, str]], after: list[tuple[str, Any, str]]
                 ) -> str:
    """The first symbolic output that changed, in words."""
    if [n for n, _, _ in before] != [n for n, _, _ in after]:
        return (f"outputs {[n for n, _, _ in after]} after the round trip != "
                f"{[n for n, _, _ in before]} before")
    for (name, shape, dtype), (_, shape2, dtype2) in zip(before, after):
        if shape != shape2:
            return f"{name} shape {shape2} after the round trip != {shape} before"
        if dtype != dtype2:
            return f"{name} dtype {dtype2} after the round trip != {dtype} before"
    return "outputs changed"


def same_weights(before: list[np.ndarray], after: list[np.ndarray]) -> str | None:
    """None when every weight array is identical (NaN where NaN), else the first that is not."""
    if len(before) != len(after):
        return f"{len(after)} weight arrays after, {len(before)} before"
    for i, (a, b) in enumerate(zip(after, before)):
        if a.shape != b.shape:
            return f"weight {i} shape {a.shape} after the round trip != {b.shape} before"
        if not np.array_equal(a, b, equal_nan=True):
            return f"weight {i} values differ after the round trip"
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


def run(model: Any, input_shapes: list[tuple[int, ...]], extraction: Extraction
        ) -> dict[str, Any]:
    """The ``round_trip`` part of the model section (no forward pass in this process)."""
    import keras

    checks: list[dict[str, Any]] = []
    weights = model.get_weights()
    specs = output_specs(model, input_shapes)

    def record(name: str, rebuild: Any) -> None:
        try:
            other = rebuild()
            problem = same_weights(weights, other.get_weights())
            after = output_specs(other, input_shapes)
            if problem is None and after != specs:
                problem = spec_problem(specs, after)
        except Exception as exc:
            problem = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
        checks.append({"check": name, "ok": problem is None, "problem": problem})

    def from_config() -> Any:
        clone = type(model).from_config(model.get_config())
        clone.set_weights(weights)
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
