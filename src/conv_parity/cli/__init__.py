"""The ``conv-parity`` command: the CLI front door to the same engine the pytest plugin uses.

Subcommands: ``check`` (one pasted layer on every backend), ``model`` (every conv-family
layer of a model file), ``run`` (the conformance suite via
pytest), ``fuzz`` (a hypothesis campaign), ``backends`` (what is importable here), ``report``
(regenerate / merge reports) and ``registry audit`` (prove the known-discrepancy registry's
scopes). The contract other tools rely on (DESIGN.md): with ``--json``
exactly one JSON document goes to stdout and every log to stderr; exit codes are 0 conform,
1 discrepancy, 2 usage or input error, 3 harness failure. Usage errors are one line, no
traceback; harness failures are one line plus a hint (``CONV_PARITY_DEBUG=1`` for the traceback).

This module keeps what every subcommand shares: that contract (exit codes, :func:`log`,
:func:`emit_json`, :func:`stdout_to_stderr`), the argument types and ``--backends``, the parser
and :func:`main`, which maps the errors of :mod:`conv_parity.errors` to exit codes. Each
subcommand is one module beside it (``check``, ``run``, ``fuzz``, ``backends``, ``report``,
``registry``:
its options, examples and command), so that a new one is one file and one line in
:func:`build_parser`; :mod:`.parse` reads layer expressions and :mod:`.text` lays out text.
Subcommand modules are imported when the parser is built, and import heavy modules (the engine,
the workers, pytest) only when their command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn, TextIO

from conv_parity import __version__
from conv_parity import backends as targets
from conv_parity.cli.text import one_line
from conv_parity.errors import HarnessError, InvalidConfig, UsageError

__all__ = [
    "DEBUG_ENV",
    "EXIT_DISCREPANCY",
    "EXIT_HARNESS",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_USAGE",
    "build_parser",
    "main",
]

EXIT_OK, EXIT_DISCREPANCY, EXIT_USAGE, EXIT_HARNESS = 0, 1, 2, 3
EXIT_INTERRUPTED = 130
DEBUG_ENV = "CONV_PARITY_DEBUG"

_MAIN_EPILOG = """\
subcommands:
  check     does this layer behave the same on every backend?  (conv-parity check --help)
  model     every conv-family layer of a model file, checked where it sits
  run       the conformance suite (pytest) at a profile, with reports
  fuzz      a hypothesis campaign for discrepancies nobody listed
  backends  which Keras backends are installed and importable here
  report    regenerate or merge report.json into report.md / report.html
  registry  audit: prove every known-discrepancy entry's scope by running it

example:
  conv-parity check "Conv2D(8, kernel_size=(4, 4), strides=(2, 2), padding='same', use_bias=False)" \\
      --input-shape 1,28,28,3

exit codes: 0 conform, 1 discrepancy, 2 usage/input error, 3 harness failure.
--json prints exactly one JSON document on stdout; logs go to stderr.
"""


# --------------------------------------------------------------------------- output streams


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


class _Parser(argparse.ArgumentParser):
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


def add_backends_option(parser: argparse.ArgumentParser) -> None:
    """``--backends LIST``, the same for every subcommand that runs cases."""
    parser.add_argument("--backends", metavar="LIST",
                        help=f"comma-separated, from {', '.join(targets.SPECS)}; 'all' is "
                             "every installed backend, 'BACKEND:*' its variants "
                             "(default: every installed backend)")


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


def selected_backends(spec: str | None) -> list[str]:
    """The targets a --backends value selects; none installed is a usage error."""
    from conv_parity.engine import parse_backends

    backends, _ = parse_backends(spec)
    if not backends:
        raise UsageError(
            "no Keras backend is installed here; install one of "
            f"{', '.join(targets.KERAS_BACKENDS)} (e.g. pip install 'conv-parity[jax]')")
    return backends


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (examples in every subcommand's --help)."""
    from conv_parity.cli import backends, check, fuzz, model, registry, report, run

    parser = _Parser(
        prog="conv-parity",
        description="Does a Keras 3 convolution or pooling layer behave the same on every "
                    "backend? A conformance suite against a float64 NumPy reference.",
        epilog=_MAIN_EPILOG,
    )
    parser.add_argument("--version", action="version", version=_version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for command in (check, model, run, fuzz, backends, report, registry):  # the order of --help
        command.add_parser(sub)
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
        log(f"conv-parity {args.command}: error: arguments after -- are only for `run` "
            f"(pytest arguments); got {' '.join(extra)}")
        return EXIT_USAGE
    if extra:
        args.pytest_args = extra
    debug = bool(os.environ.get(DEBUG_ENV))
    try:
        return int(args.func(args))
    except (UsageError, InvalidConfig) as exc:
        log(f"conv-parity {args.command}: error: {one_line(exc, 2000)}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        log(f"conv-parity {args.command}: interrupted")
        return EXIT_INTERRUPTED
    except HarnessError as exc:
        if debug:
            traceback.print_exc()
        log(f"conv-parity {args.command}: harness error: {one_line(exc, 2000)}"
            + ("" if debug else f" (rerun with {DEBUG_ENV}=1 for a traceback)"))
        return EXIT_HARNESS
    except Exception as exc:  # the harness itself failed: one line, traceback on request
        if debug:
            traceback.print_exc()
        log(f"conv-parity {args.command}: internal error: {type(exc).__name__}: "
            f"{one_line(exc, 1000)}"
            + ("" if debug else f" (rerun with {DEBUG_ENV}=1 for a traceback)"))
        return EXIT_HARNESS
