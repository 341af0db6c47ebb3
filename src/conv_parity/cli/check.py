"""``conv-parity check``: one layer, pasted as written, on every selected backend.

The question a person brings is "does this layer behave the same everywhere?", so the answer
is one table (a row per backend: shapes, error against the reference, verdict, diagnosis)
followed by the reference's shape and the rule that gives it, then each failure's message and
repro script. With ``--json`` the same results are a report.json document (one schema for every
front door) with the reference's shape and rule added.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TYPE_CHECKING, Any

from conv_parity.cli.common import (
    EXIT_DISCREPANCY,
    EXIT_OK,
    add_backends_option,
    add_daemon_option,
    add_modes_option,
    emit_json,
    log,
    positive_float,
    seed,
    selected_backends,
    selected_modes,
    stdout_to_stderr,
)
from conv_parity.cli.text import failure_lines, one_line, table
from conv_parity.errors import InvalidConfig, UsageError
from conv_parity.formats import fmt_float, fmt_shape
from conv_parity.policies import POLICIES
from conv_parity.vocabulary import CALL_FORMS, VALUE_REGIMES

if TYPE_CHECKING:
    from conv_parity.case import ConvCase
    from conv_parity.judge.verdict import Outcome

EXAMPLES = """\
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
  conv-parity check --cases my-model-layers.json --report out   # a batch, one set of workers
  conv-parity check "Conv2D(8, 3)" --input-shape 1,9,9,3 --dtype mixed_bfloat16 \
      --modes eager,predict,jit,grad       # a dtype policy, in every mode
  conv-parity check --mixed-dtypes         # ops.conv & co with input and kernel dtypes mixed
  conv-parity check "Conv2D(4, 3, activation='relu')" --input-shape 2,9,9,3 \
      --modes eager,predict,jit,grad       # one table: a row per mode and backend

The expression is parsed, never evaluated: literals only (numbers, strings, True/False, None and
tuples of those); positional arguments follow the Keras constructor's order. Initializers,
regularizers, constraints and name= are accepted and ignored (weights come from --seed).
exit codes: 0 every backend conforms or only known discrepancies (the last line names them;
--fail-on-known makes those 1 too), 1 a new discrepancy, 2 bad input, 3 conv-parity itself failed.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    check = sub.add_parser(
        "check", help="check one layer on every backend",
        description="Run one layer, pasted as you wrote it, on every selected backend and "
                    "compare each output with the float64 reference.",
        epilog=EXAMPLES)
    check.example = ('conv-parity check "Conv2D(8, kernel_size=(4, 4), strides=(2, 2), '
                     "padding='same')\" --input-shape 1,28,28,3")
    check.add_argument("layer", metavar="LAYER", nargs="?",
                       help="a layer expression, e.g. \"Conv2D(8, kernel_size=3, "
                            "padding='same')\"")
    check.add_argument("--cases", metavar="FILE", default=None,
                       help="check every case of a case file instead (a JSON list of case "
                            "objects, or a report.json) through one set of workers; bad "
                            "entries are listed and the batch goes on")
    check.add_argument("--input-shape", metavar="SHAPE",
                       help="the input's shape with batch, e.g. 1,28,28,3 (channels last) "
                            "or 1,3,28,28 with data_format='channels_first'")
    add_backends_option(check)
    add_daemon_option(check)
    add_modes_option(check, "eager")
    check.add_argument("--dtype", choices=tuple(POLICIES), default=None, metavar="POLICY",
                       help="the dtype policy: " + ", ".join(POLICIES) + " (default: the "
                            "layer's dtype= or float32); the output must be in its compute "
                            "dtype, the weights in its variable dtype; an op runs input and "
                            "kernel in a plain policy's dtype")
    check.add_argument("--values", choices=VALUE_REGIMES, default="normal", metavar="REGIME",
                       help="what the input holds: " + ", ".join(VALUE_REGIMES) + " (default "
                            "normal: seeded N(0, 1); docs/value-regimes.md says what each "
                            "holds and what the reference answers)")
    check.add_argument("--mixed-dtypes", metavar="OPS", nargs="?", const="all", default=None,
                       help="instead of a layer: check that the keras.ops conv family (or the "
                            "comma-separated OPS, e.g. conv,conv_transpose) agrees across "
                            "backends on an input and a kernel of different dtypes: the same "
                            "result dtype, or all raise")
    check.add_argument("--call-form", choices=CALL_FORMS, default="tensor", metavar="FORM",
                       help="how the layer or op is called: tensor (backend tensors, tuples; "
                            "default), numpy (NumPy arrays), list (list arguments), numpy-list "
                            "(both); NumPy forms are eager only")
    check.add_argument("--seed", type=seed, default=None,
                       help="seed of the random input and weights (default: derived from the "
                            "configuration)")
    check.add_argument("--json", action="store_true",
                       help="one JSON document on stdout (the report.json schema)")
    check.add_argument("--expect-error", action="store_true",
                       help="for a layer the spec rejects: run it anyway and check that every "
                            "backend raises (default: exit 2 with the spec's reason)")
    check.add_argument("--timeout", type=positive_float, default=120.0, metavar="S",
                       help="per-backend timeout in seconds (default 120)")
    check.add_argument("--fail-on-known", action="store_true",
                       help="exit 1 on known discrepancies too (a migration gate: a registered "
                            "bug still means wrong numbers on that backend)")
    check.add_argument("--strict-registry", action="store_true",
                       help="exit 1 when a registered discrepancy does not reproduce (for the "
                            "registry's maintainers; default: a pass with a note)")
    check.add_argument("--repro", choices=("failures", "all"), default="failures",
                       help="repro scripts: one per failing backend (default), or all: known "
                            "discrepancies too")
    check.add_argument("--report", metavar="DIR", default=None,
                       help="also write report.json/md/html, logs and repro scripts here")
    check.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    """One layer on every selected backend: table (or JSON), exit 0 / 1."""
    if args.mixed_dtypes:
        if args.layer or args.input_shape or args.cases:
            raise UsageError("--mixed-dtypes checks the ops on their own: give no LAYER, "
                             "--input-shape or --cases")
        from conv_parity.cli.mixed import cmd_mixed

        return cmd_mixed(args)
    if args.cases:
        if args.layer or args.input_shape:
            raise UsageError("give either a LAYER with --input-shape, or --cases FILE, not both")
        from conv_parity.cli.batch import check_cases

        return check_cases(args)
    if not args.layer or not args.input_shape:
        raise UsageError("check needs a LAYER and --input-shape (or --cases FILE), e.g. "
                         "conv-parity check \"Conv2D(8, 3)\" --input-shape 1,28,28,3")
    cases, notes = _cases(args)
    case, mode_names = cases[0], [c.mode for c in cases]
    ref_shape, rule = _spec_shape(case, args.expect_error)
    backends = selected_backends(args.backends)
    for note in notes:
        log(note)

    from conv_parity.engine import Engine

    started = time.monotonic()
    log(f"conv-parity: checking {case.id} on {', '.join(backends)}"
        + (f" in modes {', '.join(mode_names)}" if len(mode_names) > 1 else "") + " "
        f"(starting {len(backends)} backend worker{'s' if len(backends) > 1 else ''}...)")
    with stdout_to_stderr(args.json), Engine(
        backends, timeout=args.timeout, report_dir=args.report,
        strict_registry=args.strict_registry, repro=args.repro,
    ) as engine:
        outcomes = engine.check(cases)
        env = engine.environment()
        if engine.daemon_error:
            log(f"conv-parity: note: the warm worker service was not used "
                f"({one_line(engine.daemon_error, 300)}); this call started its own")
    seconds = time.monotonic() - started
    results = [o.to_json() for o in outcomes]
    doc = _check_doc(case, results, env, ref_shape, rule, backends, mode_names)
    written = None
    if args.report:
        from conv_parity.report import write_all

        written = write_all(doc, args.report)
    from conv_parity.report.matrix import exit_code

    failed = exit_code(results, fail_on_known=args.fail_on_known)
    if args.json:
        from conv_parity.report import dumps

        emit_json(dumps(doc))
    else:
        _print_check(case, outcomes, env, ref_shape, rule, seconds)
        if written:
            print(f"report: {written['json']} (and report.md, report.html)")
    return EXIT_DISCREPANCY if failed else EXIT_OK


def _cases(args: argparse.Namespace) -> tuple[list[ConvCase], list[str]]:
    """The case in each selected mode, and the notes to print first (a dtype override, the
    arguments without effect, an input-shape hint)."""
    from conv_parity.case import ConvCase
    from conv_parity.cli import parse

    parsed = parse.parse_layer(args.layer)
    shape = parse.parse_input_shape(args.input_shape)
    notes = parse.check_input_shape(parsed, shape)
    dtype = args.dtype or parsed.dtype or "float32"
    if args.dtype and parsed.dtype and args.dtype != parsed.dtype:
        notes.append(f"note: --dtype {args.dtype} overrides the layer's dtype={parsed.dtype!r}")
    if parsed.ignored:
        notes.append(f"note: ignored {', '.join(parsed.ignored)} (no effect on the forward "
                     f"pass; weights are drawn from the seed)")
    try:
        cases = [ConvCase.make(parsed.name, parsed.kwargs, shape, dtype=dtype, seed=args.seed,
                               mode=m, values=args.values, call_form=args.call_form)
                 for m in selected_modes(args.modes) or ["eager"]]
    except UsageError as exc:
        raise UsageError(parse.with_example(str(exc), parsed.name)) from None
    return cases, notes


def _spec_shape(case: ConvCase, expect_error: bool) -> tuple[tuple[int, ...] | None, str]:
    """The reference's output shape and its rule in words; a case the spec rejects is a usage
    error unless ``--expect-error`` asks to check that every backend rejects it too."""
    from conv_parity import reference
    from conv_parity.cli import parse

    try:
        shape = tuple(reference.output_shape(case.layer, case.input_shape, **case.kwargs))
        return shape, parse.shape_rule(case.layer, case.kwargs, case.input_shape)
    except InvalidConfig as exc:
        why = " ".join(str(exc).split())
        if not expect_error:
            raise UsageError(f"the spec rejects this layer: {why} (add --expect-error to check "
                             f"that every backend rejects it too)") from None
        return None, f"rejected by the spec: {why}"


def _check_doc(case: ConvCase, results: list[dict[str, Any]], env: dict[str, Any],
               ref_shape: tuple[int, ...] | None, rule: str, backends: list[str],
               modes: list[str]) -> dict[str, Any]:
    """A report.json-compatible document (same schema), plus the reference's shape and rule."""
    from conv_parity.report import build_doc
    from conv_parity.report.writer import normalize_result

    run = {"front_door": "check", "backends": backends, "argv": sys.argv,
           "case_id": case.id, "modes": modes}
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


def _print_check(case: ConvCase, outcomes: list[Outcome], env: dict[str, Any],
                 ref_shape: tuple[int, ...] | None, rule: str, seconds: float) -> None:
    rows = []
    several_modes = len({o.case.mode for o in outcomes}) > 1
    for o in outcomes:
        if o.max_abs_err is None:
            err = "-"
        else:
            err = f"{fmt_float(o.max_abs_err)} (tol {fmt_float(o.tolerance)})"
        if o.diagnosis:
            diag = o.diagnosis
        elif o.verdict == "pass":
            diag = "-"
        else:
            diag = o.message
        rows.append([o.backend, _versions(env, o.backend), fmt_shape(o.shape),
                     fmt_shape(o.symbolic_shape), err, o.verdict, one_line(diag, 120)])
        if several_modes:
            rows[-1].insert(0, o.case.mode)
    headers = ["backend", "keras / backend", "output shape", "symbolic shape",
               "max |err| vs ref (tol)", "verdict", "diagnosis"]
    if several_modes:
        headers.insert(0, "mode")
    kwargs = ", ".join(f"{k}={v!r}" for k, v in case.kwargs.items())
    print(f"{case.layer}({kwargs})")
    print(f"input {fmt_shape(case.input_shape)} {case.input_dtype}, policy {case.policy_name}, "
          f"seed {case.seed}")
    print()
    for line in table(headers, rows):
        print(line)
    print()
    if ref_shape is None:
        print(f"reference: {rule}; every backend must raise")
    else:
        print(f"reference shape: {fmt_shape(ref_shape)}")
        print(f"shape rule: {rule}")
    failures = [o for o in outcomes if o.failed]
    for o in failures:
        print()
        print(f"{o.backend}{f' ({o.case.mode})' if several_modes else ''}: {o.verdict}")
        for line in failure_lines(o.message, o.diagnosis, o.repro):
            print(line)
    from conv_parity.variants import summary_lines

    disagreeing = summary_lines([o.to_json() for o in outcomes])
    if disagreeing:
        print()
        for line in disagreeing:
            print(line)
    from conv_parity.report.matrix import final_line

    print()
    print(f"{final_line([o.to_json() for o in outcomes])} ({seconds:.1f} s)")
