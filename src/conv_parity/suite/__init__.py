"""The shipped conformance suite: ``pytest --pyargs conv_parity.suite``."""
