"""``conv-parity model SOURCE``: every conv-family layer of a model, checked where it sits.

People arrive with a model, not a layer expression (keras#20375: "while trying to move from
Keras 2 to Keras 3 with PyTorch..."). This command takes the model file (or
``keras.applications.NAME``) and answers per layer: one row per conv-family layer use (its
path in the model, class, real input shape, and a verdict per backend), then the layers that
were not checked, by class, then each discrepancy with its diagnosis and repro script. With
``--json`` the same data is one report.json document with a ``model`` section.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from conv_parity.cli.common import (
    EXIT_DISCREPANCY,
    EXIT_OK,
    add_backends_option,
    add_daemon_option,
    emit_json,
    log,
    positive_float,
    positive_int,
    seed,
    selected_backends,
    stdout_to_stderr,
)
from conv_parity.cli.progress import Progress, add_progress_option, wanted
from conv_parity.cli.text import failure_lines, one_line, table
from conv_parity.formats import fmt_float, fmt_shape
from conv_parity.phases import Phases

if TYPE_CHECKING:
    from conv_parity.model import ModelResult

EXAMPLES = """\
examples:
  conv-parity model my_model.keras
  conv-parity model legacy_model.h5 --backends tensorflow,torch
  conv-parity model keras.applications.MobileNetV2 --input-shape 2,96,96,3
  conv-parity model segmenter.keras --input-shape 1,256,256,3 --layers 'decoder/*' --json
  conv-parity model my_model.keras --reseed --report conv-parity-report
  conv-parity model model.weights.h5 --builder my_package.models:build_model
  conv-parity model my_model.keras --input batch.npy
  conv-parity model two_inputs.keras --input inputs.npz     # one array per input name
  conv-parity model custom.keras --import my_package.layers  # registers ConvBlock

SOURCE is a .keras file, a full-model .h5 (saved with model.save), a .weights.h5 with
--builder (your function that builds the model, imported from your module), or
keras.applications.NAME (built with weights=None: nothing is downloaded). Files load in safe
mode: a Lambda layer is refused, never run. A Keras 2 .h5 is also run by Keras 2 itself (a
keras2 row) where tf_keras is installed. A model conv-parity builds gets seeded non-zero weights, biases included
(zero biases hide bias bugs); a file keeps its own weights unless --reseed.
exit codes: 0 every checked layer conforms on every backend, 1 a discrepancy, 2 bad input,
3 conv-parity itself failed.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    model = sub.add_parser(
        "model", help="check every conv-family layer of a model file",
        description="Check every convolution and pooling layer of a model, with its real "
                    "config, input shape and weights, on every selected backend against the "
                    "float64 reference.",
        epilog=EXAMPLES)
    model.example = "conv-parity model my_model.keras --input-shape 2,224,224,3"
    model.add_argument("source", metavar="SOURCE",
                       help="a .keras or full-model .h5 file, a .weights.h5 with --builder, "
                            "or keras.applications.NAME")
    model.add_argument("--builder", metavar="MODULE:FUNCTION", default=None,
                       help="for a .weights.h5 SOURCE: your function (no arguments) that "
                            "returns the model, e.g. my_package.models:build_model")
    model.add_argument("--input", metavar="FILE.npy|FILE.npz", default=None,
                       help="run the whole model on this array (numpy.save; its shape is the "
                            "input shape, its dtype the model input's own, integer ids "
                            "included), or on an .npz with one array per input name "
                            "(numpy.savez), instead of seeded ones")
    model.add_argument("--import", dest="imports", metavar="MODULE", action="append",
                       default=[],
                       help="import your module (repeatable) before loading a .keras file, "
                            "so the custom layers it registers are known; the file still "
                            "loads in safe mode")
    model.add_argument("--input-shape", metavar="SHAPE", default=None,
                       help="the model's input shape with batch, e.g. 2,224,224,3 (needed "
                            "where the model leaves dimensions open; default: the declared "
                            "shape with batch --batch)")
    model.add_argument("--batch", type=positive_int, default=2, metavar="N",
                       help="batch size when --input-shape is not given (default 2)")
    add_backends_option(model, whole_models=True)
    add_daemon_option(model)
    model.add_argument("--layers", metavar="PATTERNS", default=None,
                       help="comma-separated fnmatch patterns on layer path, name or class "
                            "(e.g. 'block_1/*,Conv2DTranspose'); the others are listed as "
                            "not selected")
    model.add_argument("--reseed", action="store_true",
                       help="replace the file's weights with seeded non-zero ones")
    model.add_argument("--seed", type=seed, default=0,
                       help="seed of the weights a model built here (or --reseed) gets")
    model.add_argument("--no-end-to-end", dest="end_to_end", action="store_false",
                       help="check the layers only; skip running the whole model on every "
                            "backend")
    model.add_argument("--write-repaired", metavar="PATH.keras", default=None,
                       help="for a Keras 2 .h5: save the repaired Keras 3 model here")
    model.add_argument("--json", action="store_true",
                       help="one JSON document on stdout (report.json, with a model section)")
    model.add_argument("--timeout", type=positive_float, default=120.0, metavar="S",
                       help="per-backend timeout in seconds (default 120)")
    model.add_argument("--verbose", "-v", action="store_true",
                       help="also print where the time went, phase by phase (report.json "
                            "always has it, as phases), and every migration blocker of a "
                            "Keras 2 file on its own line (default: grouped by key and value)")
    model.add_argument("--report", metavar="DIR", default=None,
                       help="also write report.json/md/html, logs and repro scripts here")
    add_progress_option(model)
    model.set_defaults(func=cmd_model)


def cmd_model(args: argparse.Namespace) -> int:
    """Check the model's layers: table (or JSON), exit 0 / 1."""
    from conv_parity.cli import parse
    from conv_parity.model import check_model

    shape = parse.parse_input_shape(args.input_shape) if args.input_shape else None
    layers = [p.strip() for p in args.layers.split(",") if p.strip()] if args.layers else None
    backends = selected_backends(args.backends, whole_models=True)
    started = time.monotonic()
    timeline = Phases()
    timeline.mark("load, build, extract")
    with stdout_to_stderr(args.json), Progress(wanted(args)) as progress:
        result = check_model(args.source, backends, input_shape=shape, batch=args.batch,
                             layers=layers, reseed_weights=args.reseed, seed=args.seed,
                             timeout=args.timeout, report_dir=args.report,
                             progress=timeline.progress(progress, model_phase),
                             end_to_end=args.end_to_end, write_repaired=args.write_repaired,
                             builder=args.builder, input_array=args.input,
                             imports=args.imports)
    timeline.mark("report document")
    doc = result.to_json()
    timeline.stop()
    doc["phases"] = timeline.to_json()  # writing the files below is not in it
    written = None
    if args.report:
        from conv_parity.report import write_all

        written = write_all(doc, args.report)
    if args.json:
        from conv_parity.report import dumps

        emit_json(dumps(doc))
    else:
        print_model(result, time.monotonic() - started, verbose=args.verbose)
        if written:
            print(f"report: {written['json']} (and report.md, report.html)")
    if args.verbose:
        log(f"phases ({timeline.total():.1f} s; peak: this process's, workers not counted):")
        for line in timeline.lines():
            log(line)
    return EXIT_DISCREPANCY if not result.passed else EXIT_OK


#: The progress messages of :func:`conv_parity.model.check_model` that start a phase.
_PHASE_OF = (
    ("conv-parity: round trips", "round trips (get_config, .keras save/load)"),
    ("conv-parity: starting", "workers start + per-layer checks"),
    ("conv-parity: running the whole model", "end to end on every backend"),
)


def model_phase(message: str) -> str | None:
    """The phase a progress message of ``model`` starts (None: it starts none)."""
    for prefix, name in _PHASE_OF:
        if message.startswith(prefix):
            return name
    if "conv-family layer uses" in message:
        return "prepare per-layer cases"
    return None


def _cell(row: dict) -> str:
    text = row["verdict"]
    if row.get("known"):
        hidden = ": hidden by these weights" if row.get("hidden_by_weights") else ""
        text += f" ({row['known']}{hidden})"
    return text


def print_model(result: ModelResult, seconds: float, verbose: bool = False) -> None:
    """The per-layer table, the layers not checked, then each discrepancy; a Keras 2 file's
    migration blockers grouped by key and value (each one with ``verbose``)."""
    from conv_parity.model.check import conform_word
    from conv_parity.report.common import coverage_phrase

    section = result.section()
    print(f"model: {result.source}")
    print(f"input: {fmt_shape(result.input_shape)} · weights: "
          f"{'seeded (non-zero biases)' if result.weights == 'seeded' else 'from the file'}"
          f" · keras.config.image_data_format(): {result.image_data_format}")
    if section["migration"] is not None:
        m = section["migration"]
        state = ("loads in Keras 3 as it is" if m["loads_as_is"] else
                 f"BLOCKED: {len(m['blockers'])} config keys Keras 3 rejects; checked after "
                 f"{len(m['repairs'])} repairs")
        print(f"migration (saved by Keras {m['keras_version']}): {state}")
        if verbose:
            for b in m["blockers"]:
                fix = "repaired: key dropped" if b["repair"] else "no known repair"
                # Keras's message names every rejected key of the layer at once: its head.
                print(f"  {b['layer']} ({b['cls']}) {b['key']}={one_line(repr(b['value']), 40)}"
                      f": {fix} (Keras: {one_line(b['message'].split(':')[0], 70)})")
        else:
            for g in m["groups"]:
                print(f"  {g['line']}")
            if len(m["groups"]) < len(m["blockers"]):
                print(f"  ({len(m['blockers'])} blockers in {len(m['groups'])} groups; "
                      f"--verbose lists each)")
    print()
    headers = ["layer", "class", "input shape", *result.backends]
    rows = []
    skipped = []
    for layer in section["layers"]:
        if not layer["checked"]:
            skipped.append(layer)
            continue
        verdicts = {r["backend"]: _cell(r) for r in layer["results"]}
        rows.append([layer["name"], layer["class"], fmt_shape(layer["input_shape"]),
                     *(verdicts.get(b, "-") for b in result.backends)])
    for line in table(headers, rows):
        print(line)
    print()
    print(f"{coverage_phrase(section['coverage'])}; {section['distinct_cases']} distinct "
          f"configs checked once each")
    for layer in skipped:
        print(f"not checked: {layer['name']} ({layer['class']}): {layer['reason']}")
    if section["not_checked"]:
        other = ", ".join(f"{cls} ×{len(paths)}" for cls, paths in section["not_checked"].items())
        print(f"not checked (outside the conv family): {other}")
    failures = result.failures
    for o in failures:
        layers = [u.path for u in result.extraction.checkable if u.case == o.case]
        print()
        print(f"{', '.join(layers)} on {o.backend}: {o.verdict} ({o.case.id})")
        for line in failure_lines(o.message, o.diagnosis, o.repro):
            print(line)
    if result.end_to_end:
        print()
        print(f"end to end (whole model, input {fmt_shape(result.end_to_end['input_shape'])}, "
              f"backends against their median):")
        e2e_rows = []
        for r in result.end_to_end["results"]:
            err = "-" if r["max_abs_err"] is None else (
                f"{fmt_float(r['max_abs_err'])} (tol {fmt_float(r['tolerance'])})")
            e2e_rows.append([r["backend"], r["verdict"], err,
                             r.get("first_divergent_layer") or "-",
                             one_line(r.get("message") or "-", 140)])
        for line in table(["backend", "verdict", "max |err| vs median (tol)",
                           "first divergent layer", "note"], e2e_rows):
            print(line)
        compared = next((r["outputs"] for r in result.end_to_end["results"]
                         if r.get("outputs")), None)
        if compared:
            print(f"outputs compared: {', '.join(compared)}")
        elif not result.end_to_end.get("compared", True):
            print("nothing compared end to end: fewer than two backends ran the model")
    if result.round_trip is not None:
        rt = result.round_trip
        bad = [c for c in rt["checks"] + rt["layers"] if not c["ok"]]
        names = ", ".join(c["check"] for c in rt["checks"] if not c.get("reader"))
        crossed = [c for c in rt["checks"] if c.get("reader")]
        across = (f"; .weights.h5 written on {rt['backend']}, read on "
                  f"{len(crossed)} backends" if crossed else "")
        print()
        print(f"round trips on {rt['backend']} ({names}, per-layer config{across}): "
              + ("output and configs unchanged" if not bad else f"{len(bad)} changed"))
        for c in bad:
            print(f"  {c.get('check') or c.get('layer')}: {c['problem']}")
    xfails = [o for o in result.outcomes if o.verdict == "xfail"]
    print()
    word = conform_word(section["coverage"]) if not failures else (
        f"{len(failures)} discrepanc" + ("y" if len(failures) == 1 else "ies"))
    if result.migration is not None and result.migration.blocked:
        word += "; the file does not load in Keras 3 without the repairs above"
    if result.round_trip is not None and not result.round_trip["ok"]:
        word += "; a round trip changed the model"
    if result.end_to_end_failures:
        word += f"; end to end: {len(result.end_to_end_failures)} backend(s) diverge"
    extra = f", {len(xfails)} known discrepancies (xfail)" if xfails else ""
    print(f"{len(result.outcomes) - len(failures)}/{len(result.outcomes)} layer × backend "
          f"results conform: {word}{extra} ({seconds:.1f} s)")
    for o in xfails:
        print(f"  xfail {o.case.id} on {o.backend}: {one_line(o.message, 160)}")
    for o in result.outcomes:
        if (o.known or {}).get("hidden_by_weights"):
            print(f"  note: {o.case.id} on {o.backend}: {one_line(o.message, 300)}")
