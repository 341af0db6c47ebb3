"""Backend variants in real workers: the setting is in force, the facts say so, and results
still come back (the worker of a variant is just its backend started differently)."""

from __future__ import annotations

import numpy as np
import pytest

from conv_parity import backends as targets
from conv_parity import reference
from conv_parity.case import ConvCase
from conv_parity.workers import WorkerPool, make_items

CASE = ConvCase.make("Conv2D", {"filters": 3, "kernel_size": 2, "padding": "same"},
                     (1, 5, 4, 2), seed=7)

#: target -> the fact its setting must put in force, whatever the CPU.
EXPECTED = {
    "tensorflow:onednn-on": ("tensorflow.onednn", True),
    "tensorflow:onednn-off": ("tensorflow.onednn", False),
    "torch:mkldnn-off": ("torch.mkldnn", False),
}
PARAMS = [pytest.param(name, marks=[] if targets.get(name).installed() else [
    pytest.mark.skip(reason=f"{name}: {'/'.join(targets.get(name).modules)} not installed")],
    id=name) for name in EXPECTED]


@pytest.fixture(scope="module")
def variant_pool(tmp_path_factory: pytest.TempPathFactory):
    names = [n for n in EXPECTED if targets.get(n).installed()]
    with WorkerPool(timeout=120, log_dir=tmp_path_factory.mktemp("variant-logs")) as pool:
        pool.start(names)
        yield pool


@pytest.mark.parametrize("name", PARAMS)
def test_variant_setting_is_in_force_and_it_computes(variant_pool: WorkerPool, name: str) -> None:
    info = variant_pool.info(name)
    assert info.available, info.import_error
    key, value = EXPECTED[name]
    assert info.facts[key] is value, info.facts
    assert info.facts["cpu.model"] and info.target["name"] == name
    assert info.target["keras_backend"] == targets.keras_backend(name)
    (result,) = variant_pool.run(name, make_items([CASE]))
    assert result.status == "ok", result.error
    x, weights = CASE.arrays()
    want = reference.forward(CASE.layer, x, weights, **CASE.kwargs)
    np.testing.assert_allclose(result.output, want, rtol=1e-4, atol=1e-5)
