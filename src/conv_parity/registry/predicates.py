"""The derived attributes a ``where`` predicate may name (:func:`_derived`), how a condition
matches (:func:`_matches_condition`), and the Keras-wide refusals no entry describes.

Pure functions of a case and a Keras version: the entries (:mod:`.entries`) ask them.
"""

from __future__ import annotations

import functools
from math import prod
from typing import Any

from packaging.version import Version

from conv_parity import bug_models, geometry, kinds
from conv_parity.case import ConvCase
from conv_parity.registry import adaptive


def _same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    """TF-style "same" padding of one axis: (before, after), the extra one after."""
    if s <= 0:  # the spec rejects it; no padding is defined
        return 0, 0
    return geometry.same_padding(n, k, s)


def _edge_replication_visible(case: ConvCase) -> bool:
    """A same-padded pooling whose padding is asymmetric on some axis, and where copying edge
    values into the padding (instead of leaving it out) changes an average: a border window
    holds padding and at least two real elements. Symmetric padding needs no explicit pad."""
    kw = case.kwargs
    if kw.get("padding") != "same" or "pool_size" not in kw:
        return False
    window, strides = geometry.window(case), geometry.strides(case)
    pads = [_same_pads(n, k, s) for n, k, s in zip(case.spatial_shape, window, strides)]
    if all(before == after for before, after in pads):
        return False
    return any(
        (pad > 0 and min(k - pad, n) >= 2)
        for (before, after), k, n in zip(pads, window, case.spatial_shape)
        for pad in (before, after)
    )


def _same_pad_deficit(case: ConvCase) -> int:
    """The most negative raw "same" padding ``(ceil(n/s)-1)*s + k - n`` over the axes: how many
    trailing input positions a "same" window grid leaves uncovered (0 when none)."""
    window, strides = geometry.window(case), geometry.strides(case)
    raws = [(-(-n // s) - 1) * s + k - n
            for n, k, s in zip(case.spatial_shape, window, strides) if s > 0]
    return max(0, -min(raws, default=0))


def _same_raw_pads(case: ConvCase) -> list[int] | None:
    """Per axis, the raw total "same" padding of a (non-transposed) conv or pool,
    ``d*(k-1) - (n-1) % s`` (negative where the stride leaves trailing input uncovered; TF clips
    it to 0); None unless padding="same"."""
    kw = case.kwargs
    if kw.get("padding") != "same" or case.kind.is_transposed:
        return None
    window, strides = geometry.window(case), geometry.strides(case)
    dil = kw.get("dilation_rate") or (1,) * len(window)
    return [d * (k - 1) - (n - 1) % s if s > 0 else 0
            for n, k, s, d in zip(case.spatial_shape, window, strides, dil)]


def _same_pads_reversed(case: ConvCase) -> tuple[bool, bool]:
    """(symmetric "same" pads that differ from their axis-reversed order, and whether torch
    rejects the reversed pads: an axis left shorter than its effective window, or for pooling
    a pad over half the window). Keras < 3.9's torch backend passed them reversed."""
    raws = _same_raw_pads(case)
    if not raws or min(raws) < 0 or any(t % 2 for t in raws):
        return False, False
    pads = [t // 2 for t in raws]
    rev = pads[::-1]
    if rev == pads:
        return False, False
    window = geometry.window(case)
    dil = case.kwargs.get("dilation_rate") or (1,) * len(window)
    pool = case.kind.is_pool
    rejected = any(
        n + 2 * p < (k - 1) * d + 1 or (pool and p > k // 2)
        for n, k, d, p in zip(case.spatial_shape, window, dil, rev)
    )
    return True, rejected


def _transpose_odd_same_crops(case: ConvCase) -> list[int]:
    """The axes where a transposed conv's "same" crop of the full ``(n-1)*s + K`` output (K
    the dilated kernel) is odd and positive, so it cannot be split evenly (Keras < 3.15's torch
    backend, symmetric padding plus right-side output_padding, crops one too many on the
    left)."""
    kw = case.kwargs
    if not case.kind.is_transposed or kw.get("padding") != "same":
        return []
    window = geometry.window(case)
    strides = kw.get("strides") or (1,) * len(window)
    dil = kw.get("dilation_rate") or (1,) * len(window)
    op = kw.get("output_padding")
    out = []
    for i, (k, s, d) in enumerate(zip(window, strides, dil)):
        big_k = (k - 1) * d + 1
        o = (s - big_k % 2) if op is None else op[i]
        crop = big_k - big_k % 2 - o
        if crop > 0 and crop % 2:
            out.append(i)
    return out


def _covered(n: int, k: int, s: int, d: int, start: int, length: int) -> bool:
    """Whether any position of the window [start, start + length) of one axis of a full
    transposed conv receives a product (``i * s + j * d`` for an input i and a tap j)."""
    hit = {i * s + j * d for i in range(n) for j in range(k)}
    return any(p in hit for p in range(start, start + length))


def _transpose_odd_crop_visible(case: ConvCase) -> bool:
    """Whether cropping one more on the left of the odd-crop axes can change the output: not
    when both the right window and the shifted one are structurally zero (some axis whose
    window only holds the gaps between a dilated kernel's taps)."""
    odd = _transpose_odd_same_crops(case)
    if not odd:
        return False
    kw = case.kwargs
    window = geometry.window(case)
    strides = kw.get("strides") or (1,) * len(window)
    dil = kw.get("dilation_rate") or (1,) * len(window)
    op = kw.get("output_padding")

    def nonzero(shift: bool) -> bool:
        for i, (n, k, s, d) in enumerate(zip(case.spatial_shape, window, strides, dil)):
            start, length = geometry.conv_transpose_window(
                n, k, s, d, "same", None if op is None else op[i])
            if not _covered(n, k, s, d, start + (shift and i in odd), length):
                return False
        return True

    return nonzero(False) or nonzero(True)


def _same_uneven_not_trailing(case: ConvCase) -> bool:
    """Some axis has an odd (uneven) non-negative raw "same" padding, and the uneven axes are
    not exactly the last ones (an old torch average pool padded the last m axes)."""
    raws = _same_raw_pads(case)
    if not raws:
        return False
    odd = [t % 2 == 1 for t in raws]
    m = sum(odd)
    return m > 0 and odd != [False] * (len(odd) - m) + [True] * m


def _same_uneven_misplaced_rejected(case: ConvCase) -> bool:
    """With the uneven extra pad put on the last m axes instead of the uneven ones (see
    :func:`_same_uneven_not_trailing`), some axis ends up shorter than its pool window."""
    if not _same_uneven_not_trailing(case):
        return False
    raws = _same_raw_pads(case) or []
    window = geometry.window(case)
    m = sum(t % 2 for t in raws)
    r = len(raws)
    return any(n + 2 * (t // 2) + (1 if i >= r - m else 0) < k
               for i, (n, k, t) in enumerate(zip(case.spatial_shape, window, raws)))


@functools.lru_cache(maxsize=4096)
def _derived(case: ConvCase) -> dict[str, Any]:
    """Case attributes a predicate may name besides the kwargs themselves (cached: every entry
    asks for them, and they include the reference's shape rule). Callers must not mutate it."""
    return {**_input_facts(case), **_geometry_facts(case), **_same_padding_facts(case),
            **_bug_model_facts(case),
            **adaptive.derived(case)}  # adaptive pooling's bins (registry/adaptive.py)


def _input_facts(case: ConvCase) -> dict[str, Any]:
    """What the input and the call look like: batch, channels, rank, values, call form."""
    return {
        "batch": case.input_shape[0],
        # the input's value regime (conv_parity.values): "nan", "large", "ties", ...
        "values": case.values,
        "channels": kinds.channels(case.kwargs, case.input_shape),
        "rank": len(case.input_shape) - 2,
        # how the case calls (conv_parity.modes.call_form): list arguments, NumPy inputs
        "list_arguments": case.call_form.endswith("list"),
        "numpy_inputs": case.call_form.startswith("numpy"),
    }


def _geometry_facts(case: ConvCase) -> dict[str, Any]:
    """Strides, dilation, output padding, windows and the spec's output shape."""
    kw = case.kwargs
    window, strides = geometry.window(case), geometry.strides(case)
    spatial = case.spatial_shape
    op = kw.get("output_padding")
    dilation = max(kw.get("dilation_rate") or (1,))
    out_shape, empty_size = geometry.spec_output(case)
    out_spatial: tuple[int, ...] = ()
    out_channels = 0
    if out_shape is not None:
        first = kw.get("data_format") == "channels_first"
        out_spatial = out_shape[2:] if first else out_shape[1:-1]
        out_channels = out_shape[1] if first else out_shape[-1]
    return {
        "any_stride_gt_1": max(strides) > 1,
        "unequal_strides": len(set(strides)) > 1,
        "strides_none": kw.get("strides", 0) is None,
        "any_dilation_gt_1": dilation > 1,
        "strides_and_dilation": max(strides) > 1 and dilation > 1,
        # the conv *layers* refuse this pair in their constructors, on every backend
        "layer_with_strides_and_dilation": not case.layer.startswith("ops.")
        and max(strides) > 1 and dilation > 1,
        "has_output_padding": op is not None,
        "output_padding_ge_strides": op is not None
        and any(p >= s for p, s in zip(op, strides)),
        "output_padding_has_zero": op is not None and 0 in op,
        "even_kernel_zero_output_padding": op is not None
        and any(k % 2 == 0 and p == 0 for k, p in zip(window, op)),
        "window_larger_than_input": any(k > n for k, n in zip(window, spatial)),
        "zero_size_window": 0 in window,
        # the pooling window's element count (max pooling of one element is a copy)
        "window_taps": prod(window),
        "out_channels_equal_last_spatial": out_channels > 1
        and bool(out_spatial) and out_spatial[-1] == out_channels,
        # the spec rejects the case: an output axis of size 0 or less (its size: next key)
        "spec_empty_output": empty_size is not None,
        "spec_empty_output_size": empty_size,
        "spec_valid": out_shape is not None,
    }


def _same_padding_facts(case: ConvCase) -> dict[str, Any]:
    """How "same" padding is split, and the ways old backends split it differently."""
    kw = case.kwargs
    window, strides = geometry.window(case), geometry.strides(case)
    same_pads = [_same_pads(n, k, s) for n, k, s in zip(case.spatial_shape, window, strides)]
    raws = _same_raw_pads(case)
    reversed_pads = _same_pads_reversed(case)
    odd_crops = _transpose_odd_same_crops(case)
    return {
        "same_pad_deficit": _same_pad_deficit(case) if kw.get("padding") == "same" else 0,
        "same_symmetric_window_gt_input": kw.get("padding") == "same"
        and all(b == a for b, a in same_pads)
        and any(k > n for k, n in zip(window, case.spatial_shape)),
        # Keras < 3.9 torch "same" padding (negative totals, pads passed in reversed order)
        "same_pad_negative": bool(raws) and min(raws or ()) < 0,
        "same_pads_even": bool(raws) and all(t % 2 == 0 for t in raws or ()),
        "same_pads_reversed_differ": reversed_pads[0],
        "same_pads_reversed_rejected": reversed_pads[1],
        # Keras < 3.5 torch average pool's own "same" padding
        "same_uneven_not_trailing": _same_uneven_not_trailing(case),
        "same_uneven_misplaced_rejected": _same_uneven_misplaced_rejected(case),
        # Keras < 3.15 torch transposed "same" crops
        "transpose_odd_same_crop": bool(odd_crops),
        "transpose_odd_same_crop_visible": _transpose_odd_crop_visible(case),
        # the shortest input axis among the odd-crop axes with stride 1 (0: none)
        "transpose_odd_same_crop_stride_1": min(
            (case.spatial_shape[i] for i in odd_crops
             if (kw.get("strides") or (1,) * len(window))[i] == 1), default=0),
    }


def _bug_model_facts(case: ConvCase) -> dict[str, Any]:
    """Whether a modelled backend bug changes this case's values beyond its tolerance
    (:mod:`conv_parity.bug_models`): a bug that happens to be invisible is no discrepancy."""
    kw = case.kwargs
    edge_visible = _edge_replication_visible(case)
    return {
        "edge_replication_visible": edge_visible,
        # ... and beyond the tolerance of the case's dtype, on its seeded input
        "edge_replication_shows": edge_visible
        and bug_models.torch_edge_replicated_average_shows(case),
        "tf_onednn_passthrough": bug_models.tf_onednn_passthrough(case),
        # the same for a channels-first 3D conv of Keras < 3.5 (None for other cases)
        "tf_onednn_passthrough_cf3d": bug_models.tf_onednn_passthrough(case, xla_cf3d=False)
        if kw.get("data_format") == "channels_first" and len(case.input_shape) == 5 else None,
        "tf_depthwise_strided_dilated": bug_models.tf_depthwise_strided_dilated(case),
        # ... whether the zero a Keras < 3.5 torch average pool averages in shows (bug_models)
        "zero_padded_average_shows": kw.get("padding") == "same"
        and bug_models.torch_zero_padded_average_shows(case),
        # a float16 / bfloat16 average pool summed in its own precision (bug_models)
        "low_precision_running_average_shows":
            bug_models.low_precision_running_average_shows(case),
    }


_PROBE_CASE = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 1}, (1, 3, 3, 1))


@functools.lru_cache(maxsize=1)
def where_keys() -> frozenset[str]:
    """Every name a ``where`` predicate may use: a keyword of some kind, or a derived
    attribute (:func:`_derived`). Checked at load, so a typo is an error, not an entry that
    silently never matches."""
    kwargs = {name for kind in kinds.KINDS.values() for name in kind.params}
    return frozenset(kwargs | set(_derived(_PROBE_CASE)))


def _unknown_where_message(source: str, eid: str, unknown: list[str]) -> str:
    import difflib

    hints = []
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(where_keys()), n=1)
        hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return (f"{source}: entry {eid!r}: unknown `where` key {', '.join(hints)}; a key is a "
            f"layer keyword or one of the derived attributes listed at the top of "
            f"known_discrepancies.toml")


def _matches_condition(actual: Any, expected: Any) -> bool:
    if isinstance(actual, tuple):
        actual = list(actual)
    if isinstance(expected, dict):  # {"gt": n} / {"lt": n} / {"ne": v}
        ops = {"gt": lambda a, b: a > b, "lt": lambda a, b: a < b, "ne": lambda a, b: a != b,
               "ge": lambda a, b: a >= b, "le": lambda a, b: a <= b}
        return all(ops[op](actual, v) for op, v in expected.items())
    if isinstance(expected, list) and not isinstance(actual, list):
        return actual in expected
    return actual == expected


def old_output_padding_api(keras_version: str | None) -> bool:
    """Whether this Keras predates 3.11's rework of the transposed layers' ``output_padding``.

    Before 3.11 the layers had no ``output_padding`` parameter (it went through ``**kwargs``,
    keyword only) and validated it without allowing 0 ('... that do not satisfy value > 0'),
    although 0 is the common valid value; 3.11 made it the fifth parameter (sixth for
    Conv3DTranspose) with ``allow_zero=True``. Read from the 3.1.0-3.10.0 and 3.11.0 wheels.
    """
    return keras_version is not None and Version(keras_version) < Version("3.11.0.dev0")


def refused_by_keras(case: ConvCase, keras_version: str | None) -> bool:
    """Whether this Keras's own constructor refuses the case on every backend, so that no
    backend failure can be observed on it (the suite's verdict is a Keras-wide 'unsupported'):
    a transposed layer's ``output_padding`` holding a 0 before 3.11
    (:func:`old_output_padding_api`). Entries describe backend bugs on cases Keras accepts,
    so they skip these.
    """
    op = case.kwargs.get("output_padding")
    pads = op if isinstance(op, (tuple, list)) else (op,)
    return (
        op is not None and 0 in pads and not case.layer.startswith("ops.")
        and old_output_padding_api(keras_version)
    )
