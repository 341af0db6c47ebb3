"""Standalone repro scripts: one file per failing case x backend, fit to paste into an issue.

A maintainer upstream will not install conv-parity to look at a bug report, so the script uses
plain keras + numpy only. It sets KERAS_BACKEND before importing keras, regenerates the inputs
and weights from the seed with the same NumPy Generator calls as :meth:`ConvCase.arrays`, builds
the layer exactly as the suite's worker does (zeros initializers, ``build``, ``set_weights``) or
calls the op, computes the answer with a short direct-loop NumPy reference written out for this
one configuration, and prints the shapes, the largest error, and DISCREPANCY (exit 1) or OK.

The script keeps its keras part under ``if __name__ == "__main__"`` so the inline reference can be
imported and checked against conv-parity's own reference (see tests/explain/test_repro.py).
"""

from __future__ import annotations

import shlex
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from conv_parity import backends as targets
from conv_parity import geometry, kinds, modes
from conv_parity.case import ConvCase
from conv_parity.explain import repro_symbolic, repro_values
from conv_parity.integers import is_integer
from conv_parity.modes import Arrays, call_form

_LETTERS = "dhw"


def repro_path(case: ConvCase, backend: str, directory: str | Path) -> Path:
    """Where write_repro puts the script of `case` on `backend`."""
    return Path(directory) / "repro" / f"{case.id}--{backend}.py"


def repro_command(path: str | Path) -> str:
    """The shell command that runs a repro script (shown in failure messages and reports)."""
    return f"python {shlex.quote(str(path))}"


def write_repro(case: ConvCase, backend: str, directory: str | Path, *,
                reference_output: np.ndarray | None = None, note: str | None = None,
                arrays: Arrays | None = None, focus: Mapping[str, Any] | None = None,
                repeats: int = 1) -> Path:
    """Write ``<directory>/repro/<case_id>--<backend>.py`` and return its path.

    `reference_output` is accepted for callers that have it; the script recomputes the
    reference itself (readable code beats an opaque embedded array). `note` (e.g. the diagnosis)
    goes into the docstring and is printed. `arrays` that are not seed-derived (a model's real
    weights) are saved beside the script as ``<same name>.npz``, which the script loads.
    ``repeats`` > 1 (a nondeterministic failure): the script runs its check that many times,
    each in a fresh process (an abort must not end the count), and says how many disagreed.
    """
    del reference_output  # the script derives it; kept in the signature for callers
    path = repro_path(case, backend, directory)
    path.parent.mkdir(parents=True, exist_ok=True)
    npz = None
    if arrays is None and case.values != "normal":
        # The script's inline generator draws N(0, 1); another regime's input travels as data.
        x, weights = case.arrays()
        arrays = Arrays(x, weights, source=f"the {case.values} value regime")
    if arrays is not None and not arrays.seeded:
        npz = path.with_suffix(".npz")
        named = {"x": arrays.x, **{f"w{i}": w for i, w in enumerate(arrays.weights)}}
        with open(npz.with_name(npz.name + ".tmp"), "wb") as f:
            np.savez(f, **named)  # type: ignore[arg-type]  # numpy's stub types **kwds as bool
        npz.with_name(npz.name + ".tmp").replace(npz)
    text = render(case, backend, note=note, arrays_file=npz.name if npz else None, focus=focus,
                  repeats=repeats)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path


# --------------------------------------------------------------------------- rendering


def _geometry(case: ConvCase) -> dict[str, Any]:
    """Everything the inline reference needs, as plain numbers for this one case."""

    kw = case.kwargs
    kind = case.kind
    rank = kinds.spatial_rank(kind, case.input_shape)
    first = kw.get("data_format") == "channels_first"
    spatial_in = case.input_shape[2:] if first else case.input_shape[1:-1]
    if kind.is_global:
        ksize = strides = tuple(spatial_in)
        dil = (1,) * rank
    elif kind.is_adaptive:  # no window of its own: its widest bin (only printed)
        ksize = geometry.window(case)
        strides = dil = (1,) * rank
    elif kind.is_pool:
        ksize = tuple(kw["pool_size"])
        strides = tuple(kw["strides"]) if kw.get("strides") is not None else ksize
        dil = (1,) * rank
    else:
        ksize = tuple(kw["kernel_size"])
        strides = tuple(kw["strides"])
        dil = tuple(kw["dilation_rate"])
    k_eff = tuple((k - 1) * d + 1 for k, d in zip(ksize, dil))
    pad = kw.get("padding", "valid")
    if kind.family == "conv_transpose":
        pads = [(0, 0)] * rank
    elif pad == "same":
        pads = geometry.same_pads(case)
    elif pad == "causal":
        pads = [(k_eff[0] - 1, 0)]
    else:
        pads = [(0, 0)] * rank
    return {
        "rank": rank,
        "first": first,
        "spatial_in": tuple(spatial_in),
        "kernel": ksize,
        "strides": strides,
        "dilation": dil,
        "k_eff": k_eff,
        "pads": [tuple(p) for p in pads],
    }


def _transpose_crop(case: ConvCase, geo: dict[str, Any], out_spatial: tuple[int, ...]
                    ) -> list[int]:
    """Where Keras crops a transposed conv's full output (its JAX padding rule, per dim)."""
    crops = []
    op = case.kwargs.get("output_padding")
    for i in range(geo["rank"]):
        k, s = geo["k_eff"][i], geo["strides"][i]
        if case.kwargs["padding"] == "valid":
            crops.append(0)
            continue
        if op is None:
            pad_len = s + k - 2
        else:
            pad_len = k + k % 2 - 2 + op[i]
        left = min(pad_len // 2 + pad_len % 2, k - 1)
        crops.append(k - 1 - left)
    del out_spatial
    return crops


def _out_spatial(case: ConvCase, geo: dict[str, Any]) -> tuple[int, ...]:
    from conv_parity import reference

    shape = reference.output_shape(case.layer, case.input_shape, **case.kwargs)
    shape = tuple(int(d) for d in shape)
    return shape[2:] if geo["first"] else shape[1:-1]


_WINDOW_FN = '''def window(pos):
    """The index of the patch output position `pos` reads (or, transposed, writes)."""
    spatial = (
        slice(p * s, p * s + (k - 1) * d + 1, d)  # stride, kernel extent, dilation as the step
        for p, s, k, d in zip(pos, STRIDES, KERNEL, DILATION)
    )
    return (slice(None), *spatial, slice(None))
'''


def _global_pool_source(case: ConvCase) -> str:
    """`reference` for GlobalMax/AveragePooling: one reduction over every spatial axis."""
    rank = kinds.spatial_rank(case.kind, case.input_shape)
    first = case.kwargs["data_format"] == "channels_first"
    axes = tuple(range(2, 2 + rank)) if first else tuple(range(1, 1 + rank))
    how = "max" if case.kind.family == "max_pool" else "mean"
    keep = bool(case.kwargs["keepdims"])
    return "\n".join([
        "def reference(x, weights, activation=True):",
        '    """The global pool in float64 NumPy: every spatial position is one window."""',
        "    x = np.asarray(x, dtype=np.float64)",
        f"    # data_format={case.kwargs['data_format']!r}: the spatial axes are {axes}",
        f"    return x.{how}(axis={axes}, keepdims={keep})",
    ])


def _adaptive_pool_source(case: ConvCase) -> str:
    """`reference` for adaptive pooling: each spatial axis reduced bin by bin, in turn (a bin
    is a box, so the max / mean of a box is the per-axis reductions applied one after another)."""
    rank = kinds.spatial_rank(case.kind, case.input_shape)
    first = case.kwargs["data_format"] == "channels_first"
    axes = tuple(range(2, 2 + rank)) if first else tuple(range(1, 1 + rank))
    how = "max" if case.kind.is_max else "mean"
    return "\n".join([
        "def reference(x, weights, activation=True):",
        '    """Adaptive pooling in float64 NumPy: output i of an axis of size n pooled to m',
        '    reads the bin [floor(i * n / m), ceil((i + 1) * n / m))."""',
        "    y = np.asarray(x, dtype=np.float64)",
        f"    # data_format={case.kwargs['data_format']!r}: the spatial axes are {axes}",
        f"    for axis, m in zip({axes}, {tuple(case.kwargs['output_size'])}):",
        "        n = y.shape[axis]",
        "        bins = [range(i * n // m, -(-(i + 1) * n // m)) for i in range(m)]",
        f"        y = np.stack([np.take(y, b, axis=axis).{how}(axis=axis) for b in bins], axis=axis)",
        "    return y",
    ])


def _reference_source(case: ConvCase) -> str:
    """The body of `reference(x, weights, activation=True)` for this case, channels_last inside."""
    if case.kind.is_global:
        return _global_pool_source(case)
    if case.kind.is_adaptive:
        return _adaptive_pool_source(case)
    geo = _geometry(case)
    kind, kw = case.kind, case.kwargs
    rank = geo["rank"]
    sp = _LETTERS[-rank:]  # "w", "hw", "dhw"
    fam = kind.family
    out_sp = _out_spatial(case, geo)
    lines: list[str] = []
    add = lines.append
    add("def reference(x, weights, activation=True):")
    add('    """The layer/op computed directly in float64 NumPy, channels_last inside."""')
    add("    x = np.asarray(x, dtype=np.float64)")
    add("    weights = [np.asarray(w, dtype=np.float64) for w in weights]")
    if geo["first"]:
        add("    x = np.moveaxis(x, 1, -1)  # channels_first -> channels_last")
    add("    n = x.shape[0]")
    pads = geo["pads"]
    if any(a or b for a, b in pads):
        why = "'same' padding: the odd extra at the end" if kw["padding"] == "same" else \
            "'causal' padding: all of it at the start"
        width = [(0, 0), *pads, (0, 0)]
        if fam == "max_pool":
            add(f"    x = np.pad(x, {width}, constant_values=-np.inf)  # {why}; never the max")
        elif fam == "average_pool":
            add(f"    real = np.pad(np.ones(x.shape), {width})  # 1 on real pixels, 0 on padding")
            add(f"    x = np.pad(x, {width})  # {why}; not counted")
        else:
            add(f"    x = np.pad(x, {width})  # {why}")
    elif fam == "average_pool":
        add("    real = np.ones(x.shape)")
    out_shape_expr = f"(n, {', '.join(map(str, out_sp))}, {{c}})"
    has_bias = not kind.is_op and not kind.is_pool and kw.get("use_bias")
    spatial_axes = tuple(range(1, rank + 1))
    if fam == "conv":
        groups = kw.get("groups", 1)
        add("    kernel = weights[0]  # (*kernel_size, in_channels // groups, filters)")
        add("    groups = " + str(groups))
        add("    cin, f = kernel.shape[-2], kernel.shape[-1] // groups  # per group")
        add(f"    out = np.zeros({out_shape_expr.format(c='kernel.shape[-1]')})")
        add("    for pos in np.ndindex(*out.shape[1:-1]):")
        add("        patch = x[window(pos)]")
        add("        for g in range(groups):")
        add("            out[(slice(None), *pos, slice(g * f, (g + 1) * f))] = np.einsum(")
        add(f'                "n{sp}c,{sp}cf->nf", patch[..., g * cin:(g + 1) * cin],')
        add("                kernel[..., g * f:(g + 1) * f])")
    elif fam in ("depthwise", "separable"):
        add("    kernel = weights[0]  # (*kernel_size, in_channels, depth_multiplier)")
        add("    c, m = kernel.shape[-2], kernel.shape[-1]")
        add(f"    out = np.zeros({out_shape_expr.format(c='c * m')})")
        add("    for pos in np.ndindex(*out.shape[1:-1]):")
        add("        patch = x[window(pos)]")
        add(f'        out[(slice(None), *pos)] = np.einsum("n{sp}c,{sp}cm->ncm", patch, kernel)'
            ".reshape(n, c * m)")
        if fam == "separable":
            add("    pointwise = weights[1].reshape(c * m, -1)  # a 1x1 conv")
            add("    out = out @ pointwise")
    elif fam == "conv_transpose":
        crops = _transpose_crop(case, geo, out_sp)
        full = tuple(
            max((n - 1) * s + k, c + o)
            for n, s, k, c, o in zip(geo["spatial_in"], geo["strides"], geo["k_eff"], crops, out_sp)
        )
        add("    kernel = weights[0]  # (*kernel_size, filters, in_channels)")
        add("    # Every input pixel scatters value * kernel into the (uncropped) output.")
        add(f"    full = np.zeros((n, {', '.join(map(str, full))}, kernel.shape[-2]))")
        add("    for pos in np.ndindex(*x.shape[1:-1]):")
        add(f'        contribution = np.einsum("nc,{sp}fc->n{sp}f", x[(slice(None), *pos)], '
            "kernel)")
        add("        full[window(pos)] += contribution")
        crop = ", ".join(f"{c}:{c + o}" for c, o in zip(crops, out_sp))
        add(f"    out = full[:, {crop}, :]  # Keras's crop for padding={kw['padding']!r}, "
            f"output_padding={kw.get('output_padding')!r}")
    elif fam == "max_pool":
        add(f"    out = np.zeros({out_shape_expr.format(c='x.shape[-1]')})")
        add("    for pos in np.ndindex(*out.shape[1:-1]):")
        add(f"        out[(slice(None), *pos)] = x[window(pos)].max(axis={spatial_axes})")
    else:  # average_pool
        add(f"    out = np.zeros({out_shape_expr.format(c='x.shape[-1]')})")
        add("    for pos in np.ndindex(*out.shape[1:-1]):")
        add(f"        total = x[window(pos)].sum(axis={spatial_axes})")
        add(f"        count = real[window(pos)].sum(axis={spatial_axes})  # real pixels only")
        add("        out[(slice(None), *pos)] = total / count")
    if has_bias:
        add("    out = out + weights[-1]  # bias, along the channel axis")
    act = kw.get("activation")
    if act:
        add("    if activation:")
        add(f"        out = {_ACTIVATION_SOURCE[act]}  # activation={act!r}")
    if geo["first"]:
        add("    out = np.moveaxis(out, -1, 1)  # back to channels_first")
    add("    return out")
    return "\n".join(lines)


#: Each activation as one NumPy expression of ``out`` (written again here from the Keras docs'
#: definitions, independently of reference/_activations.py: the repro checks the suite).
_ACTIVATION_SOURCE = {
    "relu": "np.maximum(out, 0.0)",
    "relu6": "np.clip(out, 0.0, 6.0)",
    "leaky_relu": "np.where(out >= 0, out, 0.2 * out)",
    "sigmoid": "1.0 / (1.0 + np.exp(-out))",
    "tanh": "np.tanh(out)",
    "silu": "out / (1.0 + np.exp(-out))",
    "swish": "out / (1.0 + np.exp(-out))",
    "hard_sigmoid": "np.clip(out / 6.0 + 0.5, 0.0, 1.0)",
    "hard_silu": "out * np.clip(out / 6.0 + 0.5, 0.0, 1.0)",
    "hard_swish": "out * np.clip(out / 6.0 + 0.5, 0.0, 1.0)",
    "gelu": "0.5 * out * (1.0 + np.vectorize(math.erf)(out / math.sqrt(2.0)))",
    "elu": "np.where(out > 0, out, np.exp(np.minimum(out, 0.0)) - 1.0)",
    "celu": "np.where(out > 0, out, np.exp(np.minimum(out, 0.0)) - 1.0)",
    "selu": "1.0507009873554805 * np.where(out > 0, out, 1.6732632423543772 * "
            "(np.exp(np.minimum(out, 0.0)) - 1.0))",
    "softplus": "np.log1p(np.exp(-np.abs(out))) + np.maximum(out, 0.0)",
    "softsign": "out / (1.0 + np.abs(out))",
    "mish": "out * np.tanh(np.log1p(np.exp(-np.abs(out))) + np.maximum(out, 0.0))",
    "exponential": "np.exp(out)",
    "log_sigmoid": "-(np.log1p(np.exp(-np.abs(out))) + np.maximum(-out, 0.0))",
    "hard_tanh": "np.clip(out, -1.0, 1.0)",
    "tanh_shrink": "out - np.tanh(out)",
    "soft_shrink": "np.where(out > 0.5, out - 0.5, np.where(out < -0.5, out + 0.5, 0.0))",
    "hard_shrink": "np.where(np.abs(out) > 0.5, out, 0.0)",
    "squareplus": "0.5 * (out + np.sqrt(out * out + 4.0))",
    "sparse_plus": "np.where(out <= -1, 0.0, np.where(out >= 1, out, 0.25 * (out + 1) ** 2))",
    "sparse_sigmoid": "np.clip(0.5 * (out + 1.0), 0.0, 1.0)",
}
#: How steep an activation can be (the tolerance's magnification; exponential: exp(B)).
_SLOPE_SOURCE = {"selu": "1.76", "gelu": "1.13", "silu": "1.1", "swish": "1.1", "mish": "1.09",
                 "hard_silu": "1.5", "hard_swish": "1.5", "exponential": "np.exp(mag)"}


def render(case: ConvCase, backend: str, note: str | None = None,
           arrays_file: str | None = None, focus: Mapping[str, Any] | None = None,
           repeats: int = 1) -> str:
    """The source text of the repro script of `case` on `backend` (its arrays loaded from
    ``arrays_file`` beside it when given, else regenerated from the seed). ``focus``: the
    outcome's worst element (``{"output": name, "index": [...]}``), which a mode that checks
    a sample of an output (grad) always includes."""
    spec = targets.get(backend)
    setting_src = textwrap.indent(
        f"# the {backend} setting:\n{spec.after_import_source}\n", "    ") \
        if spec.after_import_source else ""
    mode = modes.get(case.mode)
    call = textwrap.indent(mode.repro_call(case), "        ")
    prepare = textwrap.indent(mode.repro_prepare(case), "    ")
    check = textwrap.indent(mode.repro_check(case, backend)
                            + repro_symbolic.check_source(case), "    ")
    focus_value = (focus["output"], tuple(focus["index"])) \
        if focus and focus.get("output") not in (None, "y") and focus.get("index") else None
    slope = _SLOPE_SOURCE.get(case.kwargs.get("activation") or "", "1.0")
    ref_src = _reference_source(case)
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats!r}")
    return (_header(case, backend, note, arrays_file, focus_value, repeats)
            + repro_values.arrays_source(case, _ARRAYS_SOURCE)
            + repro_values.tolerance_source(case)
            + _reference_section(ref_src, slope)
            + _main_source(setting_src, prepare, call, check) + _REPEATED_SOURCE)


def _int_ranges(case: ConvCase) -> tuple[int, int] | None:
    """The seeded integers' magnitudes of an integer case (None for a float one)."""
    return case.integer_ranges() if is_integer(case.dtype) else None


def case_constants(case: ConvCase) -> str:
    """The case's constants every repro script starts from (the layer or op, its call's
    keyword arguments, shapes, dtypes, seed): what the seeded arrays and the call read."""
    kw_src = "{\n" + "".join(f"    {k!r}: {v!r},\n" for k, v in call_form.kwargs(case).items()) \
        + "}"
    return f'''LAYER = {case.layer!r}
KWARGS = {kw_src}
INPUT_SHAPE = {tuple(case.input_shape)!r}
DTYPE = {case.dtype!r}  # the compute dtype
POLICY = {case.policy_name!r}  # the layer's dtype policy
INPUT_DTYPE = {case.input_dtype!r}  # the input's dtype (the variable dtype)
SEED = {case.seed!r}
INT_RANGES = {_int_ranges(case)!r}  # integer dtypes: (input, kernel) magnitudes, else None
WEIGHT_SHAPES = {[tuple(s) for s in case.weight_shapes()]!r}
'''


def _header(case: ConvCase, backend: str, note: str | None, arrays_file: str | None,
            focus_value: tuple[str, tuple[int, ...]] | None, repeats: int) -> str:
    """The script's docstring, imports and constants (the case, its arrays, the focus)."""
    note_doc = ("\n" + textwrap.fill(note, 96) + "\n") if note else ""
    spec = targets.get(backend)
    lib = spec.library
    env_src = "".join(f"os.environ[{k!r}] = {v!r}  # the {backend} setting\n"
                      for k, v in spec.environment.items())
    return f'''#!/usr/bin/env python3
"""conv-parity repro: {case.id} on the {backend} backend.
{note_doc}
Standalone: needs only keras, numpy and {lib}. Run it with `python <this file>`; it prints the
shapes and the largest error, then DISCREPANCY (exit code 1) or OK (exit code 0).
REPEATS > 1: the failure is nondeterministic, so the check runs REPEATS times, each in a fresh
process (a call that aborts is counted, not fatal), and the script says how many disagreed.
The inputs and weights are regenerated from the seed exactly as conv-parity made them; the
reference below is the same computation written as a direct loop in float64 NumPy.
"""
import math
import os
import sys

os.environ["KERAS_BACKEND"] = {spec.keras_backend!r}  # must be set before keras is imported
{env_src}
import numpy as np

{case_constants(case)}STRIDES = {_geometry(case)["strides"]!r}
KERNEL = {_geometry(case)["kernel"]!r}
DILATION = {_geometry(case)["dilation"]!r}
NOTE = {note!r}
ARRAYS_FILE = {arrays_file!r}
FOCUS = {focus_value!r}  # the element conv-parity reported as worst (an output other than y)
REPEATS = {repeats!r}  # > 1: a nondeterministic failure, checked in that many fresh processes


'''


#: The script's arrays: regenerated from the seed exactly as conv-parity makes them, or loaded.
_ARRAYS_SOURCE = '''def make_arrays():
    """Input and weights from the seed: standard normal, weights scaled by 1/sqrt(fan-in);
    or, where conv-parity saved them (real weights), from the .npz beside this script."""
    if ARRAYS_FILE:
        with np.load(os.path.join(os.path.dirname(os.path.abspath(__file__)), ARRAYS_FILE)) as f:
            return f["x"], [f[f"w{i}"] for i in range(len(WEIGHT_SHAPES))]
    rng = np.random.default_rng(SEED)
    if INT_RANGES:  # seeded small integers whose exact result fits DTYPE
        low = [0 if DTYPE.startswith("u") else -m for m in INT_RANGES]
        x = rng.integers(low[0], INT_RANGES[0] + 1, size=INPUT_SHAPE).astype(DTYPE)
        return x, [rng.integers(low[1], INT_RANGES[1] + 1, size=s).astype(DTYPE)
                   for s in WEIGHT_SHAPES]
    x = rounded(rng.standard_normal(INPUT_SHAPE))
    weights = []
    for shape in WEIGHT_SHAPES:
        fan_in = max(1, int(np.prod(shape[:-1])))
        weights.append(rounded(rng.standard_normal(shape) / np.sqrt(fan_in)))
    return x, weights


def exact(name):
    """NumPy's dtype for `name`; bfloat16 is ml_dtypes' (NumPy has none)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def rounded(a):
    """Rounded to the compute dtype, held in the input dtype (float32 for bfloat16)."""
    held = np.float32 if INPUT_DTYPE == "bfloat16" else INPUT_DTYPE
    return a.astype(exact(DTYPE)).astype(held)


def as_array(a, dtype):
    """A NumPy array of `dtype` itself, passed to the call as is (a NumPy call form)."""
    return np.asarray(a).astype(exact(dtype))


'''


def _reference_section(ref_src: str, slope: str) -> str:
    """The window helper, the case's direct-loop reference and the activation's slope."""
    return f'''{_WINDOW_FN}

{ref_src}


def slope(mag):
    """How much the activation can magnify a rounding error of its input."""
    return {slope}


'''


def _main_source(setting_src: str, prepare: str, call: str, check: str) -> str:
    """main(): the backend's call, then shape, dtype and values against the reference."""
    return f'''def main():
    import keras

{setting_src}    x, weights = make_arrays()
{prepare}
    print(f"keras {{keras.__version__}}, backend {{keras.backend.backend()}}")
    if NOTE:
        print("conv-parity:", NOTE)
    try:
{call}
    except Exception as exc:  # the backend refused a configuration the spec accepts
        lines = [ln.strip() for ln in str(exc).splitlines()
                 if ln.strip() and not ln.startswith("Exception encountered")]
        first = lines[0] if lines else ""
        print(f"DISCREPANCY: the backend raised {{type(exc).__name__}}: {{first}}")
        print("reference shape", reference(x, weights).shape)
        return 1
    y_ref = reference(x, weights)
    print("input shape    ", x.shape)
    print("output shape   ", y.shape)
    print("reference shape", y_ref.shape)
    if y.shape != y_ref.shape:
        print("DISCREPANCY: output shape differs from the reference")
        return 1
    # Tolerance: rounding of a sum of products scales with the sum of |products|.
    mag = reference(np.abs(x), [np.abs(w) for w in weights], activation=False)
    mag = mag * slope(mag)  # a steep activation magnifies the sum's rounding
    if str(y.dtype) != DTYPE:
        print(f"DISCREPANCY: output dtype {{y.dtype}} is not the compute dtype {{DTYPE}}")
        return 1
    if INT_RANGES:  # an integer result is exact: no rounding anywhere
        tol = np.zeros_like(y_ref)
    else:
        import ml_dtypes

        info = ml_dtypes.finfo(exact(DTYPE))
        eps = float(info.eps)
        tol = 100 * float(info.tiny) + RTOL_EPS * eps * mag + 2 * eps * np.abs(y_ref)
    y64 = y.astype(np.float64)
    with np.errstate(invalid="ignore"):
        err = np.abs(y64 - y_ref)
        bad = ~(err <= tol) & ~(np.isnan(y64) & np.isnan(y_ref)) & ~(y64 == y_ref)
    print("max abs error  ", float(np.nanmax(err)) if err.size else 0.0)
    print("max tolerance  ", float(tol.max()) if tol.size else 0.0)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        print(f"DISCREPANCY: {{int(bad.sum())}} of {{bad.size}} values differ; first at {{where}}: "
              f"output {{float(y64[where])!r}}, reference {{float(y_ref[where])!r}}")
        return 1
{check}
    print("OK")
    return 0


'''


#: REPEATS > 1: the check in fresh processes, counted; and the script's entry point.
_REPEATED_SOURCE = '''def repeated():
    """Run main() REPEATS times in fresh processes and count the calls that disagree."""
    import subprocess

    env = dict(os.environ, CONV_PARITY_REPRO_ONCE="1")
    codes = [subprocess.run([sys.executable, os.path.abspath(__file__)], env=env).returncode
             for _ in range(REPEATS)]
    bad = sum(code != 0 for code in codes)
    crashed = sum(code < 0 for code in codes)
    print(f"{bad} of {REPEATS} identical calls disagreed with the reference"
          f" ({crashed} aborted by a signal); exit codes {codes}")
    print("DISCREPANCY (nondeterministic)" if bad else "OK on every call")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(repeated() if REPEATS > 1 and not os.environ.get("CONV_PARITY_REPRO_ONCE")
             else main())
'''


__all__ = ["render", "repro_command", "repro_path", "write_repro"]
