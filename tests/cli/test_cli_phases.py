"""The phase breakdown (conv_parity/phases.py) and `conv-parity model --verbose` / report.json
`phases`: the phases follow the model's stages, in order, and add up to the time it took."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conv_parity.cli.main import main
from conv_parity.cli.model import model_phase
from conv_parity.phases import Phases


def test_marks_end_the_running_phase_and_the_timeline_adds_up() -> None:
    now = [0.0]
    timeline = Phases(clock=lambda: now[0])
    timeline.mark("load")
    now[0] = 2.0
    said: list[str] = []
    hook = timeline.progress(said.append, lambda m: "check" if m.startswith("go") else None)
    hook("go: checking")  # starts "check", ends "load" at 2.0
    now[0] = 2.5
    hook("a note")  # no phase: still "check"
    now[0] = 5.0
    with timeline.phase("write"):
        now[0] = 5.25
    assert said == ["go: checking", "a note"]
    assert [(p["name"], p["seconds"]) for p in timeline.to_json()] == [
        ("load", 2.0), ("check", 3.0), ("write", 0.25)]
    assert timeline.total() == 5.25
    assert all(p["peak_rss_mb"] > 0 for p in timeline.to_json())
    lines = timeline.lines()
    assert len(lines) == 3 and "check" in lines[1] and "57.1%" in lines[1]


@pytest.mark.parametrize(("message", "phase"), [
    ("conv-parity: round trips (get_config, .keras save/load)...",
     "round trips (get_config, .keras save/load)"),
    ("conv-parity: m.keras: 3 conv-family layer uses, 2 distinct configs, 1 other layers not "
     "checked", "prepare per-layer cases"),
    ("conv-parity: starting 2 backend workers (jax, numpy)...",
     "workers start + per-layer checks"),
    ("conv-parity: running the whole model on every backend (end to end)...",
     "end to end on every backend"),
    ("conv-parity: repair: drop groups from layer 'c' (Conv2D): ...", None),
])
def test_model_progress_messages_name_the_phases(message: str, phase: str | None) -> None:
    assert model_phase(message) == phase


@pytest.mark.slow  # a whole model check with a worker (> 20 s on a loaded 2-core machine)
def test_model_verbose_prints_the_phases_and_report_json_has_them(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    keras = pytest.importorskip("keras")
    from conv_parity.backends import get

    if not get("numpy").installed():
        pytest.skip("the numpy backend is not installed")
    inputs = keras.Input((9, 9, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    path = tmp_path / "tiny.keras"
    model.save(path)
    code = main(["model", str(path), "--backends", "numpy", "--no-end-to-end", "--json",
                 "--verbose", "--batch", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    phases = json.loads(out)["phases"]
    assert [p["name"] for p in phases] == [
        "load, build, extract", "round trips (get_config, .keras save/load)",
        "prepare per-layer cases", "workers start + per-layer checks", "report document"]
    assert all(p["seconds"] >= 0 for p in phases)
    assert "phases (" in err and "workers start + per-layer checks" in err
