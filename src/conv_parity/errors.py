"""Exceptions shared by every part of conv-parity.

They live in their own module so that the reference, the workers and the CLI can raise and catch
them without importing each other.
"""

from __future__ import annotations


class ConvParityError(Exception):
    """Base class of every error conv-parity raises on purpose."""


class InvalidConfig(ConvParityError, ValueError):
    """The specification rejects this configuration (e.g. a non-positive output size).

    The message always names the offending argument, so it can be shown to a user as is. What
    a caller may act on travels as fields, never to be parsed back out of the message:
    ``argument`` (the keyword at fault, e.g. ``"kernel_size"``), ``axis`` (the spatial axis)
    and ``size`` (the output size it would have: 0, or negative when the window overshoots
    the input by more), each None where it does not apply.
    """

    def __init__(self, message: str, *, argument: str | None = None, axis: int | None = None,
                 size: int | None = None) -> None:
        super().__init__(message)
        self.argument = argument
        self.axis = axis
        self.size = size


class UsageError(ConvParityError, ValueError):
    """Bad input from a person or a caller (unknown layer, malformed shape, unknown backend)."""


class Uncheckable(UsageError):
    """A configuration Keras accepts but conv-parity cannot compute (a softmax head mixes the
    channels, so the element-wise reference has no answer for it).

    A batch lists it as not checked, as ``model`` does for the same layer, and does not fail for
    it: the entry is a gap in what the suite covers, not a mistake of the person who wrote it.
    ``argument`` names the keyword at fault.
    """

    def __init__(self, message: str, *, argument: str | None = None) -> None:
        super().__init__(message)
        self.argument = argument


class HarnessError(ConvParityError, RuntimeError):
    """conv-parity itself failed (not the backend under test): maps to exit code 3."""
