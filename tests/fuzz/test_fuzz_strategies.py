"""The exported strategies: validity, rejection, boundaries, shrinking, the known filter."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, find, given, settings

from conv_parity import kinds, reference
from conv_parity.case import ConvCase
from conv_parity.errors import InvalidConfig
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
from conv_parity.registry import Registry, _parse_entry

FAST = settings(max_examples=60, deadline=None, database=None,
                suppress_health_check=list(HealthCheck))


@FAST
@given(case=conv_cases())
def test_conv_cases_are_valid(case: ConvCase) -> None:
    shape = reference.output_shape(case.layer, case.input_shape, **case.kwargs)
    squeezed = case.kind.is_global and not case.kwargs["keepdims"]  # (batch, channels)
    assert len(shape) == (2 if squeezed else len(case.input_shape))
    assert valid_cases is conv_cases


@pytest.mark.parametrize("layer", list(kinds.KINDS))
def test_cases_for_each_kind_are_valid_and_cheap(layer: str) -> None:
    @settings(max_examples=12, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=cases_for(layer))
    def check(case: ConvCase) -> None:
        assert case.layer == layer
        assert is_valid(case)
        x, _ = case.arrays()
        assert x.size <= 3 * 16 * 16 * 16  # small tensors: the geometry is what matters

    check()


@FAST
@given(case=invalid_cases())
def test_invalid_cases_are_rejected_by_the_spec(case: ConvCase) -> None:
    with pytest.raises(InvalidConfig):
        reference.output_shape(case.layer, case.input_shape, **case.kwargs)
    case.arrays()  # the engine must still be able to build its arrays and ask the backends


@pytest.mark.parametrize("edge", EDGES)
def test_edge_cases_sit_on_their_boundary(edge: str) -> None:
    @FAST
    @given(case=edge_cases(edges=[edge]))
    def check(case: ConvCase) -> None:
        assert is_valid(case)
        assert edge in boundaries(case)

    check()


def test_edge_boundaries_by_hand() -> None:
    one = ConvCase.make("Conv2D", {"filters": 1, "kernel_size": (3, 2)}, (1, 3, 2, 1))
    assert set(boundaries(one)) == {"output_one", "kernel_eq_input"}
    stride = ConvCase.make("Conv1D", {"filters": 1, "kernel_size": 1, "strides": 4,
                                      "padding": "same"}, (1, 4, 1))
    assert boundaries(stride) == ["output_one", "stride_eq_input"]
    plain = ConvCase.make("Conv1D", {"filters": 1, "kernel_size": 2}, (1, 5, 1))
    assert boundaries(plain) == []


def _shrink(predicate) -> ConvCase:  # type: ignore[no-untyped-def]
    return find(conv_cases(), predicate,
                settings=settings(max_examples=2000, database=None, deadline=None,
                                  suppress_health_check=list(HealthCheck)))


def test_shrinking_goes_to_a_simple_config() -> None:
    # A synthetic "bug": every strided transposed convolution fails.
    case = _shrink(lambda c: c.kind.family == "conv_transpose" and max(c.kwargs["strides"]) > 1)
    kw = case.kwargs
    assert case.input_shape[0] == 1  # batch 1
    assert kinds.channels(kw, case.input_shape) == 1
    assert kw["data_format"] == "channels_last"
    assert kw["padding"] == "valid"
    assert set(kw["kernel_size"]) == {1}
    assert set(kw["dilation_rate"]) == {1}
    assert sorted(kw["strides"])[-1] == 2 and sum(kw["strides"]) == len(kw["strides"]) + 1
    assert kw["output_padding"] is None
    assert kw["filters"] == 1
    assert case.layer in ("Conv1DTranspose", "ops.conv_transpose")
    assert max(case.input_shape) <= 2


def test_shrinking_minimises_sizes() -> None:
    # A synthetic "bug" needing some output positions: the smallest input that has them.
    def big_output(c: ConvCase) -> bool:
        out = reference.output_shape(c.layer, c.input_shape, **c.kwargs)
        return c.layer == "Conv2D" and min(out[1:-1] if
                                           c.kwargs["data_format"] == "channels_last"
                                           else out[2:]) >= 3

    case = _shrink(big_output)
    assert case.kwargs["kernel_size"] == (1, 1)
    assert case.kwargs["strides"] == (1, 1)
    assert case.kwargs["groups"] == 1
    assert case.input_shape == (1, 3, 3, 1)


def _registry() -> Registry:
    entry = _parse_entry({
        "id": "test-entry", "keras": ">=3", "backends": ["jax"], "layers": ["Conv2D"],
        "verdict": "fail-values", "link": "unreported", "note": "test",
        "where": {"data_format": "channels_first"},
    }, "test")
    return Registry([entry])


def test_known_filter_drops_and_counts() -> None:
    """A configuration known on every selected backend is dropped before it runs; known on
    only some of them, it is drawn (issue 21: a per-backend entry must not hide it from the
    others)."""
    def draw(backends: list[str]) -> tuple[list[ConvCase], FilterCounter]:
        counter = FilterCounter()
        seen: list[ConvCase] = []

        @settings(max_examples=80, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=cases_for("Conv2D", exclude_known=_registry(), backends=backends,
                              counter=counter))
        def check(case: ConvCase) -> None:
            seen.append(case)

        check()
        return seen, counter

    seen, counter = draw(["jax"])
    assert seen and all(c.kwargs["data_format"] == "channels_last" for c in seen)
    assert counter.filtered_known > 0
    assert counter.filtered_pairs == counter.filtered_known  # one backend: one pair each
    assert not _registry().used  # filtering does not mark entries as matched
    seen, counter = draw(["jax", "torch"])
    assert any(c.kwargs["data_format"] == "channels_first" for c in seen)
    assert counter.filtered_known == counter.filtered_pairs == 0


def test_known_filter_only_for_selected_backends() -> None:
    known = KnownFilter(_registry(), ["torch"], counter=FilterCounter())
    case = ConvCase.make("Conv2D", {"filters": 1, "kernel_size": 1,
                                    "data_format": "channels_first"}, (1, 1, 2, 2))
    assert known(case) and known.counter.filtered_known == 0
    assert known.known_on(case) == ()
    jax = KnownFilter(_registry(), ["jax"], counter=FilterCounter())
    assert not jax(case) and jax.counter.filtered_known == 1
    assert jax.counter.filtered_pairs == 1


def test_a_case_known_on_one_backend_runs_on_the_others_and_counts_the_pair() -> None:
    """The known pair's outcome is dropped whatever its verdict (xfail where the bug
    reproduces, anything else where this machine's facts differ: filtering does not depend on
    the machine); the other backends' outcomes are judged."""
    from conv_parity.judge.verdict import Outcome

    known = KnownFilter(_registry(), ["jax", "torch", "numpy"], counter=FilterCounter())
    first = ConvCase.make("Conv2D", {"filters": 1, "kernel_size": 1,
                                     "data_format": "channels_first"}, (1, 1, 2, 2))
    last = ConvCase.make("Conv2D", {"filters": 1, "kernel_size": 1}, (1, 2, 2, 1))
    assert known(first) and known(last)  # neither is dropped before it runs
    assert known.known_on(first) == ("jax",) and known.known_on(last) == ()
    outcomes = [Outcome(first, "jax", "fail-values", "the known bug"),
                Outcome(first, "torch", "fail-values", "a new bug"),
                Outcome(first, "numpy", "pass", "ok"),
                Outcome(last, "jax", "fail-shape", "another new bug")]
    kept = known.unexplained(outcomes)
    assert [(o.case, o.backend) for o in kept] == [(first, "torch"), (first, "numpy"),
                                                   (last, "jax")]
    assert known.counter.filtered_pairs == 1 and known.counter.filtered_known == 0
    known.unexplained(outcomes, count=False)  # a re-run of a counted case
    assert known.counter.filtered_pairs == 1
    assert not _registry().used


def test_known_filter_survives_a_broken_predicate() -> None:
    class _Broken:
        def applies(self, case: ConvCase, backend: str, keras_version: str | None) -> bool:
            raise ZeroDivisionError("predicate bug")

    registry = Registry([])
    registry.entries = [_Broken()]  # type: ignore[list-item]
    known = KnownFilter(registry, ["jax"], counter=FilterCounter())
    case = ConvCase.make("Conv1D", {"filters": 1, "kernel_size": 1}, (1, 2, 1))
    assert known(case)
    assert known.counter.filter_errors == 1 and known.counter.filtered_known == 0


def test_the_public_strategies_module_is_the_generate_one() -> None:
    import conv_parity.generate.strategies as home
    import conv_parity.strategies as public

    for name in public.__all__:
        assert getattr(public, name) is getattr(home, name)
    assert set(public.__all__) == set(home.__all__)
