"""``keras.ops``-style entry points: same names, argument order and defaults as Keras 3.

Each is :func:`conv_parity.reference.forward` for the matching ``ops.*`` kind; they return
float64 whatever the input dtype. ``scratch_bytes`` bounds the scratch memory of the call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conv_parity.reference._api import forward


def conv(
    inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid",
    data_format: str | None = None, dilation_rate: Any = 1, *, scratch_bytes: int | None = None,
) -> np.ndarray:
    """N-D convolution; kernel (*kernel_size, channels // groups, filters), groups inferred."""
    return forward(
        "ops.conv", inputs, [kernel], strides=strides, padding=padding,
        data_format=data_format, dilation_rate=dilation_rate, scratch_bytes=scratch_bytes,
    )


def conv_transpose(
    inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid",
    output_padding: Any = None, data_format: str | None = None, dilation_rate: Any = 1,
    *, scratch_bytes: int | None = None,
) -> np.ndarray:
    """N-D transposed convolution; kernel (*kernel_size, filters, channels)."""
    return forward(
        "ops.conv_transpose", inputs, [kernel], strides=strides, padding=padding,
        output_padding=output_padding, data_format=data_format, dilation_rate=dilation_rate,
        scratch_bytes=scratch_bytes,
    )


def depthwise_conv(
    inputs: Any, kernel: Any, strides: Any = 1, padding: str = "valid",
    data_format: str | None = None, dilation_rate: Any = 1, *, scratch_bytes: int | None = None,
) -> np.ndarray:
    """N-D depthwise convolution; kernel (*kernel_size, channels, depth_multiplier)."""
    return forward(
        "ops.depthwise_conv", inputs, [kernel], strides=strides, padding=padding,
        data_format=data_format, dilation_rate=dilation_rate, scratch_bytes=scratch_bytes,
    )


def separable_conv(
    inputs: Any, depthwise_kernel: Any, pointwise_kernel: Any, strides: Any = 1,
    padding: str = "valid", data_format: str | None = None, dilation_rate: Any = 1,
    *, scratch_bytes: int | None = None,
) -> np.ndarray:
    """Depthwise conv then a 1x1 conv with ``pointwise_kernel`` (1..., channels * dm, filters)."""
    return forward(
        "ops.separable_conv", inputs, [depthwise_kernel, pointwise_kernel], strides=strides,
        padding=padding, data_format=data_format, dilation_rate=dilation_rate,
        scratch_bytes=scratch_bytes,
    )


def max_pool(
    inputs: Any, pool_size: Any, strides: Any = None, padding: str = "valid",
    data_format: str | None = None,
) -> np.ndarray:
    """Max pooling (pads with -inf); ``strides=None`` means ``pool_size``."""
    return forward(
        "ops.max_pool", inputs, [], pool_size=pool_size, strides=strides, padding=padding,
        data_format=data_format,
    )


def average_pool(
    inputs: Any, pool_size: Any, strides: Any = None, padding: str = "valid",
    data_format: str | None = None,
) -> np.ndarray:
    """Average pooling, padding excluded from the count; ``strides=None`` means ``pool_size``."""
    return forward(
        "ops.average_pool", inputs, [], pool_size=pool_size, strides=strides, padding=padding,
        data_format=data_format,
    )
