"""``conv-parity run``: the shipped conformance suite, through pytest and the plugin.

There is one engine and two front doors (DESIGN.md), so ``run`` does not judge cases itself: it
validates its arguments (a typo must cost seconds, not a pytest start-up), runs
``python -m pytest --pyargs conv_parity.suite`` isolated from the user's own pytest
configuration, and reads back the report.json the plugin wrote. pytest's exit codes map onto
the CLI's: a failed test is a discrepancy, anything else pytest reports is a harness failure.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import sys
from pathlib import Path

from conv_parity.cli import progress, run_watch
from conv_parity.cli.common import (
    DEBUG_ENV,
    EXIT_DISCREPANCY,
    EXIT_HARNESS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    add_backends_option,
    add_daemon_option,
    add_modes_option,
    emit_json,
    log,
    positive_float,
    selected_backends,
    selected_modes,
)
from conv_parity.cli.run_child import INTERRUPTED, run_pytest
from conv_parity.errors import HarnessError, UsageError

DEFAULT_REPORT = "conv-parity-report"
#: The empty pytest configuration file shipped beside the suite (see pytest_command).
RUN_INI = "conv-parity-run.ini"

EXAMPLES = """\
examples:
  conv-parity run --profile smoke                       # seconds; every installed backend
  conv-parity run --profile default --report out -n 2   # hundreds of cases on 2 xdist workers
  conv-parity run --backends torch,jax --layers Conv2D,Conv2DTranspose
  conv-parity run --profile full --shard 2/4 --json > shard2.json
  conv-parity run --modes eager,predict,jit,grad --backends all,tensorflow:*
  conv-parity run --profile smoke -- -x -q              # extra pytest arguments after --
  conv-parity run -- --hypothesis-profile ci            # the suite's fuzz tests at CI budget
  conv-parity run --keras nightly --profile smoke       # the nightly watch (docs/upstream.md)

Runs `python -m pytest --pyargs conv_parity.suite -p conv_parity` isolated from your own pytest
configuration and writes report.json, report.md and report.html to --report.
exit codes: 0 conform, 1 discrepancy (tests failed), 2 bad arguments, 3 pytest/harness failure.
"""


def _workers(text: str) -> str:
    """An argparse type for -n: what pytest-xdist accepts (an int >= 0, auto, logical)."""
    if text == "auto" or text == "logical":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or 'auto', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return str(value)


def add_parser(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run", help="run the conformance suite (pytest) and write the report",
        epilog=EXAMPLES,
        description="The grid of the chosen profile on every selected backend, through "
                    "pytest and the conv-parity plugin; prints the conformance matrix.")
    run.example = "conv-parity run --profile smoke --backends jax,numpy"
    run.add_argument("--profile", choices=("smoke", "default", "full"), default="default",
                     help="grid size (default: default)")
    add_backends_option(run)
    add_daemon_option(run)
    add_modes_option(run, "the profile's: eager on every case, predict and grad on a seeded "
                          "subset; full adds jit")
    run.add_argument("--policies", metavar="LIST", default=None,
                     help="comma-separated dtype policies whose cases of the profile to "
                          "run (float16, bfloat16, mixed_float16, mixed_bfloat16, float32, "
                          "float64; float32 is the drawn grid, each other policy its seeded "
                          "share of it, 1 in 4 where the profile lists none; int8, uint8, "
                          "int32, int64: the profile's integer cases, docs/integer-dtypes.md; "
                          "default: all of the profile's; ops skip the mixed ones)")
    run.add_argument("--report", metavar="DIR", default=DEFAULT_REPORT,
                     help=f"report folder (default: ./{DEFAULT_REPORT})")
    run.add_argument("--shard", metavar="I/N", default=None,
                     help="run only shard I of N of the case list (e.g. 2/4)")
    run.add_argument("-n", dest="n", type=_workers, default=None, metavar="N",
                     help="pytest-xdist worker processes (with --dist loadgroup)")
    run.add_argument("--layers", metavar="LIST", default=None,
                     help="comma-separated layer/op names (default: all)")
    run.add_argument("--timeout", type=positive_float, default=120.0, metavar="S",
                     help="per-case backend timeout in seconds (default 120)")
    run.add_argument("--json", action="store_true",
                     help="pytest output to stderr, report.json's content on stdout")
    progress.add_progress_option(run)
    run.add_argument("--fail-on-known", action="store_true",
                     help="known discrepancies fail too (a migration gate)")
    run.add_argument("--repro", choices=("failures", "all"), default="failures",
                     help="repro scripts in the report folder: one per failing case x backend "
                          "(default), or all: known discrepancies too")
    run.add_argument("--strict-registry", action="store_true",
                     help="a registered discrepancy that does not reproduce fails (for the "
                          "registry's maintainers; default: a pass with a note)")
    run_watch.add_options(run)
    run.set_defaults(func=cmd_run, pytest_args=[])


def _suite_dir() -> Path:
    spec = importlib.util.find_spec("conv_parity.suite")
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError("cannot locate the conv_parity.suite package (broken install?)")
    return Path(next(iter(spec.submodule_search_locations)))


def pytest_command(args: argparse.Namespace, backends: list[str], report: Path) -> list[str]:
    """The pytest command line for `run`, isolated from the user's own pytest configuration:
    the suite's own empty ini file (``-c conv-parity-run.ini``: pytest's header names it, where
    ``-c /dev/null`` printed a path climbing to /dev/null), no addopts, no conftest.py, no cache
    directory."""
    suite = _suite_dir()
    ini = suite / RUN_INI
    if not ini.is_file():
        raise HarnessError(f"{ini} is missing (broken install?)")
    cmd = [
        sys.executable, "-m", "pytest", "--pyargs", "conv_parity.suite",
        "-p", "conv_parity",
        "-c", str(ini), "--rootdir", str(suite), "--noconftest",
        "-o", "addopts=", "-p", "no:cacheprovider",
        "--conv-profile", args.profile,
        "--conv-backends", ",".join(backends),
        "--conv-report", str(report),
        "--conv-timeout", f"{args.timeout:g}",
        "--conv-strict-registry", "true" if args.strict_registry else "false",
        "--conv-fail-on-known", "true" if args.fail_on_known else "false",
        "--conv-repro", getattr(args, "repro", "failures"),
        # The matrix and the summary describe each discrepancy once (verdict, message,
        # diagnosis, repro): tracebacks of the harness would only repeat it.
        "--tb=no",
    ]
    if args.shard:
        cmd += ["--conv-shard", args.shard]
    if args.layers:
        cmd += ["--conv-layers", args.layers]
    if args.modes:
        cmd += ["--conv-modes", args.modes]
    if args.policies:
        cmd += ["--conv-policies", args.policies]
    if args.n is not None:
        if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            cmd += ["-p", "xdist.plugin"]
        cmd += ["-n", args.n, "--dist", "loadgroup"]
    return cmd + list(args.pytest_args)


def _validated(args: argparse.Namespace) -> list[str]:
    """The backends to run; every other argument checked (and normalised) in place."""
    from conv_parity import kinds, policies
    from conv_parity.generate import grid

    if args.shard:
        grid.parse_shard(args.shard)
    if args.layers:
        names = [s.strip() for s in args.layers.split(",") if s.strip()]
        if not names:
            raise UsageError("--layers is empty; e.g. --layers Conv2D,MaxPooling2D")
        for name in names:
            kinds.get_kind(name)
        args.layers = ",".join(names)
    modes = selected_modes(args.modes)
    args.modes = ",".join(modes) if modes else None
    chosen = policies.parse(args.policies)
    args.policies = ",".join(chosen) if chosen else None
    backends = selected_backends(args.backends)
    if args.n is not None and importlib.util.find_spec("xdist") is None:
        raise UsageError("-n needs pytest-xdist: pip install pytest-xdist (or drop -n)")
    if getattr(args, "baseline", None) and not getattr(args, "keras", None):
        raise UsageError("--baseline is the installed release's report that a --keras run is "
                         "compared with: give --keras too")
    return backends


def run_suite(args: argparse.Namespace, backends: list[str], report: Path,
              keras_folder: Path | None = None) -> tuple[int, str]:
    """One pytest run of the suite into ``report`` (with the Keras in ``keras_folder`` first on
    its PYTHONPATH, and so its workers', when given): pytest's exit code (0 or 1; INTERRUPTED)
    and the text of the report.json it wrote. Harness and usage failures raise."""
    from conv_parity.upstream.releases import first_on_path

    try:
        report.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--report {args.report}: cannot create the folder ({exc})") from None
    report_json = report / "report.json"
    with contextlib.suppress(FileNotFoundError):
        report_json.unlink()  # a stale report must not pass for this run's
    cmd = pytest_command(args, backends, report)
    log(f"conv-parity: profile {args.profile}, backends {', '.join(backends)}"
        + (f", shard {args.shard}" if args.shard else "")
        + (f", Keras from {keras_folder}" if keras_folder else "") + f"; report in {report}")
    if os.environ.get(DEBUG_ENV):
        log("conv-parity: " + " ".join(cmd))
    # --json: pytest's whole output goes to stderr; stdout carries only the report.
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    # The live line carries pytest's output through stderr: by default only when both streams
    # are the terminal, so `run > log.txt` still gets pytest's output in the file.
    live = progress.wanted(args) and (args.progress or sys.stdout.isatty())
    with first_on_path(keras_folder):
        rc = run_pytest(cmd, live=live, stdout=sys.stderr if args.json else None)
    if rc == INTERRUPTED:
        log(f"conv-parity run: the partial report (if any) is in {report}")
        return rc, ""
    if rc in (2, 3, 4) or rc < 0:
        meaning = {2: "was interrupted", 3: "hit an internal error", 4: "rejected its arguments"}
        raise HarnessError(
            f"pytest {meaning.get(rc, f'died (signal {-rc})')} (exit code {rc}); see its "
            f"output above")
    if rc == 5:
        raise UsageError("no cases were collected: check --layers, --shard and extra pytest "
                         "arguments")
    if not report_json.exists():
        raise HarnessError(f"pytest finished (exit code {rc}) but wrote no {report_json}")
    return rc, report_json.read_text(encoding="utf-8")


def cmd_run(args: argparse.Namespace) -> int:
    """The conformance suite through pytest; validates everything before starting it. With
    --keras, the nightly watch (:mod:`conv_parity.cli.run_watch`)."""
    backends = _validated(args)
    report = Path(args.report).absolute()
    if args.keras:
        rc, text = run_watch.watch(args, report, lambda folder, where: run_suite(
            args, backends, where, folder))
    else:
        rc, text = run_suite(args, backends, report)
    if rc == INTERRUPTED:
        return EXIT_INTERRUPTED
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{report / 'report.json'} is not valid JSON: {exc}") from None
    from conv_parity.report import FAILURE_VERDICTS

    summary = doc.get("summary") or {}
    if "by_bucket" in summary:  # the one classifier's count: a strict stale entry fails too
        bad = int(summary["by_bucket"].get("new", 0))
    else:  # a report written before the buckets were added
        bad = sum(int(n) for v, n in (summary.get("by_verdict") or {}).items()
                  if v in FAILURE_VERDICTS)
    log(f"conv-parity: report written to {report / 'report.json'} (and report.md, report.html)")
    if args.json:
        emit_json(text)
    if rc == 1 and not bad:
        log("conv-parity run: pytest reported failures outside the grid's report (e.g. the "
            "hypothesis fuzz tests); see its output above")
    if rc == 1 or bad:
        return EXIT_DISCREPANCY
    return EXIT_OK if rc == 0 else EXIT_HARNESS
