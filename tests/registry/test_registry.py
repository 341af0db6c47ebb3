"""The known-discrepancy registry: matching, validation, and the generated doc is current."""

from __future__ import annotations

from pathlib import Path

import pytest

from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.registry import Registry
from conv_parity.registry.__main__ import main

ROOT = Path(__file__).resolve().parents[2]

ENTRY = """
[[discrepancy]]
id = "demo"
keras = ">=3.5,<4"
backends = ["torch"]
layers = ["AveragePooling2D"]
where = { padding = "same", batch = { gt = 1 } }
dtypes = ["float32"]
verdict = "fail-values"
link = "https://example.invalid/1"
note = "demo"
"""


def _reg(tmp_path: Path, text: str = ENTRY) -> Registry:
    path = tmp_path / "known.toml"
    path.write_text(text)
    return Registry.load(path)


def test_match_respects_every_scope(tmp_path: Path) -> None:
    reg = _reg(tmp_path)
    hit = ConvCase.make("AveragePooling2D", {"pool_size": 2, "padding": "same"}, (2, 5, 5, 1))
    assert reg.match(hit, "torch", "3.15.1") is not None
    assert reg.match(hit, "jax", "3.15.1") is None
    assert reg.match(hit, "torch", "3.4.0") is None
    assert reg.match(ConvCase.make("AveragePooling2D", {"pool_size": 2, "padding": "same"}, (1, 5, 5, 1)),
                     "torch", "3.15.1") is None
    assert reg.match(ConvCase.make("AveragePooling2D", {"pool_size": 2, "padding": "valid"}, (2, 5, 5, 1)),
                     "torch", "3.15.1") is None
    assert reg.unused() == []


def test_unused_entries_are_reported(tmp_path: Path) -> None:
    reg = _reg(tmp_path)
    assert [e.id for e in reg.unused()] == ["demo"]
    assert [e.id for e in reg.unused("3.15.1")] == ["demo"]
    assert reg.unused("3.4.0") == []  # the entry is about >=3.5: another Keras's bug, not stale
    assert reg.unused("3.15.1", ["jax", "numpy"]) == []  # only about torch, which did not run
    assert [e.id for e in reg.unused("3.15.1", ["jax", "torch"])] == ["demo"]


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('backends = ["torch"]', 'backends = ["mxnet"]', "unknown backend 'mxnet'"),
        ('layers = ["AveragePooling2D"]', 'layers = ["Dense"]', "unknown layer"),
        ('keras = ">=3.5,<4"', 'keras = "three"', "bad keras specifier"),
        ('verdict = "fail-values"', 'verdict = "pass"', "verdict must be one of"),
        ('link = "https://example.invalid/1"', "", "lacks 'link'"),
    ],
)
def test_bad_entries_are_named(tmp_path: Path, old: str, new: str, needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        _reg(tmp_path, ENTRY.replace(old, new))


def test_packaged_registry_loads_and_its_doc_is_current() -> None:
    Registry.load()
    assert main(["--check", str(ROOT / "docs/known-discrepancies.md")]) == 0, (
        "docs/known-discrepancies.md is stale: "
        "python -m conv_parity.registry --write docs/known-discrepancies.md"
    )


def test_no_entry_applies_where_this_keras_refuses_the_case_itself() -> None:
    """Before Keras 3.11 the transposed layers refuse an output_padding holding a 0 on every
    backend (a Keras-wide 'unsupported'): no backend bug can show there, so no entry applies."""
    reg = Registry.load()
    kw = {"filters": 2, "kernel_size": 3, "strides": 2, "data_format": "channels_first"}
    zero = ConvCase.make("Conv2DTranspose", {**kw, "output_padding": (0, 1)}, (1, 3, 5, 5))
    one = ConvCase.make("Conv2DTranspose", {**kw, "output_padding": (1, 1)}, (1, 3, 5, 5))
    assert reg.match(zero, "tensorflow", "3.15.1") is not None
    assert reg.match(zero, "tensorflow", "3.1.0") is None
    assert reg.match(one, "tensorflow", "3.1.0") is not None


FACTS_ENTRY = ENTRY.replace('note = "demo"', '''note = "demo"
facts = { "torch.mkldnn" = false, "cpu.count" = { ge = 2 } }
fixed_in = "3.16.0"''')


def test_facts_scope_an_entry(tmp_path: Path) -> None:
    """An entry that needs platform facts applies only where the worker reports them; unknown
    facts (None: collection, fuzz filtering) hold in every scope, so those are machine-free."""
    reg = _reg(tmp_path, FACTS_ENTRY)
    hit = ConvCase.make("AveragePooling2D", {"pool_size": 2, "padding": "same"}, (2, 5, 5, 1))
    assert reg.match(hit, "torch", "3.15.1", facts={"torch.mkldnn": False, "cpu.count": 2})
    assert reg.match(hit, "torch", "3.15.1", facts={"torch.mkldnn": True, "cpu.count": 2}) is None
    assert reg.match(hit, "torch", "3.15.1", facts={"torch.mkldnn": False, "cpu.count": 1}) is None
    assert reg.match(hit, "torch", "3.15.1", facts={}) is None  # a worker that reported nothing
    assert reg.match(hit, "torch", "3.15.1") is not None
    # a variant is its Keras backend under other facts
    assert reg.match(hit, "torch:mkldnn-off", "3.15.1",
                     facts={"torch.mkldnn": False, "cpu.count": 4}) is not None
    (entry,) = reg.entries
    assert entry.fixed_in == "3.16.0" and entry.upgrade_hint() == "fixed in Keras 3.16.0: upgrade"
    assert entry.to_json()["facts"] == {"torch.mkldnn": False, "cpu.count": {"ge": 2}}
    row = next(line for line in reg.to_markdown().splitlines() if line.startswith("| demo"))
    assert "torch.mkldnn=off" in row and "fixed in Keras 3.16.0" in row


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('fixed_in = "3.16.0"', 'fixed_in = "soon"', "fixed_in must be a Keras version"),
        ('facts = { "torch.mkldnn" = false, "cpu.count" = { ge = 2 } }', 'facts = "amx"',
         "facts must be a table"),
        ('backends = ["torch"]', 'backends = ["torch:mkldnn-off"]', "scope a variant's setting"),
    ],
)
def test_bad_facts_and_fix_releases_are_named(tmp_path: Path, old: str, new: str,
                                              needle: str) -> None:
    with pytest.raises(UsageError, match=needle):
        _reg(tmp_path, FACTS_ENTRY.replace(old, new))


def _derived_of(layer: str, kwargs: dict, shape: tuple) -> dict:
    from conv_parity.registry import _derived

    return _derived(ConvCase.make(layer, kwargs, shape))


@pytest.mark.parametrize(
    ("layer", "kwargs", "shape", "expected"),
    [
        # oneDNN returns the input: (0, 3, 5) instead of (0, 3, 4); no bias to trip on
        ("Conv1D", {"filters": 4, "kernel_size": 2, "use_bias": False}, (0, 5, 3), "wrong-shape"),
        # ... and the bias of 4 does not fit 3 channels
        ("Conv1D", {"filters": 4, "kernel_size": 2}, (0, 5, 3), "error"),
        # same shape by coincidence (same padding, filters == channels): nothing to see
        ("Conv2D", {"filters": 3, "kernel_size": 3, "padding": "same"}, (0, 5, 5, 3), None),
        # a dilated 'same' conv gets its input padded by k_eff - 1 first
        ("Conv1D", {"filters": 1, "kernel_size": 2, "padding": "same", "dilation_rate": 2,
                    "use_bias": False}, (0, 4, 1), "wrong-shape"),
        # separable with depth_multiplier > 1: the pointwise kernel wants 2C channels
        ("SeparableConv1D", {"filters": 3, "kernel_size": 1, "depth_multiplier": 2,
                             "use_bias": False}, (0, 5, 3), "error"),
        # grouped and channels-first 3D convs run under XLA; transposed convs are fine
        ("Conv2D", {"filters": 4, "kernel_size": 1, "groups": 2}, (0, 5, 5, 4), None),
        ("Conv3D", {"filters": 4, "kernel_size": 1, "data_format": "channels_first"},
         (0, 3, 2, 2, 2), None),
        ("Conv1DTranspose", {"filters": 4, "kernel_size": 2}, (0, 5, 3), None),
        # an op with no output position: exactly 0 gets through TF's check, negative does not
        ("ops.conv", {"filters": 3, "kernel_size": 2}, (1, 1, 2), "tensor"),
        ("ops.conv", {"filters": 3, "kernel_size": 3}, (1, 1, 2), None),
        # dilated: TF checks ceil(n / d) - k + 1 on the space-to-batch tensor
        ("ops.conv", {"filters": 3, "kernel_size": 2, "dilation_rate": 2}, (1, 1, 2), "tensor"),
    ],
)
def test_tf_onednn_passthrough_simulates_the_kernels(layer, kwargs, shape, expected) -> None:
    assert _derived_of(layer, kwargs, shape)["tf_onednn_passthrough"] == expected


def test_empty_output_covers_negative_sizes() -> None:
    zero = _derived_of("ops.depthwise_conv", {"kernel_size": 2}, (1, 1, 1))
    negative = _derived_of("ops.depthwise_conv", {"kernel_size": 3}, (1, 1, 1))
    assert zero["spec_empty_output"] and zero["spec_empty_output_size"] == 0
    assert negative["spec_empty_output"] and negative["spec_empty_output_size"] == -1
    fine = _derived_of("ops.depthwise_conv", {"kernel_size": 1}, (1, 1, 1))
    assert not fine["spec_empty_output"] and fine["spec_empty_output_size"] is None


def test_the_entry_whose_verdict_was_observed_explains_the_case() -> None:
    """A channels-first conv without oneDNN raises; with it, its bias can land on W. Both
    entries apply to the case under unknown facts; the observation picks the one."""
    reg = Registry.load()
    case = ConvCase.make("Conv1D", {"filters": 2, "kernel_size": 1,
                                    "data_format": "channels_first"}, (1, 4, 2))
    on, off = {"tensorflow.onednn": True}, {"tensorflow.onednn": False}
    assert reg.match(case, "tensorflow", "3.15.1", facts=on, observed="fail-values").id == \
        "tf-bias-add-channels-first-wrong-axis"
    assert reg.match(case, "tensorflow", "3.15.1", facts=off,
                     observed="fail-error-parity").id == "tf-conv-channels-first-cpu"
    assert reg.match(case, "tensorflow", "3.15.1", facts=on,
                     observed="fail-error-parity").id == "tf-bias-add-channels-first-wrong-axis"
    reg.used.clear()
    reg.note_collected(case, "tensorflow", "3.15.1")
    assert {"tf-bias-add-channels-first-wrong-axis", "tf-conv-channels-first-cpu"} <= reg.used


def _facts_for(entry) -> list[dict]:
    """Every combination of the platform facts the registry scopes by, restricted to the
    entry's own scope: the example must hold (and stand alone) on every machine it names."""
    onednn = [entry.facts["tensorflow.onednn"]] if "tensorflow.onednn" in entry.facts \
        else [True, False]
    precision = [entry.facts["openvino.inference_precision_default"]] \
        if "openvino.inference_precision_default" in entry.facts else ["f32", "bf16"]
    return [{"tensorflow.onednn": o, "openvino.inference_precision_default": p}
            for o in onednn for p in precision]


def test_every_entry_has_an_example_it_explains_and_no_other_entry_does() -> None:
    """Each packaged entry carries one example case (layer, kwargs, input shape, mode, dtype,
    backend, Keras release). Under every combination of facts within the entry's scope, the
    example is explained by that entry and by no other one: entries do not overlap, so the
    entry a report names is the only candidate (a dead predicate, or two entries claiming one
    case, fails here)."""
    registry = Registry.load()
    problems = []
    for entry in registry.entries:
        if not entry.example:
            problems.append(f"{entry.id}: no example")
            continue
        case = entry.example_case()
        backend, keras = entry.example["backend"], entry.example["keras"]
        if not entry.possible_here(None):  # it needs a library release not installed here
            continue
        for facts in _facts_for(entry):
            found = [e.id for e in registry.entries if e.applies(case, backend, keras, facts)]
            if found != [entry.id]:
                problems.append(f"{entry.id}: its example {case.id} on {backend}, Keras {keras}, "
                                f"facts {facts} is explained by {found}")
    assert not problems, "\n".join(problems)


def test_one_reader_gives_both_tables_the_same_error_for_a_broken_file(tmp_path) -> None:
    from conv_parity.mixed_dtypes import load_known
    from conv_parity.registry import Registry

    bad = tmp_path / "known.toml"
    bad.write_text("[[discrepancy]\nid = 'x'\n")
    for load in (Registry.load, load_known):
        with pytest.raises(UsageError, match=r"cannot read known discrepancies .*known\.toml"):
            load(bad)
    bad.write_text("mixed_dtypes = 3\n")
    with pytest.raises(UsageError, match=r"\[\[mixed_dtypes\]\] must be an array of tables"):
        load_known(bad)
