"""The ``conv-parity`` dispatcher: the parser of every subcommand and :func:`main`, which maps
the errors of :mod:`conv_parity.errors` to exit codes (the contract is in the package's docstring).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from conv_parity._version import __version__
from conv_parity.cli import (
    backends,
    bisect,
    check,
    daemon,
    fuzz,
    model,
    registry,
    report,
    run,
    upstream,
)
from conv_parity.cli.common import (
    DAEMON_ENV,
    DEBUG_ENV,
    EXIT_HARNESS,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Parser,
    log,
)
from conv_parity.cli.text import one_line
from conv_parity.errors import HarnessError, InvalidConfig, UsageError

_MAIN_EPILOG = """\
subcommands:
  check     does this layer behave the same on every backend?  (conv-parity check --help)
  model     every conv-family layer of a model file, checked where it sits
  run       the conformance suite (pytest) at a profile, with reports
  fuzz      a hypothesis campaign for discrepancies nobody listed
  backends  which Keras backends are installed and importable here
  report    regenerate or merge report.json into report.md / report.html
  registry  audit: prove every known-discrepancy entry's scope by running it
  bisect    the Keras release where a case's verdict changes (installs releases side by side)
  upstream  a ready-to-file upstream issue (Markdown) with a checked standalone reproduction
  daemon    status / stop of the service that keeps backend workers warm

example:
  conv-parity check "Conv2D(8, kernel_size=(4, 4), strides=(2, 2), padding='same', use_bias=False)" \\
      --input-shape 1,28,28,3

exit codes: 0 conform, 1 discrepancy, 2 usage/input error, 3 harness failure.
--json prints exactly one JSON document on stdout; logs go to stderr.
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (examples in every subcommand's --help)."""
    parser = Parser(
        prog="conv-parity",
        description="Does a Keras 3 convolution or pooling layer behave the same on every "
                    "backend? A conformance suite against a float64 NumPy reference.",
        epilog=_MAIN_EPILOG,
    )
    parser.add_argument("--version", action="version", version=_version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    # the order of --help
    for command in (check, model, run, fuzz, backends, report, registry, bisect, upstream,
                    daemon):
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
    if getattr(args, "no_daemon", False):  # also reaches `run`'s pytest and its engine
        os.environ[DAEMON_ENV] = "0"
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


__all__ = ["build_parser", "main"]
