"""Turn a SOURCE (a model file or ``keras.applications.NAME``) into a Keras model, safely.

Loading happens in the calling process, so this is the one module of the package that imports
Keras for real. When nothing chose a backend yet (``KERAS_BACKEND`` unset), :func:`import_keras`
picks JAX (then numpy, then TensorFlow): loading only builds a symbolic graph and reads weights,
which every backend does the same way, and JAX imports faster than TensorFlow. The numbers are
computed later, by the engine's workers, one per selected backend.

Nothing from a user's file is executed: ``.keras`` files load with ``safe_mode=True`` (Keras
refuses Lambda layers with code in them), and a full-model ``.h5`` is read as JSON first so a
Lambda layer or an unknown class is named and refused before Keras deserialises anything.
Every refusal is a :class:`~conv_parity.errors.UsageError` (the CLI's exit 2, one line).
"""

from __future__ import annotations

import json
import sys
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from conv_parity.errors import UsageError
from conv_parity.model.files import first_line, h5_model_config, import_keras, layer_configs
from conv_parity.model.migrate import Migration, migrate_h5, saved_keras_version

APPLICATIONS_PREFIX = "keras.applications."

#: Layer classes whose config carries Python code; a model holding one is never loaded.
CODE_LAYERS = frozenset({"Lambda", "TFOpLambda", "SlicingOpLambda"})


@dataclass
class Loaded:
    """A model and where it came from. ``built_here`` is True when conv-parity made the model
    (keras.applications with ``weights=None``): its weights are ours to seed."""

    model: Any
    source: str
    kind: str  # "keras", "h5", "weights", "applications", "object"
    built_here: bool
    migration: Migration | None = None  # for a Keras 2 .h5
    #: keras.applications: {"name", "kwargs"} of the builder call, which every backend's
    #: worker repeats, since some builders refuse some backends (NASNetMobile on torch).
    application: dict[str, Any] | None = None
    #: The user's own modules (``--builder``'s): every worker imports them before loading the
    #: model, so custom layers they register are known there too.
    imports: tuple[str, ...] = ()


def load(source: str, input_shape: tuple[int, ...] | None = None,
         say: Callable[[str], None] | None = None, builder: str | None = None,
         imports: Sequence[str] = ()) -> Loaded:
    """The model SOURCE names; UsageError (one line) for anything that is not a loadable model.

    ``input_shape`` (with batch) is passed to keras.applications builders, whose default input
    size would otherwise be used. ``say`` receives the migration's lines (blockers, repairs)
    for a Keras 2 .h5. ``builder`` (``module:function``) builds the model a ``.weights.h5``
    SOURCE holds the weights of. ``imports``: the user's modules (``--import``), imported
    first so that the custom classes they register are known when a ``.keras`` file is
    deserialised (still in safe mode); every worker imports them too.
    """
    loaded = _load_source(source, input_shape, say, builder, tuple(imports))
    loaded.imports = tuple(dict.fromkeys((*loaded.imports, *imports)))
    return loaded


def import_modules(modules: Sequence[str]) -> None:
    """The user's own modules (``--import``), found in the current directory first as
    ``python -m`` does; UsageError naming one that cannot be imported."""
    import importlib

    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise UsageError(f"--import {module}: cannot import it: {type(exc).__name__}: "
                             f"{first_line(exc)}") from None


def _load_source(source: str, input_shape: tuple[int, ...] | None,
                 say: Callable[[str], None] | None, builder: str | None,
                 imports: tuple[str, ...]) -> Loaded:
    if imports:
        import_keras()
        import_modules(imports)
    if source.startswith(APPLICATIONS_PREFIX):
        if builder is not None:
            raise UsageError(f"--builder {builder}: is for a .weights.h5 SOURCE, not {source}")
        return _application(source[len(APPLICATIONS_PREFIX):], input_shape)
    path = Path(source)
    if not path.exists():
        raise UsageError(f"{source}: no such file (give a .keras or .h5 model file, or "
                         f"keras.applications.NAME, e.g. keras.applications.MobileNetV2)")
    if path.is_dir():
        raise UsageError(f"{source}: is a directory, not a model file (.keras or .h5)")
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".weights.h5") else path.suffix
    if suffix == ".weights.h5":
        if builder is None:
            raise UsageError(f"{source}: a .weights.h5 holds weights only, not the model; "
                             f"give the full model (.keras or .h5), or the function that "
                             f"builds it: --builder my_package.models:build_model")
        return Loaded(_build_and_load_weights(path, builder, input_shape), str(path),
                      "weights", built_here=False, imports=(builder.partition(":")[0],))
    if builder is not None:
        raise UsageError(f"--builder {builder}: is for a .weights.h5 SOURCE; {source} holds "
                         f"its model already")
    if suffix == ".keras":
        return Loaded(_load_keras(path), str(path), "keras", built_here=False)
    if suffix in (".h5", ".hdf5"):
        refuse_code(h5_model_config(path), path)
        if (saved_keras_version(path) or "").startswith("2."):
            model, migration = migrate_h5(path, say or (lambda _line: None))
            return Loaded(model, str(path), "h5", built_here=False, migration=migration)
        return Loaded(_load_h5(path), str(path), "h5", built_here=False)
    raise UsageError(f"{source}: unknown model file type {path.suffix or '(none)'!r}; "
                     f"give a .keras or .h5 file, or keras.applications.NAME")


def _application(name: str, input_shape: tuple[int, ...] | None) -> Any:
    keras = import_keras()
    builder = getattr(keras.applications, name, None)
    if not name.isidentifier() or not callable(builder) or name[:1].islower():
        known = sorted(n for n in dir(keras.applications) if n[:1].isupper())
        raise UsageError(f"keras.applications has no model {name!r}; known: {', '.join(known)}")
    kwargs: dict[str, Any] = {"weights": None}
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape[1:])
    try:
        model = builder(**kwargs)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"keras.applications.{name} refuses to build with "
                         f"{kwargs}: {first_line(exc)}") from None
    return Loaded(model, f"{APPLICATIONS_PREFIX}{name}", "applications", built_here=True,
                  application={"name": name, "kwargs": kwargs})


def builder_function(spec: str) -> Callable[[], Any]:
    """The user's ``module:function``, imported (their own code, named by them on the command
    line; never code from a model file). The current directory is searched first, as
    ``python -m`` does, so a module beside the weights file is found."""
    import importlib

    module_name, _, func_name = spec.partition(":")
    if not module_name or not func_name.isidentifier():
        raise UsageError(f"--builder {spec!r}: expected module:function, e.g. "
                         f"--builder my_package.models:build_model")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UsageError(f"--builder {spec}: cannot import {module_name!r}: "
                         f"{type(exc).__name__}: {first_line(exc)}") from None
    func = getattr(module, func_name, None)
    if not callable(func):
        raise UsageError(f"--builder {spec}: module {module_name!r} has no function "
                         f"{func_name!r}")
    return func


def _build_and_load_weights(path: Path, builder: str, input_shape: tuple[int, ...] | None
                            ) -> Any:
    """The builder's model with the weights of ``path`` (a Keras 3 ``.weights.h5``)."""
    func = builder_function(builder)
    keras = import_keras()
    try:
        model = func()
    except Exception as exc:
        raise UsageError(f"--builder {builder}: the function raised {type(exc).__name__}: "
                         f"{first_line(exc)}") from None
    if not isinstance(model, keras.Model):
        raise UsageError(f"--builder {builder}: returned a {type(model).__name__}, not a "
                         f"keras.Model")
    if not model.built:
        if input_shape is None:
            raise UsageError(f"--builder {builder}: the model it returns is not built (no "
                             f"Input); give --input-shape, e.g. --input-shape 2,32,32,3")
        model.build(input_shape)
    try:
        model.load_weights(path)
    except Exception as exc:
        raise UsageError(f"{path}: cannot load these weights into the model --builder "
                         f"{builder} returns: {type(exc).__name__}: {first_line(exc)}"
                         ) from None
    return model


def read_input(path: str) -> np.ndarray:
    """The array of a ``.npy`` file (``--input``), never unpickled: UsageError otherwise."""
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UsageError(f"--input {path}: no such file (give a .npy file saved with "
                         f"numpy.save)") from None
    except (ValueError, OSError, EOFError) as exc:
        raise UsageError(f"--input {path}: not a readable .npy array ({first_line(exc)})"
                         ) from None
    if not isinstance(x, np.ndarray):
        raise UsageError(f"--input {path}: a .npz archive, not one .npy array")
    return x


def _load_keras(path: Path) -> Any:
    import zipfile

    if not zipfile.is_zipfile(path):
        raise UsageError(f"{path}: not a .keras model (a .keras file is a zip archive)")
    with zipfile.ZipFile(path) as archive:
        try:
            config = json.loads(archive.read("config.json"))
        except (KeyError, ValueError):
            raise UsageError(f"{path}: not a .keras model (no readable config.json)") from None
    return _load_refusing_code(path, config, "Keras")


def _load_h5(path: Path) -> Any:
    return _load_refusing_code(path, h5_model_config(path), "Keras {version}")


def _load_refusing_code(path: Path, config: Any, who: str) -> Any:
    """The model file loaded in safe mode once its config was refused any code; Keras's own
    failure as one line naming ``who`` (``{version}``: the installed Keras's), and naming the
    custom classes this process does not know (with the ``--import`` that would teach it)."""
    refuse_code(config, path)
    keras = import_keras()
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:
        raise UsageError(f"{path}: {who.format(version=keras.__version__)} cannot load this "
                         f"model: {type(exc).__name__}: {first_line(exc)}"
                         + unknown_classes_hint(keras, config)) from None


def unknown_classes_hint(keras: Any, config: Any) -> str:
    """"; it uses custom classes ... give --import MODULE" for the registered classes of the
    config that Keras does not know here; empty when there are none."""
    missing: dict[str, str] = {}
    for record in layer_configs(config):
        registered = record.get("registered_name") or ""
        module = str(record.get("module") or "")
        if module.startswith("keras") and ">" not in registered:
            continue
        name = registered or record["class_name"]
        try:
            known = keras.saving.get_registered_object(name) is not None
        except Exception:
            known = False
        if not known:
            missing[name] = module
    if not missing:
        return ""
    modules = sorted({m for m in missing.values() if m})
    return (f"; the model uses custom classes this process does not know: "
            f"{', '.join(sorted(missing))}" + (
                f" (from {', '.join(modules)}): give --import "
                f"{modules[0]}" if modules else ": give --import YOUR_MODULE")
            + " so their registration runs first (the file still loads in safe mode)")


def refuse_code(config: Any, path: Path | str) -> None:
    """UsageError naming the first layer whose config carries code (never loaded, never run)."""
    for record in layer_configs(config):
        if record["class_name"] in CODE_LAYERS:
            name = record["config"].get("name", "?")
            raise UsageError(f"{path}: layer {name!r} is a {record['class_name']} (Python code "
                             f"inside the model file); conv-parity never runs code from a "
                             f"model file, so it cannot load this one. The way through: your "
                             f"own code builds the model; save its weights "
                             f"(model.save_weights('model.weights.h5')) and run conv-parity "
                             f"model model.weights.h5 --builder my_module:build_model (a "
                             f"function of yours, no arguments, returning the model)")


# --------------------------------------------------------------------------- seeded weights


def reseed(model: Any, seed: int = 0) -> None:
    """Give every float variable seeded, non-zero values, biases included.

    Keras initialises biases (and BatchNormalization's beta and moving mean) to zero, and a zero
    bias hides every bias bug (the TF channels_first bias-on-the-wrong-axis one among them), so
    a model built here gets the same kind of weights a trained one has: kernels N(0, 1/fan_in)
    (fan-in per output channel; a depthwise kernel's excludes the channel axis), biases and
    shifts N(0, 0.2^2), scales and variances U(0.5, 1.5) so normalisation stays well
    conditioned. Each variable's stream is seeded from its path, so values do not depend on the
    order variables are visited.
    """
    done: set[int] = set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        depthwise_layer = type(layer).__name__.startswith("DepthwiseConv")
        for var in layer.weights:
            dtype = str(getattr(var, "dtype", ""))
            if id(var) in done or "float" not in dtype:
                continue
            done.add(id(var))
            shape = tuple(int(d) for d in var.shape)
            name = var.path.rsplit("/", 1)[-1]
            rng = np.random.default_rng([seed, zlib.crc32(var.path.encode())])
            if name in ("gamma", "moving_variance", "variance", "scale"):
                value = rng.uniform(0.5, 1.5, shape)
            elif len(shape) >= 2:
                depthwise = depthwise_layer or name == "depthwise_kernel"
                fan = shape[:-2] if depthwise else shape[:-1]
                value = rng.standard_normal(shape) / np.sqrt(max(1, int(np.prod(fan))))
            else:
                value = 0.2 * rng.standard_normal(shape)
            var.assign(value.astype(dtype))
