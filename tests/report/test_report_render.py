"""report.md, report.html and error_map."""

from __future__ import annotations

import base64
import re
import shutil
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from report_samples import make_result, sample_doc, value_failure

from conv_parity.report import build_doc, error_map, render_html, render_markdown, write_all
from conv_parity.report.heatmap import png_bytes
from conv_parity.report.schema import validate

# --------------------------------------------------------------------------- markdown


def test_markdown_matrix(doc: dict) -> None:
    md = render_markdown(doc)
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| layer / op"))
    assert header == "| layer / op | tensorflow | torch | jax | openvino |"
    row = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    assert row["Conv2D"] == "| Conv2D | 3 ✓ | 3 ✓ · **1 ✗** | 3 ✓ · **1 ✗** | 3 skip |"
    assert row["Conv3D"] == "| Conv3D | — | 1 xfail | 1 unsupported | — |"
    assert "**total**" in row
    assert "Partial run" not in md
    assert "## Failures (4)" in md
    # each failure: id, backend, verdict, diagnosis, repro
    assert "· torch · **fail-values**" in md
    assert "**Diagnosis:** torch's output equals the reference" in md
    assert "**Repro:** `conv-parity-report/repro/Conv2D-f4-k3x3-same.py`" in md
    assert "`torch-conv3d-odd`: 1 result" in md
    # backend text never becomes live HTML in a PR comment
    crash = md[md.index("crash**"):]
    assert "<script>" in crash.split("```text")[1]  # inside a code block only
    assert "<script>" not in md.replace(crash, "")


def test_markdown_partial_and_caps() -> None:
    results = [value_failure(seed=s, message="m" * 5000) for s in range(150)]
    doc = build_doc(results, {"profile": "full"}, {"python": None, "platform": None,
                                                    "keras": None, "numpy": None,
                                                    "backends": {}}, False)
    md = render_markdown(doc)
    assert md.startswith("# conv-parity conformance report")
    assert "Partial run" in md.split("## Conformance matrix")[0]
    assert len(md) <= 60_000  # fits a PR comment (65536) and the step summary (1 MiB)
    shown = len(re.findall(r"^#### \d+\.", md, flags=re.M))
    assert 0 < shown < 150
    assert f"and {150 - shown} more failures" in md
    assert len(render_markdown(doc, max_failures=5, max_chars=10**9).split("#### ")) == 6


def test_markdown_escapes_table_breakers() -> None:
    r = make_result(verdict="fail-values", diagnosis="a | b <img src=x> *c*")
    doc = build_doc([r], {}, {"python": None, "platform": None, "keras": None, "numpy": None,
                              "backends": {"torch": {"available": False,
                                                     "import_error": "bad | pipe"}}}, True)
    md = render_markdown(doc)
    assert "a \\| b &lt;img src=x&gt; \\*c\\*" in md
    assert "bad \\| pipe" in md


# --------------------------------------------------------------------------- html


def _idat(png: bytes) -> bytes:
    pos, idat = 8, b""
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos:pos + 4])
        if png[pos + 4:pos + 8] == b"IDAT":
            idat += png[pos + 8:pos + 8 + n]
        pos += 12 + n
    return idat


def _png_pixels(png: bytes) -> np.ndarray:
    """Decode the (filter-0, truecolour) PNGs this package writes."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos:pos + 4])
        tag, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + n]
        assert zlib.crc32(tag + data) & 0xFFFFFFFF == struct.unpack(">I", png[pos + 8 + n:
                                                                               pos + 12 + n])[0]
        if tag == b"IHDR":
            w, h = struct.unpack(">II", data[:8])
        elif tag == b"IDAT":
            idat += data
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3)


def test_html_self_contained_with_filters_and_heatmap(doc: dict) -> None:
    page = render_html(doc)
    assert page.startswith("<!DOCTYPE html>")
    # offline: nothing fetched
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.replace(
        'href="https://github.com/keras-team/keras/issues/1"', ""))
    assert "<link" not in page and "@import" not in page
    # filters by backend / layer / verdict, and the JS that drives them
    for ident in ("f-backend", "f-layer", "f-verdict"):
        assert f'<select id="{ident}">' in page
    assert '<option value="torch">torch</option>' in page
    assert '<option value="MaxPooling2D">MaxPooling2D</option>' in page
    assert '<option value="fail-values">fail-values</option>' in page
    assert "addEventListener" in page
    # environment and matrix
    assert "ModuleNotFoundError" in page and "2.17.0" in page
    assert 'class="matrix"' in page
    # a heatmap for each value failure
    cards = re.findall(r'<article class="card".*?</article>', page, flags=re.S)
    assert len(cards) == 4
    value_cards = [c for c in cards if 'data-verdict="fail-values"' in c]
    assert len(value_cards) == 2
    for card in value_cards:
        m = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', card)
        assert m, "value failure without heatmap"
        pixels = _png_pixels(base64.b64decode(m.group(1)))
        assert pixels.shape == (10, 8, 3)
    border = next(c for c in value_cards if 'data-backend="torch"' in c)
    px = _png_pixels(base64.b64decode(re.search(r"base64,([^\"]+)", border).group(1)))
    assert (px[:, :-1] == 255).all()  # zero error: white
    assert (px[:, -1] != 255).any(axis=-1).all()  # the wrong last column is coloured
    nan_card = next(c for c in value_cards if 'data-backend="jax"' in c)
    assert "1 cell NaN/inf on one side only" in nan_card


def test_html_escapes_everything(doc: dict) -> None:
    page = render_html(doc)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # our own, once
    evil = make_result(verdict="crash", backend='x"><img onerror=1>',
                       known={"id": "k", "link": "javascript:alert(1)", "note": "<b>evil"})
    page = render_html(build_doc([evil], {}, {"python": None, "platform": None, "keras": None,
                                              "numpy": None, "backends": {}}, True))
    assert "<img onerror" not in page and "<b>evil" not in page
    assert "x&quot;&gt;&lt;img onerror=1&gt;" in page
    assert 'href="javascript' not in page


def test_stale_known_entries_are_called_out() -> None:
    r = make_result(verdict="pass", known={"id": "old-bug", "link": None, "note": None,
                                           "stale": True})
    doc = build_doc([r], {}, {"python": None, "platform": None, "keras": None, "numpy": None,
                              "backends": {}}, True)
    assert "## Stale known discrepancies (1)" in render_markdown(doc)
    assert "`old-bug`" in render_markdown(doc)
    assert "Stale known discrepancies:</b>" in render_html(doc) and "old-bug" in render_html(doc)


def _variant_doc() -> dict:
    known = {"id": "tf-x", "link": "unreported", "note": "n", "verdict": "fail-error-parity",
             "fixed_in": "3.15.0"}
    results = [
        make_result(backend="tensorflow:onednn-off", verdict="xfail",
                    observed_verdict="fail-error-parity", known=known),
        make_result(backend="tensorflow:onednn-on", verdict="pass"),
    ]
    info = {"available": True, "keras_version": "3.15.1", "backend_version": "2.21.0",
            "device": "cpu", "import_error": None}
    env = {"python": "3.11", "platform": "Linux", "keras": "3.15.1", "numpy": "2.4",
           "facts": {"cpu.model": "Xeon Test", "cpu.count": 2, "cpu.isa": ["avx2", "amx_tile"]},
           "backends": {
               "tensorflow:onednn-off": {**info, "facts": {"tensorflow.onednn": False}},
               "tensorflow:onednn-on": {**info, "facts": {"tensorflow.onednn": True}}}}
    return build_doc(results, {}, env, True)


def test_reports_show_facts_variant_disagreements_and_fix_releases() -> None:
    doc = _variant_doc()
    md, html = render_markdown(doc), render_html(doc)
    assert (r"**Platform:** Xeon Test (2 cores; avx2 amx\_tile); tensorflow:onednn-off: "
            "onednn=off; tensorflow:onednn-on: onednn=on") in md
    assert "## Where variants of one backend disagree (1)" in md
    assert "tensorflow:onednn-on: pass, tensorflow:onednn-off: fail-error-parity" in md
    assert "**fixed in Keras 3.15.0: upgrade**" in md
    header = next(line for line in md.splitlines() if line.startswith("| layer / op"))
    assert header == "| layer / op | tensorflow:onednn-on | tensorflow:onednn-off |"
    assert "Where variants of one backend disagree (1)" in html
    assert "platform facts</b> Xeon Test" in html and "fixed in Keras 3.15.0: upgrade" in html


def test_html_empty_report() -> None:
    doc = build_doc([], {}, {"python": None, "platform": None, "keras": None, "numpy": None,
                             "backends": {}}, False)
    assert "No results" in render_html(doc) and "No results" in render_markdown(doc)


def test_png_writer_round_trip() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    assert (_png_pixels(png_bytes(rgb)) == rgb).all()


# --------------------------------------------------------------------------- error_map


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("spatial", [(7,), (5, 6), (3, 5, 6)])
def test_error_map_ranks_and_formats(spatial: tuple[int, ...], data_format: str) -> None:
    rng = np.random.default_rng(0)
    n, c = 2, 3
    shape = (n, *spatial, c) if data_format == "channels_last" else (n, c, *spatial)
    ref = rng.standard_normal(shape)
    out = ref.copy()
    # one wrong element at the last spatial position, in batch 1, channel 2
    idx = (1, *[s - 1 for s in spatial], 2) if data_format == "channels_last" else (
        1, 2, *[s - 1 for s in spatial])
    out[idx] += 3.0
    m = error_map(out, ref, data_format)
    rows, cols = (1, spatial[0]) if len(spatial) == 1 else spatial[-2:]
    assert (m["rows"], m["cols"]) == (rows, cols)
    vals = np.array(m["values"])
    assert vals.shape == (rows, cols)
    assert vals[-1, -1] == pytest.approx(3.0, rel=1e-3) and m["vmax"] == vals[-1, -1]
    vals[-1, -1] = 0
    assert (vals == 0).all()
    assert m["spatial_shape"] == list(spatial) and m["block"] == [1, 1]


def test_error_map_none_and_nonfinite() -> None:
    a = np.zeros((1, 4, 4, 2))
    assert error_map(a, np.zeros((1, 4, 5, 2)), "channels_last") is None  # shapes differ
    assert error_map(np.zeros((0, 4, 4, 2)), np.zeros((0, 4, 4, 2)), "channels_last") is None
    out, ref = a.copy(), a.copy()
    out[0, 0, 0, 0] = ref[0, 0, 0, 0] = np.nan  # NaN on both sides agrees
    out[0, 1, 1, 1] = np.nan  # NaN on one side only
    out[0, 2, 2, 0] = ref[0, 2, 2, 0] = np.inf
    out[0, 3, 3, 0] = np.inf
    m = error_map(out, ref, "channels_last")
    assert m["values"][0][0] == 0 and m["values"][2][2] == 0
    assert m["values"][1][1] == np.inf and m["values"][3][3] == np.inf
    assert m["nonfinite"] == 2 and m["vmax"] == 0.0
    with pytest.raises(ValueError, match="data_format"):
        error_map(a, a, "NHWC")


def test_one_pixel_shift_shows_as_a_stripe() -> None:
    """A vertical line shifted one pixel right lights up exactly two adjacent columns."""
    ref = np.zeros((2, 30, 40, 3))
    ref[:, :, 17, :] = 1.0
    out = np.roll(ref, 1, axis=2)
    m = error_map(out, ref, "channels_last")
    vals = np.array(m["values"])
    lit = np.nonzero(vals.max(axis=0))[0].tolist()
    assert lit == [17, 18]
    assert (vals[:, 17] == 1.0).all() and (vals[:, 18] == 1.0).all()  # the full height
    # and survives the block-max downsampling of a large map
    big = np.zeros((1, 200, 300, 2))
    big[:, :, 150, :] = 1.0
    m = error_map(np.roll(big, 1, axis=2), big, "channels_last", max_cells=48)
    assert m["rows"] <= 48 and m["cols"] <= 48 and m["block"] == [5, 7]
    vals = np.array(m["values"])
    assert np.nonzero(vals.max(axis=0))[0].tolist() == [21]  # 150 // 7 == 151 // 7
    assert (vals[:, 21] == 1.0).all()


def test_wrong_border_shows_on_its_edge() -> None:
    """Padding split the other way: only the first row differs (channels_first, 3-D)."""
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((2, 3, 4, 9, 11))
    out = ref.copy()
    out[:, :, :, 0, :] += 0.25
    m = error_map(out, ref, "channels_first")
    vals = np.array(m["values"])
    assert vals.shape == (9, 11)
    assert np.allclose(vals[0], 0.25) and (vals[1:] == 0).all()


# --------------------------------------------------------------------------- a real browser


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
                                         else None)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed "
                    "(apt-get install chromium) — cannot screenshot the HTML report")
def test_html_renders_in_chromium(tmp_path: Path) -> None:
    write_all(sample_doc(complete=False), tmp_path)
    page = (tmp_path / "report.html").resolve().as_uri()
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars"]
    png = tmp_path / "shot.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run([*flags, f"--user-data-dir={profile}", f"--screenshot={png}",
                        "--window-size=1200,1600", page], check=True, timeout=120,
                       capture_output=True)
        # the filters run: a URL fragment selects backend=jax and failures only
        dom = subprocess.run([*flags, f"--user-data-dir={profile}", "--dump-dom",
                              page + "#backend=jax&verdict=@fail"], check=True, timeout=120,
                             capture_output=True, text=True).stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (1200, 1600)
    # not a uniform page: after PNG filtering a blank page is almost all zero bytes
    raw = np.frombuffer(zlib.decompress(_idat(data)), np.uint8)
    assert np.count_nonzero(raw) / raw.size > 0.02
    assert "2 of 27 results shown" in dom
    cards = re.findall(r"<article [^>]*>", dom)
    assert len(cards) == 4
    visible = [c for c in cards if "hidden" not in c]
    assert len(visible) == 2 and all('data-backend="jax"' in c for c in visible)


def test_html_names_the_failing_gradient_tensor_and_its_shape() -> None:
    """A grad case's card says the worst element is in dkernel, with dkernel's shape, not y's."""
    grad = value_failure("torch", worst={"output": "dkernel", "output_shape": [3, 3, 3, 4],
                                         "index": [2, 1, 0, 3], "value": 1.5,
                                         "reference": 0.5, "tolerance": 1e-5})
    sample = sample_doc()
    doc = build_doc([grad], sample["run"], sample["environment"], True)
    validate(doc)
    assert "dkernel (shape (3, 3, 3, 4)) at (2, 1, 0, 3)" in render_html(doc)
