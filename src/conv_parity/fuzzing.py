"""Hypothesis profiles for conv-parity's fuzz tests (registered by the plugin).

``dev``: few examples, fast. ``ci``: derandomized, ``print_blob``, no database, a fixed budget;
shard-aware (the plugin seeds each shard differently so CI machines do not repeat each other).
``nightly``: randomized, with an example database under the report folder, so CI can cache and
replay what earlier nights found. Every profile has ``deadline=None``: each example crosses
process boundaries, so its time says nothing about the code under test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis.database import DirectoryBasedExampleDatabase

PROFILES = ("dev", "ci", "nightly")
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large]


def register_hypothesis_profiles(config: Any = None) -> None:
    """Register the dev / ci / nightly profiles; nightly's database goes under the report dir."""
    report = None
    if config is not None:
        report = config.getoption("conv_report", None) or config.getini("conv_report") or None
    db_dir = Path(report or "conv-parity-report") / "hypothesis-db"
    settings.register_profile("dev", max_examples=10, deadline=None,
                              suppress_health_check=_SUPPRESS)
    settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True,
                              print_blob=True, database=None, suppress_health_check=_SUPPRESS)
    settings.register_profile("nightly", max_examples=400, deadline=None, derandomize=False,
                              database=DirectoryBasedExampleDatabase(str(db_dir)),
                              print_blob=True, suppress_health_check=_SUPPRESS)


def seed_for_shard(item: Any, shard: str | None) -> None:
    """Give each CI shard its own fixed hypothesis seed (placeholder until strategies land)."""
