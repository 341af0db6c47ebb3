"""Reading a model file without running it: its config as JSON, the layer records in a config,
and Keras imported with a backend chosen for loading. The ground that both :mod:`.load` and
:mod:`.migrate` stand on (neither imports the other for these).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

from conv_parity.errors import UsageError


def import_keras() -> Any:
    """Keras, imported with a backend chosen for loading (see :mod:`conv_parity.model.load`)."""
    if "keras" not in sys.modules and not os.environ.get("KERAS_BACKEND"):
        for name, module in (("jax", "jax"), ("numpy", "jax"), ("tensorflow", "tensorflow"),
                             ("torch", "torch")):
            if importlib.util.find_spec(module) is not None:
                os.environ["KERAS_BACKEND"] = name
                break
    import keras

    return keras


def first_line(exc: BaseException) -> str:
    """The first 400 characters of an error's message, on one line."""
    text = " ".join(str(exc).split())
    return text[:400] + ("..." if len(text) > 400 else "")


def h5_model_config(path: Path) -> dict[str, Any]:
    """The ``model_config`` JSON of a full-model .h5 (Keras 2 or 3), read without Keras."""
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            raw = fh.attrs.get("model_config")
    except OSError as exc:
        raise UsageError(f"{path}: not a readable HDF5 file ({first_line(exc)}); "
                         f"truncated or not a model") from None
    if raw is None:
        raise UsageError(f"{path}: an HDF5 file without a model config (a weights-only file? "
                         f"give the full model saved with model.save)")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8")
    try:
        return json.loads(raw)
    except ValueError:
        raise UsageError(f"{path}: the model config in this .h5 is not valid JSON") from None


def layer_configs(config: Any) -> list[dict[str, Any]]:
    """Every ``{"class_name": ..., "config": ...}`` record in a model config, nested ones too,
    in the file's order (a container before its layers): messages list layers as the model
    does."""
    found: list[dict[str, Any]] = []
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("class_name"), str) and isinstance(node.get("config"), dict):
                found.append(node)
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return found


__all__ = ["first_line", "h5_model_config", "import_keras", "layer_configs"]
