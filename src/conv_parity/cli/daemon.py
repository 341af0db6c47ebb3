"""``conv-parity daemon status|stop``: the warm worker service (:mod:`conv_parity.workers.lease`).

The service starts by itself on the first ``check``, ``model``, ``run`` or pytest session and
exits after its idle time; this subcommand shows what it holds and stops it (after a library
upgrade, say, an old one lingers until it is idle: it is keyed by the versions, never reused).
"""

from __future__ import annotations

import argparse
import json
import time

from conv_parity.cli.common import EXIT_OK, emit_json

EXAMPLES = """\
examples:
  conv-parity daemon status          # every daemon of this user, and this environment's key
  conv-parity daemon stop            # stop them all (their workers too)

The service is off under CI=true, with --no-daemon and with CONV_PARITY_DAEMON=0;
CONV_PARITY_DAEMON_IDLE sets its idle time in seconds (default 900), CONV_PARITY_DAEMON_DIR
its folder (default $XDG_RUNTIME_DIR/conv-parity, else ~/.cache/conv-parity/daemon).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    daemon = sub.add_parser(
        "daemon", help="show or stop the warm worker service",
        description="The per-user service that keeps backend workers warm between "
                    "invocations: status or stop.",
        epilog=EXAMPLES)
    daemon.example = "conv-parity daemon status"
    daemon.add_argument("action", choices=("status", "stop"))
    daemon.add_argument("--json", action="store_true", help="status as one JSON document")
    daemon.set_defaults(func=cmd_daemon)


def cmd_daemon(args: argparse.Namespace) -> int:
    from conv_parity.workers import lease

    mine = lease.key()
    found = lease.running()
    if args.action == "stop":
        stopped = sum(lease.stop(path) for path, status in found if status is not None)
        for path, status in found:
            if status is None:
                lease.stop(path)  # removes the stale socket
        print(f"stopped {stopped} conv-parity daemon(s)")
        return EXIT_OK
    if args.json:
        emit_json(json.dumps({"key": mine, "enabled": lease.wanted(), "directory":
                              str(lease.directory()),
                              "daemons": [s for _, s in found if s is not None]}, indent=2))
        return EXIT_OK
    state = "on" if lease.wanted() else "off here (CI=true or CONV_PARITY_DAEMON=0)"
    print(f"service: {state}; folder {lease.directory()}; this environment's key {mine}")
    live = [(p, s) for p, s in found if s is not None]
    if not live:
        print("no daemon running")
    for _path, s in live:
        here = " (this environment)" if s["key"] == mine else ""
        print(f"daemon {s['pid']} key {s['key']}{here}: up {time.time() - s['started']:.0f} s, "
              f"idle {s['idle_for']:.0f} of {s['idle_timeout']:g} s, "
              f"{s['warm_lends']}/{s['lends']} lends warm")
        for w in s["workers"]:
            print(f"  {w['backend']:<24} pid {w['pid']:<8} {w['state']:<5} "
                  f"up {w['age']:.0f} s")
    return EXIT_OK
