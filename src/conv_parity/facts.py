"""Platform facts: the effective settings that select a backend's kernels, probed in its worker.

A verdict is a function of (case, Keras release, library versions, facts): TensorFlow turns
oneDNN on by default on CPUs with AVX512_VNNI / AVX512_BF16 / AMX (and then computes and fails
differently), torch picks its CPU kernels by ISA and by ``torch.backends.mkldnn``, OpenVINO's
CPU plugin defaults to bf16 inference on AMX CPUs. So each worker reports what is *in force*,
not only the environment variables, and the registry scopes entries by these values.

Facts are a flat mapping of dotted names to JSON scalars (or lists of strings), e.g.
``{"cpu.amx": True, "tensorflow.onednn": False}``. Each target's record
(:class:`conv_parity.backends.BackendSpec`) names its probes and its identity function from
here; :func:`cpu` runs for every target; a probe that fails records ``"<name>.error"`` and never
makes a backend unavailable. Probes import their library lazily: they run in the worker, after
Keras (and so the library) is imported.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

Facts = dict[str, Any]

#: CPU flags (as /proc/cpuinfo names them) that make backends pick other kernels.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
             "amx_tile", "amx_bf16", "amx_int8", "avx_vnni", "asimd", "sve")


@functools.lru_cache(maxsize=1)
def cpu() -> Facts:
    """CPU model and the ISA features that select kernels (cheap: parsed from /proc/cpuinfo;
    the parent calls it too)."""
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and value.strip():
                model = value.strip()
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    isa = [f for f in ISA_FLAGS if f in flags]
    return {
        "cpu.model": model,
        "cpu.machine": platform.machine(),
        "cpu.count": os.cpu_count(),
        "cpu.isa": isa,
        "cpu.avx512": "avx512f" in flags,
        "cpu.avx512_vnni": "avx512_vnni" in flags,
        "cpu.amx": "amx_tile" in flags,
    }


def tensorflow_facts() -> Facts:
    import tensorflow as tf
    from tensorflow.python.util import _pywrap_util_port

    return {
        # What TF decided at start-up (env var, and CPU features when the var is unset).
        "tensorflow.onednn": bool(_pywrap_util_port.IsMklEnabled()),
        "tensorflow.onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
        "tensorflow.intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tensorflow.tf32": bool(tf.config.experimental.tensor_float_32_execution_enabled()),
        "tensorflow.onednn_dtypes": _onednn_dtypes(tf) if _pywrap_util_port.IsMklEnabled()
        else [],
    }


def _onednn_dtypes(tf: Any) -> list[str]:
    """The dtypes oneDNN's conv kernels serve in this TF on this CPU, seen by what they do.

    Why probe: a oneDNN build hands a conv to oneDNN only for the dtypes oneDNN supports on
    the CPU (never float64; float16 and bfloat16 only with the ISA for them), and the rest to
    TF's own kernels, which fail differently (no NCHW, no dilated 3D backprop, ...). oneDNN's
    conv returns an empty batch's *input* unchanged (its known passthrough, see
    :func:`conv_parity.bug_models.tf_onednn_passthrough`), TF's returns the right shape: one
    empty conv per dtype tells which kernel ran, on any CPU.
    """
    served = []
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        with contextlib.suppress(Exception):
            y = tf.nn.conv2d(tf.zeros((0, 3, 3, 1), dtype), tf.ones((2, 2, 1, 2), dtype), 1,
                             "VALID")
            if tuple(y.shape) == (0, 3, 3, 1):
                served.append(dtype)
    return served


def for_dtype(facts: Mapping[str, Any] | None, dtype: str) -> Mapping[str, Any] | None:
    """The facts in force for a case computed in ``dtype``: on a oneDNN build,
    ``tensorflow.onednn`` is true only for the dtypes oneDNN serves
    (``tensorflow.onednn_dtypes``), because the others run TF's own kernels, exactly as with
    oneDNN off. ``for_dtype({"tensorflow.onednn": True, "tensorflow.onednn_dtypes":
    ["float32"]}, "float64")["tensorflow.onednn"] is False``."""
    if not facts or not facts.get("tensorflow.onednn") or "tensorflow.onednn_dtypes" not in facts:
        return facts
    return {**facts, "tensorflow.onednn": dtype in facts["tensorflow.onednn_dtypes"]}


def torch_facts() -> Facts:
    import torch

    facts: Facts = {
        "torch.mkldnn": bool(torch.backends.mkldnn.is_available()
                             and torch.backends.mkldnn.enabled),
        "torch.num_threads": torch.get_num_threads(),
        "torch.float32_matmul_precision": torch.get_float32_matmul_precision(),
    }
    with contextlib.suppress(Exception):
        facts["torch.cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
    return facts


def jax_facts() -> Facts:
    import jax

    return {
        "jax.platform": jax.devices()[0].platform,
        "jax.x64": bool(jax.config.jax_enable_x64),  # type: ignore[attr-defined]
        "jax.default_matmul_precision":
            jax.config.jax_default_matmul_precision,  # type: ignore[attr-defined]
        "jax.xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def openvino_facts() -> Facts:
    import openvino as ov

    device = _openvino_device()
    hint = ov.Core().get_property(device, "INFERENCE_PRECISION_HINT")
    # The plugin's default (bf16 on AMX CPUs). Keras's eager path (convert_to_numpy) compiles
    # with an f32 hint; its predict path (trainer.py) compiles with the default.
    return {"openvino.device": device,
            "openvino.inference_precision_default": getattr(hint, "get_type_name", hint.__str__)()}


def _openvino_device() -> str:
    """The OpenVINO device Keras compiles for (no public API asks it: found among the places
    known releases keep it, :mod:`conv_parity.keras_internal`)."""
    from conv_parity.keras_internal import find

    return str(find("get_device", "keras.src.backend.openvino.core",
                    "keras.src.backend.openvino.ops.core")())


def _version(distribution: str) -> str | None:
    from importlib import metadata

    with contextlib.suppress(metadata.PackageNotFoundError):
        return metadata.version(distribution)
    return None


def identity_tensorflow() -> Identity:
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return Identity(tf.__version__, {"tensorflow": tf.__version__},
                    gpus[0].name if gpus else "cpu", {
                        "tf.tensor_float_32_execution_enabled": bool(
                            tf.config.experimental.tensor_float_32_execution_enabled()),
                        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS"),
                        "tf.intra_op_threads":
                            tf.config.threading.get_intra_op_parallelism_threads(),
                    })


def identity_torch() -> Identity:
    import keras
    import torch

    from conv_parity.keras_internal import device_of_new_tensors

    device = device_of_new_tensors(keras)  # public API: where Keras puts a new tensor
    if device.startswith("cuda"):
        device += f" ({torch.cuda.get_device_name()})"
    fp: Facts = {
        "torch.float32_matmul_precision": torch.get_float32_matmul_precision(),
        "torch.backends.cuda.matmul.allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "torch.backends.cudnn.allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "torch.num_threads": torch.get_num_threads(),
    }
    with contextlib.suppress(Exception):
        fp["torch.mkldnn_enabled"] = bool(torch.backends.mkldnn.is_available())
    return Identity(torch.__version__, {"torch": torch.__version__}, device, fp)


def _jax_versions() -> dict[str, str]:
    import jax

    return {"jax": jax.__version__, "jaxlib": _version("jaxlib") or "?"}


def _jax_fp() -> Facts:
    import jax

    # jax's Config declares its flags at run time: the stub knows none of them
    return {"jax_default_matmul_precision":
            jax.config.jax_default_matmul_precision,  # type: ignore[attr-defined]
            "jax_enable_x64": bool(jax.config.jax_enable_x64)}  # type: ignore[attr-defined]


def identity_jax() -> Identity:
    import jax

    dev = jax.devices()[0]
    return Identity(jax.__version__, _jax_versions(),
                    f"{dev.platform}:{getattr(dev, 'device_kind', '')}", _jax_fp())


def identity_numpy() -> Identity:
    import jax
    import numpy as np

    return Identity(f"numpy {np.__version__} (convs via jax {jax.__version__})",
                    _jax_versions(), "cpu", _jax_fp())


def identity_openvino() -> Identity:
    import openvino as ov

    device = _openvino_device()
    fp: Facts = {"convert_to_numpy INFERENCE_PRECISION_HINT": "f32 (set by keras)"}
    with contextlib.suppress(Exception):
        fp["device default INFERENCE_PRECISION_HINT"] = str(
            ov.Core().get_property(device, "INFERENCE_PRECISION_HINT"))
    return Identity(ov.__version__, {"openvino": ov.__version__}, device, fp)


class Identity(NamedTuple):
    """What a worker says it is: its library's version, the versions it reports, its device,
    and the floating-point settings in force (report.json's ``fp_settings``)."""

    backend_version: str
    versions: dict[str, str]
    device: str
    fp_settings: Facts


def collect(probes: Iterable[Callable[[], Facts]]) -> Facts:
    """The CPU's facts and those of a target's probes (``BackendSpec.probes``; call it in the
    worker, after importing Keras)."""
    facts = dict(cpu())
    for probe in probes:
        try:
            facts.update(probe())
        except Exception as exc:  # a probe must never make a backend unavailable
            facts[f"{probe.__name__.removesuffix('_facts')}.error"] = \
                f"{type(exc).__name__}: {exc}"
    return facts


def describe(facts: dict[str, Any], keys: tuple[str, ...] | None = None) -> str:
    """A one-line summary for tables: ``onednn=on, amx=yes`` style, selected keys only."""
    shown = []
    for key, value in facts.items():
        if keys is not None and key not in keys:
            continue
        if isinstance(value, bool):
            value = "on" if value else "off"
        elif isinstance(value, list):
            value = "+".join(value) or "-"
        shown.append(f"{key.split('.', 1)[-1]}={value}")
    return ", ".join(shown)


#: The facts a table row shows per backend (the rest are in --json and report.json).
HEADLINE = ("tensorflow.onednn", "torch.mkldnn", "torch.cpu_capability",
            "openvino.inference_precision_default", "jax.x64")
