"""Repo-level pytest configuration: fast hypothesis settings unless a profile is chosen."""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(trylast=True)  # after the plugin registered the profiles
def pytest_configure(config: pytest.Config) -> None:
    # The plugin registers dev / ci / nightly; the repo's own run defaults to the fast one.
    if not config.getoption("hypothesis_profile", None):
        from hypothesis import settings

        from conv_parity.fuzzing import register_hypothesis_profiles

        register_hypothesis_profiles(config)  # also when run with -p no:conv_parity
        settings.load_profile("dev")


# The warm worker service (workers/lease.py) stays off for this repo's own tests and for every
# process they start; only tests/workers/test_daemon.py turns it on, in a folder of its own.
os.environ["CONV_PARITY_DAEMON"] = "0"
