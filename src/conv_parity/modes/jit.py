"""The jit mode: ``model.compile(jit_compile=True)`` then ``model.predict``: XLA on TensorFlow,
``jax.jit`` on JAX, ``torch.compile`` (inductor) on torch. One output, ``y``.

NumPy and OpenVINO have no jit compilation: skipped. torch.compile's inductor backend writes
and builds C++ at run time, so without a C compiler on the machine torch is skipped too, with
that reason (checked in the parent: the workers run on the same machine).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conv_parity.modes._compiled import Compiled

if TYPE_CHECKING:
    from conv_parity.backends import BackendSpec

NO_JIT = "no jit compilation on this backend"


def _torch_compiler() -> str | None:
    if shutil.which("cc") or shutil.which("gcc") or shutil.which("clang"):
        return None
    return "torch.compile (inductor) needs a C compiler, and this machine has none"


#: Keras backend -> why it cannot jit here (None: it can); a backend not here has no jit.
_JIT: dict[str, Callable[[], str | None]] = {
    "tensorflow": lambda: None,
    "jax": lambda: None,
    "torch": _torch_compiler,
}


class Jit(Compiled):
    """``model.predict`` after ``model.compile(jit_compile=True)``."""

    name = "jit"
    outputs = ("y",)
    jit_compile = True
    _limits_lifted = False

    def skip_reason(self, spec: BackendSpec) -> str | None:
        check = _JIT.get(spec.keras_backend)
        return NO_JIT if check is None else check()

    def _compile(self, model: Any) -> None:
        """As Compiled's, after lifting torch.compile's recompile limits once per worker.

        Why: Keras's torch trainer compiles one nested ``one_step_on_data`` per model, and
        every model shares its code object; dynamo allows 8 recompiles per code object (256
        in all) and then silently runs the function eagerly. A worker that had built 8 jit
        models checked torch eager under the name jit, and whether a case raised (torch's
        eager avg_pool3d has no float16 kernel; inductor's does) depended on the cases before.
        """
        import keras

        if keras.backend.backend() == "torch" and not self._limits_lifted:
            import torch._dynamo.config as dynamo

            for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                         "accumulated_cache_size_limit"):
                if hasattr(dynamo, name):
                    setattr(dynamo, name, 1 << 20)
            self._limits_lifted = True
        super()._compile(model)


__all__ = ["NO_JIT", "Jit"]
