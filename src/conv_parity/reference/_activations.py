"""Every element-wise Keras activation a conv layer accepts, in float64, written from the
definitions in the Keras docs (``keras/src/activations/activations.py`` docstrings), and a
bound on each one's slope for the tolerance.

Why a slope bound: the tolerance scales with the magnitude ``B`` of the summed products before
the activation; an activation steeper than 1 (selu, gelu, swish, exponential) magnifies the
backend's accumulation error by its slope, so the magnitude is multiplied by ``max |f'|`` near
the output (:func:`slope_bound`). Activations that are not element-wise (softmax, log_softmax,
sparsemax, glu: they mix the channels) are not offered. hard_shrink jumps at +-0.5: an output
whose pre-activation lies within the tolerance of the jump can flip, which no slope bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805
_erf_object = np.frompyfunc(math.erf, 1, 1)


def _erf(y: np.ndarray) -> np.ndarray:
    """math.erf elementwise, in float64 (NumPy has no erf; scipy is not a dependency)."""
    return np.asarray(_erf_object(y), dtype=np.float64)


def _sigmoid(y: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * y) + 1.0)  # 1/(1+exp(-y)) without overflow


def _softplus(y: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, y)


def _elu(y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    return np.where(y > 0, y, alpha * np.expm1(np.minimum(y, 0.0)))


def _hard_sigmoid(y: np.ndarray) -> np.ndarray:
    return np.clip(y / 6.0 + 0.5, 0.0, 1.0)


#: name -> f(y) in float64. Keras's aliases (swish = silu, hard_swish = hard_silu) included.
FUNCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda y: y,
    "relu": lambda y: np.maximum(y, 0.0),
    "relu6": lambda y: np.clip(y, 0.0, 6.0),
    "leaky_relu": lambda y: np.where(y >= 0, y, 0.2 * y),  # negative_slope=0.2
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "silu": lambda y: y * _sigmoid(y),
    "swish": lambda y: y * _sigmoid(y),
    "hard_sigmoid": _hard_sigmoid,
    "hard_silu": lambda y: y * _hard_sigmoid(y),
    "hard_swish": lambda y: y * _hard_sigmoid(y),
    "gelu": lambda y: 0.5 * y * (1.0 + _erf(y / math.sqrt(2.0))),
    "elu": _elu,
    "celu": _elu,  # alpha=1.0: max(0, y) + min(0, alpha * (exp(y / alpha) - 1))
    "selu": lambda y: _SELU_SCALE * np.where(
        y > 0, y, _SELU_ALPHA * np.expm1(np.minimum(y, 0.0))),
    "softplus": _softplus,
    "softsign": lambda y: y / (1.0 + np.abs(y)),
    "mish": lambda y: y * np.tanh(_softplus(y)),
    "exponential": np.exp,
    "log_sigmoid": lambda y: -_softplus(-y),
    "hard_tanh": lambda y: np.clip(y, -1.0, 1.0),
    "tanh_shrink": lambda y: y - np.tanh(y),
    "soft_shrink": lambda y: np.where(y > 0.5, y - 0.5, np.where(y < -0.5, y + 0.5, 0.0)),
    "hard_shrink": lambda y: np.where(np.abs(y) > 0.5, y, 0.0),
    "squareplus": lambda y: 0.5 * (y + np.sqrt(y * y + 4.0)),  # b=4
    "sparse_plus": lambda y: np.where(y <= -1, 0.0, np.where(y >= 1, y, 0.25 * (y + 1) ** 2)),
    "sparse_sigmoid": lambda y: np.clip(0.5 * (y + 1.0), 0.0, 1.0),
}

def _gauss(y: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * y * y) / math.sqrt(2.0 * math.pi)


def _silu_d(y: np.ndarray) -> np.ndarray:
    s = _sigmoid(y)
    return s * (1.0 + y * (1.0 - s))


def _mish_d(y: np.ndarray) -> np.ndarray:
    t = np.tanh(_softplus(y))
    return t + y * (1.0 - t * t) * _sigmoid(y)


def _hard_silu_d(y: np.ndarray) -> np.ndarray:
    return np.where(y < -3, 0.0, np.where(y > 3, 1.0, (2.0 * y + 3.0) / 6.0))


#: name -> f'(y) in float64, for the reference's gradients (reference/_vjp.py). At a kink the
#: one-sided value Keras's backends take (relu: 0 at 0) is used.
DERIVATIVES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda y: (y > 0).astype(np.float64),
    "relu6": lambda y: ((y > 0) & (y < 6)).astype(np.float64),
    "leaky_relu": lambda y: np.where(y >= 0, 1.0, 0.2),
    "sigmoid": lambda y: _sigmoid(y) * (1.0 - _sigmoid(y)),
    "tanh": lambda y: 1.0 - np.tanh(y) ** 2,
    "silu": _silu_d,
    "swish": _silu_d,
    "hard_sigmoid": lambda y: ((y > -3) & (y < 3)) / 6.0,
    "hard_silu": _hard_silu_d,
    "hard_swish": _hard_silu_d,
    "gelu": lambda y: 0.5 * (1.0 + _erf(y / math.sqrt(2.0)))
    + y * _gauss(y),
    "elu": lambda y: np.where(y > 0, 1.0, np.exp(np.minimum(y, 0.0))),
    "celu": lambda y: np.where(y > 0, 1.0, np.exp(np.minimum(y, 0.0))),
    "selu": lambda y: _SELU_SCALE * np.where(y > 0, 1.0,
                                             _SELU_ALPHA * np.exp(np.minimum(y, 0.0))),
    "softplus": _sigmoid,
    "softsign": lambda y: 1.0 / (1.0 + np.abs(y)) ** 2,
    "mish": _mish_d,
    "exponential": np.exp,
    "log_sigmoid": lambda y: _sigmoid(-y),
    "hard_tanh": lambda y: ((y > -1) & (y < 1)).astype(np.float64),
    "tanh_shrink": lambda y: np.tanh(y) ** 2,
    "soft_shrink": lambda y: (np.abs(y) > 0.5).astype(np.float64),
    "hard_shrink": lambda y: (np.abs(y) > 0.5).astype(np.float64),
    "squareplus": lambda y: 0.5 * (1.0 + y / np.sqrt(y * y + 4.0)),
    "sparse_plus": lambda y: np.where(y <= -1, 0.0, np.where(y >= 1, 1.0, 0.5 * (y + 1))),
    "sparse_sigmoid": lambda y: ((y > -1) & (y < 1)) * 0.5,
}


def derivative(name: str | None, y: np.ndarray) -> np.ndarray | None:
    """``f'(y)`` of the activation ``name``; None for the identity (None and "linear")."""
    if name is None or name == "linear":
        return None
    return np.asarray(DERIVATIVES[name](y), dtype=np.float64)


#: The largest |f'| of each activation (the tolerance's magnification), where it is a constant.
_SLOPES: dict[str, float] = {
    "selu": _SELU_SCALE * _SELU_ALPHA,  # 1.758, just left of 0
    "gelu": 1.13,  # max of Phi(y) + y phi(y), at y = sqrt(2)
    "silu": 1.1, "swish": 1.1,  # max 1.0998 at y ~ 2.4
    "mish": 1.09,  # max ~1.088 at y ~ 1.2
    "hard_silu": 1.5, "hard_swish": 1.5,  # (2y + 3) / 6 at y = 3
    "tanh_shrink": 1.0, "squareplus": 1.0, "sparse_plus": 1.0,
}


def apply(name: str | None, y: np.ndarray) -> np.ndarray:
    """``y`` through the activation ``name`` (None and "linear": unchanged)."""
    if name is None or name == "linear":
        return y
    return np.asarray(FUNCTIONS[name](y), dtype=np.float64)


def slope_bound(name: str | None, magnitude: np.ndarray) -> np.ndarray | float:
    """An upper bound of ``|f'|`` over outputs whose pre-activation is at most ``magnitude``
    in size: a constant, or ``exp(B)`` for the exponential (``|y| <= B``)."""
    if name == "exponential":
        return np.exp(np.minimum(magnitude, 700.0))
    return _SLOPES.get(name or "linear", 1.0)
