"""`conv-parity run --keras nightly` end to end: the newest keras-nightly pip serves (or, offline,
the newest in $CONV_PARITY_KERAS_CACHE) installed into a cache, the suite run on it and on the
installed Keras, and the watch section written. Slow: two pytest runs and, cold, a download."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conv_parity.cli.main import main
from conv_parity.report import watch
from conv_parity.upstream import nightlies, releases

pytestmark = pytest.mark.slow


def _newest(cache: Path) -> str:
    served, _note = nightlies.known_nightlies(cache)
    if not served:
        pytest.skip(f"no keras-nightly known here: pip reached no index and {cache} holds none")
    return str(served[-1])


def test_run_keras_nightly_writes_the_watch_section(tmp_path, capsys):
    pytest.importorskip("jax")  # the numpy backend pools with jax
    cache = releases.cache_dir(os.environ.get(releases.CACHE_ENV) or tmp_path / "cache")
    newest = _newest(cache)
    report = tmp_path / "out"
    code = main(["run", "--keras", "nightly", "--profile", "smoke", "--backends", "numpy",
                 "--layers", "MaxPooling2D,ops.max_pool", "--cache", str(cache),
                 "--report", str(report)])
    assert code in (0, 1), capsys.readouterr().err[-3000:]
    doc = json.loads((report / "report.json").read_text())
    base = json.loads((report / "baseline" / "report.json").read_text())
    section = doc["watch"]
    assert section["keras"] == newest == doc["environment"]["backends"]["numpy"]["keras_version"]
    assert section["nightly_date"] == str(nightlies.nightly_date(newest))
    assert section["baseline"]["keras"] == base["environment"]["keras"] != newest
    # The changed list, derived again here from the two reports.
    before = {(r["case_id"], r["backend"]): watch.state(r) for r in base["results"]}
    after = {(r["case_id"], r["backend"]): watch.state(r) for r in doc["results"]}
    assert section["compared"] == len(before.keys() & after.keys()) > 0
    assert {(c["case_id"], c["backend"]) for c in section["changed"]} == {
        k for k in before.keys() & after.keys() if before[k] != after[k]}
    assert "## Nightly watch" in (report / "report.md").read_text()
    out = capsys.readouterr().out
    assert f"Nightly watch: Keras {newest} (nightly {section['nightly_date']}) against the " \
           f"installed Keras {base['environment']['keras']}" in out
