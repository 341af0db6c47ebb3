"""The backend registry: one record per runnable target, selections, unknown names."""

from __future__ import annotations

import pytest

from conv_parity import backends as targets
from conv_parity.errors import UsageError


def test_every_keras_backend_and_the_variants_are_records() -> None:
    assert targets.KERAS_BACKENDS == ("tensorflow", "torch", "jax", "numpy", "openvino")
    for name in ("tensorflow:onednn-on", "tensorflow:onednn-off", "torch:mkldnn-off"):
        spec = targets.get(name)
        assert spec.name == name and not spec.default
        assert spec.keras_backend == name.split(":")[0] == targets.keras_backend(name)
        assert spec.setting == name.split(":")[1]
    assert targets.get("tensorflow:onednn-off").environment == {"TF_ENABLE_ONEDNN_OPTS": "0"}
    assert targets.get("tensorflow:onednn-on").environment == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert "mkldnn.enabled = False" in targets.get("torch:mkldnn-off").after_import_source
    assert targets.get("numpy").modules == ("jax",)  # the numpy backend convolves with jax.lax


def test_an_unknown_name_is_named_before_a_missing_backend(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """"torch,theano" on a machine without torch: the typo is what to fix first (this once
    said "torch not installed" on the jax-only CI job)."""
    monkeypatch.setattr(targets.BackendSpec, "installed", lambda self: self.name != "torch")
    with pytest.raises(UsageError, match="unknown backend 'theano'"):
        targets.parse("torch,theano")
    with pytest.raises(UsageError, match="backend not installed here: torch"):
        targets.parse("torch,jax")


def test_unknown_names_list_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown backend 'mxnet'.*tensorflow:onednn-off"):
        targets.get("mxnet")
    with pytest.raises(UsageError, match="unknown backend 'tensorflow:fast'"):
        targets.parse("tensorflow:fast")
    with pytest.raises(UsageError, match="unknown backend 'mxnet' in 'mxnet:\\*'"):
        targets.parse("mxnet:*")
    with pytest.raises(UsageError, match="unknown mutant 'jax:mutant-nope'; mutations: shift-h"):
        targets.get("jax:mutant-nope")


def test_mutants_are_test_only_targets_of_a_backend() -> None:
    spec = targets.get("jax:mutant-shift-w")
    assert spec.keras_backend == "jax" and spec.mutation == "shift-w" and not spec.default
    assert spec.name not in targets.SPECS  # made on demand, never selected by a pattern


def test_selections_expand_patterns_to_installed_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets.BackendSpec, "installed",
                        lambda self: self.keras_backend in ("tensorflow", "jax"))
    assert targets.parse(None) == (["tensorflow", "jax"], False)
    assert targets.parse("all") == (["tensorflow", "jax"], False)
    assert targets.parse("all,tensorflow:*") == (
        ["tensorflow", "jax", "tensorflow:onednn-on", "tensorflow:onednn-off"], False)
    assert targets.parse("torch:*") == ([], False)  # a pattern matches installed targets only
    assert targets.parse("jax, tensorflow:onednn-off,jax") == (
        ["jax", "tensorflow:onednn-off"], True)
    with pytest.raises(UsageError, match=r"not installed here: torch:mkldnn-off \(needs torch\)"):
        targets.parse("torch:mkldnn-off")


def test_worker_env_applies_the_setting_over_the_callers() -> None:
    env = targets.worker_env("tensorflow:onednn-off", {"TF_ENABLE_ONEDNN_OPTS": "1", "A": "b"})
    assert env == {"TF_ENABLE_ONEDNN_OPTS": "0", "A": "b", "KERAS_BACKEND": "tensorflow"}
    assert targets.worker_env("tensorflow", {"TF_ENABLE_ONEDNN_OPTS": "1"}) == {
        "TF_ENABLE_ONEDNN_OPTS": "1", "KERAS_BACKEND": "tensorflow"}


def test_display_order_puts_variants_after_their_backend() -> None:
    names = ["jax", "torch:mkldnn-off", "other", "tensorflow:onednn-off", "torch", "tensorflow"]
    assert targets.ordered(names) == ["tensorflow", "tensorflow:onednn-off", "torch",
                                      "torch:mkldnn-off", "jax", "other"]


def test_keras2_is_a_record_that_runs_whole_models_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """keras2 is Keras 2 on TensorFlow: no pattern selects it (not 'all', not 'tensorflow:*'),
    and the case door refuses it by name, saying where its row comes from."""
    spec = targets.get("keras2")
    assert (spec.keras_module, spec.cases, spec.model_file) == ("tf_keras", False, "source")
    assert spec.keras_backend == "tensorflow" and not spec.default
    monkeypatch.setattr(targets.BackendSpec, "installed", lambda self: True)
    assert "keras2" not in targets.parse("all,tensorflow:*")[0]
    assert targets.whole_model_targets("2.21.0") == ["keras2"]
    assert targets.whole_model_targets("3.15.1") == [] == targets.whole_model_targets(None)
    from conv_parity.engine import Engine

    with pytest.raises(UsageError, match=r"keras2 is not a target for layer cases .*"
                                         r"`conv-parity model` on a Keras 2 \.h5 adds its row"):
        Engine("jax,keras2")
