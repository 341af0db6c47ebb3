"""The grid: every case of the selected profile on every selected backend.

The plugin parametrizes ``conv_case`` x ``conv_backend``; ``conv_assert`` runs the case (in a
batch with its neighbours, on all backends at once) and turns the verdict into a pytest outcome.
"""

from __future__ import annotations

from collections.abc import Callable

from conv_parity.case import ConvCase


def test_conformance(
    conv_case: ConvCase, conv_backend: str, conv_assert: Callable[[ConvCase, str], None]
) -> None:
    conv_assert(conv_case, conv_backend)
