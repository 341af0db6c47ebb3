"""What a mode expects of a case: its named reference outputs, their magnitudes, or the spec's
rejection. A record: each mode's reference half builds one (:meth:`conv_parity.modes.Mode.expected`)
and the verdict, the diagnosis and the engine read it.

It was ``verdict.Reference``; "reference" is the NumPy package, so the record is
:class:`Expected` (STYLE.md 18: one word, one meaning).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Expected:
    """What the spec says about a case: named outputs (with their magnitudes) or a rejection.

    ``shape`` is the first output's (a forward pass's ``y``); ``outputs`` and ``magnitudes``
    map each output name of the case's mode to its array, ``reduction_sizes`` to how many
    products one of its elements sums (the reference's own error bound).
    """

    shape: tuple[int, ...] | None = None
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    magnitudes: dict[str, np.ndarray] = field(default_factory=dict)
    invalid: str | None = None  # InvalidConfig message when the spec rejects the case
    reduction_sizes: dict[str, int] = field(default_factory=dict)

    @property
    def output(self) -> np.ndarray | None:
        """The first output (``y`` of a forward pass)."""
        return next(iter(self.outputs.values()), None)

    @property
    def magnitude(self) -> np.ndarray | None:
        return next(iter(self.magnitudes.values()), None)


__all__ = ["Expected"]
