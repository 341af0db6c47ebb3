"""Exceptions shared by every part of conv-parity.

They live in their own module so that the reference, the workers and the CLI can raise and catch
them without importing each other.
"""

from __future__ import annotations


class ConvParityError(Exception):
    """Base class of every error conv-parity raises on purpose."""


class InvalidConfig(ConvParityError, ValueError):
    """The specification rejects this configuration (e.g. a non-positive output size).

    The message always names the offending argument, so it can be shown to a user as is.
    """


class UsageError(ConvParityError, ValueError):
    """Bad input from a person or a caller (unknown layer, malformed shape, unknown backend)."""


class HarnessError(ConvParityError, RuntimeError):
    """conv-parity itself failed (not the backend under test): maps to exit code 3."""
