"""The ``conv-parity`` command: the CLI front door to the same engine the pytest plugin uses.

Subcommands: ``check`` (one pasted layer on every backend), ``run`` (the conformance suite via
pytest), ``fuzz`` (a hypothesis campaign), ``backends`` (what is importable here) and ``report``
(regenerate / merge reports). The contract other tools rely on (DESIGN.md): with ``--json``
exactly one JSON document goes to stdout and every log to stderr; exit codes are 0 conform,
1 discrepancy, 2 usage or input error, 3 harness failure. Usage errors are one line, no
traceback; harness failures are one line plus a hint (``CONV_PARITY_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from conv_parity import __version__
from conv_parity import backends as targets
from conv_parity.errors import HarnessError, InvalidConfig, UsageError

EXIT_OK, EXIT_DISCREPANCY, EXIT_USAGE, EXIT_HARNESS = 0, 1, 2, 3
EXIT_INTERRUPTED = 130
DEBUG_ENV = "CONV_PARITY_DEBUG"
DEFAULT_REPORT = "conv-parity-report"

_CHECK_EXAMPLES = """\
examples:
  conv-parity check "Conv2D(8, kernel_size=(4, 4), strides=(2, 2), padding='same', use_bias=False)" \\
      --input-shape 1,28,28,3
  conv-parity check "keras.layers.Conv1D(4, 3, padding='causal', dilation_rate=2)" --input-shape 2,16,3
  conv-parity check "Conv2DTranspose(8, 3, strides=2, padding='same')" --input-shape 1,7,9,4 \\
      --backends torch,jax --json
  conv-parity check "MaxPooling2D(3, strides=2, data_format='channels_first')" --input-shape 1,3,28,28
  conv-parity check "ops.conv(x, kernel, strides=2, padding='same', kernel_size=3, filters=8)" \\
      --input-shape 1,28,28,3
  conv-parity check "Conv2D(8, 5)" --input-shape 1,4,4,3 --expect-error   # all must raise

The expression is parsed, never evaluated: literals only (numbers, strings, True/False, None and
tuples of those); positional arguments follow the Keras constructor's order. Initializers,
regularizers, constraints and name= are accepted and ignored (weights come from --seed).
exit codes: 0 every backend conforms, 1 a discrepancy, 2 bad input, 3 conv-parity itself failed.
"""

_RUN_EXAMPLES = """\
examples:
  conv-parity run --profile smoke                       # seconds; every installed backend
  conv-parity run --profile default --report out -n 2   # hundreds of cases on 2 xdist workers
  conv-parity run --backends torch,jax --layers Conv2D,Conv2DTranspose
  conv-parity run --profile full --shard 2/4 --json > shard2.json
  conv-parity run --profile smoke -- -x -q              # extra pytest arguments after --
  conv-parity run -- --hypothesis-profile ci            # the suite's fuzz tests at CI budget

Runs `python -m pytest --pyargs conv_parity.suite -p conv_parity` isolated from your own pytest
configuration and writes report.json, report.md and report.html to --report.
exit codes: 0 conform, 1 discrepancy (tests failed), 2 bad arguments, 3 pytest/harness failure.
"""

_FUZZ_EXAMPLES = """\
examples:
  conv-parity fuzz --max-examples 200
  conv-parity fuzz --time-budget 600 --backends torch,jax --seed 1 --report fuzz-report
  conv-parity fuzz --time-budget 60 --json > discrepancies.json

Prints each distinct discrepancy (minimised) with its repro script; exit 1 if any was found.
"""

_BACKENDS_EXAMPLES = """\
examples:
  conv-parity backends
  conv-parity backends --json
  conv-parity backends --backends tensorflow:*

Starts one worker per installed backend and variant (concurrently) and reports its versions,
device, platform facts (CPU ISA, TensorFlow's oneDNN, torch's mkldnn, OpenVINO's precision...)
and import time; a backend that is installed but fails to import shows its error. A variant
(BACKEND:SETTING) is the same backend started under one setting, with its own worker and row:
name it in --backends of any subcommand.
"""

_REPORT_EXAMPLES = """\
examples:
  conv-parity report conv-parity-report/report.json          # regenerate report.md/html in place
  conv-parity report shard1/report.json shard2/report.json --out merged
  conv-parity report a/report.json b/report.json --out merged --json

exit codes: 0 the (merged) report has no discrepancy, 1 it has one, 2 unreadable/invalid input.
"""

_MAIN_EPILOG = """\
subcommands:
  check     does this layer behave the same on every backend?  (conv-parity check --help)
  run       the conformance suite (pytest) at a profile, with reports
  fuzz      a hypothesis campaign for discrepancies nobody listed
  backends  which Keras backends are installed and importable here
  report    regenerate or merge report.json into report.md / report.html

example:
  conv-parity check "Conv2D(8, kernel_size=(4, 4), strides=(2, 2), padding='same', use_bias=False)" \\
      --input-shape 1,28,28,3

exit codes: 0 conform, 1 discrepancy, 2 usage/input error, 3 harness failure.
--json prints exactly one JSON document on stdout; logs go to stderr.
"""


# --------------------------------------------------------------------------- plumbing


def _log(message: str) -> None:
    """Progress and notes: always stderr, so stdout stays clean for --json."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()  # keep the interleaving right when both go to one terminal/file
    print(message, file=sys.stderr, flush=True)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) that point at --help instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        hint = getattr(self, "example", None)
        text = f"{self.prog}: error: {' '.join(message.split())}"
        text += f"; e.g. {hint}" if hint else f" (see {self.prog} --help)"
        print(text, file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32), got {text!r}")
    return value


def _workers(text: str) -> str:
    if text == "auto" or text == "logical":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int or 'auto', got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return str(value)


@contextlib.contextmanager
def _stdout_to_stderr(active: bool) -> Iterator[None]:
    """In --json mode, anything a library prints in this process goes to stderr, not stdout."""
    if not active:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _emit_json(text: str, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


def _fmt_shape(shape: Any) -> str:
    if shape is None:
        return "-"
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _fmt_float(x: Any) -> str:
    if x is None:
        return "-"
    try:
        return f"{float(x):.2g}"
    except (TypeError, ValueError):
        return str(x)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Aligned text columns; the last column is not padded (it holds free text)."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        padded = [c.ljust(widths[i]) for i, c in enumerate(cells[:-1])]
        return " | ".join([*padded, cells[-1]]).rstrip()

    head = line(headers)
    rule = "-+-".join("-" * w for w in widths[:-1]) + "-+-" + "-" * max(len(headers[-1]), 9)
    return [head, rule, *(line(r) for r in rows)]


def _one_line(text: Any, limit: int = 160) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _parse_backends(spec: str | None) -> list[str]:
    from conv_parity.engine import parse_backends

    backends, _ = parse_backends(spec)
    if not backends:
        raise UsageError(
            "no Keras backend is installed here; install one of "
            f"{', '.join(targets.KERAS_BACKENDS)} (e.g. pip install 'conv-parity[jax]')")
    return backends


def _environment_fallback() -> dict[str, Any]:
    from conv_parity.report.writer import default_environment

    return default_environment()


# --------------------------------------------------------------------------- check


def cmd_check(args: argparse.Namespace) -> int:
    """One layer on every selected backend: table (or JSON), exit 0 / 1."""
    from conv_parity import cli_parse, reference
    from conv_parity.case import ConvCase

    parsed = cli_parse.parse_layer(args.layer)
    shape = cli_parse.parse_input_shape(args.input_shape)
    notes = cli_parse.check_input_shape(parsed, shape)
    dtype = args.dtype or parsed.dtype or "float32"
    if args.dtype and parsed.dtype and args.dtype != parsed.dtype:
        notes.append(f"note: --dtype {args.dtype} overrides the layer's dtype={parsed.dtype!r}")
    try:
        case = ConvCase.make(parsed.name, parsed.kwargs, shape, dtype=dtype, seed=args.seed)
    except UsageError as exc:
        raise UsageError(cli_parse.with_example(str(exc), parsed.name)) from None
    ref_shape: tuple[int, ...] | None
    try:
        ref_shape = tuple(reference.output_shape(case.layer, case.input_shape, **case.kwargs))
        rule = cli_parse.shape_rule(case.layer, case.kwargs, case.input_shape)
    except InvalidConfig as exc:
        why = " ".join(str(exc).split())
        if not args.expect_error:
            raise UsageError(f"the spec rejects this layer: {why} (add --expect-error to check "
                             f"that every backend rejects it too)") from None
        ref_shape, rule = None, f"rejected by the spec: {why}"
    backends = _parse_backends(args.backends)
    if parsed.ignored:
        notes.append(f"note: ignored {', '.join(parsed.ignored)} (no effect on the forward "
                     f"pass; weights are drawn from the seed)")
    for note in notes:
        _log(note)

    from conv_parity.engine import Engine

    started = time.monotonic()
    _log(f"conv-parity: checking {case.id} on {', '.join(backends)} "
         f"(starting {len(backends)} backend worker{'s' if len(backends) > 1 else ''}...)")
    with _stdout_to_stderr(args.json), Engine(
        backends, timeout=args.timeout, report_dir=args.report
    ) as engine:
        outcomes = engine.check([case])
        env = engine.environment()
    seconds = time.monotonic() - started
    results = [o.to_json() for o in outcomes]
    doc = _check_doc(case, results, env, ref_shape, rule, backends)
    written = None
    if args.report:
        from conv_parity.report import write_all

        written = write_all(doc, args.report)
    failed = any(o.failed for o in outcomes)
    if args.json:
        from conv_parity.report import dumps

        _emit_json(dumps(doc))
    else:
        _print_check(case, outcomes, env, ref_shape, rule, seconds)
        if written:
            print(f"report: {written['json']} (and report.md, report.html)")
    return EXIT_DISCREPANCY if failed else EXIT_OK


def _check_doc(case: Any, results: list[dict[str, Any]], env: dict[str, Any],
               ref_shape: tuple[int, ...] | None, rule: str, backends: list[str]) -> dict[str, Any]:
    """A report.json-compatible document (same schema), plus the reference's shape and rule."""
    from conv_parity.report import build_doc
    from conv_parity.report.writer import normalize_result

    run = {"front_door": "check", "backends": backends, "argv": sys.argv,
           "case_id": case.id}
    doc = build_doc([normalize_result(r) for r in results], run, env, complete=True)
    doc["reference"] = {"shape": None if ref_shape is None else list(ref_shape), "rule": rule}
    return doc


def _versions(env: dict[str, Any], backend: str) -> str:
    info = (env.get("backends") or {}).get(backend) or {}
    keras = info.get("keras_version") or env.get("keras") or "?"
    library = backend.split(":")[0]
    version = str(info.get("backend_version") or (info.get("versions") or {}).get(library)
                  or "?")
    version = version.split("-")[0]  # openvino: "2026.4.1-22982-e213a...-releases/..."
    if not version[:1].isalpha():  # the numpy backend reports "numpy 2.x (convs via jax ...)"
        version = f"{library} {version}"
    return f"{keras} / {version}"


def _print_check(case: Any, outcomes: list[Any], env: dict[str, Any],
                 ref_shape: tuple[int, ...] | None, rule: str, seconds: float) -> None:
    rows = []
    for o in outcomes:
        if o.max_abs_err is None:
            err = "-"
        else:
            err = f"{_fmt_float(o.max_abs_err)} (tol {_fmt_float(o.tolerance)})"
        if o.diagnosis:
            diag = o.diagnosis
        elif o.verdict == "pass":
            diag = "-"
        else:
            diag = o.message
        rows.append([o.backend, _versions(env, o.backend), _fmt_shape(o.shape),
                     _fmt_shape(o.symbolic_shape), err, o.verdict, _one_line(diag, 120)])
    headers = ["backend", "keras / backend", "output shape", "symbolic shape",
               "max |err| vs ref (tol)", "verdict", "diagnosis"]
    kwargs = ", ".join(f"{k}={v!r}" for k, v in case.kwargs.items())
    print(f"{case.layer}({kwargs})")
    print(f"input {_fmt_shape(case.input_shape)} {case.dtype}, seed {case.seed}")
    print()
    for line in _table(headers, rows):
        print(line)
    print()
    if ref_shape is None:
        print(f"reference: {rule}; every backend must raise")
    else:
        print(f"reference shape: {_fmt_shape(ref_shape)}")
        print(f"shape rule: {rule}")
    failures = [o for o in outcomes if o.failed]
    for o in failures:
        print()
        print(f"{o.backend}: {o.verdict}")
        for line in str(o.message).splitlines():
            print(f"  {line}")
        if o.diagnosis:
            print(f"  diagnosis: {o.diagnosis}")
        if o.repro:
            print(f"  repro: python {o.repro}")
    from conv_parity.variants import summary_lines

    disagreeing = summary_lines([o.to_json() for o in outcomes])
    if disagreeing:
        print()
        for line in disagreeing:
            print(line)
    ok = len(outcomes) - len(failures)
    verdict = "all conform" if not failures else f"{len(failures)} discrepanc" + (
        "y" if len(failures) == 1 else "ies")
    print()
    print(f"{ok}/{len(outcomes)} backends conform: {verdict} ({seconds:.1f} s)")


# --------------------------------------------------------------------------- run


def _suite_dir() -> Path:
    spec = importlib.util.find_spec("conv_parity.suite")
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError("cannot locate the conv_parity.suite package (broken install?)")
    return Path(next(iter(spec.submodule_search_locations)))


def pytest_command(args: argparse.Namespace, backends: list[str], report: Path) -> list[str]:
    """The pytest command line for `run`, isolated from the user's own pytest configuration:
    no ini file (``-c /dev/null``), no addopts, no conftest.py, no cache directory."""
    suite = _suite_dir()
    cmd = [
        sys.executable, "-m", "pytest", "--pyargs", "conv_parity.suite",
        "-p", "conv_parity",
        "-c", os.devnull, "--rootdir", str(suite), "--noconftest",
        "-o", "addopts=", "-p", "no:cacheprovider",
        "--conv-profile", args.profile,
        "--conv-backends", ",".join(backends),
        "--conv-report", str(report),
        "--conv-timeout", f"{args.timeout:g}",
    ]
    if args.shard:
        cmd += ["--conv-shard", args.shard]
    if args.layers:
        cmd += ["--conv-layers", args.layers]
    if args.n is not None:
        if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
            cmd += ["-p", "xdist.plugin"]
        cmd += ["-n", args.n, "--dist", "loadgroup"]
    return cmd + list(args.pytest_args)


def cmd_run(args: argparse.Namespace) -> int:
    """The conformance suite through pytest; validates everything before starting it."""
    from conv_parity import grid, kinds

    if args.shard:
        grid.parse_shard(args.shard)
    if args.layers:
        names = [s.strip() for s in args.layers.split(",") if s.strip()]
        if not names:
            raise UsageError("--layers is empty; e.g. --layers Conv2D,MaxPooling2D")
        for name in names:
            kinds.get_kind(name)
        args.layers = ",".join(names)
    backends = _parse_backends(args.backends)
    if args.n is not None and importlib.util.find_spec("xdist") is None:
        raise UsageError("-n needs pytest-xdist: pip install pytest-xdist (or drop -n)")
    report = Path(args.report).absolute()
    try:
        report.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--report {args.report}: cannot create the folder ({exc})") from None
    report_json = report / "report.json"
    with contextlib.suppress(FileNotFoundError):
        report_json.unlink()  # a stale report must not pass for this run's
    cmd = pytest_command(args, backends, report)
    _log(f"conv-parity: profile {args.profile}, backends {', '.join(backends)}"
         + (f", shard {args.shard}" if args.shard else "") + f"; report in {report}")
    if os.environ.get(DEBUG_ENV):
        _log("conv-parity: " + " ".join(cmd))
    # --json: pytest's whole output goes to stderr; stdout carries only the report.
    stdout = sys.stderr if args.json else None
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    try:
        proc = subprocess.Popen(cmd, stdout=stdout)
    except OSError as exc:
        raise HarnessError(f"cannot start pytest: {exc}") from None
    try:
        rc = proc.wait()
    except KeyboardInterrupt:
        # pytest got the same SIGINT: give it time to write its partial report, then go.
        try:
            proc.wait(timeout=30)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
            proc.wait()
        _log(f"conv-parity run: interrupted; the partial report (if any) is in {report}")
        return EXIT_INTERRUPTED
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
    text = report_json.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HarnessError(f"{report_json} is not valid JSON: {exc}") from None
    from conv_parity.report import FAILURE_VERDICTS

    bad = sum(int(n) for v, n in (doc.get("summary", {}).get("by_verdict") or {}).items()
              if v in FAILURE_VERDICTS)
    _log(f"conv-parity: report written to {report_json} (and report.md, report.html)")
    if args.json:
        _emit_json(text)
    if rc == 1 and not bad:
        _log("conv-parity run: pytest reported failures outside the grid's report (e.g. the "
             "hypothesis fuzz tests); see its output above")
    if rc == 1 or bad:
        return EXIT_DISCREPANCY
    return EXIT_OK if rc == 0 else EXIT_HARNESS


# --------------------------------------------------------------------------- fuzz


def _load_campaign() -> Callable[..., Any]:
    try:
        from conv_parity.fuzzing import run_campaign
    except ImportError:
        raise HarnessError(
            "this conv-parity has no fuzz campaign (conv_parity.fuzzing.run_campaign is "
            "missing)") from None
    return run_campaign


class _CampaignProgress:
    """Campaign events as stderr lines: every find, and routine example counts at most every
    few seconds (a fast campaign runs hundreds of examples a minute)."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self._last = 0.0

    def __call__(self, event: Any) -> None:
        kind = getattr(event, "kind", None)
        now = time.monotonic()
        if kind == "example" and now - self._last < self.every:
            return
        self._last = now
        _log(f"conv-parity fuzz: {event}")


def cmd_fuzz(args: argparse.Namespace) -> int:
    """A hypothesis campaign; prints each distinct discrepancy, exit 1 if any."""
    from conv_parity import kinds

    backends = _parse_backends(args.backends)
    layers = None
    if args.layers:
        layers = [s.strip() for s in args.layers.split(",") if s.strip()]
        for name in layers:
            kinds.get_kind(name)
    run_campaign = _load_campaign()
    budget = f"{args.max_examples} examples" if args.max_examples is not None else (
        f"{args.time_budget:g} s" if args.time_budget is not None else "the default budget")
    _log(f"conv-parity fuzz: {budget} on {', '.join(backends)}"
         + (f", seed {args.seed}" if args.seed is not None else ""))
    kwargs: dict[str, Any] = {}
    if layers:
        kwargs["layers"] = layers
    with _stdout_to_stderr(args.json):
        result = run_campaign(
            backends=backends, max_examples=args.max_examples, time_budget=args.time_budget,
            seed=args.seed, report_dir=args.report, progress=_CampaignProgress(), **kwargs,
        )
    discrepancies = list(result.discrepancies or [])
    if args.json:
        from conv_parity.report import dumps

        _emit_json(dumps(result.to_json()))
    else:
        _print_fuzz(result, discrepancies)
    return EXIT_DISCREPANCY if discrepancies else EXIT_OK


def _print_fuzz(result: Any, discrepancies: list[dict[str, Any]]) -> None:
    line = f"{result.examples} examples in {float(result.seconds):.1f} s"
    if getattr(result, "seed", None) is not None:
        line += f" (seed {result.seed})"
    if result.filtered_known:
        line += f"; {result.filtered_known} filtered as known discrepancies"
    print(line)
    if not discrepancies:
        print("no discrepancy found")
    else:
        print(f"{len(discrepancies)} distinct discrepanc"
              f"{'y' if len(discrepancies) == 1 else 'ies'}:")
    for d in discrepancies:
        shrunk = "" if d.get("minimised", True) else " (not fully minimised: budget ran out)"
        print(f"  {d.get('case_id', '?')} on {d.get('backend', '?')}: "
              f"{d.get('verdict', '?')}{shrunk}")
        if d.get("diagnosis"):
            print(f"    diagnosis: {_one_line(d['diagnosis'], 300)}")
        elif d.get("message"):
            print(f"    {_one_line(d['message'], 300)}")
        if d.get("repro"):
            print(f"    repro: python {d['repro']}")
    paths = getattr(result, "report_paths", None) or {}
    if paths.get("json"):
        print(f"report: {paths['json']}")


# --------------------------------------------------------------------------- backends


def cmd_backends(args: argparse.Namespace) -> int:
    """Start every installed target's worker concurrently and report what each one says."""
    from conv_parity import facts
    from conv_parity.workers import WorkerPool

    if args.backends:
        names, _ = targets.parse(args.backends)
    else:
        names = [n for n, s in targets.SPECS.items() if s.installed()]
    rows: list[dict[str, Any]] = []
    if names:
        _log(f"conv-parity: importing {', '.join(names)} (one worker each, concurrently)...")
    with _stdout_to_stderr(args.json), WorkerPool(timeout=args.timeout) as pool:
        pool.start(names)
        infos = {b: pool.info(b) for b in names}
    shown = names if args.backends else list(targets.SPECS)
    for backend in shown:
        spec = targets.get(backend)
        if backend in infos:
            entry = {**infos[backend].to_json(), "installed": True}
        else:
            entry = {"backend": backend, "installed": False, "available": False,
                     "import_error": f"not installed (needs {'/'.join(spec.modules)})"}
        entry["summary"] = spec.summary
        rows.append(entry)
    if args.json:
        from conv_parity.report import SCHEMA_VERSION

        env = _environment_fallback()
        env["backends"] = {r["backend"]: r for r in rows if r["installed"]}
        _emit_json(json.dumps({"schema_version": SCHEMA_VERSION, "environment": env,
                               "backends": rows}, indent=1, default=str))
        return EXIT_OK
    cpu = facts.cpu()
    print(f"CPU: {cpu['cpu.model']} ({cpu['cpu.count']} cores; "
          f"{' '.join(cpu['cpu.isa']) or 'no AVX2/AVX-512/AMX'})")
    table = []
    for r in rows:
        if r["available"]:
            status = "yes"
        elif r["installed"]:
            status = "NO (import failed)"
        else:
            status = "not installed"
        secs = r.get("import_seconds")
        table.append([
            r["backend"], status, r.get("keras_version") or "-",
            r.get("backend_version") or "-", r.get("device") or "-",
            facts.describe(r.get("facts") or {}, facts.HEADLINE) or "-",
            f"{secs:.1f} s" if isinstance(secs, (int, float)) else "-",
            _one_line(r.get("import_error") if r["installed"] and not r["available"] else "", 100)
            or "-",
        ])
    for line in _table(["backend", "importable", "keras", "backend version", "device",
                        "facts", "import time", "error"], table):
        print(line)
    return EXIT_OK


# --------------------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    """Regenerate report.md/html from report.json files (merged when several)."""
    from conv_parity.report import FAILURE_VERDICTS, dumps, load_report, merge_reports, write_all

    paths = [Path(p) for p in args.reports]
    docs = []
    for p in paths:
        if p.is_dir():
            p = p / "report.json"
        if not p.is_file():
            raise UsageError(f"{p}: no such report.json")
        try:
            docs.append(load_report(p))
        except (ValueError, OSError) as exc:
            raise UsageError(f"cannot read {p}: {_one_line(exc, 300)}") from None
    if args.out is None and len(docs) > 1:
        raise UsageError("--out DIR is required when merging several reports "
                         "(e.g. --out merged)")
    first = paths[0] if not paths[0].is_dir() else paths[0] / "report.json"
    out = Path(args.out) if args.out is not None else first.parent
    doc = merge_reports(docs) if len(docs) > 1 else docs[0]
    written = write_all(doc, out)
    counts = doc["summary"]["by_verdict"]
    bad = sum(n for v, n in counts.items() if v in FAILURE_VERDICTS)
    if args.json:
        _emit_json(dumps(doc))
    else:
        shown = ", ".join(f"{n} {v}" for v, n in counts.items() if n)
        print(f"{len(doc['results'])} results ({shown or 'none'}) from {len(docs)} report"
              f"{'s' if len(docs) > 1 else ''}")
        for kind in ("json", "md", "html"):
            print(f"wrote {written[kind]}")
    return EXIT_DISCREPANCY if bad else EXIT_OK


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (examples in every subcommand's --help)."""
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="conv-parity",
        description="Does a Keras 3 convolution or pooling layer behave the same on every "
                    "backend? A conformance suite against a float64 NumPy reference.",
        epilog=_MAIN_EPILOG, formatter_class=fmt,
    )
    parser.add_argument("--version", action="version", version=_version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def backends_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backends", metavar="LIST",
                       help=f"comma-separated, from {', '.join(targets.SPECS)}; 'all' is "
                            "every installed backend, 'BACKEND:*' its variants "
                            "(default: every installed backend)")

    check = sub.add_parser(
        "check", help="check one layer on every backend", formatter_class=fmt,
        description="Run one layer, pasted as you wrote it, on every selected backend and "
                    "compare each output with the float64 reference.",
        epilog=_CHECK_EXAMPLES)
    check.example = ('conv-parity check "Conv2D(8, kernel_size=(4, 4), strides=(2, 2), '
                     "padding='same')\" --input-shape 1,28,28,3")
    check.add_argument("layer", metavar="LAYER",
                       help="a layer expression, e.g. \"Conv2D(8, kernel_size=3, "
                            "padding='same')\"")
    check.add_argument("--input-shape", required=True, metavar="SHAPE",
                       help="the input's shape with batch, e.g. 1,28,28,3 (channels last) "
                            "or 1,3,28,28 with data_format='channels_first'")
    backends_opt(check)
    check.add_argument("--dtype", choices=("float16", "float32", "float64"), default=None,
                       help="input and weight dtype (default: the layer's dtype= or float32)")
    check.add_argument("--seed", type=_seed, default=None,
                       help="seed of the random input and weights (default: derived from the "
                            "configuration)")
    check.add_argument("--json", action="store_true",
                       help="one JSON document on stdout (the report.json schema)")
    check.add_argument("--expect-error", action="store_true",
                       help="for a layer the spec rejects: run it anyway and check that every "
                            "backend raises (default: exit 2 with the spec's reason)")
    check.add_argument("--timeout", type=_positive_float, default=120.0, metavar="S",
                       help="per-backend timeout in seconds (default 120)")
    check.add_argument("--report", metavar="DIR", default=None,
                       help="also write report.json/md/html, logs and repro scripts here")
    check.set_defaults(func=cmd_check)

    run = sub.add_parser(
        "run", help="run the conformance suite (pytest) and write the report",
        formatter_class=fmt, epilog=_RUN_EXAMPLES,
        description="The grid of the chosen profile on every selected backend, through "
                    "pytest and the conv-parity plugin; prints the conformance matrix.")
    run.example = "conv-parity run --profile smoke --backends jax,numpy"
    run.add_argument("--profile", choices=("smoke", "default", "full"), default="default",
                     help="grid size (default: default)")
    backends_opt(run)
    run.add_argument("--report", metavar="DIR", default=DEFAULT_REPORT,
                     help=f"report folder (default: ./{DEFAULT_REPORT})")
    run.add_argument("--shard", metavar="I/N", default=None,
                     help="run only shard I of N of the case list (e.g. 2/4)")
    run.add_argument("-n", dest="n", type=_workers, default=None, metavar="N",
                     help="pytest-xdist worker processes (with --dist loadgroup)")
    run.add_argument("--layers", metavar="LIST", default=None,
                     help="comma-separated layer/op names (default: all)")
    run.add_argument("--timeout", type=_positive_float, default=120.0, metavar="S",
                     help="per-case backend timeout in seconds (default 120)")
    run.add_argument("--json", action="store_true",
                     help="pytest output to stderr, report.json's content on stdout")
    run.set_defaults(func=cmd_run, pytest_args=[])

    fuzz = sub.add_parser(
        "fuzz", help="hypothesis campaign for new discrepancies", formatter_class=fmt,
        epilog=_FUZZ_EXAMPLES,
        description="Draw random valid configurations, check them on every selected backend, "
                    "shrink and deduplicate the discrepancies found.")
    fuzz.example = "conv-parity fuzz --max-examples 100"
    budget = fuzz.add_mutually_exclusive_group()
    budget.add_argument("--max-examples", type=_positive_int, default=None, metavar="N")
    budget.add_argument("--time-budget", type=_positive_float, default=None, metavar="SECONDS")
    backends_opt(fuzz)
    fuzz.add_argument("--seed", type=_seed, default=None,
                      help="campaign seed (default: random; printed so a run can be replayed)")
    fuzz.add_argument("--layers", metavar="LIST", default=None,
                      help="comma-separated layer/op names (default: all)")
    fuzz.add_argument("--report", metavar="DIR", default=None,
                      help="write the discrepancies and repro scripts here")
    fuzz.add_argument("--json", action="store_true", help="one JSON document on stdout")
    fuzz.set_defaults(func=cmd_fuzz)

    back = sub.add_parser(
        "backends", help="which backends are importable here", formatter_class=fmt,
        epilog=_BACKENDS_EXAMPLES,
        description="Import every installed Keras backend and variant in its own worker and "
                    "report versions, device, platform facts and import time.")
    back.add_argument("--backends", metavar="LIST",
                      help="only these targets (names, 'all', 'BACKEND:*'; default: every "
                           "installed backend and variant)")
    back.add_argument("--json", action="store_true", help="one JSON document on stdout")
    back.add_argument("--timeout", type=_positive_float, default=120.0, metavar="S",
                      help=argparse.SUPPRESS)
    back.set_defaults(func=cmd_backends)

    rep = sub.add_parser(
        "report", help="regenerate / merge reports", formatter_class=fmt,
        epilog=_REPORT_EXAMPLES,
        description="Render report.md and report.html from one or more report.json "
                    "(several are merged: shards, backends).")
    rep.example = "conv-parity report shard1/report.json shard2/report.json --out merged"
    rep.add_argument("reports", nargs="+", metavar="REPORT.json")
    rep.add_argument("--out", metavar="DIR", default=None,
                     help="output folder (default: the single input's folder; required when "
                          "merging)")
    rep.add_argument("--json", action="store_true", help="the (merged) report.json on stdout")
    rep.set_defaults(func=cmd_report)
    return parser


def _version_text() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        keras = version("keras")
    except PackageNotFoundError:
        keras = "not installed"
    return f"conv-parity {__version__} (keras {keras}, python {sys.version.split()[0]})"


def _split_passthrough(argv: list[str]) -> tuple[list[str], list[str]]:
    """`run ... -- -x -q`: what follows the first `--` goes to pytest untouched."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``conv-parity`` console script; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    ours, extra = _split_passthrough(args_list)
    parser = build_parser()
    try:
        args = parser.parse_args(ours)
    except SystemExit as exc:  # --help / --version (0) or a usage error (2, printed)
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if extra and args.command != "run":
        _log(f"conv-parity {args.command}: error: arguments after -- are only for `run` "
             f"(pytest arguments); got {' '.join(extra)}")
        return EXIT_USAGE
    if extra:
        args.pytest_args = extra
    debug = bool(os.environ.get(DEBUG_ENV))
    try:
        return int(args.func(args))
    except (UsageError, InvalidConfig) as exc:
        _log(f"conv-parity {args.command}: error: {_one_line(exc, 2000)}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        _log(f"conv-parity {args.command}: interrupted")
        return EXIT_INTERRUPTED
    except HarnessError as exc:
        if debug:
            traceback.print_exc()
        _log(f"conv-parity {args.command}: harness error: {_one_line(exc, 2000)}"
             + ("" if debug else f" (rerun with {DEBUG_ENV}=1 for a traceback)"))
        return EXIT_HARNESS
    except Exception as exc:  # the harness itself failed: one line, traceback on request
        if debug:
            traceback.print_exc()
        _log(f"conv-parity {args.command}: internal error: {type(exc).__name__}: "
             f"{_one_line(exc, 1000)}"
             + ("" if debug else f" (rerun with {DEBUG_ENV}=1 for a traceback)"))
        return EXIT_HARNESS


if __name__ == "__main__":
    sys.exit(main())
