"""The GitHub Action (action.yml) for users' CI: its metadata follows the Action rules, and its
steps' shell runs here with the inputs set as the runner sets them (``${{ inputs.X }}`` and
``${{ github.action_path }}`` substituted, ``env:`` exported)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
yaml = pytest.importorskip("yaml")
EXPR = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


@pytest.fixture(scope="module")
def action() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "action.yml").read_text())


def test_metadata_follows_the_action_rules(action: dict[str, Any]) -> None:
    """What GitHub requires of a composite action's metadata (docs: "Metadata syntax for
    GitHub Actions"): name, description, runs.using composite with steps; a run step names its
    shell; a step has run or uses, not both; ids unique; inputs described, defaults strings;
    every expression names a declared input or a step id that exists."""
    assert isinstance(action["name"], str) and isinstance(action["description"], str)
    assert set(action) <= {"name", "author", "description", "inputs", "outputs", "runs",
                           "branding"}
    runs = action["runs"]
    assert runs["using"] == "composite" and runs["steps"]
    inputs = action["inputs"]
    for name, spec in inputs.items():
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name), name
        assert spec.get("description"), name
        assert set(spec) <= {"description", "required", "default", "deprecationMessage"}
        assert isinstance(spec.get("default", ""), str), name
    ids = [s["id"] for s in runs["steps"] if "id" in s]
    assert len(ids) == len(set(ids))
    for step in runs["steps"]:
        assert ("run" in step) != ("uses" in step), step
        if "run" in step:
            assert step["shell"] in ("bash", "sh", "pwsh", "python"), step
        else:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[\w.-]+", step["uses"]), step["uses"]
    for expr in EXPR.findall((ROOT / "action.yml").read_text()):
        head, _, rest = expr.partition(".")
        if head == "inputs":
            assert rest in inputs, f"${{{{ {expr} }}}} names no declared input"
        elif head == "steps":
            assert rest.split(".")[0] in ids, expr
        else:
            assert expr in ("github.action_path",) or expr.startswith("always("), expr
    for spec in action["outputs"].values():
        assert spec["description"] and spec["value"]


def _render(text: str, inputs: dict[str, str], action: dict[str, Any]) -> str:
    values = {f"inputs.{k}": v.get("default", "") for k, v in action["inputs"].items()}
    values.update({f"inputs.{k}": v for k, v in inputs.items()})
    values["github.action_path"] = str(ROOT)
    return EXPR.sub(lambda m: values[m.group(1)], text)


def run_step(action: dict[str, Any], name: str, inputs: dict[str, str], tmp_path: Path,
             extra_env: dict[str, str] | None = None, timeout: float = 300,
             ) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """One run step of action.yml as the runner runs it: bash -e on the rendered script, with
    the step's rendered env, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, in ``tmp_path``."""
    (step,) = [s for s in action["runs"]["steps"] if s.get("name") == name]
    for key in inputs:
        assert key in action["inputs"], key
    output, summary = tmp_path / "github_output", tmp_path / "step_summary"
    env = dict(os.environ)
    env.update({k: _render(str(v), inputs, action) for k, v in step.get("env", {}).items()})
    env.update(GITHUB_OUTPUT=str(output), GITHUB_STEP_SUMMARY=str(summary),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}")
    env.update(extra_env or {})
    script = _render(step["run"], inputs, action)
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    return proc, output, summary


def test_install_refuses_an_unknown_backend_before_pip(action: dict[str, Any],
                                                       tmp_path: Path) -> None:
    proc, _, _ = run_step(action, "install conv-parity (CPU wheels)",
                          {"backends": "jax,tensorflw"}, tmp_path)
    assert proc.returncode == 2
    assert "unknown backend 'tensorflw'" in proc.stdout
    assert "pip install" not in proc.stdout


@pytest.mark.slow
def test_install_dry_run_takes_only_cpu_wheels(action: dict[str, Any], tmp_path: Path) -> None:
    """pip's own --dry-run (the pip-args input): torch 2.13.0 first, then the project with the
    extras of the backends asked for, tf-keras without its dependencies; nothing from nvidia
    or triton. (``torch-index-url`` empty: this test's machine cannot reach PyPI or PyTorch's
    index and serves the CPU wheel locally; the Action's default is the CPU index.)"""
    proc, _, _ = run_step(action, "install conv-parity (CPU wheels)",
                          {"backends": "torch,numpy", "keras2": "true", "torch-index-url": "",
                           "pip-args": "--dry-run"}, tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    commands = [line for line in proc.stdout.splitlines() if line.startswith("+ ")]
    assert commands == [
        "+ python -m pip install --dry-run torch==2.13.0",
        f"+ python -m pip install --dry-run {ROOT}[torch,jax,tensorflow]",
        "+ python -m pip install --dry-run --no-deps tf-keras==2.21.0",
    ]
    assert not re.search(r"nvidia|triton", proc.stdout, re.IGNORECASE), proc.stdout


def test_model_with_fail_on_known_is_refused(action: dict[str, Any], tmp_path: Path) -> None:
    proc, output, _ = run_step(action, "conv-parity", {"model": "m.keras",
                                                       "fail-on-known": "true"}, tmp_path)
    assert proc.returncode == 2 and "conv-parity run only" in proc.stdout
    assert not output.exists()


@pytest.mark.slow  # a whole `conv-parity model` process: 20 s to minutes on 2 shared cores
@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="needs the numpy backend")
def test_check_and_summary_steps_on_a_model(action: dict[str, Any], tmp_path: Path) -> None:
    """The check step runs conv-parity model on a model file of the repository, writes its
    exit code to GITHUB_OUTPUT; the summary step appends report.md to the step summary."""
    script = ("import os; os.environ['KERAS_BACKEND'] = 'numpy'; import keras; "
              "keras.Sequential([keras.Input((9, 9, 3)), keras.layers.Conv2D(4, 3, "
              "name='c')]).save('m.keras')")
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=120)
    proc, output, _ = run_step(action, "conv-parity",
                               {"model": "m.keras", "backends": "numpy",
                                "input-shape": "1,9,9,3"}, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.splitlines()[0] == ("+ conv-parity model m.keras --report "
                                           "conv-parity-report --input-shape 1,9,9,3 "
                                           "--backends numpy")
    assert output.read_text() == "exit-code=0\n"
    proc, _, summary = run_step(action, "step summary", {}, tmp_path)
    assert proc.returncode == 0
    text = summary.read_text()
    assert text == (tmp_path / "conv-parity-report" / "report.md").read_text()
    assert "Conv2D" in text


def test_summary_says_when_there_is_no_report(action: dict[str, Any], tmp_path: Path) -> None:
    proc, _, summary = run_step(action, "step summary", {"report": "nowhere"}, tmp_path)
    assert proc.returncode == 0
    assert "conv-parity wrote no nowhere/report.md" in summary.read_text()


def test_example_workflow_uses_only_declared_inputs(action: dict[str, Any]) -> None:
    """The sample workflow of docs/ci.md (docs/examples/conv-parity.yml, shown there verbatim)
    passes only inputs the Action declares, as strings."""
    text = (ROOT / "docs/examples/conv-parity.yml").read_text()
    assert text.strip() in (ROOT / "docs/ci.md").read_text()
    workflow = yaml.safe_load(text)
    uses = [step for job in workflow["jobs"].values() for step in job["steps"]
            if step.get("uses", "").endswith("/conv-parity@v1")]
    assert len(uses) == 2
    for step in uses:
        for key, value in step["with"].items():
            assert key in action["inputs"], key
            assert isinstance(value, str), (key, value)


@pytest.mark.parametrize("script", ["action/install.sh", "action/check.sh", "action/summary.sh",
                                    ".ci/run"])
def test_shell_scripts_parse(script: str) -> None:
    proc = subprocess.run(["bash", "-n", str(ROOT / script)], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
