"""report.json: schema validation, the NaN/inf encoding, atomic and partial writes, merging."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from report_samples import make_result, sample_doc, value_failure

from conv_parity.report import (
    SCHEMA_VERSION,
    ReportWriter,
    build_doc,
    dumps,
    load_report,
    merge_reports,
    validate,
    write_all,
)
from conv_parity.report import writer as writer_mod


def _roundtrip(doc: dict) -> dict:
    """What a consumer sees: strict JSON text, parsed (not yet decoded)."""
    return json.loads(dumps(doc))


# --------------------------------------------------------------------------- validation


def test_good_document_validates(doc: dict) -> None:
    validate(doc)
    validate(_roundtrip(doc))  # the on-disk form (NaN as strings) is valid too
    assert doc["schema_version"] == SCHEMA_VERSION == 1
    assert doc["tool"]["name"] == "conv-parity"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("results"), "results"),
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d.update(complete="yes"), "complete"),
        (lambda d: d["environment"].pop("keras"), "environment.keras"),
        (lambda d: d["environment"]["backends"]["torch"].pop("available"),
         "environment.backends.torch.available"),
        (lambda d: d["results"][0].update(verdict="bogus"), "results[0].verdict"),
        (lambda d: d["results"][0].pop("case_id"), "results[0].case_id"),
        (lambda d: d["results"][0]["case"].pop("input_shape"), "results[0].case.input_shape"),
        (lambda d: d["results"][0].update(layer="Conv9D"), "results[0].layer"),
        (lambda d: d["results"][0].update(shape=[1, "2"]), "results[0].shape"),
        (lambda d: d["results"][0].update(max_abs_err="big"), "results[0].max_abs_err"),
        (lambda d: d["results"][0].update(mismatches=1.5), "results[0].mismatches"),
        (lambda d: d["results"][0].update(error={"type": "E"}), "results[0].error.message"),
        (lambda d: d["results"][0].update(known={"link": "x"}), "results[0].known.id"),
        (lambda d: d["results"][0].update(worst={"value": 1.0}), "results[0].worst.index"),
        (lambda d: d["results"][0].update(
            error_map={"rows": 2, "cols": 1, "values": [[0.0]], "vmax": 0.0}),
         "results[0].error_map.values"),
        (lambda d: d["results"].append(copy.deepcopy(d["results"][0])), "results["),
        (lambda d: d["summary"].update(total=999), "summary.total"),
        (lambda d: d["summary"]["by_verdict"].update(crash=7), "summary.by_verdict.crash"),
        (lambda d: d.update(fuzz=[3]), "fuzz"),
        (lambda d: d.update(fuzz={"filtered_known": -1}), "fuzz.filtered_known"),
        (lambda d: d.update(fuzz={"filtered_known": "3"}), "fuzz.filtered_known"),
    ],
)
def test_bad_documents_name_the_field(doc: dict, mutate, field: str) -> None:
    bad = copy.deepcopy(doc)
    mutate(bad)
    with pytest.raises(ValueError, match=rf"field {re.escape(field)}"):
        validate(bad)


def test_writer_rejects_bad_result_at_add(tmp_path: Path) -> None:
    w = ReportWriter(tmp_path, {"profile": "smoke"})
    with pytest.raises(ValueError, match="verdict"):
        w.add(make_result(verdict="maybe"))
    with pytest.raises(ValueError, match="backend"):
        w.add({k: v for k, v in make_result().items() if k != "backend"})


# --------------------------------------------------------------------------- NaN / inf


def test_nonfinite_floats_round_trip(tmp_path: Path) -> None:
    r = value_failure(max_abs_err=math.nan, tolerance=math.inf,
                      worst={"index": [0, 1, 2, 3], "value": -math.inf, "reference": math.nan,
                             "tolerance": 1e-6},
                      message="nan")  # a *message* "nan" must stay a string
    r["error_map"]["values"][0][0] = math.inf
    doc = build_doc([r], {}, {"python": None, "platform": None, "keras": None, "numpy": None,
                              "backends": {}}, True)
    text = dumps(doc)
    assert "NaN" not in text and "Infinity" not in text  # strict JSON
    raw = json.loads(text)["results"][0]
    assert raw["max_abs_err"] == "nan" and raw["tolerance"] == "inf"
    assert raw["worst"]["value"] == "-inf"
    write_all(doc, tmp_path)
    back = load_report(tmp_path / "report.json")["results"][0]
    assert math.isnan(back["max_abs_err"]) and back["tolerance"] == math.inf
    assert back["worst"]["value"] == -math.inf and math.isnan(back["worst"]["reference"])
    assert back["worst"]["tolerance"] == 1e-6
    assert back["error_map"]["values"][0][0] == math.inf
    assert back["message"] == "nan"


def test_numpy_values_are_converted(tmp_path: Path) -> None:
    w = ReportWriter(tmp_path, {"backends": ("torch",)})
    w.add(make_result(verdict="fail-values", max_abs_err=np.float32(0.25),
                      mismatches=np.int64(3), shape=(2, 10, 8, 4)))
    w.close()
    r = load_report(tmp_path / "report.json")["results"][0]
    assert r["max_abs_err"] == 0.25 and r["mismatches"] == 3 and r["shape"] == [2, 10, 8, 4]
    for key in ("diagnosis", "repro", "known", "error_map", "stderr_tail"):
        assert key in r and r[key] is None  # every optional field is present


# --------------------------------------------------------------------------- atomic, partial


def test_flush_is_atomic_and_failure_keeps_previous(tmp_path: Path, monkeypatch) -> None:
    w = ReportWriter(tmp_path, {"profile": "smoke"}, flush_interval=0.0)
    w.add(make_result(seed=1))
    good = (tmp_path / "report.json").read_text()
    assert len(json.loads(good)["results"]) == 1

    def boom(fd: int) -> None:  # the new text is half on disk in the temp file
        raise OSError("disk full")

    monkeypatch.setattr(writer_mod.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        w.add(make_result(seed=2))
    monkeypatch.undo()
    assert (tmp_path / "report.json").read_text() == good  # previous complete report
    assert load_report(tmp_path / "report.json")["results"][0]["case"]["seed"] == 1
    assert sorted(os.listdir(tmp_path)) == ["report.json"]  # no temp file left behind


def test_no_partial_file_is_ever_visible(tmp_path: Path) -> None:
    w = ReportWriter(tmp_path, {}, flush_interval=0.0)
    stop = threading.Event()
    bad: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                json.loads((tmp_path / "report.json").read_text())
            except (json.JSONDecodeError, FileNotFoundError) as exc:
                bad.append(repr(exc))

    t = threading.Thread(target=reader)
    t.start()
    try:
        for seed in range(60):
            w.add(make_result(seed=seed, message="x" * 2000))
    finally:
        stop.set()
        t.join()
    assert not bad


def test_partial_run_is_marked(tmp_path: Path) -> None:
    w = ReportWriter(tmp_path, {"profile": "smoke"}, flush_interval=0.0)
    assert load_report(tmp_path / "report.json")["complete"] is False  # exists from the start
    w.add(make_result())
    assert load_report(tmp_path / "report.json")["complete"] is False  # mid-run
    w.close(complete=False)  # Ctrl-C
    doc = load_report(tmp_path / "report.json")
    assert doc["complete"] is False and doc["summary"]["total"] == 1
    assert "Partial run" in (tmp_path / "report.md").read_text()
    assert "Partial run" in (tmp_path / "report.html").read_text()
    w.flush()  # a late flush must not rewrite a closed report
    assert load_report(tmp_path / "report.json")["complete"] is False


def test_context_manager_marks_exception_partial(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt), ReportWriter(tmp_path, {}) as w:
        w.add(make_result())
        raise KeyboardInterrupt
    assert load_report(tmp_path / "report.json")["complete"] is False
    with ReportWriter(tmp_path / "ok", {}) as w:
        w.add(make_result())
    assert load_report(tmp_path / "ok" / "report.json")["complete"] is True


def test_writer_thread_safe_and_dedupes(tmp_path: Path) -> None:
    w = ReportWriter(tmp_path, {"backends": ["torch", "jax"]}, flush_interval=0.01)
    w.set_environment({"keras": "3.6.0", "backends": {"torch": {"available": True}}})
    w.set_environment({"backends": {"jax": {"available": False, "import_error": "no jax"}}})

    def work(backend: str) -> None:
        for seed in range(40):
            w.add(make_result(seed=seed, backend=backend))

    threads = [threading.Thread(target=work, args=(b,)) for b in ("torch", "jax")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    w.add(make_result(seed=0, backend="torch", verdict="crash", message="later wins"))
    w.close()
    doc = load_report(tmp_path / "report.json")
    assert doc["complete"] is True and doc["summary"]["total"] == 80
    assert doc["summary"]["by_backend"]["torch"]["crash"] == 1
    assert doc["environment"]["keras"] == "3.6.0"
    assert set(doc["environment"]["backends"]) == {"torch", "jax"}
    assert {p.name for p in tmp_path.iterdir()} == {"report.json", "report.md", "report.html"}


# --------------------------------------------------------------------------- merge


def _shard(results: list[dict], backends: dict, keras: str = "3.6.0",
           complete: bool = True, shard: str = "1/2") -> dict:
    env = {"python": "3.11", "platform": "linux", "keras": keras, "numpy": "2.1",
           "backends": backends}
    return _roundtrip_decoded(build_doc(results, {"profile": "ci", "shard": shard,
                                                  "backends": sorted(backends)}, env, complete))


def _roundtrip_decoded(doc: dict) -> dict:
    from conv_parity.report import decode

    return decode(json.loads(dumps(doc)))


def test_merge_two_shards() -> None:
    torch = {"available": True, "backend_version": "2.4"}
    jax_missing = {"available": False, "import_error": "No module named 'jax'"}
    jax = {"available": True, "backend_version": "0.4.30"}
    a = _shard([make_result(seed=s, backend="torch") for s in range(3)]
               + [make_result(seed=9, backend="torch", verdict="crash")],
               {"torch": torch, "jax": jax_missing})
    b = _shard([make_result(seed=s, backend="jax") for s in range(2)]
               + [make_result(seed=9, backend="torch", verdict="pass")],  # a rerun: later wins
               {"jax": jax}, shard="2/2", complete=False)
    merged = merge_reports([a, b])
    validate(merged)
    assert merged["summary"]["total"] == 6  # 4 + 3 - 1 duplicate
    assert merged["summary"]["by_verdict"]["crash"] == 0
    assert merged["summary"]["by_backend"]["torch"]["pass"] == 4
    assert merged["summary"]["by_backend"]["jax"]["pass"] == 2
    assert merged["environment"]["backends"]["jax"]["available"] is True
    assert merged["environment"]["backends"]["torch"]["backend_version"] == "2.4"
    assert merged["complete"] is False  # one shard was partial
    assert merged["run"]["merged"] is True and len(merged["run"]["sources"]) == 2
    assert "conflicts" not in merged["environment"]
    # an available backend is not hidden by a later shard that could not import it
    again = merge_reports([b, a])
    assert again["environment"]["backends"]["jax"]["available"] is True
    assert again["summary"]["by_verdict"]["crash"] == 1  # order decides which duplicate wins


def test_merge_reports_version_conflicts(tmp_path: Path) -> None:
    a = _shard([make_result(backend="torch")], {"torch": {"available": True}}, keras="3.5.0")
    b = _shard([make_result(backend="jax")], {"jax": {"available": True}}, keras="3.6.0")
    merged = merge_reports([a, b])
    assert merged["environment"]["conflicts"] == {"keras": ["3.5.0", "3.6.0"]}
    write_all(merged, tmp_path)
    assert "disagree" in (tmp_path / "report.md").read_text()
    assert load_report(tmp_path / "report.json")["summary"]["total"] == 2


def test_merge_of_written_reports(tmp_path: Path) -> None:
    write_all(sample_doc(), tmp_path / "a")
    b = sample_doc()
    b["results"] = [r for r in b["results"] if r["backend"] == "torch"]
    for r in b["results"]:
        r["verdict"] = "timeout"
    write_all(build_doc(b["results"], b["run"], b["environment"], True), tmp_path / "b")
    merged = merge_reports([load_report(tmp_path / "a" / "report.json"),
                            load_report(tmp_path / "b" / "report.json")])
    n_torch = len(b["results"])
    assert merged["summary"]["total"] == len(sample_doc()["results"])
    assert merged["summary"]["by_backend"]["torch"]["timeout"] == n_torch


def test_load_report_errors(tmp_path: Path) -> None:
    p = tmp_path / "report.json"
    p.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_report(p)
    p.write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(ValueError, match="generated_at"):
        load_report(p)
    with pytest.raises(ValueError, match="at least one"):
        merge_reports([])


def test_file_mode_is_not_private(tmp_path: Path) -> None:
    write_all(sample_doc(), tmp_path)
    """mkstemp makes 0600 files; a report must get the mode open() would give (umask)."""
    for name in ("report.json", "report.md", "report.html"):
        assert (tmp_path / name).stat().st_mode & 0o777 == writer_mod._FILE_MODE


def test_fuzz_counts_are_written_and_add_up_in_a_merge(tmp_path: Path) -> None:
    w = ReportWriter(tmp_path / "a", {"profile": "smoke", "shard": "1/2"})
    w.add(make_result(seed=1, backend="torch"))
    w.set_fuzz({"tests": 3, "filtered_known": 5})
    w.close()
    a = load_report(tmp_path / "a" / "report.json")
    assert a["fuzz"] == {"tests": 3, "filtered_known": 5}
    b = _shard([make_result(seed=2, backend="torch")], {"torch": {"available": True}},
               shard="2/2")
    b["fuzz"] = {"tests": 3, "filtered_known": 2}
    merged = merge_reports([a, b, _shard([], {})])
    validate(merged)
    assert merged["fuzz"]["filtered_known"] == 7 and len(merged["fuzz"]["sources"]) == 2
    assert "fuzz" not in merge_reports([_shard([], {})])
