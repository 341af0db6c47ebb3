"""Runs the shipped fuzz tests (budget: the hypothesis profile; `dev` in a plain run)."""

from conv_parity.suite.test_fuzz import test_fuzz_edge, test_fuzz_invalid, test_fuzz_valid

__all__ = ["test_fuzz_edge", "test_fuzz_invalid", "test_fuzz_valid"]
