"""The few Keras internals conv-parity needs, found wherever the installed release keeps them.

Keras's private layout moves between releases (keras-nightly moved the torch backend's
``keras.src.backend.torch.core`` to ``keras.src.backend.torch.ops.core`` and ``backend.nn`` to
``backend.ops.nn``), and a worker that imports one fixed private path cannot start on the next
release at all. So every internal is asked through public API where Keras has one, and
otherwise looked up here among the places known releases keep it, with an error that names
every place tried when none has it. Imported inside worker processes only, after Keras.
"""

from __future__ import annotations

import importlib
from typing import Any


class KerasInternalMissing(ImportError):
    """No known place of a Keras internal exists in the installed release."""


def find(name: str, *places: str) -> Any:
    """Attribute ``name`` of the first of ``places`` (dotted paths of modules or of their
    attributes) that exists and has it.

    ``find("get_device", "keras.src.backend.torch.core", "keras.src.backend.torch.ops.core")``
    is the torch backend's ``get_device`` on 3.15 and on the nightly alike; a
    :class:`KerasInternalMissing` naming every place tried when no release layout matches.
    """
    tried = []
    for place in places:
        try:
            found = _resolve(place)
        except (ImportError, AttributeError) as exc:
            tried.append(f"{place} ({type(exc).__name__}: {exc})")
            continue
        if hasattr(found, name):
            return getattr(found, name)
        tried.append(f"{place} (no {name})")
    import keras

    raise KerasInternalMissing(
        f"this Keras ({keras.__version__}) keeps {name!r} in none of the places conv-parity "
        f"knows: {'; '.join(tried)}. Keras's private layout moved: add the new place to the "
        f"caller's list (conv_parity.keras_internal)")


def _resolve(dotted: str) -> Any:
    """The module or attribute at ``dotted``: the longest importable module prefix, then
    attributes (``keras.src.backend.ops.nn`` is an attribute chain on the nightly)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            if cut == 1:
                raise
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(dotted)  # pragma: no cover - the loop returns or raises


def backend_nn() -> Any:
    """The active backend's ``nn`` module, which ``keras.ops`` looks its functions up on at
    call time (``keras.src.backend.nn`` up to 3.15, ``keras.src.backend.ops.nn`` on the
    nightly)."""
    return find("nn", "keras.src.backend.ops", "keras.src.backend")


def device_of_new_tensors(keras: Any) -> str:
    """Where Keras puts a new tensor, asked through public API (a converted tensor's device):
    what the private ``get_device`` of the torch and jax backends returns."""
    tensor = keras.ops.convert_to_tensor([0.0])
    device = getattr(tensor, "device", None)
    if callable(device):  # jax arrays: .device is a property on new jax, a method on old
        device = device()
    return str(device) if device is not None else "cpu"
