"""The error heatmap of one failure: a PNG written with zlib + struct (no imaging library at
runtime), embedded as a data: URI with its colour legend."""

from __future__ import annotations

import base64
import math
import struct
import zlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from conv_parity.report import common
from conv_parity.report.htmlstyle import esc

#: The heatmap's colour scale (0 -> white, vmax -> dark red), also used for the legend.
STOPS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.0, (255, 255, 255)),
    (0.15, (255, 237, 160)),
    (0.4, (254, 178, 76)),
    (0.65, (240, 59, 32)),
    (1.0, (128, 0, 38)),
)
NONFINITE_RGB = (123, 44, 191)  # NaN or inf on one side only

def png_bytes(rgb: np.ndarray) -> bytes:
    """A truecolour PNG of an (h, w, 3) uint8 array: the format is simple enough to write."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[i].tobytes() for i in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9))
            + chunk(b"IEND", b""))


def colorize(values: Any, vmax: float) -> np.ndarray:
    """Map an error map's values to RGB: linear in [0, vmax], non-finite cells purple."""
    try:
        a = np.array(values, dtype=np.float64)  # decoded maps: plain floats, inf included
    except (TypeError, ValueError):  # still encoded ("inf" strings)
        a = np.array([[_as_float(v) for v in row] for row in values], dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, 0, 3), np.uint8)
    finite = np.isfinite(a)
    t = np.zeros_like(a)
    if vmax and math.isfinite(vmax) and vmax > 0:
        t[finite] = np.clip(a[finite] / vmax, 0.0, 1.0)
    xs = [s for s, _ in STOPS]
    rgb = np.stack([np.interp(t, xs, [c[i] for _, c in STOPS]) for i in range(3)], axis=-1)
    rgb[~finite] = NONFINITE_RGB
    return np.rint(rgb).astype(np.uint8)


def _as_float(v: Any) -> float:
    if isinstance(v, str):
        return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(v, math.nan)
    return float(v)


def heatmap_html(emap: Mapping[str, Any], tolerance: Any = None) -> str:
    """An <figure> with the error map as a pixelated PNG, its colour legend and a caption."""
    rows, cols = int(emap["rows"]), int(emap["cols"])
    if rows == 0 or cols == 0:
        return ""
    vmax = _as_float(emap["vmax"])
    png = base64.b64encode(png_bytes(colorize(emap["values"], vmax))).decode("ascii")
    scale = max(1, 240 // max(rows, cols))
    width, height = cols * scale, max(rows * scale, 18)
    spatial = emap.get("spatial_shape") or ([cols] if rows == 1 else [rows, cols])
    if len(spatial) == 1:
        axes = f"length L = {spatial[0]} (left → right)"
    elif len(spatial) == 3:
        axes = (f"rows H = {spatial[1]}, columns W = {spatial[2]}; "
                f"max over depth D = {spatial[0]}")
    else:
        axes = f"rows H = {spatial[0]}, columns W = {spatial[1]}"
    block = emap.get("block") or [1, 1]
    if len(spatial) == 1 and block[1] > 1:
        axes += f"; each cell is the max of {block[1]} positions"
    elif len(spatial) > 1 and list(block) != [1, 1]:
        axes += f"; each cell is the max of a {block[0]}×{block[1]} block"
    tol = _as_float(tolerance) if tolerance is not None else math.nan
    tick = ""
    if math.isfinite(tol) and vmax > 0 and 0 <= tol <= vmax:
        left = 100.0 * tol / vmax
        tick = (f'<span class="tick" style="left:{left:.1f}%" '
                f'title="tolerance {esc(common.fmt_float(tol))}"></span>')
    nonfinite = ""
    if emap.get("nonfinite"):
        n = int(emap["nonfinite"])
        nonfinite = (f'<span class="nf"><i></i>{n} cell{"" if n == 1 else "s"} NaN/inf on one '
                     "side only</span>")
    gradient = ", ".join(f"rgb{c} {100 * s:.0f}%" for s, c in STOPS)
    return (
        '<figure class="heat">'
        f'<img alt="heatmap of |backend − reference|" width="{width}" height="{height}" '
        f'title="max |backend − reference| = {esc(common.fmt_float(vmax))}" '
        f'src="data:image/png;base64,{png}">'
        f'<div class="legend"><span>0</span><span class="bar" style="background:'
        f'linear-gradient(to right, {gradient})">{tick}</span>'
        f"<span>{esc(common.fmt_float(vmax))}</span></div>{nonfinite}"
        f"<figcaption>|backend − reference|, max over batch and channels; {esc(axes)}"
        "</figcaption></figure>"
    )
