"""``conv-parity fuzz``: a hypothesis campaign for discrepancies nobody listed yet.

The campaign itself is :func:`conv_parity.fuzzing.run_campaign` (it feeds the same engine as
every front door); this module turns its arguments into a budget, its progress events into
stderr lines a person can follow during a long run, and its result into one line per distinct,
minimised discrepancy with its repro script (or one JSON document).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conv_parity.cli.common import (
    EXIT_DISCREPANCY,
    EXIT_OK,
    add_backends_option,
    add_modes_option,
    emit_json,
    log,
    positive_float,
    positive_int,
    seed,
    selected_backends,
    selected_modes,
    stdout_to_stderr,
)
from conv_parity.cli.progress import Progress, add_progress_option, wanted
from conv_parity.cli.text import one_line
from conv_parity.errors import HarnessError, UsageError

if TYPE_CHECKING:
    from conv_parity.fuzzing import CampaignEvent, CampaignResult

EXAMPLES = """\
examples:
  conv-parity fuzz --max-examples 200
  conv-parity fuzz --time-budget 600 --backends torch,jax --seed 1 --report fuzz-report
  conv-parity fuzz --time-budget 60 --json > discrepancies.json
  conv-parity fuzz --max-examples 100 --modes eager,grad --backends torch,jax

Prints each distinct discrepancy (minimised) with its repro script; exit 1 if any was found.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    fuzz = sub.add_parser(
        "fuzz", help="hypothesis campaign for new discrepancies",
        epilog=EXAMPLES,
        description="Draw random valid configurations, check them on every selected backend, "
                    "shrink and deduplicate the discrepancies found.")
    fuzz.example = "conv-parity fuzz --max-examples 100"
    budget = fuzz.add_mutually_exclusive_group()
    budget.add_argument("--max-examples", type=positive_int, default=None, metavar="N")
    budget.add_argument("--time-budget", type=positive_float, default=None, metavar="SECONDS")
    add_backends_option(fuzz)
    add_progress_option(fuzz)
    add_modes_option(fuzz, "eager; with several, each example draws one")
    fuzz.add_argument("--policies", metavar="LIST", default=None,
                      help="comma-separated dtype policies each example draws one of (float16, "
                           "bfloat16, mixed_float16, mixed_bfloat16, float32, float64; default "
                           "float32; an op keeps its plain dtype when a mixed one is drawn)")
    fuzz.add_argument("--seed", type=seed, default=None,
                      help="campaign seed (default: random; printed so a run can be replayed)")
    fuzz.add_argument("--layers", metavar="LIST", default=None,
                      help="comma-separated layer/op names (default: all)")
    fuzz.add_argument("--report", metavar="DIR", default="conv-parity-report/fuzz",
                      help="where the report (report.json/md/html) and each discrepancy's repro "
                           "script go (default: conv-parity-report/fuzz)")
    fuzz.add_argument("--json", action="store_true", help="one JSON document on stdout")
    fuzz.set_defaults(func=cmd_fuzz)


def _load_campaign() -> Callable[..., CampaignResult]:
    try:
        from conv_parity.fuzzing import run_campaign
    except ImportError:
        raise HarnessError(
            "this conv-parity has no fuzz campaign (conv_parity.fuzzing.run_campaign is "
            "missing)") from None
    return run_campaign


class _CampaignProgress:
    """Campaign events on stderr: every find as a line; routine example counts at most every
    few seconds as a line, or, with the live line (a terminal, or --progress), on it with an
    ETA from the budget (time left, or the examples left at the rate so far)."""

    def __init__(self, live: Progress | None = None, every: float = 5.0,
                 time_budget: float | None = None, max_examples: int | None = None) -> None:
        self.live = live if live is not None and live.enabled else None
        self.every = every
        self.time_budget = time_budget
        self.max_examples = max_examples
        self._last = 0.0

    def eta(self, event: CampaignEvent) -> float | None:
        """Seconds left by the budget, or None when there is no estimate yet."""
        seconds, examples = float(event.seconds), int(event.examples)
        if self.max_examples is not None and examples > 0:
            return max(0.0, seconds / examples * (self.max_examples - examples))
        if self.time_budget is not None:
            return max(0.0, self.time_budget - seconds)
        return None

    def __call__(self, event: CampaignEvent) -> None:
        kind = getattr(event, "kind", None)
        if self.live is not None and kind == "example":
            eta = self.eta(event)
            self.live.phase(f"{event.examples} examples, {event.discrepancies} distinct "
                            f"discrepancies" + (f", ETA {eta:.0f} s" if eta is not None else ""))
            return
        now = time.monotonic()
        if kind == "example" and now - self._last < self.every:
            return
        self._last = now
        line = f"conv-parity fuzz: {event}"
        if self.live is not None:
            self.live(line)
        else:
            log(line)


def cmd_fuzz(args: argparse.Namespace) -> int:
    """A hypothesis campaign; prints each distinct discrepancy, exit 1 if any."""
    from conv_parity import kinds

    backends = selected_backends(args.backends)
    layers = None
    if args.layers:
        layers = [s.strip() for s in args.layers.split(",") if s.strip()]
        for name in layers:
            kinds.get_kind(name)
    run_campaign = _load_campaign()
    budget = f"{args.max_examples} examples" if args.max_examples is not None else (
        f"{args.time_budget:g} s" if args.time_budget is not None else "the default budget")
    log(f"conv-parity fuzz: {budget} on {', '.join(backends)}"
        + (f", seed {args.seed}" if args.seed is not None else ""))
    kwargs: dict[str, Any] = {}
    if layers:
        kwargs["layers"] = layers
    modes = selected_modes(args.modes)
    if modes:
        kwargs["modes"] = modes
    from conv_parity import policies

    chosen = policies.parse(args.policies)
    integer = [p for p in chosen or () if p in policies.INT_DTYPES]
    if integer:  # its strategies draw activations, modes and sizes an integer case refuses
        raise UsageError(f"--policies {','.join(integer)}: the fuzzer draws float dtypes; "
                         f"integer dtypes are checked by the profiles' integer cases "
                         f"(conv-parity run --policies {integer[0]}) and by conv-parity check "
                         f"--dtype {integer[0]} (docs/integer-dtypes.md)")
    if chosen:
        kwargs["policies"] = chosen
    with stdout_to_stderr(args.json), Progress(wanted(args)) as live:
        result = run_campaign(
            backends=backends, max_examples=args.max_examples, time_budget=args.time_budget,
            seed=args.seed, report_dir=args.report, **kwargs,
            progress=_CampaignProgress(live, time_budget=args.time_budget,
                                       max_examples=args.max_examples),
        )
    discrepancies = list(result.discrepancies or [])
    if args.json:
        from conv_parity.report import dumps

        emit_json(dumps(result.to_json()))
    else:
        _print_fuzz(result, discrepancies)
    return EXIT_DISCREPANCY if discrepancies else EXIT_OK


def _print_fuzz(result: CampaignResult, discrepancies: list[dict[str, Any]]) -> None:
    line = f"{result.examples} examples in {float(result.seconds):.1f} s"
    if getattr(result, "seed", None) is not None:
        line += f" (seed {result.seed})"
    print(line)
    pairs = getattr(result, "pairs", 0)
    filtered = getattr(result, "filtered_pairs", 0)
    if pairs:
        print(f"{filtered} of {pairs} (case, backend) pairs filtered as known discrepancies "
              f"({filtered / pairs:.0%}); {result.filtered_known} drawn cases known on every "
              "backend were not run")
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
            print(f"    diagnosis: {one_line(d['diagnosis'], 300)}")
        elif d.get("message"):
            print(f"    {one_line(d['message'], 300)}")
        if d.get("repro"):
            print(f"    repro: python {d['repro']}")
    paths = getattr(result, "report_paths", None) or {}
    if paths.get("json"):
        print(f"report: {paths['json']}")
