"""docs/upstream/ is generated: the index and the drafts' fingerprints follow the registry, and
the CASE_OR_ENTRY resolver accepts its three spellings (no processes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conv_parity.cli.target import entry_backends, resolve
from conv_parity.errors import UsageError
from conv_parity.registry import Registry
from conv_parity.upstream import catalog, draft

ROOT = Path(__file__).resolve().parents[2]


def test_docs_upstream_is_up_to_date():
    found = catalog.problems(ROOT / "docs" / "upstream", Registry.load(), draft.fingerprint)
    assert not found, ("docs/upstream is stale (python -m conv_parity.upstream --write "
                       "docs/upstream --missing):\n" + "\n".join(found))


def test_problems_name_each_kind_of_staleness(tmp_path: Path):
    registry = Registry.load()
    entries = catalog.unreported(registry)
    first, second = entries[0], entries[1]
    (tmp_path / f"{first.id}.md").write_text(
        f"# t\n<!-- conv-parity draft of registry entry {first.id}, entry fingerprint "
        f"{'0' * 12}; regenerate -->\n")
    (tmp_path / "gone-entry.md").write_text("# old\n")
    (tmp_path / catalog.NOT_DRAFTED).write_text(json.dumps({e.id: "why" for e in entries[2:]}))
    found = "\n".join(catalog.problems(tmp_path, registry, draft.fingerprint))
    assert f"written from another version of entry {first.id}" in found
    assert f"{second.id}: unreported, but neither" in found
    assert "gone-entry is not an unreported registry entry" in found
    assert "README.md is stale" in found
    index = catalog.index_markdown(entries, tmp_path)
    assert f"- [{first.id}]({first.id}.md)" in index
    assert f"- {entries[2].id}: no draft (why)" in index


def test_fingerprint_follows_the_entry_table(tmp_path: Path):
    from conv_parity.registry import DEFAULT_PATH

    text = DEFAULT_PATH.read_text()
    path = tmp_path / "r.toml"
    path.write_text(text)
    entry_id = "tf-bias-add-channels-first-wrong-axis"
    before = draft.fingerprint(entry_id, path)
    assert before == draft.fingerprint(entry_id)
    path.write_text(text.replace(f'id = "{entry_id}"\n', f'id = "{entry_id}"\nfixed_in = "9.9.9"\n'))
    assert draft.fingerprint(entry_id, path) != before


def test_resolve_entry_expression_and_report(tmp_path: Path):
    t = resolve("tf-depthwise-channels-first-cpu-before-3.15")
    assert t.entry is not None and t.backends == ["tensorflow:onednn-off"]
    assert t.case == t.entry.example_case()
    t = resolve("Conv2D(4, 3)", input_shape="1,8,8,2")
    assert t.entry is None and t.case.input_shape == (1, 8, 8, 2)
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"results": [
        {"case_id": t.case.id, "case": t.case.to_json(), "backend": "jax", "verdict": "pass"},
        {"case_id": t.case.id, "case": t.case.to_json(), "backend": "torch",
         "verdict": "fail-values"}]}))
    got = resolve(t.case.id, report=str(report))
    assert got.case == t.case and got.backends == ["torch"]
    with pytest.raises(UsageError, match="not a registry entry id, nor a case id"):
        resolve("no-such-thing", report=str(report))


def test_entry_backends_follow_facts():
    by_id = {e.id: e for e in Registry.load().entries}
    assert entry_backends(by_id["tf-onednn-empty-batch-conv-raises"]) == ["tensorflow:onednn-on"]
    assert entry_backends(by_id["tf-bias-add-channels-first-wrong-axis"]) == ["tensorflow"]
