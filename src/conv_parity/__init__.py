"""conv-parity: a cross-backend conformance suite for Keras 3 convolution and pooling layers."""

from __future__ import annotations

from conv_parity._version import __version__
from conv_parity.backends import KERAS_BACKENDS as BACKENDS
from conv_parity.errors import ConvParityError, HarnessError, InvalidConfig, UsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from conv_parity.model import check_model

__all__ = [
    "BACKENDS",
    "ConvParityError",
    "HarnessError",
    "InvalidConfig",
    "UsageError",
    "__version__",
    "check_model",
]


def __getattr__(name: str) -> object:
    """``conv_parity.check_model``, imported on first use: the model package imports Keras
    when it runs, and importing conv_parity must stay cheap (the plugin loads it)."""
    if name == "check_model":
        from conv_parity.model import check_model

        return check_model
    raise AttributeError(f"module 'conv_parity' has no attribute {name!r}")
