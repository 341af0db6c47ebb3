"""conv-parity: a cross-backend conformance suite for Keras 3 convolution and pooling layers."""

from __future__ import annotations

from conv_parity.errors import ConvParityError, HarnessError, InvalidConfig, UsageError

__version__ = "0.1.0"

#: The Keras backends conv-parity knows how to drive, named as Keras names them.
BACKENDS: tuple[str, ...] = ("tensorflow", "torch", "jax", "numpy", "openvino")

__all__ = [
    "BACKENDS",
    "ConvParityError",
    "HarnessError",
    "InvalidConfig",
    "UsageError",
    "__version__",
]
