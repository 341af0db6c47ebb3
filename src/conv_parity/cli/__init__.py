"""The ``conv-parity`` command: the CLI front door to the same engine the pytest plugin uses.

Subcommands: ``check`` (one pasted layer on every backend), ``model`` (every conv-family
layer of a model file), ``run`` (the conformance suite via
pytest), ``fuzz`` (a hypothesis campaign), ``backends`` (what is importable here), ``report``
(regenerate / merge reports) and ``registry audit`` (prove the known-discrepancy registry's
scopes by running them). The contract other tools rely on (DESIGN.md): with ``--json``
exactly one JSON document goes to stdout and every log to stderr; exit codes are 0 conform,
1 discrepancy, 2 usage or input error, 3 harness failure. Usage errors are one line, no
traceback; harness failures are one line plus a hint (``CONV_PARITY_DEBUG=1`` for the traceback).

:mod:`.common` keeps what every subcommand shares: that contract (exit codes, :func:`log`,
:func:`emit_json`, :func:`stdout_to_stderr`), the argument types and ``--backends``;
:mod:`.main` builds the parser and holds :func:`main` (the console script
``conv_parity.cli:main``), which maps the errors of :mod:`conv_parity.errors` to exit codes. Each
subcommand is one module beside them (``check``, ``run``, ``fuzz``, ``backends``, ``report``:
its options, examples and command), so that a new one is one file and one line in
:func:`build_parser`; :mod:`.parse` reads layer expressions and :mod:`.text` lays out text.
Subcommand modules are imported when the parser is built, and import heavy modules (the engine,
the workers, pytest) only when their command runs, so ``--help`` stays fast.
"""

from __future__ import annotations

from conv_parity.cli.common import (
    DEBUG_ENV,
    EXIT_DISCREPANCY,
    EXIT_HARNESS,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
)
from conv_parity.cli.main import build_parser, main

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
