"""The protocol every mode implements, and the arrays a case is computed on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from conv_parity.backends import BackendSpec
    from conv_parity.case import ConvCase
    from conv_parity.expected import Expected


@dataclass
class Arrays:
    """What a case is computed on: the input, the weights in ``get_weights()`` order, any
    extra named arrays a mode needs (a cotangent), and where they came from ("seed" when
    :meth:`ConvCase.arrays` made them; a model file's layer for real weights)."""

    x: np.ndarray
    weights: list[np.ndarray]
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)
    source: str = "seed"

    @property
    def seeded(self) -> bool:
        return self.source == "seed"


class Mode(Protocol):
    """How a case is computed; see the package docstring."""

    name: str
    outputs: tuple[str, ...]

    def skip_reason(self, spec: BackendSpec) -> str | None: ...

    def seeded(self, case: ConvCase) -> Arrays: ...

    def run(self, keras: Any, case: ConvCase, arrays: Arrays) -> dict[str, np.ndarray]: ...

    def expected(self, case: ConvCase, arrays: Arrays) -> Expected: ...

    def repro_call(self, case: ConvCase) -> str: ...

    def repro_prepare(self, case: ConvCase) -> str: ...

    def repro_check(self, case: ConvCase, backend: str) -> str: ...
