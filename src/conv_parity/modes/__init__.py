"""Modes: how a case is computed: ``eager`` (one forward call), ``predict`` (``model.predict``
of a functional model), ``jit`` (the same compiled with ``jit_compile=True``) and ``grad`` (the
forward output and the vector-Jacobian product).

One file per mode behind a small protocol (STYLE.md pattern 2), looked up by name: the engine,
the worker and the repro script ask ``MODES[case.mode]`` and never branch on the mode's name.
A mode has

* ``outputs``: the names of what it computes (``("y",)`` for a forward pass; a gradient mode
  would say ``("dx", "dkernel", "dbias")``): results, references and comparisons are mappings
  of these names to arrays, and the worst element is reported with its name;
* a worker half, :meth:`Mode.run`: what a backend computes, in the worker process;
* a reference half, :meth:`Mode.expected`: what it should be, from the NumPy reference;
* :meth:`Mode.skip_reason`: why a backend cannot run it at all (None when it can);
* :meth:`Mode.repro_call`: the lines of a repro script that compute ``y`` with plain Keras.

Public API: :data:`MODES`, :func:`get`, :func:`parse`, :func:`seeded`, :class:`Mode`,
:class:`Arrays`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from conv_parity.errors import UsageError
from conv_parity.modes._protocol import Arrays, Mode
from conv_parity.modes.eager import Eager
from conv_parity.modes.grad import Grad
from conv_parity.modes.jit import Jit
from conv_parity.modes.predict import Predict

if TYPE_CHECKING:
    from conv_parity.case import ConvCase

MODES: dict[str, Mode] = {m.name: m for m in (Eager(), Predict(), Jit(), Grad())}


def get(name: str) -> Mode:
    """The mode called ``name``; an unknown name is a UsageError listing the known ones."""
    try:
        return MODES[name]
    except KeyError:
        raise UsageError(f"unknown mode {name!r}; choose from {', '.join(MODES)}") from None


def seeded(case: ConvCase) -> Arrays:
    """The seeded arrays of a case, as its mode makes them (a gradient mode adds the
    cotangent and may need inputs without ties)."""
    return get(case.mode).seeded(case)


def parse(spec: str | None) -> list[str] | None:
    """The modes a ``--modes`` / ``--conv-modes`` value names, in order, each checked; None
    for no value (the caller's default). ``parse("eager, grad") == ["eager", "grad"]``."""
    if spec is None:
        return None
    names = list(dict.fromkeys(s.strip() for s in spec.split(",") if s.strip()))
    if not names:
        raise UsageError(f"no mode given; choose from {', '.join(MODES)} "
                         f"(e.g. eager,predict,jit,grad)")
    for name in names:
        get(name)
    return names


__all__ = ["MODES", "Arrays", "Mode", "get", "parse", "seeded"]
