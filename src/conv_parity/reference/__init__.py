"""The NumPy reference: ground truth for every Keras convolution and pooling kind, in float64.

Pure NumPy on purpose: Keras's NumPy backend computes conv with ``jax.lax``, so agreeing with it
would prove nothing. The shape rules and the decisions taken where Keras's docs are silent are
documented in :mod:`conv_parity.reference._geometry` (and pooling's in ``_pool``).

Public API (other parts call it exactly so):

* :func:`forward` -- the layer's or op's output, bias and activation included.
* :func:`output_shape` -- the spec's shape rule; :class:`~conv_parity.errors.InvalidConfig` for
  configurations it rejects, with the offending argument named.
* :func:`vjp` -- the backward pass: ``{"dx", "dkernel", ["dpointwise_kernel",] ["dbias"]}``
  for a cotangent ``dy`` of the output (``_vjp`` says how each kind is done).
* :func:`vjp_magnitude` -- the same on ``|x|``, ``|w|``, ``|dy|``: the tolerance's scale.
* :func:`magnitude` -- the same computation on ``|x|`` and ``|w|`` (bias ``|b|``, no
  activation): the per-element scale of the tolerance model.
* :mod:`conv_parity.reference.ops` -- ``conv``, ``conv_transpose``, ... with ``keras.ops``
  signatures.

Every array function takes ``scratch_bytes`` (default :data:`DEFAULT_SCRATCH_BYTES`, 64 MiB):
the bound on the im2col/tap scratch of one call, whatever the input size. Large convolutions
run their blocks on as many threads as BLAS would use (``_threads``; the only other import is
``threadpoolctl``, to keep BLAS single-threaded meanwhile).
"""

from __future__ import annotations

from conv_parity.reference import ops
from conv_parity.reference._api import (
    forward,
    magnitude,
    output_shape,
    vjp,
    vjp_magnitude,
)
from conv_parity.reference._windows import DEFAULT_SCRATCH_BYTES

__all__ = [
    "DEFAULT_SCRATCH_BYTES", "forward", "magnitude", "ops", "output_shape", "vjp", "vjp_magnitude",
]
