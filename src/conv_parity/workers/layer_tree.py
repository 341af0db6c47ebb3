"""A model's layers as a tree of paths (``backbone/stage_2/conv``), and its nested outputs
as flat named arrays: the names the parent and every worker agree on.

One home for both sides: the parent's extraction names each conv-family layer by its path, and
a worker that sees a layer raise names it the same way, so the parent can look the layer's own
per-layer verdict up. Keras-free (the model object is duck-typed), so it serves Keras 3 and
Keras 2 (tf_keras) alike.
"""

from __future__ import annotations

import contextlib
from typing import Any


def children(layer: Any) -> list[Any]:
    """The layers ``layer`` holds directly: a functional or sequential model's layers, and the
    sublayers a subclassed layer or model (or a wrapper such as TimeDistributed) tracks."""
    flatten = getattr(layer, "_flatten_layers", None)  # Keras 3's (and tf_keras's) tracking
    if flatten is not None:
        try:
            return list(flatten(include_self=False, recursive=False))
        except TypeError:  # a Keras whose signature differs: the public list below
            pass
    return list(getattr(layer, "layers", None) or [])


def leaves(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(path, layer) for every leaf layer, however deep: nested functional and sequential
    models, subclassed layers and models, wrappers; in the order they are tracked (graph order
    for a functional model). A layer held twice is listed at its first path."""
    out: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def walk(layer: Any, at: str) -> None:
        for child in children(layer):
            if id(child) in seen:
                continue
            seen.add(id(child))
            path = f"{at}{child.name}"
            if children(child):
                walk(child, path + "/")
            else:
                out.append((path, child))

    walk(model, prefix)
    return out


def containers(model: Any) -> list[Any]:
    """Every layer under ``model`` that holds layers (submodels, subclassed blocks, wrappers),
    each once."""
    out: list[Any] = []
    seen: set[int] = set()

    def walk(layer: Any) -> None:
        for child in children(layer):
            if id(child) in seen:
                continue
            seen.add(id(child))
            if children(child):
                out.append(child)
                walk(child)

    walk(model)
    return out


def flatten_named(value: Any, prefix: str = "output") -> list[tuple[str, Any]]:
    """A nested output as (path name, leaf) pairs, in the order ``keras.tree.flatten`` gives
    (dict keys sorted): ``{"boxes": [a, b], "cls": c}`` -> ``output/boxes/0``,
    ``output/boxes/1``, ``output/cls``; one tensor is just ``output``."""
    if isinstance(value, dict):
        return [pair for key in sorted(value) for pair in flatten_named(value[key],
                                                                        f"{prefix}/{key}")]
    if isinstance(value, (list, tuple)):
        return [pair for i, item in enumerate(value)
                for pair in flatten_named(item, f"{prefix}/{i}")]
    return [(prefix, value)]


def output_names(model: Any, count: int) -> list[str]:
    """The names of a functional model's ``count`` flat outputs, from its nested output
    structure where Keras keeps it (Keras 3 ``_outputs_struct``, tf_keras ``_nested_outputs``);
    ``output/i`` when it does not."""
    for attr in ("_outputs_struct", "_nested_outputs"):
        struct = getattr(model, attr, None)
        if struct is not None:
            names = [name for name, _ in flatten_named(struct)]
            if len(names) == count:
                return names
    return ["output"] if count == 1 else [f"output/{i}" for i in range(count)]


class RaisingLayer:
    """For the duration of a ``with``: every leaf layer's ``call`` is wrapped, and the first
    one an exception leaves (the innermost: it raises before any layer around it) is kept in
    :attr:`path`."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.path: str | None = None
        self._patched: list[Any] = []

    def __enter__(self) -> RaisingLayer:
        for path, layer in leaves(self.model):
            original = getattr(layer, "call", None)
            if original is None:
                continue
            try:
                object.__setattr__(layer, "call", self._spy(path, original))
            except (AttributeError, TypeError):
                continue
            self._patched.append(layer)
        return self

    def _spy(self, path: str, original: Any) -> Any:
        def spy(*args: Any, **kwargs: Any) -> Any:
            try:
                return original(*args, **kwargs)
            except Exception:
                if self.path is None:
                    self.path = path
                raise

        return spy

    def __exit__(self, *exc: object) -> None:
        for layer in self._patched:
            with contextlib.suppress(AttributeError):
                object.__delattr__(layer, "call")
        self._patched.clear()

