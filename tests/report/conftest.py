"""Fixtures for the report tests."""

from __future__ import annotations

from typing import Any

import pytest
from report_samples import sample_doc


@pytest.fixture
def doc() -> dict[str, Any]:
    """A complete report with a little of everything (see report_samples.sample_results)."""
    return sample_doc()
