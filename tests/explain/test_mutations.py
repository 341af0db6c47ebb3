"""Detection power: inject each known bug class into a real backend and check the suite sees it.

Each mutant (conv_parity.mutations) wraps the real Keras computation inside the jax worker. A
mutant is *caught* when at least one case that conforms unmutated fails (values or shape), and
the diagnosis must name the injected bug: every caught failure is diagnosed as that bug or, at
worst, "none" — a wrong name would send a person down the wrong path.

The fast test runs the smoke grid plus a few cases chosen so every mutant is expressible; the
slow one runs the default grid and prints the mutation score table.
"""

from __future__ import annotations

import importlib.util

import pytest

from conv_parity import mutants, mutations
from conv_parity.case import ConvCase
from conv_parity.generate import grid

try:
    from conv_parity.engine import Engine
except ImportError:  # pragma: no cover - the engine is built in parallel
    Engine = None

pytestmark = [
    pytest.mark.skipif(Engine is None, reason="engine not available"),
    pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax not installed"),
]

BACKEND = "jax"
FAILING = ("fail-values", "fail-shape")

#: Cases that make every mutant expressible on top of the smoke grid.
EXTRA = [
    # bias-wrong-axis needs an output axis as long as the channels; channels-first-only needs
    # channels_first; batch-gt1-only needs batch > 1.
    ConvCase.make("Conv2D", {"filters": 4, "kernel_size": 3, "padding": "same",
                             "data_format": "channels_first"}, (2, 3, 5, 4)),
    ConvCase.make("Conv2D", {"filters": 4, "kernel_size": 2, "padding": "same", "groups": 2,
                             "dilation_rate": 2}, (2, 6, 7, 4)),
    ConvCase.make("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2,
                                      "padding": "same", "output_padding": 1}, (1, 4, 5, 3)),
    # output-padding-ignored shows with 'valid' (one more row and column than without it)
    ConvCase.make("Conv2DTranspose", {"filters": 2, "kernel_size": 3, "strides": 2,
                                      "padding": "valid", "output_padding": 1}, (1, 4, 5, 3)),
    ConvCase.make("MaxPooling2D", {"pool_size": 2, "strides": 2, "padding": "same"},
                  (2, 5, 7, 2)),
    # the mode-only mutants: a gradient case with a kernel, and the compiled paths
    *(ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 3, "strides": 2}, (2, 7, 6, 2),
                    mode=mode) for mode in ("eager", "predict", "jit", "grad")),
    ConvCase.make("AveragePooling1D", {"pool_size": 2}, (1, 6, 2), mode="jit"),
]


#: One test-only target per mutant: the backend with that bug injected (conv_parity.backends).
MUTANTS = {name: f"{BACKEND}:mutant-{name}" for name in mutants.MUTATIONS}


@pytest.fixture(scope="module")
def engine():
    with Engine([BACKEND, *MUTANTS.values()],
                extra_env={"CONV_PARITY_ENABLE_MUTATIONS": "1"}) as eng:
        yield eng


def _names(outcome, expected: frozenset[str]) -> bool:
    """The outcome's diagnosis names one of `expected` (first reading or an equal one)."""
    code = getattr(outcome, "diagnosis_code", None)
    text = outcome.diagnosis or ""
    if code in expected:
        return True
    also = text.split("equally consistent with:", 1)[1] if "equally consistent with:" in text \
        else ""
    return any(f"{e} (" in also for e in expected)


def _score(engine, cases: list[ConvCase]) -> dict[str, dict]:
    outcomes = engine.check(cases)  # every mutant runs beside the plain backend, concurrently
    conforming = {o.case for o in outcomes if o.backend == BACKEND and o.verdict == "pass"}
    assert conforming, "nothing conforms unmutated: the mutation test would prove nothing"
    table: dict[str, dict] = {}
    for name, target in MUTANTS.items():
        failing = [o for o in outcomes if o.backend == target and o.case in conforming
                   and o.verdict in FAILING]
        expected = mutants.EXPECTED_DIAGNOSIS[name]
        named = [_names(o, expected) for o in failing] if expected else []
        if name == "grad-kernel-scaled":  # reported where it is, and diagnosed from dkernel
            assert all(o.worst["output"] == "dkernel" for o in failing)
            assert all("kernel gradient equals the reference's times 1.001" in o.diagnosis
                       for o in failing), [o.diagnosis for o in failing]
        table[name] = {
            "cases": len(conforming),
            "caught": len(failing),
            "named": sum(named),
            "modes": sorted({o.case.mode for o in failing}),
            "wrong": [(o.case.id, getattr(o, "diagnosis_code", None))
                      for o, ok in zip(failing, named)
                      if not ok and getattr(o, "diagnosis_code", None) != "none"],
        }
    caught = sum(1 for row in table.values() if row["caught"])
    print(f"\nmutation score on {BACKEND}: {caught}/{len(table)} mutants caught")
    print(f"{'mutant':<24}{'failing cases':>14}{'diagnosed':>11}")
    for name, row in table.items():
        print(f"{name:<24}{row['caught']:>9}/{row['cases']:<4}{row['named']:>7}/{row['caught']}")
    return table


def _assert_all_caught_and_named(table: dict[str, dict]) -> None:
    missed = [n for n, row in table.items() if not row["caught"]]
    assert not missed, f"mutants not caught: {missed}"
    for name, only in mutants.MODE_ONLY.items():
        # caught in every mode that can see it, and in no other (eager must miss it)
        assert table[name]["modes"] == sorted(only), (name, table[name]["modes"])
    unnamed = [n for n, row in table.items()
               if mutants.EXPECTED_DIAGNOSIS[n] and not row["named"]]
    assert not unnamed, f"caught but never diagnosed as the injected bug: {unnamed}"
    wrong = {n: row["wrong"][:3] for n, row in table.items() if row["wrong"]}
    assert not wrong, f"diagnosis named another bug: {wrong}"


@pytest.mark.slow  # 60-120 s on 2 cores: `pytest -m slow`, `nox -s slow` and CI's slow job
def test_every_mutant_is_caught_and_named_smoke(engine) -> None:
    cases = list(dict.fromkeys([*grid.cases("smoke"), *EXTRA]))
    _assert_all_caught_and_named(_score(engine, cases))


@pytest.mark.slow
def test_every_mutant_is_caught_and_named_default(engine) -> None:
    _assert_all_caught_and_named(_score(engine, grid.cases("default")))


def test_mode_only_mutants_are_not_forward_mutants() -> None:
    """apply() is the forward door; a mode-only mutant there is a usage error naming the rest."""
    from conv_parity.errors import UsageError

    for name in mutants.MODE_ONLY:
        with pytest.raises(UsageError, match="unknown forward mutation"):
            mutations.apply(name, EXTRA[0], *EXTRA[0].arrays(), lambda c, x, w: x)
