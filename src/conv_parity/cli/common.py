"""What every ``conv-parity`` subcommand shares: the output contract (exit codes, :func:`log`,
:func:`emit_json`, :func:`stdout_to_stderr`), the argument types, ``--backends`` and
``--modes``, and the parser class with one-line errors (:class:`Parser`).

:mod:`conv_parity.cli.main` builds the parser and maps errors to exit codes; each subcommand
module imports from here, never from the package or from ``main``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any, NoReturn, TextIO

from conv_parity import backends as targets
from conv_parity.errors import UsageError

EXIT_OK, EXIT_DISCREPANCY, EXIT_USAGE, EXIT_HARNESS = 0, 1, 2, 3
EXIT_INTERRUPTED = 130
DEBUG_ENV = "CONV_PARITY_DEBUG"
DAEMON_ENV = "CONV_PARITY_DAEMON"  # "0": no warm worker service (workers/lease.py)


def log(message: str) -> None:
    """Progress and notes: always stderr, so stdout stays clean for --json."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()  # keep the interleaving right when both go to one terminal/file
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def stdout_to_stderr(active: bool) -> Iterator[None]:
    """In --json mode, anything a library prints in this process goes to stderr, not stdout."""
    if not active:
        yield
        return
    with contextlib.redirect_stdout(sys.stderr):
        yield


def emit_json(text: str, out: TextIO | None = None) -> None:
    """The one JSON document of --json, newline-terminated, on stdout."""
    stream = out or sys.stdout
    stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


# --------------------------------------------------------------------------- arguments


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit 2) that point at --help instead of the usage block,
    and help text laid out as written (every parser's epilog holds examples)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        hint = getattr(self, "example", None)
        text = f"{self.prog}: error: {' '.join(message.split())}"
        text += f"; e.g. {hint}" if hint else f" (see {self.prog} --help)"
        print(text, file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def positive_float(text: str) -> float:
    """An argparse type: seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An argparse type: an int >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def seed(text: str) -> int:
    """An argparse type: a seed numpy and hypothesis both accept, in [0, 2**32)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int, got {text!r}") from None
    if not 0 <= value < 2**32:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32), got {text!r}")
    return value


def add_case_or_entry_options(p: argparse.ArgumentParser) -> None:
    """CASE_OR_ENTRY and what picks or narrows its case (``bisect`` and ``upstream``; the
    resolver is :func:`conv_parity.cli.target.resolve`)."""
    from conv_parity.policies import POLICIES
    from conv_parity.vocabulary import MODE_NAMES

    p.add_argument("target", metavar="CASE_OR_ENTRY",
                   help="a registry entry id, a case id from --report, or a layer expression "
                        "with --input-shape")
    p.add_argument("--input-shape", metavar="SHAPE", default=None)
    p.add_argument("--report", metavar="FILE", default=None,
                   help="the report.json holding the case id (default "
                        "conv-parity-report/report.json)")
    add_backends_option(p)
    p.add_argument("--mode", choices=MODE_NAMES, default=None)
    p.add_argument("--dtype", choices=tuple(POLICIES), default=None, metavar="POLICY")


def add_backends_option(parser: argparse.ArgumentParser, whole_models: bool = False) -> None:
    """``--backends LIST``, the same for every subcommand that runs cases. Only the targets the
    subcommand accepts are offered: ``keras2`` only where whole models run (`model`)."""
    names = targets.SPECS if whole_models else targets.CASE_TARGETS
    extra = ("; keras2 joins a Keras 2 .h5's end to end by itself where tf_keras is installed"
             if whole_models else "")
    parser.add_argument("--backends", metavar="LIST",
                        help=f"comma-separated, from {', '.join(names)}; 'all' is "
                             "every installed backend, 'BACKEND:*' its variants "
                             f"(default: every installed backend{extra})")


def add_daemon_option(parser: argparse.ArgumentParser) -> None:
    """``--no-daemon``: start this invocation's own workers (what CI=true does by itself)."""
    parser.add_argument("--no-daemon", dest="no_daemon", action="store_true",
                        help="start fresh backend workers instead of borrowing warm ones "
                             "from the per-user service (conv-parity daemon status); also "
                             f"{DAEMON_ENV}=0, and always under CI=true")


def add_modes_option(parser: argparse.ArgumentParser, default: str) -> None:
    """``--modes LIST``, the same for every subcommand that runs cases."""
    from conv_parity.modes import MODES

    parser.add_argument("--modes", metavar="LIST", default=None,
                        help=f"comma-separated, from {', '.join(MODES)}: eager is one forward "
                             "call, predict model.predict, jit compile(jit_compile=True) then "
                             f"predict, grad the forward plus its VJP (default: {default})")


def selected_modes(spec: str | None) -> list[str] | None:
    """The modes a --modes value selects (None: the subcommand's default)."""
    from conv_parity import modes

    return modes.parse(spec)


def selected_backends(spec: str | None, whole_models: bool = False) -> list[str]:
    """The targets a --backends value selects; none installed is a usage error, and so is a
    whole-model-only target (keras2) outside `model`: refused here, before any worker starts."""
    from conv_parity.engine import parse_backends

    backends, _ = parse_backends(spec)
    if not whole_models:
        for name in backends:
            if not targets.get(name).cases:
                raise UsageError(
                    f"{name} runs whole models only ({targets.get(name).summary}); "
                    f"`conv-parity model` on a Keras 2 .h5 adds its row by itself; "
                    f"choose from {', '.join(targets.CASE_TARGETS)}")
    if not backends:
        raise UsageError(
            "no Keras backend is installed here; install one of "
            f"{', '.join(targets.KERAS_BACKENDS)} (e.g. pip install 'conv-parity[jax]')")
    return backends


# --------------------------------------------------------------------------- parser


__all__ = [
    "DAEMON_ENV", "DEBUG_ENV", "EXIT_DISCREPANCY", "EXIT_HARNESS", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE",
    "Parser", "add_backends_option", "add_daemon_option", "add_modes_option", "emit_json", "log",
    "positive_float",
    "positive_int", "seed", "selected_backends", "selected_modes", "stdout_to_stderr",
]
