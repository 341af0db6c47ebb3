"""The known-discrepancy registry: matching, validation, and the generated doc is current."""

from __future__ import annotations

from pathlib import Path

import pytest

from conv_parity.case import ConvCase
from conv_parity.errors import UsageError
from conv_parity.registry import Registry, main

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
