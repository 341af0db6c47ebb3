"""conv-parity: a cross-backend conformance suite for Keras 3 convolution and pooling layers."""

from __future__ import annotations

from conv_parity.backends import KERAS_BACKENDS as BACKENDS
from conv_parity.errors import ConvParityError, HarnessError, InvalidConfig, UsageError

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "ConvParityError",
    "HarnessError",
    "InvalidConfig",
    "UsageError",
    "__version__",
]
