"""The package is installed the way the README says: console script, plugin, workflow, nox."""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from conv_parity import BACKENDS

ROOT = Path(__file__).resolve().parents[1]


def _entry_points(group: str) -> dict[str, str]:
    return {ep.name: ep.value for ep in metadata.entry_points(group=group)}


def test_console_script_is_registered() -> None:
    assert _entry_points("console_scripts").get("conv-parity") == "conv_parity.cli:main"


def test_pytest_plugin_is_registered() -> None:
    assert _entry_points("pytest11").get("conv_parity") == "conv_parity.plugin"


def test_package_ships_type_marker_and_registry() -> None:
    import conv_parity

    folder = Path(conv_parity.__file__).parent
    assert (folder / "py.typed").exists()
    assert (folder / "known_discrepancies.toml").exists()


def _expand_matrix(matrix: dict) -> list[dict]:
    """GitHub's matrix expansion for what ci.yml uses: the product, then `include` entries
    adding keys to every combination they match."""
    import itertools

    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude")}
    combos = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    for extra in matrix.get("include", []):
        matched = False
        for combo in combos:
            shared = {k: v for k, v in extra.items() if k in axes}
            if shared and all(combo[k] == v for k, v in shared.items()):
                combo.update(extra)
                matched = True
        assert matched, f"include entry {extra} matches no combination"
    return combos


@pytest.fixture(scope="module")
def nox_sessions() -> set[str]:
    nox = shutil.which("nox") or str(Path(sys.executable).parent / "nox")
    if not Path(nox).exists():
        pytest.skip("nox is not installed (pip install -e '.[dev]')")
    out = subprocess.run([nox, "-l", "--no-color"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return {line[2:].split(" -> ")[0].strip() for line in out.splitlines()
            if line[:2] in ("* ", "- ")}


def test_nox_lists_the_sessions_the_issue_names(nox_sessions: set[str]) -> None:
    for name in ("lint", "fuzz", "registry"):
        assert name in nox_sessions
    for session in ("tests", "nightly", "oldest"):
        for backend in BACKENDS:
            assert f"{session}-3.12(backend='{backend}')" in nox_sessions


def test_workflow_calls_only_existing_nox_sessions(nox_sessions: set[str]) -> None:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    job = workflow["jobs"]["conformance"]
    assert job["strategy"]["fail-fast"] is False
    combos = _expand_matrix(job["strategy"]["matrix"])
    assert {c["backend"] for c in combos} == set(BACKENDS)
    assert {c["keras"] for c in combos} == {"oldest", "latest", "nightly"}
    assert {c["python"] for c in combos} == {"3.10", "3.12"}
    (nox_step,) = [s for s in job["steps"] if s.get("name") == "nox"]
    for combo in combos:
        command = nox_step["run"]
        for key, value in combo.items():
            command = command.replace("${{ matrix." + key + " }}", str(value))
        assert "${{" not in command, command
        session = command.split('"')[1]
        assert session in nox_sessions, f"{command} calls an unknown nox session"
    # Scheduled fuzz job calls an existing session too.
    fuzz_runs = [s["run"] for s in workflow["jobs"]["fuzz"]["steps"] if "nox -s" in s.get("run", "")]
    assert fuzz_runs and all(r.split()[2] in nox_sessions for r in fuzz_runs)
    # `on:` parses as True in YAML 1.1; the nightly schedule must be there.
    triggers = workflow.get("on", workflow.get(True))
    assert "schedule" in triggers
