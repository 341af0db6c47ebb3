"""Every runnable target, one frozen record each, looked up by name.

A *target* is what one worker process runs: a Keras backend (``tensorflow``, ``torch``, ``jax``,
``numpy``, ``openvino``, named as Keras names them), or a *variant* of one, started under one
setting that selects other kernels (``tensorflow:onednn-off``: the same backend with
``TF_ENABLE_ONEDNN_OPTS=0``), or a test-only mutant (``jax:mutant-shift_h``, see
:mod:`conv_parity.mutations`), or ``keras2``: Keras 2 itself (tf_keras), which serves whole
models only (a Keras 2 file run as Keras 2 runs it, the row ``conv-parity model`` adds for a
Keras 2 ``.h5``); it takes no layer cases, since a case is a Keras 3 layer call. A record holds every fact callers would otherwise switch on: the
Keras backend, the modules it needs, the distribution whose version is the backend's, the
environment set before Keras is imported and the settings applied just after.

Selections (``--backends``, ``--conv-backends``) are comma-separated names and patterns:
``all`` is every installed default backend, ``tensorflow:*`` every installed variant of one
backend; patterns match installed targets only, a literal name must be installed.

Why variants exist: TensorFlow turns oneDNN on by default on CPUs with AVX512_VNNI / AVX512_BF16
/ AMX and off on older ones, and then computes (and fails) differently; a verdict must not
depend on which machine ran it, so one run can hold both settings, each its own worker and row.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from conv_parity import facts
from conv_parity.errors import UsageError
from conv_parity.mutants import MUTATIONS

#: The gate of the test-only mutant targets (the worker honours a mutation only when it is "1").
MUTATION_GATE = "CONV_PARITY_ENABLE_MUTATIONS"
_MUTANT_PREFIX = "mutant-"


def _torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    torch.set_num_interop_threads(1)


def _tf_threads(n: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(n)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _torch_mkldnn_off() -> None:
    import torch

    torch.backends.mkldnn.enabled = False  # type: ignore[assignment]  # torch's stub: ContextProp


def _openvino_fetch_many(tensors: Sequence[Any]) -> list[Any]:
    """All outputs of one eager OpenVINO call from one compiled model.

    Keras's OpenVINO backend builds eager results lazily, and ``convert_to_numpy`` compiles
    the graph behind each tensor on its own: fetching a whole model's 150 intermediate
    outputs one by one compiled 150 growing graphs, and MobileNetV2 ran past the end-to-end
    timeout. One ``ov.Model`` with every output as a result compiles once, with the same f32
    precision hint ``convert_to_numpy`` asks for (the CPU's default may be bf16).
    """
    import numpy as np
    import openvino as ov

    from conv_parity.keras_internal import find

    where = ("keras.src.backend.openvino.core", "keras.src.backend.openvino.ops.core")
    OpenVINOKerasTensor = find("OpenVINOKerasTensor", *where)
    get_device = find("get_device", *where)

    lazy = [i for i, t in enumerate(tensors) if isinstance(t, OpenVINOKerasTensor)
            and t.output.get_element_type() != ov.Type.boolean]
    found: list[Any] = list(tensors)
    if lazy:
        model = ov.Model(results=[tensors[i].output for i in lazy], parameters=[])
        compiled = ov.compile_model(model, get_device(),
                                    config={"INFERENCE_PRECISION_HINT": "f32"})
        values = compiled({})
        for k, i in enumerate(lazy):
            found[i] = np.array(values[k])
    import keras

    return [keras.ops.convert_to_numpy(t) if i not in lazy else t
            for i, t in enumerate(found)]


@dataclass(frozen=True)
class BackendSpec:
    """One runnable target. ``env`` is applied before Keras is imported, ``after_import`` right
    after (settings that have no environment variable, e.g. ``torch.backends.mkldnn``)."""

    name: str
    keras_backend: str
    modules: tuple[str, ...]
    library: str
    summary: str
    env: tuple[tuple[str, str], ...] = ()
    after_import: Callable[[], None] | None = field(default=None, compare=False)
    after_import_source: str = ""  # the same setting as code, for repro scripts
    limit_threads: Callable[[int], None] | None = field(default=None, compare=False)
    #: How its worker describes itself (versions, device, fp settings) and its fact probes
    #: (conv_parity.facts); both run in the worker, after Keras is imported.
    identity: Callable[[], facts.Identity] | None = field(default=None, compare=False)
    probes: tuple[Callable[[], facts.Facts], ...] = field(default=(), compare=False)
    #: Tensors of one eager call -> NumPy arrays, all at once (None: one by one with
    #: ``keras.ops.convert_to_numpy``); the end to end fetches a model's every layer output.
    fetch_many: Callable[[Sequence[Any]], list[Any]] | None = field(default=None, compare=False)
    mutation: str | None = None
    #: Selected by ``all`` (the plain backends); variants and mutants are asked for by name.
    default: bool = False
    #: The module the worker imports as Keras (``tf_keras`` for Keras 2).
    keras_module: str = "keras"
    #: Whether it runs layer cases (the engine's batches); False: whole models only.
    cases: bool = True
    #: Which file of a whole-model request it loads: ``"keras"`` (the model saved by Keras 3
    #: here) or ``"source"`` (the user's own file, as its own Keras wrote it).
    model_file: str = "keras"
    #: The Keras release prefix (``"2."``) of the source files whose end-to-end check it joins
    #: by itself; None: only when selected.
    joins_sources_of: str | None = None

    @property
    def setting(self) -> str | None:
        """The part after the colon (``onednn-off``), None for a plain backend."""
        return self.name.split(":", 1)[1] if ":" in self.name else None

    @property
    def environment(self) -> dict[str, str]:
        return dict(self.env)

    def installed(self) -> bool:
        """Whether the modules it needs can be found (without importing them: cheap)."""
        return all(importlib.util.find_spec(m) is not None for m in self.modules)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "keras_backend": self.keras_backend,
                "setting": self.setting, "env": self.environment,
                "after_import": self.after_import_source or None, "summary": self.summary,
                "keras_module": self.keras_module, "cases": self.cases}


_BASE = (
    BackendSpec("tensorflow", "tensorflow", ("tensorflow",), "tensorflow", "TensorFlow",
                limit_threads=_tf_threads, identity=facts.identity_tensorflow,
                probes=(facts.tensorflow_facts,), default=True),
    BackendSpec("torch", "torch", ("torch",), "torch", "PyTorch", limit_threads=_torch_threads,
                identity=facts.identity_torch, probes=(facts.torch_facts,), default=True),
    BackendSpec("jax", "jax", ("jax",), "jax", "JAX", identity=facts.identity_jax,
                probes=(facts.jax_facts,), default=True),
    # The Keras NumPy backend computes convolutions with jax.lax.
    BackendSpec("numpy", "numpy", ("jax",), "numpy", "NumPy (convolutions via jax.lax)",
                identity=facts.identity_numpy, probes=(facts.jax_facts,), default=True),
    BackendSpec("openvino", "openvino", ("openvino",), "openvino", "OpenVINO (inference only)",
                identity=facts.identity_openvino, probes=(facts.openvino_facts,),
                fetch_many=_openvino_fetch_many, default=True),
)
_BY_NAME = {s.name: s for s in _BASE}

#: Keras 2 (tf_keras, ``pip install --no-deps tf-keras``): TensorFlow underneath, so TF's
#: identity, facts and thread limits apply.
KERAS2 = BackendSpec(
    "keras2", "tensorflow", ("tf_keras", "tensorflow"), "tf_keras",
    "Keras 2 (tf_keras) on TensorFlow: runs a Keras 2 model file whole (conv-parity model); "
    "no layer cases", limit_threads=_tf_threads, identity=facts.identity_tensorflow,
    probes=(facts.tensorflow_facts,), keras_module="tf_keras", cases=False,
    model_file="source", joins_sources_of="2.")


def _variant(base: str, setting: str, summary: str, **changes: Any) -> BackendSpec:
    """``base`` started under one setting: its record with the setting's fields changed."""
    return replace(_BY_NAME[base], name=f"{base}:{setting}", summary=summary, default=False,
                   **changes)


_VARIANTS = (
    _variant("tensorflow", "onednn-on",
             "TensorFlow with oneDNN forced on (TF_ENABLE_ONEDNN_OPTS=1; any x86 CPU)",
             env=(("TF_ENABLE_ONEDNN_OPTS", "1"),)),
    _variant("tensorflow", "onednn-off", "TensorFlow with oneDNN off (TF_ENABLE_ONEDNN_OPTS=0)",
             env=(("TF_ENABLE_ONEDNN_OPTS", "0"),)),
    _variant("torch", "mkldnn-off", "PyTorch with its oneDNN (mkldnn) kernels off",
             after_import=_torch_mkldnn_off,
             after_import_source="import torch\ntorch.backends.mkldnn.enabled = False"),
)

#: Every named target, in display order (mutants are made on demand, see :func:`get`).
SPECS: dict[str, BackendSpec] = {s.name: s for s in (*_BASE, *_VARIANTS, KERAS2)}
#: The Keras backends, named as Keras names them.
KERAS_BACKENDS: tuple[str, ...] = tuple(s.name for s in _BASE)
#: The targets that run layer cases (check, run, fuzz): every named one but ``keras2``.
CASE_TARGETS: tuple[str, ...] = tuple(n for n, s in SPECS.items() if s.cases)


def mutant(base: str, mutation: str) -> BackendSpec:
    """The test-only target that runs ``base`` with ``mutation`` injected (worker-side gate:
    the environment variable :data:`MUTATION_GATE` must be "1" there)."""
    spec = _BY_NAME[get(base).keras_backend]
    return replace(spec, name=f"{spec.keras_backend}:{_MUTANT_PREFIX}{mutation}",
                   summary=f"{spec.summary} with the injected bug {mutation!r} (test only)",
                   default=False, mutation=mutation)


def get(name: str) -> BackendSpec:
    """The record of ``name``; an unknown name is a UsageError that lists the known ones."""
    spec = SPECS.get(name)
    if spec is not None:
        return spec
    base, _, setting = name.partition(":")
    if setting.startswith(_MUTANT_PREFIX) and base in _BY_NAME:
        mutation = setting[len(_MUTANT_PREFIX):]
        if mutation in MUTATIONS:
            return mutant(base, mutation)
        raise UsageError(f"unknown mutant {name!r}; mutations: {', '.join(MUTATIONS)}")
    import difflib

    close = difflib.get_close_matches(name, list(SPECS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UsageError(f"unknown backend {name!r}; {hint}choose from {', '.join(SPECS)} "
                     "(or 'all', or 'BACKEND:*' for every variant of one)")


def keras_backend(name: str) -> str:
    """The Keras backend a target runs (``tensorflow:onednn-off`` -> ``tensorflow``)."""
    return get(name).keras_backend


def variants_of(backend: str) -> list[BackendSpec]:
    """The named variants of a Keras backend (not the plain backend, not mutants, not
    ``keras2``, which runs on TensorFlow but is another Keras)."""
    return [s for s in SPECS.values() if s.name.startswith(f"{backend}:")]


def whole_model_targets(saved_by: str | None) -> list[str]:
    """Installed targets that join the end-to-end check of a file saved by Keras ``saved_by``
    by themselves (``keras2`` for a Keras 2 file): whole_model_targets("2.21.0") == ["keras2"]
    where tf_keras is installed."""
    return [s.name for s in SPECS.values() if s.joins_sources_of and saved_by
            and saved_by.startswith(s.joins_sources_of) and s.installed()]


def installed() -> list[str]:
    """Plain backends whose libraries are installed (found without importing them)."""
    return [s.name for s in _BASE if s.installed()]


def _expand(token: str) -> list[str] | None:
    """A pattern's installed targets, or None when ``token`` is a literal name."""
    if token == "all":
        return installed()
    if token.endswith(":*"):
        base = token[:-2]
        if base not in _BY_NAME:
            raise UsageError(f"unknown backend {base!r} in {token!r}; choose from "
                             f"{', '.join(KERAS_BACKENDS)}")
        return [s.name for s in variants_of(base) if s.installed()]
    return None


def parse(selection: str | Sequence[str] | None) -> tuple[list[str], bool]:
    """(target names, explicit) from a selection.

    None, "" or "all" mean every installed backend (not explicit: one that fails to import is
    skipped). Patterns (``all``, ``BACKEND:*``) match installed targets; a literal name that is
    not installed is a UsageError saying what it needs.
    """
    if selection is None or (isinstance(selection, str) and selection.strip() in ("", "all")) \
            or (not isinstance(selection, str) and not selection):
        return installed(), False
    tokens = [t.strip() for t in selection.split(",")] if isinstance(selection, str) \
        else [str(t).strip() for t in selection]
    names: list[str] = []
    literal = False
    tokens = list(filter(None, tokens))
    for token in tokens:  # an unknown name is the first thing to say, whatever is installed
        if _expand(token) is None:
            get(token)
    for token in tokens:
        expanded = _expand(token)
        if expanded is None:
            literal = True
            spec = get(token)
            if not spec.installed():
                raise UsageError(f"backend not installed here: {token} (needs "
                                 f"{'/'.join(spec.modules)}); see `conv-parity backends`")
            expanded = [token]
        names.extend(expanded)
    return list(dict.fromkeys(names)), literal


def worker_env(name: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a target's worker starts with: ``base`` (default: this process's),
    then the target's own settings, then KERAS_BACKEND."""
    spec = get(name)
    env = dict(os.environ if base is None else base)
    env.update(spec.environment)
    env["KERAS_BACKEND"] = spec.keras_backend
    return env


def ordered(names: Iterable[str]) -> list[str]:
    """Names in display order: known targets as listed in :data:`SPECS`, each plain backend
    followed by its variants, then anything else alphabetically."""
    names = set(names)
    rank = {n: i for i, n in enumerate(
        n for base in KERAS_BACKENDS for n in (base, *(v.name for v in variants_of(base))))}
    known = sorted((n for n in names if n in rank), key=rank.__getitem__)
    rest = sorted(names - set(known), key=lambda n: (n.split(":")[0] not in rank, n))
    return known + rest
