"""Repro scripts for cases the spec rejects: the bug is that a backend *returns*.

:mod:`conv_parity.explain.repro` checks a backend's output against a direct-loop reference, so
it needs an output shape; a case with no output position (an output size of 0 or less, a
zero-size kernel) has none, and the bug to show is the opposite of a wrong value: the backend
returns an array (empty, or its input) or kills the process where Keras's conv layers raise.

The script makes the suite's call with the case's arguments and arrays, in a child process of
itself (an abort, e.g. oneDNN's, must be reported by its signal rather than end the script),
and says OK when the call raises, DISCREPANCY (exit 1) when it returns (with the shape it
returned and why the spec has no output) or when a signal kills the call.
"""

from __future__ import annotations

import textwrap

from conv_parity import backends as targets
from conv_parity import modes
from conv_parity.case import ConvCase
from conv_parity.errors import InvalidConfig
from conv_parity.explain import repro_values
from conv_parity.explain.repro import _ARRAYS_SOURCE, case_constants  # the suite's arrays

#: The child's exit code when the call returned (1 would be any uncaught exception's).
RETURNED = 3


def rejection(case: ConvCase) -> str | None:
    """Why the spec rejects ``case`` (its message, naming the argument), None if it accepts it.
    ``rejection(Conv1D k=5 on a length-3 valid input)`` starts "output size would be -1"."""
    from conv_parity import reference

    try:
        reference.output_shape(case.layer, case.input_shape, **case.kwargs)
    except InvalidConfig as exc:
        return " ".join(str(exc).split())
    return None


def render(case: ConvCase, backend: str, why: str, note: str | None = None) -> str:
    """The script of a spec-rejected ``case`` on ``backend``; ``why``: :func:`rejection`'s
    message, printed with the verdict."""
    spec = targets.get(backend)
    mode = modes.get(case.mode)
    setting = textwrap.indent(f"# the {backend} setting:\n{spec.after_import_source}\n",
                              "    ") if spec.after_import_source else ""
    return (_header(case, backend, why, note)
            + repro_values.arrays_source(case, _ARRAYS_SOURCE)
            + _call_source(setting, textwrap.indent(mode.repro_prepare(case), "    "),
                           textwrap.indent(mode.repro_call(case), "        "))
            + _MAIN_SOURCE)


def _header(case: ConvCase, backend: str, why: str, note: str | None) -> str:
    """The docstring, the backend's environment and the case's constants."""
    spec = targets.get(backend)
    note_doc = ("\n" + textwrap.fill(note, 96) + "\n") if note else ""
    env_src = "".join(f"os.environ[{k!r}] = {v!r}  # the {backend} setting\n"
                      for k, v in spec.environment.items())
    return f'''#!/usr/bin/env python3
"""conv-parity repro: {case.id} on the {backend} backend.
{note_doc}
This configuration has no output: {textwrap.fill(why, 96)}.
Keras's convolution layers raise for it ("Computed output size would be zero or negative"), so
the call should raise. Standalone: needs only keras, numpy and {spec.library}. Run it with
`python <this file>`: the call runs in a child process (an abort is reported by its signal);
OK (exit code 0) when it raises, DISCREPANCY (exit code 1) when it returns or aborts.
"""
import os
import signal
import subprocess
import sys

os.environ["KERAS_BACKEND"] = {spec.keras_backend!r}  # must be set before keras is imported
{env_src}
import numpy as np

{case_constants(case)}WHY = {why!r}  # why no output exists
NOTE = {note!r}
ARRAYS_FILE = None
RETURNED = {RETURNED}  # the child's exit code when the call returned instead of raising


'''


def _call_source(setting: str, prepare: str, call: str) -> str:
    """call(): the suite's call, in the child process."""
    return f'''def call():
    """The call conv-parity made; exit RETURNED if it returns, 0 if it raises."""
    import keras

{setting}    x, weights = make_arrays()
{prepare}
    print(f"keras {{keras.__version__}}, backend {{keras.backend.backend()}}")
    if NOTE:
        print("conv-parity:", NOTE)
    print("input shape    ", x.shape)
    if weights:
        print("kernel shape   ", weights[0].shape)
    try:
{call}
    except Exception as exc:  # what the spec wants
        lines = [ln.strip() for ln in str(exc).splitlines()
                 if ln.strip() and not ln.startswith("Exception encountered")]
        said = lines[0] if lines else ""
        if said.endswith("user code:"):  # a tf.function's traceback: its error is further down
            said = next((ln for ln in reversed(lines) if "Error: " in ln), said)
        print(f"raised {{type(exc).__name__}}: {{said}}")
        return 0
    print("output shape   ", tuple(y.shape))
    return RETURNED


'''


_MAIN_SOURCE = '''def main():
    """Run call() in a fresh process and judge how it ended."""
    env = dict(os.environ, CONV_PARITY_REPRO_CHILD="1")
    sys.stdout.flush()
    code = subprocess.run([sys.executable, os.path.abspath(__file__)], env=env).returncode
    if code == 0:
        print(f"OK: the backend raised, as it should: {WHY}")
        return 0
    if code == RETURNED:
        print("DISCREPANCY: expected an error, but the backend returned an array (shape above): "
              f"{WHY}")
        return 1
    if code < 0:
        print(f"DISCREPANCY: expected an error, but the call killed the process with "
              f"{signal.Signals(-code).name}: {WHY}")
        return 1
    print(f"the script itself failed (child exit code {code}); see its traceback above")
    return 2


if __name__ == "__main__":
    sys.exit(call() if os.environ.get("CONV_PARITY_REPRO_CHILD") else main())
'''


__all__ = ["RETURNED", "rejection", "render"]
