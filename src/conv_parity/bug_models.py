"""Exact models of upstream bugs, for the registry's predicates.

Some bugs cannot be scoped by a plain condition on the arguments: what the backend returns
depends on how its kernels go wrong. For those, the predicate *simulates the bug* with plain
NumPy and integer arithmetic, and says which verdict it produces on the case ("error",
"wrong-shape", "wrong-values", or None when the bug cannot show), so that every entry is exact:
strict where the bug shows, silent where it does not. Each model cites what it was read from
and how it was checked against real runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from conv_parity import geometry, kinds
from conv_parity.case import ConvCase


def _broadcast(a: Sequence[int], b: Sequence[int]) -> list[int] | None:
    """NumPy broadcasting of two shapes (None when they do not broadcast)."""
    out = []
    for x, y in zip((1,) * (len(b) - len(a)) + tuple(a), (1,) * (len(a) - len(b)) + tuple(b)):
        if x != y and 1 not in (x, y):
            return None
        out.append(y if x == 1 else x)
    return out


def _tf_add_bias(shape: list[int], filters: int, first: bool) -> list[int] | None:
    """The shape Keras's TF ``ops.add`` gives a layer output of ``shape`` plus its bias
    reshaped to (1, F, 1...) or (1..., F): ``tf.nn.bias_add`` (shape kept) when F > 1 matches
    axis 1 or -1, else broadcasting (keras/src/backend/tensorflow/numpy.py add). None: raises."""
    if filters > 1 and filters in (shape[1], shape[-1]):
        return shape
    rank = len(shape) - 2
    bias = (1, filters, *(1,) * rank) if first else (*(1,) * (rank + 1), filters)
    return _broadcast(shape, bias)


def _tf_min_output_size(case: ConvCase) -> int:
    """The smallest output size TF's own shape check computes for a valid-padded conv. TF
    rejects a negative size and lets 0 through. A dilated conv runs on the space-to-batch
    tensor (the input padded to a multiple of the rate, ``ceil(n / d)`` long) with the
    undilated kernel, so its size is ``ceil(n / d) - k + 1``."""
    kw = case.kwargs
    sizes = []
    for n, k, s, d in zip(case.spatial_shape, kw["kernel_size"], kw["strides"],
                          kw["dilation_rate"]):
        sizes.append(-(-n // d) - k + 1 if d > 1 else (n - k) // s + 1)
    return min(sizes)


def tf_onednn_passthrough(case: ConvCase, xla_cf3d: bool = True) -> str | None:
    """What TensorFlow's oneDNN kernels make of a conv with nothing to compute, simulated.

    oneDNN's conv and depthwise kernels return their input unchanged when the batch is empty
    or the output would have no positions. A "same" conv with dilation goes through
    ``with_space_to_batch``, which pads the input by ``k_eff - 1`` first, so the padded input
    comes back. The layer then adds its bias to that (:func:`_tf_add_bias`).

    An op whose output has no positions gets through when TF's own shape check computes a
    size of exactly 0 (:func:`_tf_min_output_size`). For a configuration the spec accepts (an
    empty batch): "error" when a later step raises
    (a separable conv's pointwise kernel wants C * depth_multiplier channels; the bias does not
    fit), "wrong-shape" when the result's shape is not the spec's. For an op whose output the
    spec rejects as empty: "tensor" when a tensor comes back instead of an error. None when
    the result is right, or the case is not such a conv (convs Keras compiles with XLA,
    grouped or channels-first 3D, and transposed convs are unaffected). ``xla_cf3d=False``
    simulates Keras < 3.5, whose channels-first 3D convs reached the oneDNN kernel.
    """
    kind = kinds.get_kind(case.layer)
    kw = case.kwargs
    if kind.family not in ("conv", "depthwise", "separable"):
        return None
    ref, size = geometry.spec_output(case)
    if not (case.input_shape[0] == 0 and ref is not None) and not (
            size is not None and _tf_min_output_size(case) == 0):
        return None
    first = kw.get("data_format") == "channels_first"
    rank = len(case.input_shape) - 2
    if kind.family == "conv" and (kw.get("groups", 1) > 1 or (xla_cf3d and first and rank == 3)):
        return None
    padded = list(case.input_shape)
    if kw.get("padding") == "same" and max(kw.get("dilation_rate") or (1,)) > 1:
        axes = range(2, 2 + rank) if first else range(1, 1 + rank)
        for axis, k, d in zip(axes, kw["kernel_size"], kw["dilation_rate"]):
            padded[axis] += (k - 1) * d
    shape: list[int] | None = padded
    if kind.family == "separable" and kw["depth_multiplier"] > 1:
        shape = None  # the pointwise conv's kernel wants C * m input channels
    elif not kind.is_op and kw.get("use_bias"):
        c_in = kinds.channels(kw, case.input_shape)
        n_out = c_in * kw["depth_multiplier"] if kind.family == "depthwise" else kw["filters"]
        shape = _tf_add_bias(padded, n_out, first)
    if ref is None:  # layers: only where Keras does not refuse them first (3.13)
        return None if shape is None else ("tensor" if kind.is_op else "layer-tensor")
    if shape is None:
        return "error"
    return None if tuple(shape) == tuple(ref) else "wrong-shape"


def _tf_space_to_batch_axis(n: int, k: int, s: int, d: int,
                            padding: str) -> tuple[int, int, int, int] | None:
    """One axis of ``tf.nn.depthwise_conv2d`` with ``rate > 1`` (``with_space_to_batch``):
    (pad_start, pad_end + extra, per-phase output length, output length after the crop), or
    None when TF raises. The input is padded (SAME: ``(k-1)*d`` split floor/ceil; then to a
    multiple of ``d``), cut into ``d`` phases of length ``L``, each convolved VALID with the
    undilated kernel *and the stride* (TF's size ``ceil((L - k + 1) / s)``: negative raises,
    0 gives an empty phase), interleaved back and cropped by the extra padding."""
    # (A phase of length L < k can still give size 0, not an error: ceil rounds -1/2 up.)
    start = end = 0
    if padding == "same":
        total = (k - 1) * d
        start, end = total // 2, total - total // 2
    extra = (d - (n + start + end) % d) % d
    length = (n + start + end + extra) // d
    per_phase = -(-(length - k + 1) // s)
    if per_phase < 0:
        return None
    return start, end + extra, per_phase, max(per_phase * d - extra, 0)


def tf_depthwise_strided_dilated(case: ConvCase) -> str | None:
    """What Keras < 3.15's TF backend makes of ``ops.depthwise_conv`` / ``ops.separable_conv``
    with strides > 1 *and* dilation > 1, simulated on the case's seeded arrays (real weights
    from a model may differ in "wrong-values" only).

    It called ``tf.nn.depthwise_conv2d(..., strides, dilations)``, whose ``rate > 1`` path
    applies the strides inside each space-to-batch phase (:func:`_tf_space_to_batch_axis`):
    positions ``i * d + p`` of the output read input ``(i * s + j) * d + p`` instead of
    ``i * s + j * d``. Keras 3.15 decomposes the two. Returns "error", "wrong-shape",
    "wrong-values" (beyond the suite's tolerance), "tensor" (the spec rejects the case and TF
    returns one anyway), "tensor-without-onednn" (only without oneDNN) or None (the bug
    cannot show on this case). Read from the 3.14.1 wheel
    (backend/tensorflow/nn.py) and TF's nn_ops.with_space_to_batch; checked against 1,188
    probe configurations on Keras 3.14.1 with both oneDNN settings.
    """
    kw = case.kwargs
    if case.layer not in ("ops.depthwise_conv", "ops.separable_conv"):
        return None
    if len(case.spatial_shape) > 2:  # 3D: the spec rejects it and TF raises (parity)
        return None
    strides, dil = tuple(kw["strides"]), tuple(kw["dilation_rate"])
    if not (max(strides) > 1 and max(dil) > 1):
        return None
    ref_shape, _ = geometry.spec_output(case)
    maybe_axes = [_tf_space_to_batch_axis(n, k, s, d, kw["padding"])
                  for n, k, s, d in zip(case.spatial_shape, kw["kernel_size"], strides, dil)]
    axes = [a for a in maybe_axes if a is not None]
    if len(axes) < len(maybe_axes):
        return None if ref_shape is None else "error"
    if ref_shape is None:
        # An empty phase comes back as a tensor: empty, or with oneDNN the input itself, which a
        # separable op's pointwise kernel (C * m input channels) then refuses when m > 1.
        if case.layer == "ops.separable_conv" and kw["depth_multiplier"] > 1:
            return "tensor-without-onednn"
        return "tensor"
    if any(a[2] == 0 for a in axes):
        return "wrong-shape"
    x, weights = case.arrays()
    first = kw["data_format"] == "channels_first"
    xl = np.moveaxis(np.asarray(x, np.float64), 1, -1) if first else np.asarray(x, np.float64)
    pad = [(0, 0), *((a[0], a[1]) for a in axes), (0, 0)]
    xp = np.pad(xl, pad)
    kernel = np.asarray(weights[0], np.float64)
    y = np.zeros((xl.shape[0], *(a[2] * d for a, d in zip(axes, dil)),
                  kernel.shape[-2] * kernel.shape[-1]))
    from conv_parity.reference import ops

    every = slice(None)
    for phase in np.ndindex(*dil):
        index = (every, *[slice(p, None, d) for p, d in zip(phase, dil)], every)
        y[index] = ops.depthwise_conv(xp[index], kernel, strides, "valid", "channels_last", 1)
    kept = (every, *[slice(0, a[3]) for a in axes], every)
    y = y[kept]
    if case.layer == "ops.separable_conv":
        pointwise = np.asarray(weights[1], np.float64).reshape(y.shape[-1], -1)
        y = y @ pointwise
    if first:
        y = np.moveaxis(y, -1, 1)
    if tuple(y.shape) != tuple(ref_shape):
        return "wrong-shape"
    from conv_parity import reference
    from conv_parity.judge import compare

    want = reference.forward(case.layer, x, weights, **kw)
    mag = reference.magnitude(case.layer, x, weights, **kw)
    check = compare.compare_values(y, want, mag, case.dtype,
                                   reduction_size=geometry.reduction_size(case))
    return None if check.ok else "wrong-values"


def torch_edge_replicated_average_shows(case: ConvCase) -> bool:
    """Whether torch's "same" average pooling with edge values copied into the asymmetric
    padding (``_apply_same_padding`` pads with mode="replicate", then pools "valid") differs
    from the spec's average beyond the suite's tolerance *for this case's dtype*, on its seeded
    input. In float32 it shows wherever a border window holds padding and two real elements;
    in bfloat16 (tolerance (ceil(log2 n) + 2) * 2**-7 of the magnitude) only where the copies move an average
    far enough. Read from keras/src/backend/torch/nn.py; the same simulation is the
    diagnosis's "pool-edge-padding" reading, which names the real runs."""
    geo = geometry.or_none(case)
    if geo is None or case.kind.family != "average_pool" or case.kind.is_global:
        return False
    if case.kwargs.get("padding") != "same" or not any(b != a for b, a in geo.pads):
        return False
    if case.input_shape[0] == 0:
        return False
    x = np.asarray(case.arrays()[0], np.float64)
    first = case.kwargs["data_format"] == "channels_first"
    width = [(0, 0), (0, 0), *geo.pads] if first else [(0, 0), *geo.pads, (0, 0)]
    return _exceeds_tolerance(case, x, _valid_pool(case, np.pad(x, width, mode="edge")))


def torch_zero_padded_average_shows(case: ConvCase) -> bool:
    """Whether Keras < 3.5's torch "same" average pooling differs from the spec beyond the
    tolerance of the case's dtype, on its seeded input: the odd extra pad of an uneven axis was
    added at the end with ``F.pad`` (zeros that torch then counts as data), the symmetric rest
    as torch's own padding (excluded by ``count_include_pad=False``). Read from the 3.4.1 wheel
    (keras/src/backend/torch/nn.py); in float32 it shows on every such case (the entry's own
    structural predicates), in bfloat16 only where the zero moves an average far enough."""
    geo = geometry.or_none(case)
    if geo is None or case.kind.family != "average_pool" or case.kind.is_global:
        return False
    if case.kwargs.get("padding") != "same" or case.input_shape[0] == 0:
        return False
    first = case.kwargs["data_format"] == "channels_first"

    def spatial_pad(pads: list[tuple[int, int]], value: float, a: np.ndarray) -> np.ndarray:
        width = [(0, 0), (0, 0), *pads] if first else [(0, 0), *pads, (0, 0)]
        return np.pad(a, width, constant_values=value)

    x = np.asarray(case.arrays()[0], np.float64)
    extra = [(0, after - before) for before, after in geo.pads]
    symmetric = [(before, before) for before, _ in geo.pads]
    data = spatial_pad(symmetric, 0.0, spatial_pad(extra, 0.0, x))
    counted = spatial_pad(symmetric, 0.0, spatial_pad(extra, 1.0, np.ones_like(x)))
    with np.errstate(invalid="ignore", divide="ignore"):
        buggy = _valid_pool(case, data) / _valid_pool(case, counted)
    return _exceeds_tolerance(case, x, buggy)


def low_precision_running_average(case: ConvCase, x: np.ndarray) -> np.ndarray | None:
    """The average pool of ``x`` summed as a running total kept in the case's compute dtype
    (float16 or bfloat16: each partial sum rounded to it, the window read in row-major order,
    then divided by the count of real elements and rounded), in the output's layout; None
    where it does not apply (another kind or dtype, a global pool, a rejected case). That is
    what TensorFlow's, jax's and numpy's average pools return bit for bit; torch and openvino
    sum in float32."""
    geo = geometry.or_none(case)
    if (geo is None or case.kind.family != "average_pool" or case.kind.is_global
            or case.dtype not in ("float16", "bfloat16") or 0 in case.input_shape):
        return None
    from conv_parity import policies

    x = np.asarray(x, np.float64)
    first = case.kwargs["data_format"] == "channels_first"
    xl = np.moveaxis(x, 1, -1) if first else x
    xp = np.pad(xl, [(0, 0), *geo.pads, (0, 0)])
    ones = np.pad(np.ones_like(xl[:1, ..., :1]), [(0, 0), *geo.pads, (0, 0)])
    acc = np.zeros((xl.shape[0], *geo.out_spatial, xl.shape[-1]), np.float32)
    count = np.zeros((1, *geo.out_spatial, 1))
    for tap in np.ndindex(*geo.window):
        index = (slice(None), *(slice(j * d, j * d + (o - 1) * s + 1, s) for j, d, o, s in
                                zip(tap, geo.dilation, geo.out_spatial, geo.strides)),
                 slice(None))
        with np.errstate(over="ignore", invalid="ignore"):
            acc = policies.round_to(acc + xp[index].astype(np.float32), case.dtype)
        count = count + ones[index]
    with np.errstate(over="ignore", invalid="ignore"):
        out = policies.round_to(acc / count.astype(np.float32), case.dtype).astype(np.float64)
    return np.moveaxis(out, -1, 1) if first else out


def low_precision_running_average_shows(case: ConvCase) -> bool:
    """Whether :func:`low_precision_running_average` of the case's seeded input is off the
    spec beyond the tolerance of the case's dtype (a bfloat16 16x16 window of values in
    [S/2, S] is 13% off; a float16 window whose sum passes 65504 is inf)."""
    if (case.kind.family != "average_pool" or case.dtype not in ("float16", "bfloat16")
            or 0 in case.input_shape):
        return False
    x = np.asarray(case.arrays()[0], np.float64)
    buggy = low_precision_running_average(case, x)
    return buggy is not None and _exceeds_tolerance(case, x, buggy)


def _valid_pool(case: ConvCase, padded: np.ndarray) -> np.ndarray:
    """The case's average pool run "valid" on an input its bug padded explicitly."""
    from conv_parity import reference

    kw = {k: v for k, v in case.call_kwargs.items() if k != "padding"}
    kw["strides"] = geometry.strides(case)
    return reference.forward(case.layer, padded, [], padding="valid", **kw)


def _exceeds_tolerance(case: ConvCase, x: np.ndarray, buggy: np.ndarray) -> bool:
    """Whether a simulated bug's output, rounded to the compute dtype as the backend hands it
    back, is off the spec's beyond the suite's tolerance for the case's dtype somewhere."""
    from conv_parity import policies, reference
    from conv_parity.judge import compare

    buggy = policies.round_to(buggy, case.dtype).astype(np.float64)
    right = reference.forward(case.layer, x, [], **case.call_kwargs)
    if buggy.shape != right.shape:
        return True
    mag = reference.magnitude(case.layer, x, [], **case.call_kwargs)
    tol = compare.tolerance(right, mag, case.dtype, geometry.reduction_size(case))
    return bool(np.any(np.abs(buggy - right) > tol))
