"""The layer-expression parser and the shape-rule text (in-process: fast, no backend imported)."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

from conv_parity import kinds, reference
from conv_parity.case import ConvCase
from conv_parity.cli import parse as cli_parse
from conv_parity.errors import InvalidConfig, UsageError
from conv_parity.generate import grid


def _keras_src() -> Path:
    spec = importlib.util.find_spec("keras")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "src"


def _module_name(layer: str) -> str:
    """Conv2DTranspose -> conv2d_transpose, MaxPooling2D -> max_pooling2d."""
    snake = re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", layer).lower()
    return snake.replace("_d", "d") if snake.endswith("_d") else snake


def _signature(path: Path, cls_or_fn: str) -> list[str]:
    """Parameter names of a class's __init__ (minus self) or a function, read without importing
    keras (importing it here would pin a backend in the test process)."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls_or_fn:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    return [a.arg for a in item.args.args[1:]]
        if isinstance(node, ast.FunctionDef) and node.name == cls_or_fn:
            return [a.arg for a in node.args.args]
    raise AssertionError(f"{cls_or_fn} not found in {path}")


LAYERS = [n for n in kinds.KINDS if not n.startswith("ops.")]


@pytest.mark.parametrize("layer", LAYERS)
def test_positional_order_matches_the_keras_signature(layer: str) -> None:
    sub = "pooling" if "Pooling" in layer else "convolutional"
    path = _keras_src() / "layers" / sub / f"{_module_name(layer)}.py"
    if not path.exists():
        pytest.skip(f"this Keras has no {path.name}")
    params = _signature(path, layer)
    order = cli_parse.positional_order(layer)
    assert params[: len(order)] == list(order), (layer, params)


@pytest.mark.parametrize("op", [n for n in kinds.KINDS if n.startswith("ops.")])
def test_op_positional_order_matches_keras_ops(op: str) -> None:
    params = _signature(_keras_src() / "ops" / "nn.py", op.split(".", 1)[1])
    arrays, literals = cli_parse._OP_SIGNATURES[op]
    assert params[: len(arrays) + len(literals)] == [*arrays, *literals]


@pytest.mark.parametrize(
    ("expr", "name", "kwargs"),
    [
        ("Conv2D(8, kernel_size=(4, 4), strides=(2, 2), padding='same', use_bias=False)",
         "Conv2D", {"filters": 8, "kernel_size": (4, 4), "strides": (2, 2), "padding": "same",
                    "use_bias": False}),
        ("keras.layers.Conv1D(4, 3, 1, 'causal')", "Conv1D",
         {"filters": 4, "kernel_size": 3, "strides": 1, "padding": "causal"}),
        ("layers.Conv2DTranspose(8, 3, 2, 'same', 1)", "Conv2DTranspose",
         {"filters": 8, "kernel_size": 3, "strides": 2, "padding": "same", "output_padding": 1}),
        ("Conv3DTranspose(8, 3, 2, 'same', 'channels_first', 1)", "Conv3DTranspose",
         {"filters": 8, "kernel_size": 3, "strides": 2, "padding": "same",
          "data_format": "channels_first", "output_padding": 1}),
        ("DepthwiseConv2D(3, 1, 'valid', 2)", "DepthwiseConv2D",
         {"kernel_size": 3, "strides": 1, "padding": "valid", "depth_multiplier": 2}),
        ("SeparableConv1D(4, 3, 1, 'valid', None, 1, 2)", "SeparableConv1D",
         {"filters": 4, "kernel_size": 3, "strides": 1, "padding": "valid", "data_format": None,
          "dilation_rate": 1, "depth_multiplier": 2}),
        ("MaxPool2D((3, 3), 2)", "MaxPooling2D", {"pool_size": (3, 3), "strides": 2}),
        ("tf.keras.layers.AveragePooling1D([2], None, 'same')", "AveragePooling1D",
         {"pool_size": (2,), "strides": None, "padding": "same"}),
        ("Convolution2D(8, 3)", "Conv2D", {"filters": 8, "kernel_size": 3}),
        ("Conv2D(8, 3, activation='relu')(x)", "Conv2D",
         {"filters": 8, "kernel_size": 3, "activation": "relu"}),
        ("keras.ops.conv(x, kernel, 2, 'same', kernel_size=3, filters=8)", "ops.conv",
         {"strides": 2, "padding": "same", "kernel_size": 3, "filters": 8}),
        ("ops.max_pool(x, 2, padding='same')", "ops.max_pool",
         {"pool_size": 2, "padding": "same"}),
    ],
)
def test_parse_accepts_keras_spellings(expr: str, name: str, kwargs: dict,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # positional meanings as of Keras 3.15 (older releases: test_positional_order_follows_...)
    monkeypatch.setattr(cli_parse, "installed_keras_version", lambda: "3.15.1")
    parsed = cli_parse.parse_layer(expr)
    assert parsed.name == name
    assert parsed.kwargs == kwargs


def test_ignored_keywords_are_never_evaluated() -> None:
    parsed = cli_parse.parse_layer(
        "Conv2D(8, 3, kernel_initializer=__import__('os').system('false'), name='c1', "
        "kernel_regularizer=regularizers.l2(1e-4), dtype='float64')")
    assert parsed.kwargs == {"filters": 8, "kernel_size": 3}
    assert parsed.ignored == ["kernel_initializer", "name", "kernel_regularizer"]
    assert parsed.dtype == "float64"


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("Conv2D(", "never closed"),
        ("__import__('os')", "not a convolution or pooling layer"),
        ("Dense(3)", "Dense is not a convolution or pooling layer"),
        ("Conv2d(2, 3)", "Conv2d is not a convolution or pooling layer conv-parity covers "
                         "(did you mean 'Conv2D'?)"),
        ("keras.ops.max_pol(x, 2)", "(did you mean 'max_pool'?)"),
        ("Dense(3)", "GlobalAveragePooling{1,2,3}D"),
        ("Conv2D(8, 3, foo=1)", "does not take 'foo'"),
        ("Conv2D(8, 3, strides=-1)", "strides must be a positive int"),
        ("Conv2D(8, 3, strides=(2, 0))", "strides must be a positive int"),
        ("Conv2D(8, kernel_size=k)", "must be a literal"),
        ("Conv2D(8, 3, padding=1)", "padding must be one of"),
        ("Conv2D(8, 3, use_bias='no')", "use_bias must be True or False"),
        ("Conv2D(8.5, 3)", "filters must not be a float"),
        ("Conv2D(-8, 3)", "filters must be a positive int"),
        ("Conv2D(8, (3, 3, 3))", "tuple of 2 ints"),
        ("Conv2D(8, 3, filters=4)", "multiple values for 'filters'"),
        ("Conv2D(*args)", "*args"),
        ("Conv2D(**kw)", "**kwargs"),
        ("os.system('rm -rf /')", "not a Keras layer"),
        ("Conv2D", "not a call"),
        ("1 + 2", "must be one call"),
        ("", "empty"),
        ("Conv2D(8, 3, dtype='int4')", "dtype must be a dtype policy, one of"),
        ("ops.conv(x, k, strides=2)", "kernel_size=..., filters=..."),
        ("Conv2D(8, 3, 1, 'same', None, 1, 1, None, True, 5)", "at most 9 positional"),
    ],
)
def test_parse_rejects_with_one_line_and_an_example(expr: str, needle: str) -> None:
    with pytest.raises(UsageError) as info:
        cli_parse.parse_layer(expr)
    message = str(info.value)
    assert needle in message
    assert "\n" not in message
    assert "e.g. conv-parity check" in message


def test_input_shape_parsing() -> None:
    assert cli_parse.parse_input_shape("1,28,28,3") == (1, 28, 28, 3)
    assert cli_parse.parse_input_shape("(1, 28, 28, 3)") == (1, 28, 28, 3)
    assert cli_parse.parse_input_shape("1x28x28x3") == (1, 28, 28, 3)
    for bad in ("", "1,a,3", "1,-2,3", "1.5,2,3"):
        with pytest.raises(UsageError):
            cli_parse.parse_input_shape(bad)


def test_input_rank_is_checked_against_the_layer_and_data_format() -> None:
    parsed = cli_parse.parse_layer("Conv2D(8, 3, data_format='channels_first')")
    with pytest.raises(UsageError, match=r"rank 4 \(batch, channels, H, W\)"):
        cli_parse.check_input_shape(parsed, (1, 28, 28))
    assert cli_parse.check_input_shape(parsed, (1, 3, 28, 28)) == []
    notes = cli_parse.check_input_shape(cli_parse.parse_layer("Conv2D(8, 3)"), (1, 3, 28, 28))
    assert notes and "looks like channels_first" in notes[0]
    with pytest.raises(UsageError, match="rank 3, 4 or 5"):
        cli_parse.check_input_shape(cli_parse.parse_layer(
            "ops.conv(x, k, kernel_size=3, filters=2)"), (1, 2, 3, 4, 5, 6))


def test_rule_text_for_the_readme_example() -> None:
    case = ConvCase.make("Conv2D", {"filters": 8, "kernel_size": 4, "strides": 2,
                                    "padding": "same"}, (1, 28, 28, 3))
    rule = cli_parse.shape_rule(case.layer, case.kwargs, case.input_shape)
    assert rule == "same: ceil(28 / 2) = 14 per spatial axis; channels = filters = 8"


@pytest.mark.parametrize("profile", ["default"])
def test_rule_agrees_with_the_reference_on_the_grid(profile: str) -> None:
    """The rule text explains the reference's number on every valid grid case."""
    checked = 0
    for case in grid.cases(profile):
        try:
            expected = reference.output_shape(case.layer, case.input_shape, **case.kwargs)
        except InvalidConfig:
            continue
        got = cli_parse.shape_from_rule(case.layer, case.kwargs, case.input_shape)
        assert got == tuple(expected), case.id
        assert cli_parse.shape_rule(case.layer, case.kwargs, case.input_shape)
        checked += 1
    assert checked > 50


@pytest.mark.parametrize("name", sorted(kinds.KINDS))
def test_every_example_is_itself_valid(name: str) -> None:
    """The example shown with an error must be a command that works."""
    example = cli_parse.example_for(name)
    expr = example.split('"')[1]
    shape = cli_parse.parse_input_shape(example.rsplit(" ", 1)[1])
    parsed = cli_parse.parse_layer(expr)
    assert parsed.name == name
    cli_parse.check_input_shape(parsed, shape)
    case = ConvCase.make(parsed.name, parsed.kwargs, shape)
    reference.output_shape(case.layer, case.input_shape, **case.kwargs)


@pytest.mark.parametrize(("layer", "version", "fifth", "sixth"), [
    ("Conv2DTranspose", "3.1.0", "data_format", "dilation_rate"),
    ("Conv1DTranspose", "3.10.0", "data_format", "dilation_rate"),
    ("Conv2DTranspose", "3.11.0", "output_padding", "data_format"),
    ("Conv3DTranspose", "3.11.0", "data_format", "output_padding"),
    ("Conv3DTranspose", "3.16.0.dev2026102704", "data_format", "output_padding"),
    ("Conv2D", "3.1.0", "data_format", "dilation_rate"),
])
def test_positional_order_follows_the_keras_release(layer, version, fifth, sixth) -> None:
    """Keras 3.11 added output_padding to the transposed layers' signatures (before, it was
    keyword-only): a positional argument must mean what it means to the installed Keras."""
    assert cli_parse.positional_order(layer, version)[4:6] == (fifth, sixth)


PASTED = ("Conv2D(name='conv2d', trainable=True, dtype={'module': 'keras', 'class_name': "
          "'DTypePolicy', 'config': {'name': 'float32'}, 'registered_name': None}, filters=8, "
          "kernel_size=(3, 3), strides=(1, 1), padding='valid', data_format='channels_last', "
          "dilation_rate=(1, 1), groups=1, activation='silu', use_bias=True, kernel_initializer="
          "{'module': 'keras.initializers', 'class_name': 'GlorotUniform', 'config': {'seed': "
          "None}, 'registered_name': None}, bias_initializer={'module': 'keras.initializers', "
          "'class_name': 'Zeros', 'config': {}, 'registered_name': None}, kernel_regularizer=None, "
          "bias_regularizer=None, activity_regularizer=None, kernel_constraint=None, "
          "bias_constraint=None)")


def test_a_pasted_get_config_just_works() -> None:
    parsed = cli_parse.parse_layer(PASTED)
    assert parsed.name == "Conv2D" and parsed.dtype == "float32"
    assert parsed.kwargs["activation"] == "silu" and parsed.kwargs["filters"] == 8
    assert "kernel_initializer" in parsed.ignored


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16", "bfloat16"])
def test_a_pasted_dtype_policy_dict_gives_its_policy(policy: str) -> None:
    """Issue 16: a pasted DTypePolicy dict, mixed ones included, is accepted as its policy."""
    parsed = cli_parse.parse_layer("Conv2D(8, 3, dtype={'module': 'keras', 'class_name': "
                                   f"'DTypePolicy', 'config': {{'name': '{policy}'}}, "
                                   "'registered_name': None})")
    assert parsed.dtype == policy
    assert cli_parse.parse_layer(f"Conv2D(8, 3, dtype='{policy}')").dtype == policy
