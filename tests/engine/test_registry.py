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
