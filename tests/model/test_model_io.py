"""Models as users build them (issue 24): convs inside subclassed layers, dict / nested
outputs, several inputs, integer token inputs, a backend that raises, NaN fed to a model
(issue 23 item 7: never masked), --import for a custom class, and the CLI's own process never
running the model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conv_parity.errors import UsageError
from conv_parity.model.end_to_end import _raised_rows, compare, nan_median, reload_problem
from conv_parity.model.extract import extract
from conv_parity.model.files import import_keras
from conv_parity.model.inputs import ModelInput, int_high, match_inputs, seeded_inputs
from conv_parity.workers.layer_tree import RaisingLayer, flatten_named, output_names

keras = import_keras()
SRC = str(Path(__file__).resolve().parents[2] / "src")


#: A user's module: their own ConvBlock (conv + BN + relu, the conv invisible to
#: ``model.layers``) and a model with two inputs (an image and int token ids), ConvBlocks
#: (one shared, called at two shapes), a dict of outputs with a nested list. Workers import
#: it by name (``imports``), as they would a user's package.
USER_MODULE = '''
import keras


@keras.saving.register_keras_serializable(package="convparitytest")
class ConvBlock(keras.layers.Layer):
    def __init__(self, filters, dilation=1, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.dilation = filters, dilation
        self.conv = keras.layers.Conv2D(filters, 3, padding="same", dilation_rate=dilation,
                                        name="conv")
        self.norm = keras.layers.BatchNormalization(name="norm")

    def call(self, x, training=False):
        return keras.ops.relu(self.norm(self.conv(x), training=training))

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "dilation": self.dilation}


def user_model():
    image = keras.Input((12, 12, 3), name="image")
    tokens = keras.Input((5,), dtype="int32", name="tokens")
    shared = ConvBlock(4, name="shared")
    y = ConvBlock(4, dilation=2, name="block1")(image)
    a = shared(y)
    b = shared(keras.layers.MaxPooling2D(name="pool")(y))
    text = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(7, 4)(tokens))
    pooled = keras.layers.GlobalAveragePooling2D()(b)
    head = keras.layers.Dense(3, name="head")(keras.layers.Concatenate()([pooled, text]))
    return keras.Model({"image": image, "tokens": tokens},
                       {"logits": head, "maps": [a, keras.layers.GlobalMaxPooling2D()(a)]})
'''


@pytest.fixture(scope="module")
def usermod(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import importlib

    where = tmp_path_factory.mktemp("usermod")
    (where / "usermod_io.py").write_text(USER_MODULE)
    sys.path.insert(0, str(where))
    try:
        module = importlib.import_module("usermod_io")
        module.where = where
        yield module
    finally:
        sys.path.remove(str(where))
        sys.modules.pop("usermod_io", None)


def user_model(usermod: Any) -> Any:
    return usermod.user_model()


# --------------------------------------------------------------------------- rules, in-process


def test_convs_inside_subclassed_layers_are_found_by_path_per_shape(usermod: Any) -> None:
    found = extract(user_model(usermod), [(2, 12, 12, 3), (2, 5)])
    shapes = {(u.path, u.input_shape) for u in found.uses}
    assert ("block1/conv", (2, 12, 12, 3)) in shapes
    assert {("shared/conv", (2, 12, 12, 4)), ("shared/conv", (2, 6, 6, 4))} <= shapes
    assert found.coverage()["found"] == found.coverage()["checked"] >= 4


def test_convs_inside_a_block_that_declares_its_output_shape_are_found() -> None:
    """keras-hub's blocks declare compute_output_shape, so Keras never traces their call
    (ViT's patch-embedding conv went unseen); extraction traces them for the pass."""

    class Patches(keras.layers.Layer):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.proj = keras.layers.Conv2D(4, 2, strides=2, name="proj")

        def call(self, x: Any) -> Any:
            return keras.ops.reshape(self.proj(x), (-1, 16, 4))

        def compute_output_shape(self, shape: Any) -> Any:
            return (shape[0], 16, 4)

    x = keras.Input((8, 8, 3))
    block = Patches(name="embed")
    model = keras.Model(x, block(x))
    found = extract(model, (2, 8, 8, 3))
    assert [(u.path, u.input_shape, u.reason) for u in found.uses] == [
        ("embed/proj", (2, 8, 8, 3), None)]
    assert "compute_output_spec" not in vars(block)  # put back after the pass


def test_nested_outputs_are_named_by_path_in_keras_order(usermod: Any) -> None:
    model = user_model(usermod)
    names = output_names(model, len(model.outputs))
    assert names == ["output/logits", "output/maps/0", "output/maps/1"]
    assert [n for n, _ in flatten_named({"b": [1, 2], "a": 3})] == [
        "output/a", "output/b/0", "output/b/1"]
    assert output_names(object(), 1) == ["output"]


def test_integer_inputs_are_ids_below_every_embedding_and_checked_by_dtype(usermod: Any
                                                                            ) -> None:
    model = user_model(usermod)
    assert int_high(model) == 7
    specs = [ModelInput("image", (None, 12, 12, 3), "float32"),
             ModelInput("tokens", (None, 5), "int32")]
    image, tokens = seeded_inputs(specs, [(2, 12, 12, 3), (2, 5)], 0, 7)
    assert image.dtype == np.float32 and tokens.dtype == np.int32
    assert tokens.min() >= 0 and tokens.max() < 7 and len(np.unique(tokens)) > 1
    assert match_inputs(specs, {"tokens": tokens, "image": image})[1] is tokens
    with pytest.raises(UsageError, match="input tokens has dtype float32, but the model takes "
                                         "int32"):
        match_inputs(specs, {"image": image, "tokens": tokens.astype("float32")})
    with pytest.raises(UsageError, match="missing tokens"):
        match_inputs(specs, {"image": image})


def test_nan_is_compared_never_masked() -> None:
    """Matching NaN is agreement; a NaN (or a finite value) against the others' is not."""
    y = np.array([1.0, np.nan, np.inf], "float32")
    agree = compare({"a": {"output": y}, "b": {"output": y.copy()}, "c": {"output": y.copy()}},
                    [])
    assert all(not r["diverges"] and r["max_abs_err"] == 0.0 for r in agree.values())
    dropped = y.copy()
    dropped[1] = -3.4e38  # a max pool that drops NaN
    rows = compare({"a": {"output": y}, "b": {"output": y.copy()}, "c": {"output": dropped}},
                   [])
    assert rows["c"]["diverges"] and rows["c"]["max_abs_err"] == float("inf")
    assert not rows["a"]["diverges"] and not rows["b"]["diverges"]
    assert np.isnan(nan_median([y, y, dropped])[1])
    # the weights round trip within a backend: NaN where NaN is equal; a new NaN is not
    assert reload_problem({"output": y}, {"output": y.copy()}, {"output": 0.0}) is None
    assert "differ" in str(reload_problem({"output": dropped}, {"output": y}, {"output": 0.0}))


def test_each_output_is_compared_and_named() -> None:
    base = {"output/logits": np.ones(3, "float32"), "output/maps/0": np.ones((2, 2), "float32")}
    odd = {**base, "output/maps/0": np.full((2, 2), 2.0, "float32")}
    rows = compare({"a": base, "b": dict(base), "c": odd}, [])
    assert rows["c"]["diverges"] and rows["c"]["output"] == "output/maps/0"
    assert set(rows["a"]["outputs"]) == {"output/logits", "output/maps/0"}


def test_a_backend_that_raises_is_error_parity_at_its_layer_or_xfail_with_the_entry(
        usermod: Any) -> None:
    from conv_parity.case import ConvCase
    from conv_parity.judge.verdict import Outcome

    found = extract(user_model(usermod), [(2, 12, 12, 3), (2, 5)])
    use = next(u for u in found.checkable if u.path == "block1/conv")
    assert use.case is not None

    def rows(verdict: str, known: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        outcome = Outcome(case=use.case, backend="tensorflow", verdict=verdict, message="",
                          known=known)
        got = {"tensorflow": {"backend": "tensorflow", "verdict": "raised",
                              "message": "UnimplementedError: NCHW", "raised_in": "block1/conv"},
               "jax": {"backend": "jax", "verdict": "pass", "message": ""}}
        _raised_rows(got, True, found, [outcome])
        return got

    known = rows("xfail", {"id": "tf-conv-channels-first-cpu"})["tensorflow"]
    assert known["verdict"] == "xfail" and known["known"] == "tf-conv-channels-first-cpu"
    assert known["first_divergent_layer"] == "block1/conv"
    new = rows("pass", None)["tensorflow"]
    assert new["verdict"] == "fail-error-parity" and "raises in block1/conv" in new["message"]
    alone = {"tensorflow": {"backend": "tensorflow", "verdict": "raised", "message": "E"}}
    _raised_rows(alone, False, found, [])
    assert alone["tensorflow"]["verdict"] == "unsupported"
    assert isinstance(use.case, ConvCase)


def test_the_layer_a_forward_pass_raises_in_is_named() -> None:
    class Boom(keras.layers.Layer):
        armed = False

        def call(self, x: Any) -> Any:
            if self.armed:
                raise RuntimeError("boom")
            return x

    boom = Boom(name="boom")
    inner = keras.Sequential([keras.layers.Conv2D(2, 1, name="c"), boom], name="inner")
    x = keras.Input((4, 4, 1))
    model = keras.Model(x, inner(x))
    boom.armed = True
    with RaisingLayer(model) as watch, pytest.raises(RuntimeError):
        model(np.ones((1, 4, 4, 1), "float32"))
    assert watch.path == "inner/boom"
    assert "call" not in vars(boom)  # the wrappers are gone after the with


# --------------------------------------------------------------------------- through workers


def _needs(backends: str) -> None:
    from conv_parity import backends as targets

    missing = [b for b in backends.split(",") if not targets.get(b).installed()]
    if missing:
        pytest.skip(f"needs the {', '.join(missing)} backend (not installed here)")


@pytest.mark.slow  # two workers and a whole model (> 20 s)
def test_user_model_end_to_end_with_nan_and_round_trips(usermod: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two inputs (one int), dict + list outputs, convs inside a custom layer, an input with a
    NaN in it: every output compared and named, NaN propagates alike (agreement, not a
    masked 0), round trips hold."""
    from conv_parity import check_model

    _needs("jax,numpy")
    model = user_model(usermod)
    xs = seeded_inputs([ModelInput("image", (None, 12, 12, 3), "float32"),
                        ModelInput("tokens", (None, 5), "int32")], [(2, 12, 12, 3), (2, 5)],
                       0, 7)
    xs[0][0, 3, 3, 0] = np.nan
    monkeypatch.chdir(usermod.where)  # workers find the user's module as python -m would
    result = check_model(model, "jax,numpy", reseed_weights=True, imports=["usermod_io"],
                         input_array={"image": xs[0], "tokens": xs[1]})
    e2e = result.end_to_end
    assert e2e is not None and e2e["compared"]
    for row in e2e["results"]:
        assert row["verdict"] == "pass", row
        assert set(row["outputs"]) == {"output/logits", "output/maps/0", "output/maps/1"}
        assert all(o["max_abs_err"] == o["max_abs_err"] for o in row["outputs"].values())
    assert result.round_trip is not None and result.round_trip["ok"], result.round_trip
    assert {c["reader"] for c in result.round_trip["checks"] if c.get("reader")} == {
        "jax", "numpy"}
    section = result.section()
    assert section["input_shapes"] == [[2, 12, 12, 3], [2, 5]]
    assert {"block1/conv", "shared/conv"} <= {r["name"] for r in section["layers"]}
    assert result.passed


def _cli(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "conv_parity.cli", *args], cwd=cwd,
                          env={**os.environ, "PYTHONPATH": SRC + os.pathsep + str(cwd), **env},
                          capture_output=True, text=True, timeout=900)


CUSTOM_MODULE = '''
import keras

@keras.saving.register_keras_serializable(package="userpkg")
class Block(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv2D(2, 3, padding="same", name="conv")

    def call(self, x):
        return self.conv(x)


def build():
    x = keras.Input((6, 6, 1))
    return keras.Model(x, {"y": Block(name="block")(x)})
'''


@pytest.mark.slow  # two CLI processes with workers (> 20 s)
def test_cli_import_loads_a_custom_class_and_names_it_without(tmp_path: Path) -> None:
    _needs("jax,numpy")
    (tmp_path / "usermod.py").write_text(CUSTOM_MODULE)
    make = ("import usermod; usermod.build().save('m.keras')")
    subprocess.run([sys.executable, "-c", make], cwd=tmp_path, check=True, timeout=300,
                   env={**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(tmp_path)})
    refused = _cli(["model", "m.keras", "--backends", "numpy"], {}, tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "userpkg>Block" in refused.stderr and "--import usermod" in refused.stderr
    ok = _cli(["model", "m.keras", "--backends", "jax,numpy", "--import", "usermod"], {},
              tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "block/conv" in ok.stdout and "outputs compared: output/y" in ok.stdout


@pytest.mark.slow  # a CLI process with three workers (> 60 s)
def test_channels_first_on_tensorflow_cli_process_is_xfail_and_exit_0(tmp_path: Path) -> None:
    """KERAS_BACKEND=tensorflow for the CLI's own process, a channels_first model: nothing
    runs the model there; TF's end to end raises where it has no NCHW kernel (oneDNN off),
    which is the registered tf-conv-channels-first-cpu at the conv that raised."""
    _needs("tensorflow,jax,torch")
    script = ("import keras\n"
              "i = keras.Input((3, 10, 10))\n"
              "x = keras.layers.Conv2D(4, 3, data_format='channels_first', name='c1')(i)\n"
              "x = keras.layers.MaxPooling2D(2, data_format='channels_first')(x)\n"
              "keras.Model(i, {'y': x, 'z': keras.layers.Flatten()(x)}).save('cf.keras')\n")
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=300,
                   env={**os.environ, "KERAS_BACKEND": "jax"})
    got = _cli(["model", "cf.keras", "--backends", "tensorflow,jax,torch", "--json"],
               {"KERAS_BACKEND": "tensorflow"}, tmp_path)
    assert got.returncode == 0, got.stderr[-3000:]
    import json

    doc = json.loads(got.stdout)
    rows = {r["backend"]: r for r in doc["model"]["end_to_end"]["results"]}
    onednn = [r for r in doc["results"] if r["backend"] == "tensorflow"]
    if rows["tensorflow"]["verdict"] == "xfail":
        assert rows["tensorflow"]["known"] == "tf-conv-channels-first-cpu"
        assert rows["tensorflow"]["first_divergent_layer"] == "c1"
    else:  # oneDNN on: TF computes NCHW convs
        assert rows["tensorflow"]["verdict"] == "pass", (rows, onednn)
    assert rows["jax"]["verdict"] == rows["torch"]["verdict"] == "pass"
    assert doc["model"]["round_trip"]["ok"]
