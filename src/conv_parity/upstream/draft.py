"""A ready-to-file upstream issue (Markdown) for one case: the title in the style of the Keras
tracker, the environment, a standalone reproduction (plain keras + numpy, written by
:mod:`conv_parity.explain.repro`) that was *run* and seen to reproduce before it is printed,
expected against actual, the backends affected and the release range known.

The case runs on the Keras the entry is about: the installed one when the entry applies to it,
else its example's release from the release cache (:mod:`conv_parity.upstream.releases`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conv_parity import backends as targets
from conv_parity.case import ConvCase
from conv_parity.errors import HarnessError
from conv_parity.registry import Entry, installed_keras_version
from conv_parity.registry.source import read_table
from conv_parity.upstream.releases import ensure, first_on_path
from conv_parity.vocabulary import is_failure

if TYPE_CHECKING:
    from conv_parity.judge.verdict import Outcome

#: The seconds a repro script may take (its first keras import included).
REPRO_TIMEOUT = 300.0
#: Fresh processes a nondeterministic entry's script checks the case in.
REPRO_REPEATS = 5
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_KERAS_SOURCE = "https://github.com/keras-team/keras/blob/v{version}/{path}"


class NotReproduced(HarnessError):
    """The standalone script did not show the discrepancy: the draft is not printed."""


@dataclass
class Evidence:
    """What a draft is written from: every backend's outcome on the case, the environment, and
    the repro script with what it printed when it was run."""

    case: ConvCase
    entry: Entry | None
    keras: str
    outcomes: list[Outcome]
    environment: dict[str, Any]
    backend: str
    script: str
    script_output: str
    facts: dict[str, Any] = field(default_factory=dict)
    #: Why the spec rejects the case (no output exists), None when it accepts it.
    rejected: str | None = None


def keras_for(entry: Entry | None, installed: str | None = None) -> str | None:
    """The release to draft on: None (the installed one) when the entry applies to it, else
    the entry's example release."""
    installed = installed or installed_keras_version()
    if entry is None or installed is None or entry.keras.contains(installed, prereleases=True):
        return None
    return str(entry.example.get("keras") or "") or None


def gather(case: ConvCase, backends: Sequence[str], entry: Entry | None, cache: Path,
           timeout: float = 120.0) -> Evidence:
    """Run the case on ``backends`` and every installed backend, then run the repro script of
    the first failing one of ``backends``; NotReproduced when either shows no discrepancy."""
    release = keras_for(entry)
    runs = run_cases([case], backends, release, cache, timeout)
    return evidence(case, backends, entry, runs, release, cache)


@dataclass
class Runs:
    """Outcomes of cases on one Keras release, with that run's environment and facts."""

    outcomes: dict[ConvCase, list[Outcome]]
    environment: dict[str, Any]
    facts: dict[str, dict[str, Any]]


def run_cases(cases: Sequence[ConvCase], backends: Sequence[str], release: str | None,
              cache: Path, timeout: float = 120.0) -> Runs:
    """Every case on ``backends`` and every installed backend, in one set of workers running
    ``release`` (None: the installed Keras); raw verdicts, the registry not applied."""
    from conv_parity.engine import Engine
    from conv_parity.registry import Registry

    folder = ensure(release, cache) if release else None
    wanted = list(dict.fromkeys([*backends, *targets.installed()]))
    with first_on_path(folder), Engine(wanted, timeout=timeout,
                                       registry=Registry([])) as engine:
        outcomes = engine.check(list(dict.fromkeys(cases)))
        env = engine.environment()
        facts = {b: engine.facts(b) for b in wanted}
    by_case: dict[ConvCase, list[Outcome]] = {c: [] for c in cases}
    for o in outcomes:
        by_case[o.case].append(o)
    return Runs(by_case, env, facts)


def evidence(case: ConvCase, backends: Sequence[str], entry: Entry | None, runs: Runs,
             release: str | None, cache: Path) -> Evidence:
    """The draft's evidence from a run: the first failing one of ``backends``, and its repro
    script run in a fresh interpreter on the same release."""
    from conv_parity.explain import repro, repro_rejected

    unavailable = [o for o in runs.outcomes[case]
                   if (o.error or {}).get("type") == "BackendUnavailable"]
    outcomes = [o for o in runs.outcomes[case] if o not in unavailable]
    missing = [o for o in unavailable if o.backend in backends]
    if missing:
        raise NotReproduced(f"Keras {release or installed_keras_version()} does not run here on "
                            + "; ".join(f"{o.backend}: {_one_line((o.error or {}).get('message'))}"
                                        for o in missing)[:300])
    failing = [o for o in outcomes if o.backend in backends and _failed(o)]
    if not failing:
        seen = ", ".join(f"{o.backend}={o.verdict}{_raised(o)}" for o in outcomes
                         if o.backend in backends)
        raise NotReproduced(f"{case.id} conforms here on {seen} (Keras "
                            f"{release or installed_keras_version()}): nothing to report")
    first = failing[0]
    # the first line only: a crash's message goes on with the worker's stderr (harness frames)
    note = (first.diagnosis or first.message).split("\n")[0]
    repeats = REPRO_REPEATS if entry is not None and entry.nondeterministic else 1
    rejected = repro_rejected.rejection(case)
    script = (repro_rejected.render(case, first.backend, rejected, note=_one_line(note))
              if rejected else repro.render(case, first.backend, note=_one_line(note),
                                            repeats=repeats))
    with first_on_path(ensure(release, cache) if release else None):
        output = run_script(script)
    env = runs.environment
    keras = _worker_keras(env, first.backend) or release or installed_keras_version() or "?"
    return Evidence(case, entry, keras, outcomes, env, first.backend, script, output,
                    runs.facts.get(first.backend, {}), rejected)


def _raised(o: Outcome) -> str:
    """`` (raised ValueError: ...)`` for an outcome that raised: which error, so a reason says
    whether the backend refused the case for the spec's reason or for another one."""
    if not o.error:
        return ""
    text = _one_line(str(o.error.get("message", "")))
    if "user code:" in text and "Error: " in text:  # a tf.function's traceback: the error
        text = text[text.rfind("Error: ") + len("Error: "):]  # is its last line
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)  # TF's op path, not the error
    return f" (raised {o.error.get('type', '?')}: {text[:160]})"


def _failed(o: Outcome) -> bool:
    return is_failure(o.observed_verdict or o.verdict)


def run_script(script: str) -> str:
    """Run the script in a fresh interpreter (the PYTHONPATH in force, so an older release
    cached aside is the one imported); its output when it reports DISCREPANCY (exit 1), else
    NotReproduced with what it printed."""
    if re.search(r"^\s*(import|from)\s+conv_parity", script, re.M):
        raise HarnessError("the repro script imports conv_parity; it must be standalone")
    with tempfile.TemporaryDirectory(prefix="conv-parity-upstream-") as tmp:
        path = Path(tmp) / "repro.py"
        path.write_text(script)
        env = dict(os.environ)
        env.pop("KERAS_BACKEND", None)  # the script sets its own
        try:
            proc = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                                  timeout=REPRO_TIMEOUT, env=env, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise NotReproduced(f"the repro script ran past {REPRO_TIMEOUT:.0f} s") from None
    out = _ANSI.sub("", proc.stdout).strip()  # Keras bolds some messages for a terminal
    if proc.returncode != 1 or "DISCREPANCY" not in out:
        tail = (out + "\n" + proc.stderr.strip()).strip().splitlines()[-5:]
        raise NotReproduced(f"the repro script did not reproduce (exit {proc.returncode}): "
                            + " | ".join(tail))
    return out


def _worker_keras(env: dict[str, Any], backend: str) -> str | None:
    return ((env.get("backends") or {}).get(backend) or {}).get("keras_version")


def _one_line(text: str | None) -> str:
    return " ".join(_ANSI.sub("", text or "").split())


def fingerprint(entry_id: str, path: Path | str | None = None) -> str:
    """A short hash of the entry's table in the registry: a draft written from another version
    of the entry is stale."""
    table, _ = read_table("discrepancy", path)
    raw = next((t for t in table if t.get("id") == entry_id), None)
    text = json.dumps(raw, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- the Markdown

_WHAT = {
    "fail-values": "returns wrong values",
    "fail-shape": "returns the wrong output shape",
    "fail-symbolic-shape": "`compute_output_shape` disagrees with the actual output",
    "fail-error-parity": "raises",
    "crash": "crashes the process",
    "timeout": "hangs",
}


def title(ev: Evidence) -> str:
    """Upstream style: what, under which configuration, on which backend."""
    o = next(o for o in ev.outcomes if o.backend == ev.backend)
    verdict = o.observed_verdict or o.verdict
    what = _WHAT.get(verdict, verdict)
    if ev.rejected is not None:  # the spec has no output: the bug is not raising
        what = ("crashes the process instead of raising" if verdict == "crash" else
                "returns a tensor instead of raising")
    elif verdict == "fail-error-parity" and o.error:
        what = f"raises {o.error.get('type', 'an error')}"
    spec = targets.get(ev.backend)
    keys = [k for k in ("data_format", "padding", "strides", "dilation_rate", "groups",
                        "depth_multiplier", "output_padding") if k in ev.case.kwargs]
    shown = ", ".join(f"{k}={ev.case.kwargs[k]!r}" for k in keys[:3])
    name = ev.case.layer if ev.case.layer.startswith("ops.") else f"layers.{ev.case.layer}"
    return (f"`{name}`{f' with {shown}' if shown else ''} {what} on the "
            f"{_pretty(spec.keras_backend)} backend")


def _pretty(backend: str) -> str:
    return {"tensorflow": "TensorFlow", "torch": "PyTorch", "jax": "JAX", "numpy": "NumPy",
            "openvino": "OpenVINO"}.get(backend, backend)


def markdown(ev: Evidence, fingerprint_text: str | None = None) -> str:
    """The issue, ready to paste."""
    o = next(o for o in ev.outcomes if o.backend == ev.backend)
    spec = targets.get(ev.backend)
    lines = [f"# {title(ev)}", ""]
    if ev.entry is not None:
        lines += [f"<!-- conv-parity draft of registry entry {ev.entry.id}"
                  + (f", entry fingerprint {fingerprint_text}" if fingerprint_text else "")
                  + f"; regenerate: conv-parity upstream {ev.entry.id} -->", ""]
    lines += ["## Environment", "", *_environment(ev, spec), ""]
    checks = ("makes the call in a child process and exits 1 when it returns or kills the "
              "process instead of raising" if ev.rejected is not None else
              "computes the expected output with a direct-loop float64 NumPy reference, and "
              "exits 1 on a discrepancy")
    lines += ["## Standalone reproduction", "",
              f"Plain keras + numpy; the script sets `KERAS_BACKEND={spec.keras_backend}` "
              f"itself, regenerates the input and weights from a seed, {checks}.",
              "", "```python", ev.script.rstrip(), "```", "",
              "Output (run before this report was written, in the environment above):", "",
              "```", ev.script_output, "```", ""]
    lines += ["## Expected vs actual", "", *_expected_actual(ev, o), ""]
    lines += ["## Affected", "", *_affected(ev), ""]
    sources = _sources(ev)
    if sources:
        lines += ["## Keras source involved", "", *sources, ""]
    return "\n".join(lines).rstrip() + "\n"


def _environment(ev: Evidence, spec: targets.BackendSpec) -> list[str]:
    info = (ev.environment.get("backends") or {}).get(ev.backend) or {}
    versions = info.get("versions") or {}
    libs = ", ".join(f"{k} {str(v).split('-')[0]}" for k, v in sorted(versions.items())
                     if k != "keras")
    cpu = ev.environment.get("facts") or {}
    out = [f"- Keras {ev.keras}, backend `{spec.keras_backend}`"
           + (f" ({libs})" if libs else ""),
           f"- Python {ev.environment.get('python', platform.python_version())}, "
           f"NumPy {ev.environment.get('numpy', '?')}, {ev.environment.get('platform', '')}",
           f"- CPU: {cpu.get('cpu.model', '?')} ({cpu.get('cpu.machine', '?')}), ISA "
           f"{', '.join(cpu.get('cpu.isa') or []) or '?'}"]
    if spec.environment:
        out.append("- Environment: " + ", ".join(f"`{k}={v}`" for k, v in
                                                 spec.environment.items()))
    relevant = {k: v for k, v in ev.facts.items()
                if not k.startswith("cpu.") and "threads" not in k and v not in (None, [], "")}
    if relevant:
        out.append("- Backend settings in force: " + ", ".join(
            f"{k}={v}" for k, v in sorted(relevant.items())))
    return out


def _expected_actual(ev: Evidence, o: Outcome) -> list[str]:
    verdict = o.observed_verdict or o.verdict
    kwargs = ", ".join(f"{k}={v!r}" for k, v in ev.case.kwargs.items())
    out = [f"- Call: `{ev.case.layer}({kwargs})` on an input of shape "
           f"{tuple(ev.case.input_shape)} ({ev.case.input_dtype}), mode {ev.case.mode}."]
    if ev.rejected is not None:
        out.append(_rejected_line(ev, o, verdict))
    else:
        out.append(f"- Expected (float64 reference): output shape {_shape(o.reference_shape)}.")
        out += _actual_lines(ev, o, verdict)
    if o.diagnosis:
        out.append(f"- Diagnosis: {_one_line(o.diagnosis)}")
    agree = "unsupported" if ev.rejected is not None else "pass"  # a rejected case: they raise
    conforming = [x.backend for x in ev.outcomes if (x.observed_verdict or x.verdict) == agree]
    if conforming and ev.rejected is not None:
        out.append(f"- The same call raises on {', '.join(conforming)}, as it should (same "
                   "Keras, same arrays).")
    elif conforming:
        out.append(f"- The same call conforms on {', '.join(conforming)} (same Keras, same "
                   "arrays).")
    return out


def _actual_lines(ev: Evidence, o: Outcome, verdict: str) -> list[str]:
    """What the backend did with a case the spec accepts: the error, or shape and values."""
    if verdict == "fail-error-parity" or (verdict == "crash" and o.error):
        err = o.error or {}
        msg = _one_line(str(err.get("message", "")))[:400]
        return [f"- Actual ({ev.backend}): raises `{err.get('type', '?')}`: {msg}"]
    out = [f"- Actual ({ev.backend}): output shape {_shape(o.shape)}"
           + (f", largest |error| {o.max_abs_err:.3g} against a tolerance of "
              f"{o.tolerance:.3g}" if o.max_abs_err is not None and o.tolerance
              is not None else "") + "."]
    if o.message:
        out.append(f"- Where: {_one_line(o.message)[:500]}")
    return out


def _rejected_line(ev: Evidence, o: Outcome, verdict: str) -> str:
    """Expected against actual for a case with no output: an error, and what came instead."""
    if verdict == "crash":
        actual = "the process was killed: " + _one_line(o.message.split("\n")[0])[:300]
    else:
        actual = f"returned shape {_shape(o.shape)}"
    return (f"- Expected: an error (the spec has no output: {ev.rejected}); actual "
            f"({ev.backend}): {actual}.")


def _affected(ev: Evidence) -> list[str]:
    rows = ["| backend | verdict | max abs error (tolerance) |", "| --- | --- | --- |"]
    for o in ev.outcomes:
        err = "-" if o.max_abs_err is None else f"{o.max_abs_err:.3g} ({o.tolerance:.3g})"
        rows.append(f"| {o.backend} | {o.observed_verdict or o.verdict} | {err} |")
    e = ev.entry
    if e is not None:
        rows += ["", f"- Scope as recorded: Keras `{e.keras}`; backends {', '.join(e.backends)}; "
                 f"modes {', '.join(e.modes) if e.modes else 'all'}"
                 + (f"; platform facts {dict(e.facts)}" if e.facts else "") + "."]
        if e.fixed_in:
            rows.append(f"- Fixed in Keras {e.fixed_in}.")
        rows.append(f"- Notes: {_one_line(e.note)}")
    return rows


def _sources(ev: Evidence) -> list[str]:
    """Keras source files the entry's note names, linked at the release drafted on."""
    if ev.entry is None:
        return []
    paths = sorted(set(re.findall(r"\b((?:keras/src/)?(?:backend|layers|ops)/[\w/]+\.py)"
                                  r"(?::(\d+))?", ev.entry.note)))
    out = []
    for path, line in sorted({(p if p.startswith("keras/") else f"keras/src/{p}", ln)
                              for p, ln in paths}):
        full = path
        url = _KERAS_SOURCE.format(version=ev.keras, path=full) + (f"#L{line}" if line else "")
        out.append(f"- [`{full}{':' + line if line else ''}`]({url})")
    return out


def _shape(shape: Sequence[int] | None) -> str:
    return "unknown" if shape is None else str(tuple(shape))


__all__ = [
    "Evidence",
    "NotReproduced",
    "Runs",
    "evidence",
    "fingerprint",
    "gather",
    "keras_for",
    "markdown",
    "run_cases",
    "run_script",
    "title",
]
