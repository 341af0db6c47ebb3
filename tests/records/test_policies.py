"""Dtype policies as a case field (issue 15, item 3): the policy records, serialisation and ids,
seeded data exact in the compute dtype, the dtype rules of the verdict, bfloat16 tolerance,
registry scoping by policy, and the mixed input / kernel dtype agreement rule. No processes."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest

from conv_parity import policies
from conv_parity.case import ConvCase
from conv_parity.engine import compute_reference
from conv_parity.errors import UsageError
from conv_parity.judge.compare import rtol_for, tolerance
from conv_parity.judge.verdict import classify, dtype_mismatch, expected_dtypes
from conv_parity.mixed_dtypes import KnownDisagreement, Probe, judge, probes
from conv_parity.registry import Registry, _parse_entry
from conv_parity.results import BackendResult

CONV = ("Conv2D", {"filters": 3, "kernel_size": 3, "padding": "same"}, (2, 5, 6, 4))


def test_policy_records() -> None:
    assert list(policies.POLICIES) == ["float16", "bfloat16", "mixed_float16",
                                       "mixed_bfloat16", "float32", "float64",
                                       "int8", "uint8", "int32", "int64"]
    mixed = policies.get("mixed_bfloat16")
    assert (mixed.compute, mixed.variable, mixed.mixed) == ("bfloat16", "float32", True)
    assert not policies.get("bfloat16").mixed
    with pytest.raises(UsageError, match="mixed_float16"):
        policies.get("mixed_float32")


def test_bfloat16_eps_and_transport() -> None:
    assert policies.finfo("bfloat16")[0] == 2.0**-7
    assert rtol_for("bfloat16") == 64 * 2.0**-7
    assert policies.numpy_dtype("bfloat16") == np.float32
    a = np.array([1.0 + 2**-9, 3.14159], ml_dtypes.bfloat16)
    carried = policies.for_numpy(a)
    assert carried.dtype == np.float32 and np.array_equal(carried.astype(ml_dtypes.bfloat16), a)


@pytest.mark.parametrize("policy", list(policies.POLICIES))
def test_case_fields_ids_and_json_round_trip(policy: str) -> None:
    case = ConvCase.make(*CONV, dtype=policy)
    record = policies.get(policy)
    assert case.policy_name == policy and case.dtype == record.compute
    assert case.variable_dtype == record.variable == case.input_dtype
    assert case.policy == (policy if record.mixed else None)
    assert case.id.endswith("-in2x5x6x4-" + policy)
    data = json.loads(json.dumps(case.to_json()))
    assert data["dtype"] == record.compute and data["policy"] == policy
    assert ConvCase.from_json(data) == case == ConvCase.from_json(data, trusted=True)


def test_plain_ids_and_json_without_policy_stay_as_before() -> None:
    case = ConvCase.make(*CONV)
    assert case.id == "Conv2D-f3-k3x3-s1x1-same-last-d1x1-g1-in2x5x6x4-float32"
    old = {k: v for k, v in case.to_json().items() if k != "policy"}
    assert ConvCase.from_json(old) == case
    same = ConvCase.make(*CONV, dtype="float16", policy="float16")
    assert same.policy is None and same == ConvCase.make(*CONV, dtype="float16")
    assert ConvCase.make(*CONV, dtype="float16", policy="mixed_float16") == \
        ConvCase.make(*CONV, dtype="mixed_float16")


def test_bad_policies_are_usage_errors_with_the_choices() -> None:
    with pytest.raises(UsageError, match="mixed_bfloat16"):
        ConvCase.make(*CONV, dtype="mixed_float64")
    with pytest.raises(UsageError, match="not the compute dtype"):
        ConvCase.make(*CONV, dtype="float32", policy="mixed_float16")
    with pytest.raises(UsageError, match=r"ops have no dtype policy.*--mixed-dtypes"):
        ConvCase.make("ops.conv", {"filters": 2, "kernel_size": 3}, (1, 5, 2),
                      dtype="mixed_float16")
    assert ConvCase.make("ops.conv", {"filters": 2, "kernel_size": 3}, (1, 5, 2),
                         dtype="bfloat16").dtype == "bfloat16"


@pytest.mark.parametrize("policy", ["bfloat16", "mixed_bfloat16", "mixed_float16"])
def test_seeded_arrays_are_exact_in_the_compute_dtype(policy: str) -> None:
    case = ConvCase.make(*CONV, dtype=policy)
    x, weights = case.arrays()
    exact = ml_dtypes.bfloat16 if case.dtype == "bfloat16" else np.float16
    for a in (x, *weights):
        assert a.dtype == np.float32  # carried in float32 (bfloat16, or a mixed policy's input)
        assert np.array_equal(a.astype(exact).astype(np.float32), a)
    assert not np.array_equal(x, ConvCase.make(*CONV).arrays()[0])  # really rounded


def _ok(case: ConvCase, y: np.ndarray, dtypes: dict[str, str] | None = None,
        variables: list[str] | None = None) -> BackendResult:
    return BackendResult("torch", case.id, "ok", outputs={"y": y}, shape=y.shape,
                         dtype=(dtypes or {}).get("y", str(y.dtype)), dtypes=dtypes or {},
                         variable_dtypes=variables, symbolic_shape=y.shape,
                         functional_shape=y.shape)


def test_mixed_policy_result_in_the_compute_dtype_passes() -> None:
    case = ConvCase.make(*CONV, dtype="mixed_bfloat16")
    x, w = case.arrays()
    ref = compute_reference(case, x, w)
    y = ref.output.astype(ml_dtypes.bfloat16).astype(np.float32)
    out = classify(case, ref, _ok(case, y, {"y": "bfloat16"}, ["float32", "float32"]))
    assert out.verdict == "pass", out.message


def test_output_not_in_the_compute_dtype_fails() -> None:
    case = ConvCase.make(*CONV, dtype="mixed_float16")
    x, w = case.arrays()
    ref = compute_reference(case, x, w)
    out = classify(case, ref, _ok(case, ref.output.astype(np.float32), {"y": "float32"}))
    assert out.verdict == "fail-values"
    assert out.message == ("torch returned dtype float32, expected float16 (the compute dtype "
                           "of policy mixed_float16)")


def test_variables_not_in_the_variable_dtype_fail() -> None:
    case = ConvCase.make(*CONV, dtype="mixed_float16")
    y = np.zeros((2, 5, 6, 3), np.float16)
    why = dtype_mismatch(case, _ok(case, y, {"y": "float16"}, ["float16", "float32"]))
    assert why == ("torch stores the layer's weights in float16, expected float32 (the "
                   "variable dtype of policy mixed_float16)")


def test_gradient_dtypes_follow_what_they_differentiate() -> None:
    case = ConvCase.make(*CONV, dtype="mixed_bfloat16", mode="grad")
    assert expected_dtypes(case, ["y", "dx", "dkernel", "dbias"]) == {
        "y": "bfloat16", "dx": "float32", "dkernel": "float32", "dbias": "float32"}
    y = np.zeros((2, 5, 6, 3), np.float32)
    good = {"y": "bfloat16", "dx": "float32", "dkernel": "float32", "dbias": "float32"}
    assert dtype_mismatch(case, _ok(case, y, good)) is None
    why = dtype_mismatch(case, _ok(case, y, {**good, "dkernel": "bfloat16"}))
    assert why == ("torch returned dkernel in bfloat16, expected float32 (the dtype of what "
                   "it differentiates under policy mixed_bfloat16)")


def test_bfloat16_tolerance_is_wider_than_float16() -> None:
    ref, mag = np.ones(3), np.full(3, 2.0)
    assert np.all(tolerance(ref, mag, "bfloat16") > tolerance(ref, mag, "float16"))


def _entry(**extra: object) -> Registry:
    raw = {"id": "e", "keras": ">=3.0", "backends": ["torch"], "layers": ["Conv2D"],
           "verdict": "fail-error-parity", "link": "unreported", "note": "n", **extra}
    return Registry([_parse_entry(raw, "test")])


def test_registry_scopes_by_policy_and_dtype() -> None:
    mixed = ConvCase.make(*CONV, dtype="mixed_float16")
    plain = ConvCase.make(*CONV, dtype="float16")
    by_policy = _entry(policies=["mixed_float16"])
    assert by_policy.match(mixed, "torch", "3.15.1") is not None
    assert by_policy.match(plain, "torch", "3.15.1") is None
    by_dtype = _entry(dtypes=["float16"])  # the compute dtype: both
    assert by_dtype.match(mixed, "torch", "3.15.1") and by_dtype.match(plain, "torch", "3.15.1")
    with pytest.raises(UsageError, match="unknown policy"):
        _entry(policies=["mixed_float64"])
    assert "policy in ['mixed_float16']" in by_policy.to_markdown()


def test_mixed_dtype_agreement_rules() -> None:
    probe = Probe("ops.conv", "float32", "float16")
    same = judge(probe, {"jax": {"dtype": "float32"}, "torch": {"dtype": "float32"}})
    assert same.verdict == "agree" and same.message == "every backend returns float32"
    raise_ = {"type": "ValueError", "message": "no"}
    all_raise = judge(probe, {"jax": {"error": raise_}, "torch": {"error": raise_}})
    assert all_raise.verdict == "agree" and all_raise.message.startswith("every backend raises")
    answers = {"jax": {"dtype": "float32"}, "torch": {"error": raise_},
               "numpy": {"skip": "not installed"}}
    split = judge(probe, answers)
    assert split.verdict == "disagree"
    assert split.message == "the backends disagree: jax: float32, torch: raises ValueError"
    entry = KnownDisagreement("k", ("ops.conv",), (("float32", "float16"),),
                              {"jax": "float32"}, "unreported", "n")
    assert judge(probe, answers, [entry]).verdict == "known"
    # the entry says jax promotes; if jax raised too, the entry is stale
    healed = judge(probe, {"jax": {"error": raise_}, "torch": {"error": raise_}}, [entry])
    assert healed.verdict == "agree" and healed.stale == ["k"]
    assert len(probes()) == 4 * 12 and len(probes(["ops.conv"])) == 12


def test_strategies_and_the_campaign_draw_policies() -> None:
    """Fuzzing draws policies: a strategy given policy names yields cases under them (an op
    gets a mixed policy's compute dtype), and the campaign's strategy draws mode and policy."""
    from hypothesis import HealthCheck, given, settings

    from conv_parity.fuzzing import _campaign_strategy
    from conv_parity.generate.strategies import FilterCounter, KnownFilter, cases_for

    seen: set[str] = set()

    @settings(max_examples=40, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cases_for("Conv1D", dtypes=("mixed_bfloat16", "float16")))
    def layer(case: ConvCase) -> None:
        seen.add(case.policy_name)

    layer()
    assert seen == {"mixed_bfloat16", "float16"}

    @settings(max_examples=20, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cases_for("ops.conv", dtypes=("mixed_float16",)))
    def op(case: ConvCase) -> None:
        assert case.policy is None and case.dtype == "float16"

    op()
    counter = FilterCounter()
    strategy = _campaign_strategy(["Conv2D", "ops.conv"], KnownFilter(Registry([]), ["jax"],
                                                                     counter=counter),
                                  counter, ("eager", "grad"), ("mixed_bfloat16", "float32"))
    drawn: list[ConvCase] = []

    @settings(max_examples=60, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def campaign(case: ConvCase) -> None:
        drawn.append(case)

    campaign()
    assert {c.policy_name for c in drawn if not c.kind.is_op} == {"mixed_bfloat16", "float32"}
    assert {c.mode for c in drawn} == {"eager", "grad"}
    assert all(c.policy is None for c in drawn if c.kind.is_op)


def test_case_files_take_policy_names_and_pasted_dtype_policy_dicts(tmp_path) -> None:
    """Issue 16: bfloat16 and a pasted DTypePolicy dict (mixed too) in --conv-cases files."""
    from conv_parity.generate.case_file import read_cases

    base = {"layer": "Conv1D", "kwargs": {"filters": 2, "kernel_size": 3},
            "input_shape": [1, 7, 2]}
    entries = [{**base, "dtype": "bfloat16"},
               {**base, "dtype": {"module": "keras", "class_name": "DTypePolicy",
                                  "config": {"name": "mixed_float16"}, "registered_name": None}},
               {**base, "dtype": {"class_name": "Dense"}}]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps(entries))
    read = read_cases(path)
    assert [c.policy_name for c in read.cases] == ["bfloat16", "mixed_float16"]
    assert read.rejected and read.rejected[0][0] == 2 and "DTypePolicy" in read.rejected[0][1]


def test_onednn_scope_holds_only_for_the_dtypes_onednn_serves() -> None:
    """A oneDNN build runs float64 (and, on CPUs without the ISA, half types) in TF's own
    kernels: an entry scoped to oneDNN off explains such a case under oneDNN on, and an entry
    scoped to oneDNN on does not."""
    from conv_parity.facts import for_dtype

    on = {"tensorflow.onednn": True, "tensorflow.onednn_dtypes": ["float16", "float32"]}
    assert for_dtype(on, "float64")["tensorflow.onednn"] is False
    assert for_dtype(on, "bfloat16")["tensorflow.onednn"] is False
    assert for_dtype(on, "float16")["tensorflow.onednn"] is True
    assert for_dtype({"tensorflow.onednn": True}, "float64") == {"tensorflow.onednn": True}
    assert for_dtype(None, "float64") is None
    raw = {"id": "off", "keras": ">=3.0", "backends": ["tensorflow"], "layers": ["Conv2D"],
           "verdict": "fail-error-parity", "link": "unreported", "note": "n",
           "facts": {"tensorflow.onednn": False}}
    off = Registry([_parse_entry(raw, "test")])
    f64, f32 = ConvCase.make(*CONV, dtype="float64"), ConvCase.make(*CONV)
    assert off.match(f64, "tensorflow:onednn-on", "3.15.1", facts=on) is not None
    assert off.match(f32, "tensorflow:onednn-on", "3.15.1", facts=on) is None
