"""Runs the shipped conformance suite (profile from pyproject: smoke) on every installed backend."""

from conv_parity.suite.test_conformance import test_conformance

__all__ = ["test_conformance"]
