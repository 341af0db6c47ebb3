"""Test-only fault injection inside a worker.

The pool's crash/timeout/garbage handling can only be trusted if it is exercised against real
failures of a real process. A case whose WorkItem carries ``fault=...`` makes the worker fail in
that way, but only when CONV_PARITY_TEST_HOOKS=1 is set in the worker's environment, so a
production run can never be told to kill its own workers.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

from conv_parity.workers.protocol import Channel

FAULTS: tuple[str, ...] = ("exit", "sigkill", "hang", "raise", "garbage", "segfault")
ENV_VAR = "CONV_PARITY_TEST_HOOKS"


class InjectedFault(RuntimeError):
    """The exception the "raise" fault raises (captured as a phase="call" error)."""


def enabled() -> bool:
    return os.environ.get(ENV_VAR) == "1"


def inject(fault: str, channel: Channel) -> None:
    """Fail in the requested way. Returns only for unknown faults (ignored, with a note)."""
    print(f"conv-parity test hook: injecting fault {fault!r}", file=sys.stderr, flush=True)
    if fault == "exit":
        os._exit(3)
    if fault == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault == "hang":
        while True:
            time.sleep(3600)
    if fault == "raise":
        raise InjectedFault("fault injected by test hook")
    if fault == "garbage":
        channel.send_raw(b"this is not a frame\x00\xff" * 8)
        while True:  # the parent must detect the garbage, not wait for EOF
            time.sleep(3600)
    if fault == "segfault":
        ctypes.string_at(0)  # a real SIGSEGV inside native code
    print(f"conv-parity test hook: unknown fault {fault!r} ignored", file=sys.stderr, flush=True)


class _Hider:
    """A meta-path finder that makes `import <name>` fail as if the package were missing."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by test hook)",
                                      name=fullname)
        return None


def hide_modules() -> None:
    """Honour CONV_PARITY_TEST_HIDE_MODULES=a,b: simulates a backend that is not installed."""
    names = {n for n in os.environ.get("CONV_PARITY_TEST_HIDE_MODULES", "").split(",") if n}
    if names:
        sys.meta_path.insert(0, _Hider(names))
