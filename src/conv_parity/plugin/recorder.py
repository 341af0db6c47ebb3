"""The plugin's reporting half: collect outcomes, write the report, print the matrix.

It runs only where the report is written (the controller under pytest-xdist), so it reads
nothing but what the tests recorded as user properties under the keys below: every pytest
process records, one process reports. Kept apart from :mod:`conv_parity.plugin` (options,
state, parametrization, enforcement) because none of that runs here, and the terminal text
grows with every new axis (variants, fuzz counts) while the hooks there do not.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import pytest

from conv_parity.report.matrix import (
    KNOWN_BUCKETS,
    bucket,
    cell_counts,
    counts_line,
    counts_phrase,
    failure_label,
)

if TYPE_CHECKING:
    from conv_parity.report import ReportWriter

#: A test's outcome as report.json result (one per case x backend; on the "call" report).
OUTCOME_KEY = "conv_parity_outcome"
#: The engine's environment (versions, platform facts), sent once per pytest process.
ENV_KEY = "conv_parity_environment"
#: Per fuzz test: how many drawn examples the known-discrepancy filter dropped (a user property,
#: so the count reaches the controller under xdist, where the report is written).
FUZZ_KEY = "conv_parity_fuzz"


class RunState(Protocol):
    """What the recorder reads and fills of the plugin's per-process state (``plugin._State``
    has these and more): declared here so that this half never imports the hooks' half."""

    profile: str
    backends: list[str]
    report_dir: Path | None
    keras_version: str | None
    outcomes: list[dict[str, Any]]
    environment: dict[str, Any]
    writer: ReportWriter | None
    fuzz: dict[str, int]


class Recorder:
    """Collects outcomes where the report is written (the controller under xdist), writes the
    report and prints the matrix. A registered object, so its hooks see the plugin state."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        state = self.state
        for key, raw in report.user_properties:
            value = cast("dict[str, Any]", raw)  # our keys carry the JSON objects we put there
            if key == ENV_KEY:
                backends = {**state.environment.get("backends", {}), **value.get("backends", {})}
                state.environment.update(value)
                state.environment["backends"] = backends
                if state.writer is not None:
                    state.writer.set_environment(state.environment)
            elif key == OUTCOME_KEY and report.when == "call":
                state.outcomes.append(value)
                if state.writer is not None:
                    state.writer.add(value)
            elif key == FUZZ_KEY and report.when == "call":
                state.fuzz["tests"] += 1
                state.fuzz["filtered_known"] += int(value["filtered_known"])
                if state.writer is not None:
                    state.writer.set_fuzz(state.fuzz)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        state = self.state
        if state.writer is not None:
            state.writer.close(complete=exitstatus != pytest.ExitCode.INTERRUPTED)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminal_summary(self.state, terminalreporter)


def matrix_lines(outcomes: list[dict[str, Any]]) -> list[str]:
    """The conformance matrix as text: one row per layer/op, one column per backend; a cell
    counts the columns of :data:`conv_parity.report.matrix.CELL_COLUMNS` (as report.md and
    report.html do): ``3 ok 1 FAIL 2 xfail 1 not-reproduced 1 unsupported 4 skip``, where a
    stale entry under a strict registry is a FAIL (it fails the run) and one that did not
    reproduce for a user is its own mark."""
    if not outcomes:
        return []
    backends = list(dict.fromkeys(o["backend"] for o in outcomes))
    cells: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for o in outcomes:
        cells[(o["layer"], o["backend"])][bucket(o)] += 1
    layers = sorted({o["layer"] for o in outcomes})
    words = {"ok": "ok", "fail": "FAIL", "xfail": "xfail", "not-reproduced": "not-reproduced",
             "unsupported": "unsupported", "skip": "skip"}

    def cell(counter: Counter) -> str:
        counted = cell_counts(counter)
        return " ".join(f"{n} {words[col]}" for col, n in counted.items()
                        if n or col == "ok")

    width = max(len(x) for x in [*layers, "layer / op"])
    colw = {b: max(len(b), *(len(cell(cells[(lay, b)])) for lay in layers)) for b in backends}
    head = "layer / op".ljust(width) + " | " + " | ".join(b.ljust(colw[b]) for b in backends)
    lines = [head, "-" * len(head)]
    for lay in layers:
        lines.append(lay.ljust(width) + " | " + " | ".join(
            cell(cells[(lay, b)]).ljust(colw[b]) for b in backends))
    return lines


def terminal_summary(state: RunState, tr: pytest.TerminalReporter) -> None:
    """The conformance matrix, the discrepancies with diagnosis and repro, variants that
    disagree, the fuzz filter count and where the report is."""
    fuzz_line = (f"fuzzing skipped {state.fuzz['filtered_known']} drawn examples that match a "
                 "known discrepancy") if state.fuzz["filtered_known"] else None
    if not state.outcomes:
        if fuzz_line:
            tr.section("conv-parity fuzzing")
            tr.write_line(fuzz_line)
        return
    tr.section("conv-parity conformance matrix")
    totals = Counter(bucket(o) for o in state.outcomes)
    tr.write_line(f"Keras {state.keras_version}, profile {state.profile}, backends "
                  f"{', '.join(state.backends)}: {counts_phrase(totals)}")
    for line in matrix_lines(state.outcomes):
        tr.write_line(line)
    failures = [o for o in state.outcomes if bucket(o) == "new"]
    if failures:
        tr.write_line("")
        tr.write_line(f"{len(failures)} discrepancies:")
        for o in failures[:50]:
            tr.write_line(f"  {o['case_id']} on {o['backend']}: {failure_label(o)}")
            first = str(o.get("message") or "").strip().splitlines()
            if first:
                tr.write_line(f"    {first[0][:300]}")
            if o.get("diagnosis"):
                tr.write_line(f"    diagnosis: {o['diagnosis']}")
            if o.get("repro"):
                tr.write_line(f"    repro: python {o['repro']}")
        if len(failures) > 50:
            tr.write_line(f"  ... and {len(failures) - 50} more (see the report)")
    quiet = sorted({o["known"]["id"] for o in state.outcomes
                    if bucket(o) == "not-reproduced"})
    if quiet:
        tr.write_line("")
        noun = "discrepancy" if len(quiet) == 1 else "discrepancies"
        tr.write_line(f"{len(quiet)} known {noun} did not reproduce here (fixed in this Keras or "
                      f"not on this platform; nothing to do): {', '.join(quiet)}")
    fixes = sorted({(o["known"]["id"], o["known"]["fixed_in"]) for o in state.outcomes
                    if bucket(o) in KNOWN_BUCKETS and (o.get("known") or {}).get("fixed_in")})
    for entry_id, release in fixes:
        tr.write_line(f"known discrepancy {entry_id}: fixed in Keras {release}: upgrade")
    tr.write_line("")
    for line in counts_line(state.outcomes):
        tr.write_line(line)
    from conv_parity.variants import summary_lines

    disagreeing = summary_lines(state.outcomes)
    if disagreeing:
        tr.write_line("")
        for line in disagreeing:
            tr.write_line(line)
    if fuzz_line:
        tr.write_line(fuzz_line)
    if state.report_dir is not None:
        tr.write_line(f"report: {os.fspath(state.report_dir / 'report.json')}")
