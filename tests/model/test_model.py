"""``conv-parity model`` and ``check_model``: extraction, safe loading, bad input, the real door.

Fixtures are tiny models built and saved in the test (tmp_path). Rules (extraction, layout
hints, loading refusals) run in-process without workers; the end-to-end tests start the two
cheapest backends (jax, numpy) once per module through one engine, and the CLI test runs
the real console script.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conv_parity.errors import UsageError
from conv_parity.model.extract import concrete_input_shape, extract, layout_hint
from conv_parity.model.files import import_keras
from conv_parity.model.load import load, reseed

keras = import_keras()
CHEAP = "jax,numpy"


def nested_model() -> Any:
    """Conv with relu, a nested Sequential (depthwise + separable), a shared conv called at two
    shapes, a transposed conv, a pool, a softmax conv (not element-wise: not expressible) and a global pool."""
    inner = keras.Sequential([keras.layers.DepthwiseConv2D(3, padding="same", name="dw"),
                              keras.layers.SeparableConv2D(4, 3, name="sep")], name="inner")
    shared = keras.layers.Conv2D(4, 1, name="shared")
    x = keras.Input((None, None, 3))
    y = keras.layers.Conv2D(3, 3, activation="relu", name="first")(x)
    y = inner(y)
    a = shared(y)
    b = shared(keras.layers.MaxPooling2D(name="pool")(y))
    y = keras.layers.Conv2DTranspose(2, 3, strides=2, output_padding=1, name="up")(a)
    y = keras.layers.Conv2D(2, 1, activation="softmax", name="r6")(y)
    # named: Keras's automatic names count the layers made earlier in the process
    out = keras.layers.Concatenate(name="concatenate")(
        [keras.layers.GlobalAveragePooling2D(name="global_average_pooling2d")(y),
         keras.layers.GlobalMaxPooling2D(name="global_max_pooling2d")(b)])
    return keras.Model(x, out)


def _needs(backends: str) -> None:
    """Skip unless every backend named is installed (an oldest-release CI job has one)."""
    from conv_parity import backends as targets

    missing = [b for b in backends.split(",") if not targets.get(b).installed()]
    if missing:
        pytest.skip(f"needs the {', '.join(missing)} backend (not installed here)")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from packaging.version import Version

    if Version(keras.__version__) < Version("3.7.0"):
        pytest.skip(f"Keras {keras.__version__} cannot load its own save of this model (a "
                    "shared layer called on a pooled branch: 'Layer node index out of "
                    "bounds'); Keras 3.7.0 can")
    path = tmp_path_factory.mktemp("models") / "nested.keras"
    model = nested_model()
    reseed(model, 1)
    model.save(path)
    return path


# --------------------------------------------------------------------------- rules, in-process


def test_extract_finds_nested_and_shared_layers_at_their_real_shapes() -> None:
    found = extract(nested_model(), (2, 17, 19, 3))
    uses = {(u.path, u.input_shape) for u in found.uses}
    assert uses == {
        ("first", (2, 17, 19, 3)),
        ("inner/dw", (2, 15, 17, 3)),
        ("inner/sep", (2, 15, 17, 3)),
        ("shared", (2, 13, 15, 4)),
        ("pool", (2, 13, 15, 4)),
        ("shared", (2, 6, 7, 4)),
        ("up", (2, 13, 15, 4)),
        ("r6", (2, 28, 32, 2)),
        ("global_average_pooling2d", (2, 28, 32, 2)),
        ("global_max_pooling2d", (2, 6, 7, 4)),
    }
    assert found.not_checked == {"Concatenate": ["concatenate"]}
    r6 = next(u for u in found.uses if u.path == "r6")
    assert r6.case is None and "activation 'softmax'" in str(r6.reason)
    first = next(u for u in found.uses if u.path == "first")
    assert first.case is not None and first.case.kwargs["activation"] == "relu"
    up = next(u for u in found.uses if u.path == "up")
    assert up.case is not None and up.case.kwargs["output_padding"] == (1, 1)
    assert [w.shape for w in up.weights] == [(3, 3, 2, 4), (2,)]


def test_layers_filter_marks_the_rest_not_selected() -> None:
    found = extract(nested_model(), (2, 17, 19, 3), only=["inner/*"])
    assert sorted(u.path for u in found.checkable) == ["inner/dw", "inner/sep"]
    assert {u.reason for u in found.uses if u.path == "first"} == {"not selected by --layers"}
    with pytest.raises(UsageError, match="selects none of the conv-family layers"):
        extract(nested_model(), (2, 17, 19, 3), only=["nothing*"])


def test_open_dimensions_need_an_input_shape() -> None:
    model = nested_model()
    with pytest.raises(UsageError, match=r"leaves dimensions open; give --input-shape, e\.g\. "
                                         r"--input-shape 2,32,32,3"):
        concrete_input_shape(model, None)
    assert concrete_input_shape(model, (1, 9, 9, 3)) == (1, 9, 9, 3)
    fixed = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)])
    assert concrete_input_shape(fixed, None, batch=5) == (5, 8, 8, 3)


def test_wrong_input_shape_names_the_other_layout() -> None:
    fixed = keras.Sequential([keras.Input((28, 28, 3)), keras.layers.Conv2D(2, 3)])
    with pytest.raises(UsageError) as info:
        extract(fixed, (1, 3, 28, 28))
    text = str(info.value)
    assert "does not accept input shape (1, 3, 28, 28)" in text
    assert "reads as channels_first" in text and "transpose it to (1, 28, 28, 3)" in text


def test_layout_hint_both_ways_and_silent_otherwise() -> None:
    assert "transpose it to (1, 28, 28, 3)" in layout_hint((1, 3, 28, 28), (None, 28, 28, 3))
    assert "transpose it to (1, 3, 28, 28)" in layout_hint((1, 28, 28, 3), (None, 3, 28, 28))
    assert layout_hint((1, 5, 28, 28), (None, 28, 28, 3)) == ""


def test_reseed_gives_nonzero_biases_and_is_deterministic() -> None:
    a, b = nested_model(), nested_model()
    reseed(a, 3)
    reseed(b, 3)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    bias = a.get_layer("first").get_weights()[1]
    assert np.all(bias != 0)


# --------------------------------------------------------------------------- loading refusals


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.keras", None, "no such file"),
    ("notes.keras", b"hello", "not a .keras model"),
    ("notes.h5", b"hello", "not a readable HDF5 file"),
    ("model.txt", b"hello", "unknown model file type"),
    ("w.weights.h5", b"x", "holds weights only"),
])
def test_bad_files_are_one_line_usage_errors(tmp_path: Path, name: str, content: bytes | None,
                                             message: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UsageError, match=message):
        load(str(path))


def test_truncated_h5_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "m.h5"
    keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3)]).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UsageError, match=r"truncated or not a model|cannot load"):
        load(str(path))


def test_lambda_layer_is_refused_before_loading(tmp_path: Path) -> None:
    path = tmp_path / "lam.keras"
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3),
                              keras.layers.Lambda(lambda t: t * 2, name="double")])
    model.save(path)
    with pytest.raises(UsageError, match=r"layer 'double' is a Lambda .*never runs code.*"
                                         r"--builder my_module:build_model"):
        load(str(path))


def test_unknown_application_lists_known_ones() -> None:
    with pytest.raises(UsageError, match=r"keras\.applications has no model 'NoSuchNet'; known: "):
        load("keras.applications.NoSuchNet")


def test_model_without_conv_layers_is_a_usage_error() -> None:
    dense = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(UsageError, match=r"holds no convolution or pooling layer \(its layers: "
                                         r"Dense\)"):
        extract(dense, (2, 4))


# --------------------------------------------------------------------------- through the engine


@pytest.fixture(scope="module")
def engine() -> Any:
    from conv_parity.engine import Engine

    _needs(CHEAP)
    with Engine(CHEAP) as eng:
        yield eng


@pytest.mark.slow  # whole-process CLI / model runs: `pytest -m slow` (CI time, issue 25)
def test_check_model_checks_each_distinct_case_once(model_file: Path, engine: Any) -> None:
    from conv_parity import check_model

    result = check_model(model_file, input_shape=(2, 17, 19, 3), engine=engine)
    assert result.passed, result.summary()
    assert result.weights == "file"
    distinct = {u.case for u in result.extraction.checkable}
    # 10 uses: r6 not expressible, "shared" at two shapes, and the two global pools
    assert len(distinct) == 9
    assert len(result.outcomes) == 9 * 2
    doc = result.to_json()
    from conv_parity.report import validate

    validate(doc)
    rows = {(r["name"], tuple(r["input_shape"])): r for r in doc["model"]["layers"]}
    sep = rows[("inner/sep", (2, 15, 17, 3))]
    assert sep["class"] == "SeparableConv2D" and sep["config"]["filters"] == 4
    assert [(r["backend"], r["verdict"]) for r in sep["results"]] == [("jax", "pass"),
                                                                     ("numpy", "pass")]
    assert rows[("r6", (2, 28, 32, 2))]["checked"] is False
    assert doc["model"]["image_data_format"] == "channels_last"
    assert doc["run"]["front_door"] == "model"


def test_real_weights_reach_the_workers(model_file: Path, engine: Any) -> None:
    """A repro saved for a failing layer loads the layer's own kernel from the .npz."""
    from conv_parity.model.check import prepared_items

    model = keras.saving.load_model(model_file, safe_mode=True)
    found = extract(model, (2, 17, 19, 3))
    items = dict((case, arrays) for case, arrays in prepared_items(found, "nested.keras"))
    first = next(u for u in found.uses if u.path == "first")
    arrays = items[first.case]
    np.testing.assert_array_equal(arrays.weights[0], model.get_layer("first").get_weights()[0])
    assert arrays.source == "nested.keras:first"


def test_a_discrepancy_names_the_layer(model_file: Path) -> None:
    """A backend with a bias bug injected (test-only mutant) fails the layers with a bias, and
    the helper's message names them, the backend and the diagnosis."""
    from conv_parity.backends import MUTATION_GATE
    from conv_parity.engine import Engine
    from conv_parity.model import assert_model_conforms, check_model

    _needs("jax")
    with Engine("jax:mutant-bias-missing", extra_env={MUTATION_GATE: "1"}) as eng:
        result = check_model(model_file, input_shape=(2, 17, 19, 3), engine=eng,
                             layers=["first", "up"])
        with pytest.raises(AssertionError) as info:
            assert_model_conforms(model_file, input_shape=(2, 17, 19, 3), engine=eng,
                                  layers=["first"])
    assert {o.case.layer for o in result.failures} == {"Conv2D", "Conv2DTranspose"}
    text = str(info.value)
    assert "1 discrepancies" in text
    assert "first (Conv2D-f3-k3x3" in text and "on jax:mutant-bias-missing: fail-values" in text


_BUILDER = """
import keras


def build():
    return keras.Sequential([keras.Input((9, 9, 3)), keras.layers.Conv2D(4, 3, name="c"),
                             keras.layers.Conv2DTranspose(2, 3, strides=2, name="up")])


def not_a_model():
    return 42


@keras.saving.register_keras_serializable(package="cp_builder")
class Shift(keras.layers.Layer):
    def call(self, x):
        return x + 1.0


def build_custom():
    return keras.Sequential([keras.Input((9, 9, 3)), keras.layers.Conv2D(4, 3, name="c"),
                             Shift(name="shift"), keras.layers.Conv2D(2, 3, name="d")])
"""


@pytest.mark.slow  # whole-process CLI / model runs: `pytest -m slow` (CI time, issue 25)
def test_weights_h5_with_a_builder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   engine: Any) -> None:
    """A .weights.h5 and the user's builder: the weights are the file's (not the builder's
    initial ones), every layer is checked and the model runs end to end."""
    from conv_parity import check_model

    (tmp_path / "cp_builder_a.py").write_text(_BUILDER)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".")])
    from conv_parity.model.load import builder_function

    model = builder_function("cp_builder_a:build")()  # found in the current directory
    reseed(model, 7)
    model.save_weights(tmp_path / "m.weights.h5")
    result = check_model(str(tmp_path / "m.weights.h5"), engine=engine,
                         builder="cp_builder_a:build")
    assert result.passed, result.summary()
    assert result.weights == "file" and result.input_shape == (2, 9, 9, 3)
    up = next(u for u in result.extraction.checkable if u.path == "up")
    np.testing.assert_array_equal(up.weights[1], model.get_layer("up").get_weights()[1])
    assert np.all(up.weights[1] != 0)  # the file's seeded bias, not Keras's zero init
    # A custom layer registered by the user's module: the workers import it too.
    custom = builder_function("cp_builder_a:build_custom")()
    reseed(custom, 8)
    custom.save_weights(tmp_path / "custom.weights.h5")
    result = check_model(str(tmp_path / "custom.weights.h5"), engine=engine,
                         builder="cp_builder_a:build_custom", round_trip=False)
    rows = {r["backend"]: r for r in result.end_to_end["results"]}
    assert {b: r["verdict"] for b, r in rows.items()} == {"jax": "pass", "numpy": "pass"}, rows
    assert result.extraction.not_checked == {"Shift": ["shift"]}
    with pytest.raises(UsageError, match=r"holds weights only.*--builder my_package"):
        load(str(tmp_path / "m.weights.h5"))
    with pytest.raises(UsageError, match=r"--builder cp_builder_a:not_a_model: returned a "
                                         r"int, not a keras\.Model"):
        load(str(tmp_path / "m.weights.h5"), builder="cp_builder_a:not_a_model")
    with pytest.raises(UsageError, match=r"--builder nope_mod:build: cannot import 'nope_mod'"):
        load(str(tmp_path / "m.weights.h5"), builder="nope_mod:build")
    with pytest.raises(UsageError, match=r"expected module:function"):
        load(str(tmp_path / "m.weights.h5"), builder="cp_builder_a")


def test_input_npy_is_validated(model_file: Path, tmp_path: Path) -> None:
    """--input: never unpickled; a wrong dtype or shape is named (these fail before any worker
    starts)."""
    from conv_parity import check_model

    good = np.zeros((2, 17, 19, 3), "float32")
    cases = {
        "f64.npy": (good.astype("float64"), r"dtype float64, but the model takes float32"),
        "rank.npy": (good[0], r"--input .*rank\.npy \(17, 19, 3\) has rank 3 but the model "
                              r"takes rank 4"),
        "layout.npy": (np.zeros((2, 3, 17, 19), "float32"),
                       r"does not accept input shape \(2, 3, 17, 19\)"),
        "obj.npy": (np.array([{"a": 1}], dtype=object), r"not a readable \.npy array"),
    }
    for name, (array, message) in cases.items():
        np.save(tmp_path / name, array, allow_pickle=True)
        with pytest.raises(UsageError, match=message):
            _needs("numpy")
            check_model(model_file, "numpy", input_array=str(tmp_path / name))
    with pytest.raises(UsageError, match=r"--input .*missing\.npy: no such file"):
        check_model(model_file, "numpy", input_array=str(tmp_path / "missing.npy"))
    np.save(tmp_path / "good.npy", good)
    with pytest.raises(UsageError, match=r"its shape \(2, 17, 19, 3\) != --input-shape"):
        check_model(model_file, "numpy", input_array=str(tmp_path / "good.npy"),
                    input_shape=(1, 17, 19, 3))


@pytest.mark.slow  # whole-process CLI / model runs: `pytest -m slow` (CI time, issue 25)
def test_weights_round_trip_across_backends_detects_other_weights(tmp_path: Path) -> None:
    """The worker half of the .weights.h5 round trip, here on this process's backend: a fresh
    model reading the weights written with the model gives the same output; reading another
    model's weights does not, and the comparison says so."""
    from conv_parity.model.end_to_end import reload_problem
    from conv_parity.workers.whole_model import RELOADED, SavedModelCall, run_saved_model

    model, other = _transposed_model(), _transposed_model()
    reseed(model, 0)
    reseed(other, 1)
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    other.save_weights(tmp_path / "o.weights.h5")
    x = np.ones((2, 5, 5, 2), "float32")
    for weights, differs in (("m", False), ("o", True)):
        ran = run_saved_model(keras, SavedModelCall(
            str(tmp_path / "m.keras"), [x], weights_file=str(tmp_path / f"{weights}.weights.h5")))
        assert ran.weights_error is None and set(ran.jitter) == {"output"}
        again = {"output": ran.outputs.pop("output" + RELOADED)}
        problem = reload_problem(ran.outputs, again, ran.jitter)
        assert (problem is not None) == differs, problem
        if differs:
            assert "output values differ after the round trip" in problem


# --------------------------------------------------------------------------- the console script


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    if "--backends" in args:
        _needs(args[args.index("--backends") + 1])
    env = {k: v for k, v in os.environ.items() if k != "CONV_PARITY_DEBUG"}
    return subprocess.run([sys.executable, "-m", "conv_parity.cli", "model", *args],
                          capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow  # whole-process CLI / model runs: `pytest -m slow` (CI time, issue 25)
def test_cli_json_and_report(model_file: Path, tmp_path: Path) -> None:
    """Also: --input runs the whole model on the user's array, and the .weights.h5 written
    here is read on every backend."""
    x = np.random.default_rng(5).standard_normal((2, 17, 19, 3)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    proc = _cli(str(model_file), "--input", str(tmp_path / "x.npy"), "--backends", CHEAP,
                "--json", "--report", str(tmp_path / "rep"), "--layers", "inner/*,up")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["model"]["end_to_end"]["input_shape"] == [2, 17, 19, 3]
    crossed = [c for c in doc["model"]["round_trip"]["checks"] if c.get("reader")]
    assert [(c["reader"], c["ok"]) for c in crossed] == [("jax", True), ("numpy", True)]
    checked = [r["name"] for r in doc["model"]["layers"] if r["checked"]]
    assert checked == ["inner/dw", "inner/sep", "up"]
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "| inner/sep | SeparableConv2D | (2, 15, 17, 3) | pass | pass |" in md
    assert "### End to end (the whole model on every backend)" in md
    assert "| jax | pass | " in md
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "<td>inner/sep</td>" in html
    assert "<h3>End to end (the whole model on every backend)</h3>" in html


@pytest.mark.parametrize(("args", "message"), [
    (["missing.keras"], "missing.keras: no such file"),
    (["{model}", "--input-shape", "2,17,19"], "has rank 3 but the model takes rank 4"),
    pytest.param(["{model}", "--input-shape", "2,3,17,19"],
                 "does not accept input shape (2, 3, 17, 19)", marks=pytest.mark.slow),
    pytest.param(["{model}", "--input", "{model}.npy"],
                 "dtype float64, but the model takes float32", marks=pytest.mark.slow),
])
def test_cli_bad_input_exit_2_one_line(model_file: Path, args: list[str], message: str) -> None:
    np.save(f"{model_file}.npy", np.zeros((2, 17, 19, 3)))  # float64
    proc = _cli(*(a.format(model=model_file) for a in args), "--backends", "numpy")
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("conv-parity model")]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # whole-process CLI / model runs: `pytest -m slow` (CI time, issue 25)
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs tensorflow")
def test_zero_bias_hides_a_registered_bug_without_a_false_alarm(tmp_path: Path) -> None:
    """The TF channels_first bias-on-the-wrong-axis entry (out channels == last spatial size):
    with the file's zero biases it cannot show, and that is not a stale entry; with --reseed
    (non-zero biases) it shows, as xfail with the entry named."""
    from packaging.version import Version

    from conv_parity import check_model

    if Version(keras.__version__) < Version("3.7.0"):
        pytest.skip("the bias rewrite behind the bug arrived in Keras 3.7.0")
    path = tmp_path / "cf.keras"
    keras.Sequential([keras.Input((3, 10, 6)),
                      keras.layers.Conv2D(4, 3, data_format="channels_first", name="cf")]
                     ).save(path)
    # the oneDNN-on variant: TF computes channels-first convs there on any x86 CPU
    _needs("tensorflow")
    plain = check_model(path, "tensorflow:onednn-on")
    assert plain.passed, plain.summary()
    (row,) = plain.section()["layers"][0]["results"]
    if row["verdict"] == "pass" and row["known"]:
        assert row["hidden_by_weights"] is True
        assert "does not show with this layer's own weights" in row["message"]
    seeded = check_model(path, "tensorflow:onednn-on", reseed_weights=True)
    assert seeded.passed, seeded.summary()
    (row,) = seeded.section()["layers"][0]["results"]
    assert row["verdict"] == "xfail" and row["known"], row


# --------------------------------------------------------------------------- end to end rules


def test_tolerance_grows_with_weighted_depth() -> None:
    from conv_parity.model.end_to_end import RTOL_PER_LAYER, tolerances

    order = [("a", True), ("relu", False), ("b", True)]
    tol = tolerances(order, {"a": 2.0, "relu": 2.0, "b": 1.0, "output": 1.0})
    assert tol == {"a": 2 * RTOL_PER_LAYER, "relu": 2 * RTOL_PER_LAYER,
                   "b": 2 * RTOL_PER_LAYER, "output": 2 * RTOL_PER_LAYER}


def test_report_end_to_end_table_shows_the_path_to_a_divergence() -> None:
    from conv_parity.report.common import end_to_end_table

    doc = {"model": {"end_to_end": {"results": [
        {"backend": "torch", "verdict": "xfail", "max_abs_err": 1.1, "tolerance": 2.1e-5,
         "first_divergent_layer": "up", "layer_verdict": "xfail", "message": "explained"},
        {"backend": "keras2", "verdict": "skip", "max_abs_err": None, "tolerance": None,
         "first_divergent_layer": None, "message": ""}]}}}
    heads, rows = end_to_end_table(doc)
    assert heads[3] == "first divergent layer"
    assert rows == [["torch", "xfail", "1.1 (tol 2.1e-05)", "up", "xfail", "explained"],
                    ["keras2", "skip", "- (tol -)", "-", "-", "-"]]
    assert end_to_end_table({"model": {"end_to_end": None}}) is None
    assert end_to_end_table({}) is None


def test_compare_names_the_first_divergent_layer_of_the_odd_backend() -> None:
    from conv_parity.model.end_to_end import compare

    rng = np.random.default_rng(0)
    a, b, out = (rng.standard_normal((2, 4)).astype("float32") for _ in range(3))
    good = {"a": a, "b": b, "output": out}
    bad = {"a": a, "b": b + 0.5, "output": out + 0.5}
    found = compare({"x": good, "y": dict(good), "z": bad}, [("a", True), ("b", True)])
    assert found["z"]["diverges"] and found["z"]["first_divergent_layer"] == "b"
    assert found["z"]["max_abs_err"] == pytest.approx(0.5, rel=1e-6)
    assert not found["x"]["diverges"] and found["x"]["first_divergent_layer"] is None
    assert found["x"]["max_abs_err"] == 0.0


@pytest.mark.slow  # 15-70 s on 2 cores: `pytest -m slow` (CI time, issue 25)
@pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs tensorflow")
def test_end_to_end_blames_the_registered_layer(tmp_path: Path) -> None:
    """keras#20375's shape of problem: a channels_first model with non-zero biases. TF's
    registered bias-on-the-wrong-axis bug (c2: 12 filters, W == 12) moves the whole output;
    end to end names c2 as the first divergent layer, xfail with the entry; jax passes."""
    from conv_parity import check_model

    path = tmp_path / "cf.keras"
    keras.Sequential([
        keras.Input((3, 12, 12)),
        keras.layers.Conv2D(4, 3, padding="same", data_format="channels_first", name="c1"),
        keras.layers.Conv2D(12, 3, padding="same", data_format="channels_first", name="c2"),
        keras.layers.Activation("relu", name="act"),
        keras.layers.Conv2D(5, 3, data_format="channels_first", name="c3"),
    ]).save(path)
    # the oneDNN-on variant (any x86 CPU): TF computes NCHW convs there, wrongly
    _needs("tensorflow,jax")
    result = check_model(path, "tensorflow:onednn-on,jax", reseed_weights=True)
    rows = {r["backend"]: r for r in result.end_to_end["results"]}
    assert result.passed, result.summary()
    tf = rows["tensorflow:onednn-on"]
    assert tf["verdict"] == "xfail", tf
    assert tf["first_divergent_layer"] == "c2"
    assert tf["known"] == "tf-bias-add-channels-first-wrong-axis"
    assert tf["max_abs_err"] > 100 * tf["tolerance"]
    assert rows["jax"]["verdict"] == "pass", rows["jax"]


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="needs openvino")
def test_end_to_end_on_openvino_fetches_every_layer_output(model_file: Path) -> None:
    """OpenVINO returns the whole model's outputs from one compiled graph (the openvino
    record's fetch_many); each one is compared under its layer's name with numpy's, so an
    output fetched under the wrong name would diverge."""
    from conv_parity import check_model

    _needs("numpy,openvino")
    result = check_model(model_file, "numpy,openvino", input_shape=(2, 17, 19, 3),
                         layers=["first"], round_trip=False)
    rows = {r["backend"]: r for r in result.end_to_end["results"]}
    assert {b: r["verdict"] for b, r in rows.items()} == {"numpy": "pass", "openvino": "pass"}
    assert rows["openvino"]["max_abs_err"] <= rows["openvino"]["tolerance"]


# --------------------------------------------------------------------------- Keras 2 migration

_KERAS2_MODEL = """
import sys
import tf_keras as k2
m = k2.Sequential([k2.Input((10, 10, 3)), k2.layers.DepthwiseConv2D(3, name="dw"),
                   k2.layers.BatchNormalization(name="bn"),  # axis=[3]: the loader adapts it
                   k2.layers.SeparableConv2D(4, 3, name="sep"),
                   k2.layers.Conv2DTranspose(2, 3, strides=2, name="up"),
                   k2.layers.Conv2D(3, 3, name="conv")])
m.save(sys.argv[1])
"""


def _keras2_file(factory: pytest.TempPathFactory, name: str, script: str) -> Path:
    """A Keras 2 (tf_keras) full-model .h5 written by ``script`` in a subprocess of its own."""
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("needs tf_keras (pip install --no-deps tf-keras)")
    path = factory.mktemp("keras2") / name
    subprocess.run([sys.executable, "-c", script, str(path)], check=True,
                   capture_output=True, timeout=300)
    return path


@pytest.fixture(scope="module")
def keras2_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _keras2_file(tmp_path_factory, "legacy.h5", _KERAS2_MODEL)


def test_keras2_h5_blockers_are_named_and_repaired(keras2_h5: Path) -> None:
    from conv_parity.model.migrate import migrate_h5

    lines: list[str] = []
    model, migration = migrate_h5(keras2_h5, lines.append)
    assert not migration.loads_as_is and migration.keras_version.startswith("2.")
    blocked = {(b.layer, b.key) for b in migration.blockers}
    assert blocked == {("dw", "groups"), ("sep", "groups"), ("up", "groups"),
                       ("sep", "kernel_initializer"), ("sep", "kernel_regularizer"),
                       ("sep", "kernel_constraint")}
    dw = next(b for b in migration.blockers if b.layer == "dw")
    assert dw.message == "Unrecognized keyword arguments passed to DepthwiseConv2D: {'groups': 1}"
    assert all(b.repair for b in migration.blockers)
    # one line per (key, value): groups=1 in three layers is one line, not three
    assert sum(line.startswith("conv-parity: repair: ") for line in lines) == 4
    assert ("conv-parity: repair: groups=1 dropped from 3 layers (DepthwiseConv2D ×1, "
            "SeparableConv2D ×1, Conv2DTranspose ×1: 'dw', 'sep', 'up'): Keras 2 writes") in lines[
        [line.startswith("conv-parity: repair: groups=1") for line in lines].index(True)]
    assert [type(layer).__name__ for layer in model.layers] == [
        "DepthwiseConv2D", "BatchNormalization", "SeparableConv2D", "Conv2DTranspose", "Conv2D"]
    assert migration.to_json()["blocked"] is True


#: Many separable and depthwise convs: the shape of a Keras 2 Xception's 136 blocker lines.
_KERAS2_MANY = """
import sys
import tf_keras as k2
layers = [k2.Input((6, 6, 4))]
layers += [k2.layers.DepthwiseConv2D(3, padding="same", name=f"dw{i}") for i in range(8)]
layers += [k2.layers.SeparableConv2D(4, 3, padding="same", name=f"sep{i}") for i in range(12)]
k2.Sequential(layers).save(sys.argv[1])
"""


@pytest.fixture(scope="module")
def keras2_many_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _keras2_file(tmp_path_factory, "many.h5", _KERAS2_MANY)


def test_keras2_h5_blockers_are_grouped_by_key_and_value(keras2_many_h5: Path) -> None:
    """Issue 24 item 9: 20 layers x their rejected keys are 56 blockers but 4 lines."""
    from conv_parity.model.migrate import migrate_h5

    lines: list[str] = []
    _, migration = migrate_h5(keras2_many_h5, lines.append)
    assert len(migration.blockers) == 20 + 3 * 12
    blocked = [line for line in lines if line.startswith("conv-parity: migration blocker:")]
    repairs = [line for line in lines if line.startswith("conv-parity: repair:")]
    assert len(blocked) == len(repairs) == 4, lines
    assert repairs[0].startswith("conv-parity: repair: groups=1 dropped from 20 layers "
                                 "(DepthwiseConv2D ×8, SeparableConv2D ×12: 'dw0', 'dw1', "
                                 "'dw2', ...): Keras 2 writes groups=1")
    assert blocked[1].endswith("rejects kernel_initializer=GlorotUniform "
                               "in 12 layers (SeparableConv2D ×12: 'sep0', 'sep1', 'sep2', ...)")
    groups = migration.to_json()["groups"]
    assert [(g["key"], len(g["layers"])) for g in groups] == [
        ("groups", 20), ("kernel_initializer", 12), ("kernel_regularizer", 12),
        ("kernel_constraint", 12)]


@pytest.mark.slow  # a jax and a numpy worker (the module's engine)
def test_model_text_groups_blockers_and_verbose_lists_each(keras2_many_h5: Path, engine: Any,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    from conv_parity import check_model
    from conv_parity.cli.model import print_model

    result = check_model(keras2_many_h5, engine=engine, round_trip=False, end_to_end=False)
    print_model(result, 1.0)
    grouped = capsys.readouterr().out
    assert "  groups=1 dropped from 20 layers (DepthwiseConv2D ×8, SeparableConv2D ×12" in grouped
    assert "  (56 blockers in 4 groups; --verbose lists each)" in grouped
    assert "dw5 (DepthwiseConv2D)" not in grouped
    print_model(result, 1.0, verbose=True)
    every = capsys.readouterr().out
    assert sum(" (SeparableConv2D) kernel_constraint=" in line
               for line in every.splitlines()) == 12
    assert "  dw5 (DepthwiseConv2D) groups=1: repaired: key dropped" in every
    assert "--verbose lists each" not in every


def test_keras2_h5_unrepairable_blocker_is_a_usage_error(keras2_h5: Path, tmp_path: Path) -> None:
    """groups=2 on a depthwise conv changes the computation: no repair drops it."""
    import h5py

    from conv_parity.model.migrate import migrate_h5

    path = tmp_path / "grouped.h5"
    path.write_bytes(keras2_h5.read_bytes())
    with h5py.File(path, "r+") as fh:
        config = json.loads(fh.attrs["model_config"])
        config["config"]["layers"][1]["config"]["groups"] = 2
        fh.attrs["model_config"] = json.dumps(config)
    with pytest.raises(UsageError, match=r"no known repair covers: dw \(DepthwiseConv2D\) "
                                         r"groups=2"):
        migrate_h5(path, lambda _line: None)


@pytest.mark.slow  # whole-process CLI / model runs: `pytest -m slow` (CI time, issue 25)
def test_cli_keras2_blocked_exit_1_and_write_repaired(keras2_h5: Path, tmp_path: Path) -> None:
    """Blocked as it is (the keys named), repaired, and then the Keras 3 backends agree with
    Keras 2 itself: the keras2 row runs the original file in tf_keras."""
    out = tmp_path / "repaired.keras"
    proc = _cli(str(keras2_h5), "--backends", CHEAP, "--write-repaired", str(out), "--json")
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["model"]["migration"]["blocked"] is True
    assert len(doc["model"]["migration"]["repairs"]) == 6
    assert {r["verdict"] for r in doc["results"]} == {"pass"}
    rows = {r["backend"]: r for r in doc["model"]["end_to_end"]["results"]}
    assert list(rows) == ["jax", "numpy", "keras2"]
    assert {r["verdict"] for r in rows.values()} == {"pass"}, rows
    assert rows["keras2"]["max_abs_err"] <= rows["keras2"]["tolerance"]
    assert doc["environment"]["backends"]["keras2"]["keras_version"].startswith("2.")
    reloaded = keras.saving.load_model(out, safe_mode=True)
    assert type(reloaded.layers[0]).__name__ == "DepthwiseConv2D"


#: The layer of keras#20375 (its reproducing gist, as the maintainers rewrote it: 4x4 kernel,
#: stride 2, same padding, relu) on a non-square input, where a transposed layout shows.
_KERAS2_20375 = """
import sys
import tf_keras as k2
m = k2.Sequential([k2.Input((20, 14, 3)),
                   k2.layers.Conv2D(8, (4, 4), strides=(2, 2), padding="same",
                                    activation="relu", name="conv"),
                   k2.layers.Conv2D(4, 3, name="head")])
m.save(sys.argv[1])
"""


@pytest.fixture(scope="module")
def keras2_20375_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _keras2_file(tmp_path_factory, "k20375.h5", _KERAS2_20375)


@pytest.mark.slow  # 15-70 s on 2 cores: `pytest -m slow` (CI time, issue 25)
def test_keras2_h5_checks_against_keras2(keras2_20375_h5: Path, engine: Any) -> None:
    """The keras#20375 layer in a Keras 2 file: loads as it is; jax, numpy and Keras 2 agree
    end to end, with the file's weights and with --reseed (Keras 2 then runs the reseeded
    weights, sent to its worker: with the file's own it would diverge). The keras2 worker
    joins the running engine for the end to end only."""
    from conv_parity import check_model

    result = check_model(keras2_20375_h5, engine=engine, round_trip=False)
    assert result.passed, result.summary()
    assert result.migration is not None and result.migration.loads_as_is
    rows = {r["backend"]: r for r in result.end_to_end["results"]}
    assert list(rows) == ["jax", "numpy", "keras2"]
    assert all(r["verdict"] == "pass" and r["max_abs_err"] is not None for r in rows.values())
    assert result.backends == ["jax", "numpy"]  # no layer cases on keras2
    assert result.environment["backends"]["keras2"]["keras_version"].startswith("2.")
    doc = result.to_json()
    from conv_parity.report import validate

    validate(doc)
    assert "weights_round_trips" not in doc["model"]["end_to_end"]  # round_trip=False
    seeded = check_model(keras2_20375_h5, engine=engine, reseed_weights=True, round_trip=False)
    rows = {r["backend"]: r for r in seeded.end_to_end["results"]}
    assert rows["keras2"]["verdict"] == "pass", rows["keras2"]
    assert rows["keras2"]["max_abs_err"] <= rows["keras2"]["tolerance"]


@pytest.mark.slow
def test_keras2_h5_checks_against_keras2_and_every_keras3_backend(
        keras2_20375_h5: Path) -> None:
    """The done-when line: every installed Keras 3 backend and Keras 2, one table."""
    from conv_parity import check_model
    from conv_parity.engine import installed_backends

    result = check_model(keras2_20375_h5, None, round_trip=False)
    assert result.passed, result.summary()
    rows = {r["backend"]: r["verdict"] for r in result.end_to_end["results"]}
    assert rows == {b: "pass" for b in [*installed_backends(), "keras2"]}


def test_keras2_selected_for_a_keras3_file_is_a_usage_error(model_file: Path) -> None:
    if importlib.util.find_spec("tf_keras") is None:
        pytest.skip("needs tf_keras (pip install --no-deps tf-keras)")
    from conv_parity import check_model

    with pytest.raises(UsageError, match=r"keras2 runs a Keras 2 model file .*nested\.keras "
                                         r"was not"):
        check_model(model_file, "jax,keras2", input_shape=(2, 17, 19, 3))


# --------------------------------------------------------------------------- round trips


def _transposed_model() -> Any:
    x = keras.Input((5, 5, 2))
    y = keras.layers.Conv2DTranspose(3, 3, strides=2, output_padding=1, name="up")(x)
    return keras.Model(x, keras.layers.Conv2D(2, 1, name="head")(y))


def test_round_trips_hold_on_this_keras() -> None:
    from conv_parity.model import round_trip

    model = _transposed_model()
    reseed(model, 0)
    found = extract(model, (2, 5, 5, 2))
    result = round_trip.run(model, [(2, 5, 5, 2)], found)
    from packaging.version import Version

    if Version(keras.__version__) < Version("3.15.0"):  # keras#23014, what the check is for
        assert not result["ok"]
        assert [r["layer"] for r in result["layers"] if not r["ok"]] == ["up"], result
        return
    assert result["ok"], result
    assert [c["check"] for c in result["checks"]] == ["get_config -> from_config",
                                                       ".keras save -> load"]
    assert [r["layer"] for r in result["layers"]] == ["up", "head"]


def test_round_trip_catches_a_key_lost_in_get_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """keras#23014 (Keras < 3.15): a transposed conv's get_config without output_padding."""
    from conv_parity.model import round_trip

    model = _transposed_model()
    reseed(model, 0)
    found = extract(model, (2, 5, 5, 2))
    cls = keras.layers.Conv2DTranspose
    real = cls.get_config

    def lossy(self: Any) -> dict[str, Any]:
        config = real(self)
        config.pop("output_padding", None)
        return config

    monkeypatch.setattr(cls, "get_config", lossy)
    result = round_trip.run(model, [(2, 5, 5, 2)], found)
    assert not result["ok"]
    (up,) = [r for r in result["layers"] if not r["ok"]]
    assert up["layer"] == "up" and up["problem"] == "output_padding: [1, 1] before, None after"
    saved = {c["check"]: c for c in result["checks"]}[".keras save -> load"]
    assert saved["problem"] == ("output shape (2, 11, 11, 2) after the round trip != "
                                "(2, 12, 12, 2) before")


# --------------------------------------------------------------------------- real refusals, old releases


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_a_model_keras_refuses_on_a_backend_is_unsupported_there() -> None:
    """keras.applications.NASNetMobile refuses the torch backend ("not available with the
    torch backend at this time due to an outstanding bug"): its end-to-end row is
    ``unsupported`` with Keras's message, and numpy still runs the model (slow: 500+ layers)."""
    from conv_parity import check_model

    _needs("numpy,torch")
    result = check_model("keras.applications.NASNetMobile", "numpy,torch",
                         input_shape=(1, 32, 32, 3), layers=["stem_conv1"], round_trip=False)
    rows = {r["backend"]: r for r in result.end_to_end["results"]}
    assert rows["torch"]["verdict"] == "unsupported", rows["torch"]
    assert "NASNetMobile is not available with the torch backend" in rows["torch"]["message"]
    assert rows["numpy"]["verdict"] == "pass" and "only backend" in rows["numpy"]["message"]
    assert result.passed, result.summary()  # unsupported is not a discrepancy


#: A Keras release with a registered torch transposed-conv bug (wrong values, right shape:
#: torch-conv-transpose-same-odd-crop-before-3.15), unpacked where the release spread keeps it.
OLD_KERAS = Path(os.environ.get("CONV_PARITY_OLD_KERAS", "/work/oldkeras/spread")) / "3.14.1"

_OLD_MODEL = """
import sys
import keras
m = keras.Sequential([keras.Input((9, 10, 3)),
                      keras.layers.Conv2D(4, 3, padding="same", name="pre"),
                      keras.layers.Conv2DTranspose(8, (3, 5), strides=2, padding="same",
                                                   name="up"),
                      keras.layers.Activation("relu", name="act"),
                      keras.layers.Conv2D(2, 3, name="head")])
m.save(sys.argv[1])
"""


@pytest.mark.slow
@pytest.mark.skipif(not OLD_KERAS.is_dir(), reason=f"needs Keras 3.14.1 unpacked in {OLD_KERAS} "
                                                   "(or set CONV_PARITY_OLD_KERAS)")
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_old_keras_transposed_conv_bug_is_the_first_divergent_layer(tmp_path: Path) -> None:
    """The done-when demo: on Keras 3.14.1 the whole model diverges on torch, and the first
    divergent layer named is the transposed conv, xfail with the registered entry."""
    env = {k: v for k, v in os.environ.items() if k != "CONV_PARITY_DEBUG"}
    env["PYTHONPATH"] = os.pathsep.join([str(OLD_KERAS), *filter(None, [env.get("PYTHONPATH")])])
    env["KERAS_BACKEND"] = "jax"
    path = tmp_path / "up.keras"
    subprocess.run([sys.executable, "-c", _OLD_MODEL, str(path)], check=True, env=env,
                   capture_output=True, timeout=300)
    proc = subprocess.run([sys.executable, "-m", "conv_parity.cli", "model", str(path),
                           "--backends", "jax,numpy,torch", "--reseed", "--json"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr  # a known discrepancy is not a new one
    doc = json.loads(proc.stdout)
    assert doc["environment"]["keras"] == "3.14.1"
    rows = {r["backend"]: r for r in doc["model"]["end_to_end"]["results"]}
    torch_row = rows["torch"]
    assert torch_row["first_divergent_layer"] == "up", torch_row
    assert torch_row["verdict"] == "xfail"
    assert torch_row["known"] == "torch-conv-transpose-same-odd-crop-before-3.15"
    assert torch_row["max_abs_err"] > 10 * torch_row["tolerance"]
    assert rows["jax"]["verdict"] == rows["numpy"]["verdict"] == "pass"
    up = next(r for r in doc["model"]["layers"] if r["name"] == "up")
    assert {r["backend"]: r["verdict"] for r in up["results"]} == {
        "jax": "pass", "numpy": "pass", "torch": "xfail"}
