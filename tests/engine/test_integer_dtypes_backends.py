"""Integer dtypes on the real backends, through the workers (docs/integer-dtypes.md): an exact
integer convolution passes with its dtype named, an int8 layer is `unsupported` everywhere, and
registered integer findings reproduce as their entries say (strict registry).

One engine for the module (worker start-up costs seconds per backend); a test whose backend is
not installed skips with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conv_parity import backends as targets
from conv_parity.case import ConvCase
from conv_parity.engine import Engine

WANTED = ["torch", "jax", "openvino"]
INSTALLED = [b for b in WANTED if targets.get(b).installed()]
CONV = ("ops.conv", {"kernel_size": 3, "filters": 2}, (1, 5, 5, 2))
AVG = ("ops.average_pool", {"pool_size": 2, "strides": 2}, (1, 4, 4, 3))


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    if not INSTALLED:
        pytest.skip("none of torch, jax, openvino is installed")
    with Engine(INSTALLED, strict_registry=True) as eng:
        yield eng


def _need(backend: str) -> None:
    if backend not in INSTALLED:
        pytest.skip(f"{backend} not installed")


def test_int32_conv_is_exact_on_jax(engine: Engine) -> None:
    _need("jax")
    out = engine.outcome(ConvCase.make(*CONV, dtype="int32"), "jax")
    assert out.verdict == "pass", out.message
    assert out.message == "jax returned int32, every value exact" and out.dtype == "int32"


def test_int8_layer_is_unsupported_on_every_backend(engine: Engine) -> None:
    case = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 3}, (1, 5, 5, 2), "int8")
    for backend in INSTALLED:
        out = engine.outcome(case, backend)
        assert out.verdict == "unsupported", (backend, out.message)
        assert "quantization mode" in out.message


@pytest.mark.parametrize(("backend", "case", "entry", "words"), [
    ("openvino", ConvCase.make(*CONV, dtype="int8"), "int-openvino-int8-conv-wrong-values",
     "(openvino returned int8)"),
    ("torch", ConvCase.make(*AVG, dtype="int64"), "int-torch-int64-average-pool-truncates",
     "exact mean truncated toward zero"),
    ("jax", ConvCase.make(*AVG, dtype="int8"), "int-jax-average-pool-returns-float",
     "jax returned dtype float32, expected int8"),
    ("openvino", ConvCase.make(*AVG, dtype="uint8"), "int-openvino-average-pool-rounds-half-even",
     "exact mean rounded half to even"),
])
def test_registered_integer_findings_reproduce(engine: Engine, backend: str, case: ConvCase,
                                               entry: str, words: str) -> None:
    _need(backend)
    out = engine.outcome(case, backend)
    assert out.verdict == "xfail", out.message
    assert (out.known or {}).get("id") == entry
    assert words in out.message
