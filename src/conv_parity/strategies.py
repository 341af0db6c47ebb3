"""Hypothesis strategies for conv cases, for users' own property tests (a public name since the
first release; the code lives in :mod:`conv_parity.generate.strategies`).

    from conv_parity.strategies import conv_cases, invalid_cases, edge_cases, cases_for
"""

from conv_parity.generate.strategies import (
    EDGES,
    FilterCounter,
    KnownFilter,
    boundaries,
    cases_for,
    conv_cases,
    edge_cases,
    invalid_cases,
    is_valid,
    valid_cases,
)

__all__ = [
    "EDGES",
    "FilterCounter",
    "KnownFilter",
    "boundaries",
    "cases_for",
    "conv_cases",
    "edge_cases",
    "invalid_cases",
    "is_valid",
    "valid_cases",
]
