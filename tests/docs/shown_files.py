"""The files the README's and the docs' commands name, built fresh for the command runner.

The pages show commands on the user's files (``my_model.keras``, ``legacy.h5`` ...). These
builders make files that fit what the pages say about them, each in a subprocess of its own
(Keras picks its backend once per process; tf_keras is Keras 2). Seeded: the same bytes' worth
of weights on every run, so shown outputs can be compared.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# README: "three channels-first Conv2Ds, c1 3->4, c2 4->12, c3 12->12 channels, on 12x12 inputs",
# with seeded non-zero weights and biases (a zero bias hides the bias bugs the pages show).
_KERAS3 = """
import os, sys
os.environ.setdefault("KERAS_BACKEND", "jax")
from pathlib import Path
import numpy as np
import keras

out = Path(sys.argv[1])
rng = np.random.default_rng(0)


def seeded(model):
    for layer in model.layers:
        layer.set_weights([rng.standard_normal(w.shape).astype("float32")
                           for w in layer.get_weights()])
    return model


cf = dict(padding="same", data_format="channels_first")
x = keras.Input((3, 12, 12))
h = keras.layers.Conv2D(4, 3, name="c1", **cf)(x)
h = keras.layers.Conv2D(12, 3, name="c2", **cf)(h)
y = keras.layers.Conv2D(12, 3, name="c3", **cf)(h)
seeded(keras.Model(x, y)).save(out / "my_model.keras")
np.save(out / "batch.npy", rng.standard_normal((2, 3, 12, 12)).astype("float32"))

# segmenter.keras: an encoder and a `decoder` submodel (the pages select 'decoder/*').
x = keras.Input((256, 256, 3))
enc = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="down1")(x)
enc = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="down2")(enc)
d_in = keras.Input((64, 64, 8))
d = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", name="up1")(d_in)
d = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same", name="up2")(d)
decoder = keras.Model(d_in, d, name="decoder")
segmenter = keras.Model(x, decoder(enc), name="segmenter")
for part in (segmenter, decoder):
    seeded(part)
(out / "models").mkdir(exist_ok=True)
segmenter.save(out / "segmenter.keras")
segmenter.save(out / "models" / "segmenter.keras")

# model.weights.h5 and my_package.models:build_model (the --builder example).
pkg = out / "my_package"
pkg.mkdir(exist_ok=True)
(pkg / "__init__.py").write_text("")
(pkg / "models.py").write_text(
    "import keras\\n\\n\\n"
    "def build_model():\\n"
    "    x = keras.Input((16, 16, 3))\\n"
    "    h = keras.layers.Conv2D(4, 3, strides=2, padding='same', name='conv')(x)\\n"
    "    h = keras.layers.DepthwiseConv2D(3, name='dw')(h)\\n"
    "    return keras.Model(x, keras.layers.MaxPooling2D(name='pool')(h))\\n")
sys.path.insert(0, str(out))
from my_package.models import build_model
seeded(build_model()).save_weights(out / "model.weights.h5")
"""

# docs/checking-a-model.md: the keras#20375 layer, then DepthwiseConv2D(3, padding="same"),
# SeparableConv2D(8, 3) and Conv2DTranspose(4, 3, strides=2), saved by tf_keras, input 20x14x3.
_KERAS2 = """
import sys
from pathlib import Path
import tf_keras as k2

out = Path(sys.argv[1])
k2.utils.set_random_seed(0)
m = k2.Sequential([
    k2.Input((20, 14, 3)),
    k2.layers.Conv2D(8, (4, 4), strides=2, padding="same", activation="relu", name="conv"),
    k2.layers.DepthwiseConv2D(3, padding="same", name="dw"),
    k2.layers.SeparableConv2D(8, 3, name="sep"),
    k2.layers.Conv2DTranspose(4, 3, strides=2, name="up"),
])
for name in ("legacy.h5", "legacy_model.h5"):
    m.save(out / name)
"""


def build_all(folder: Path) -> None:
    """Every file the shown commands name, in ``folder`` (the commands' working directory)."""
    for script in (_KERAS3, _KERAS2):
        proc = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True,
                              text=True, timeout=600, check=False)
        if proc.returncode:
            raise RuntimeError(f"building the shown files failed:\n{proc.stderr[-3000:]}")
