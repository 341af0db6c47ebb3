"""The catalogue of test-only mutants: each bug class by name, the modes that alone can see it,
and the diagnosis codes that name it. Data, apart from the injector (:mod:`conv_parity.mutations`,
which runs in a worker), so that the backend records can name mutant targets without importing
worker code.
"""

from __future__ import annotations

#: name -> what the injected bug does.
MUTATIONS: dict[str, str] = {
    "shift-h": "output shifted by one pixel along H (rolled; 2D/3D only)",
    "shift-w": "output shifted by one pixel along W (the last spatial axis; rolled)",
    "padding-flipped": "odd 'same' padding split the other way (extra at top/left)",
    "bias-missing": "bias not added",
    "bias-wrong-axis": "bias added along another axis of the same size as the channels",
    "groups-ignored": "groups ignored: every filter group reads the first channel group",
    "dilation-ignored": "dilation_rate ignored (computed with dilation 1)",
    "output-padding-ignored": "output_padding ignored (computed with output_padding=None)",
    "hw-swapped": "H and W axes of the output swapped",
    "kernel-flipped": "kernel flipped along its spatial axes",
    "channels-first-only": "output shifted by one pixel along W, only when channels_first",
    "batch-gt1-only": "batch items of the output rotated by one, only when batch > 1",
    "grad-kernel-scaled": "backward only: the kernel gradient 0.1% too large (forward untouched)",
    "traced-only": "compiled only: conv/pool outputs 0.1% too large while staged for "
                   "compilation (jax.jit, tf.function, torch.compile), right eagerly",
}

#: Mutants that only some modes can see: name -> those modes (the rest must pass).
MODE_ONLY: dict[str, frozenset[str]] = {
    "grad-kernel-scaled": frozenset({"grad"}),
    "traced-only": frozenset({"predict", "jit"}),
}

#: The diagnosis codes that correctly name each mutant (used by the mutation test).
EXPECTED_DIAGNOSIS: dict[str, frozenset[str]] = {
    "shift-h": frozenset({"shifted-h"}),
    "shift-w": frozenset({"shifted-w"}),
    "padding-flipped": frozenset({"padding-flipped"}),
    "bias-missing": frozenset({"bias-missing"}),
    "bias-wrong-axis": frozenset({"bias-wrong-axis"}),
    "groups-ignored": frozenset({"groups-ignored"}),
    "dilation-ignored": frozenset({"dilation-ignored"}),
    "output-padding-ignored": frozenset({"output-padding-ignored"}),
    "hw-swapped": frozenset({"hw-swapped"}),
    "kernel-flipped": frozenset({"kernel-flipped"}),
    "channels-first-only": frozenset({"shifted-w"}),
    "batch-gt1-only": frozenset({"batch-permuted"}),
    # The gradient diagnosis names it (gradient_diagnosis: the kernel gradient times 1.001).
    "grad-kernel-scaled": frozenset({"grad-scaled"}),
    # No reinterpretation explains this one; the modes that fail say where the bug is.
    "traced-only": frozenset(),
}


__all__ = ["EXPECTED_DIAGNOSIS", "MODE_ONLY", "MUTATIONS"]
