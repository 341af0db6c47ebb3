"""The persistent compilation caches of the backend workers: compile a shape once, not once per
process.

Why: jax (and the NumPy backend, which computes convolutions with jax) compiles every new shape;
in a ``run`` most of jax's worker time went to compiling. jax can keep what it compiled on disk
(``jax_compilation_cache_dir``), so a rerun, and CI after it restores the folder, skips it.
torch.compile's inductor keeps its own cache (``TORCHINDUCTOR_CACHE_DIR``). TensorFlow's XLA has
no CPU cache that is on by default, and OpenVINO compiles eagerly per call: neither is set here.

The folder is ``$CONV_PARITY_COMPILE_CACHE`` (``0``/``off``: no cache), else
``$XDG_CACHE_HOME/conv-parity/compile``, else ``~/.cache/conv-parity/compile``. A variable the
user set already wins. A cache changes nothing a worker computes: an entry is keyed by the
program, the jax/XLA version and the device.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "CONV_PARITY_COMPILE_CACHE"
MAX_BYTES = 2 * 2**30  # jax evicts the least recently used entries above this


def folder(environ: dict[str, str] | None = None) -> Path | None:
    """The cache folder in force (None: caching is off)."""
    env = os.environ if environ is None else environ
    value = env.get(ENV, "").strip()
    if value.lower() in ("0", "off", "false", "no"):
        return None
    if value:
        return Path(value).expanduser()
    base = env.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "conv-parity" / "compile"


def apply(env: dict[str, str]) -> None:
    """Point a worker's environment at the caches (setdefault: the user's own values win)."""
    root = folder(env)
    if root is None:
        return
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(root / "jax"))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")  # every program, even
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")  # small fast ones
    env.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(MAX_BYTES))
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "torchinductor"))
