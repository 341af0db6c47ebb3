"""The two subcommands' usage errors: exit 2 with a message that says what to give (no workers)."""

from __future__ import annotations

import pytest

from conv_parity.cli.main import main


@pytest.mark.parametrize(("argv", "words"), [
    (["bisect", "tf-bias-add-channels-first-wrong-axis", "--nightly", "2026-10-01..2026-12-01",
      "--write"], "--write proposes release bounds"),
    (["bisect", "tf-bias-add-channels-first-wrong-axis", "--nightly", "2026-10-32.."],
     "'2026-10-32' is not a date"),
    (["bisect", "tf-bias-add-channels-first-wrong-axis", "--nightly", "2026-12-01..2026-10-01"],
     "ends before it starts"),
    (["run", "--baseline", "report.json"], "give --keras too"),
    (["run", "--keras", "banana", "--backends", "numpy"], "--keras 'banana': expected 'nightly'"),
    (["run", "--keras", "nightly", "--bisect-nightlies", "0"], "must be >= 1"),
    (["bisect", "tf-bias-add-channels-first-wrong-axis", "--apply"], "give both"),
    (["bisect", "Conv2D(4, 3)", "--input-shape", "1,8,8,2"], "needs --backends"),
    (["bisect", "Conv2D(4, 3)", "--input-shape", "1,8,8,2", "--backends", "jax", "--write"],
     "--write edits a registry entry"),
    (["bisect", "no-such-entry", "--report", "/nonexistent/report.json"],
     "not a registry entry id, nor a case id"),
    (["upstream", "Conv2D(4, 3)", "--input-shape", "1,8,8,2"], "needs --backends"),
])
def test_usage_errors_exit_2(argv, words, capsys):
    assert main(argv) == 2
    assert words in capsys.readouterr().err


def test_help_lists_both(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "bisect    the Keras release" in out and "upstream  a ready-to-file" in out


def test_a_baseline_run_with_other_arguments_is_named():
    from conv_parity.cli.run_watch import _mismatch

    notes = _mismatch({"run": {"profile": "smoke", "backends": ["numpy"]}},
                      {"run": {"profile": "smoke", "backends": ["jax", "numpy"]}})
    assert notes == ["the baseline ran backends = ['jax', 'numpy'], this run backends = "
                     "['numpy']: only the cases both ran are compared"]
