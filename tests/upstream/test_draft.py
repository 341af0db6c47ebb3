"""The draft's rules on synthetic outcomes, and the repro check on tiny scripts (one interpreter
each, no Keras)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conv_parity.case import ConvCase
from conv_parity.errors import HarnessError
from conv_parity.judge.verdict import Outcome
from conv_parity.registry import Registry
from conv_parity.upstream import draft


def _evidence(verdict: str, **fields) -> draft.Evidence:
    case = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 3,
                                    "data_format": "channels_first"}, (1, 2, 6, 6))
    entry = next(e for e in Registry.load().entries
                 if e.id == "tf-bias-add-channels-first-wrong-axis")
    bad = Outcome(case, "tensorflow", verdict, "2 of 32 elements differ", (1, 2, 4, 4),
                  **fields)
    good = Outcome(case, "jax", "pass", "", (1, 2, 4, 4), shape=(1, 2, 4, 4),
                   max_abs_err=1e-7, tolerance=1e-5)
    env = {"python": "3.11.7", "numpy": "2.4.6", "platform": "Linux",
           "facts": {"cpu.model": "Some CPU", "cpu.machine": "x86_64", "cpu.isa": ["avx2"]},
           "backends": {"tensorflow": {"versions": {"tensorflow": "2.21.0"}}}}
    return draft.Evidence(case, entry, "3.15.1", [bad, good], env, "tensorflow",
                          "print('hi')\n", "DISCREPANCY: 2 of 32 values differ",
                          {"tensorflow.onednn": False, "tensorflow.intra_op_threads": 1})


def test_title_and_sections_for_wrong_values():
    ev = _evidence("fail-values", shape=(1, 2, 4, 4), max_abs_err=0.7, tolerance=3e-5,
                   diagnosis="the bias is added along the W axis")
    assert draft.title(ev) == ("`layers.Conv2D` with data_format='channels_first', "
                               "padding='valid', strides=(1, 1) returns wrong values on the "
                               "TensorFlow backend")
    md = draft.markdown(ev, "abcdef012345")
    for words in ("## Environment", "Keras 3.15.1, backend `tensorflow` (tensorflow 2.21.0)",
                  "CPU: Some CPU (x86_64), ISA avx2", "tensorflow.onednn=False",
                  "largest |error| 0.7 against a tolerance of 3e-05",
                  "- Diagnosis: the bias is added along the W axis",
                  "- The same call conforms on jax", "| tensorflow | fail-values |",
                  "Keras `>=3.7`", "entry fingerprint abcdef012345",
                  "[`keras/src/backend/tensorflow/numpy.py`](https://github.com/keras-team/"
                  "keras/blob/v3.15.1/keras/src/backend/tensorflow/numpy.py)"):
        assert words in md, words
    assert "intra_op_threads" not in md
    assert md.count("keras/src/backend/tensorflow/numpy.py`]") == 1


def test_title_names_the_error_raised():
    ev = _evidence("fail-error-parity", error={"type": "UnimplementedError",
                                               "message": "\x1b[1mNHWC only\x1b[0m"})
    assert "raises UnimplementedError on the TensorFlow backend" in draft.title(ev)
    assert "raises `UnimplementedError`: NHWC only" in draft.markdown(ev)


def test_run_script_requires_the_discrepancy(tmp_path):
    shown = draft.run_script("import sys\nprint('\x1b[1mDISCREPANCY\x1b[0m: off')\nsys.exit(1)\n")
    assert shown == "DISCREPANCY: off"
    with pytest.raises(draft.NotReproduced, match=r"did not reproduce \(exit 0\): OK"):
        draft.run_script("print('OK')\n")
    with pytest.raises(HarnessError, match="standalone"):
        draft.run_script("import conv_parity\n")


def test_keras_for_uses_the_example_release_only_when_needed():
    by_id = {e.id: e for e in Registry.load().entries}
    assert draft.keras_for(by_id["tf-bias-add-channels-first-wrong-axis"], "3.15.1") is None
    assert draft.keras_for(by_id["openvino-pooling-not-implemented-before-3.13"],
                           "3.15.1") == "3.12.1"
    assert draft.keras_for(None, "3.15.1") is None


def _rejected_evidence(verdict: str, **fields) -> draft.Evidence:
    case = ConvCase.make("MaxPooling1D", {"pool_size": 3, "strides": 1,
                                          "data_format": "channels_first"}, (1, 6, 2))
    entry = next(e for e in Registry.load().entries if e.id == "pool-empty-output-not-rejected")
    bad = Outcome(case, "jax", verdict, "returned a tensor", None, **fields)
    good = Outcome(case, "torch", "unsupported", "raised too", None,
                   error={"type": "ValueError", "message": "negative"})
    env = {"python": "3.11.7", "numpy": "2.4.6", "platform": "Linux", "facts": {}}
    return draft.Evidence(case, entry, "3.15.1", [bad, good], env, "jax", "print('hi')\n",
                          "DISCREPANCY: expected an error", {},
                          rejected="output size would be -1 on spatial axis 0")


def test_a_rejected_case_expects_an_error_and_shows_what_came_instead():
    ev = _rejected_evidence("fail-error-parity", shape=(1, 6, 0))
    assert draft.title(ev).endswith("returns a tensor instead of raising on the JAX backend")
    md = draft.markdown(ev)
    assert ("- Expected: an error (the spec has no output: output size would be -1 on spatial "
            "axis 0); actual (jax): returned shape (1, 6, 0).") in md
    assert "- The same call raises on torch, as it should" in md
    assert "Expected (float64 reference)" not in md and "child process" in md


def test_a_rejected_case_that_aborts_says_the_process_was_killed():
    ev = _rejected_evidence("crash")
    ev.outcomes[0].message = "the jax worker crashed on this case: SIGFPE\nlast lines"
    assert "crashes the process instead of raising" in draft.title(ev)
    assert ("actual (jax): the process was killed: the jax worker crashed on this case: SIGFPE."
            in draft.markdown(ev))


def test_a_conforming_case_says_which_error_the_backend_raised():
    case = ConvCase.make("Conv1D", {"filters": 2, "kernel_size": 3}, (1, 2, 1))
    raised = Outcome(case, "tensorflow", "unsupported", "raised too", None, error={
        "type": "ValueError", "message": "\x1b[1muser code:\n  File x, line 3\n"
                                         "ValueError: Negative dimension size\x1b[0m"})
    runs = draft.Runs({case: [raised]}, {}, {})
    with pytest.raises(draft.NotReproduced, match=r"conforms here on tensorflow=unsupported "
                                                  r"\(raised ValueError: Negative dimension "
                                                  r"size\)"):
        draft.evidence(case, ["tensorflow"], None, runs, None, Path("."))


def test_a_reason_drops_tensorflows_function_node_prefix():
    case = ConvCase.make("Conv1D", {"filters": 2, "kernel_size": 3}, (1, 2, 1))
    raised = Outcome(case, "tensorflow", "unsupported", "raised too", None, error={
        "type": "InvalidArgumentError", "message": "{{function_node __wrapped__X_device_/job:"
                                                   "localhost/CPU:0}} cropped_shape[1]=-1"})
    with pytest.raises(draft.NotReproduced, match=r"\(raised InvalidArgumentError: "
                                                  r"cropped_shape\[1\]=-1\)"):
        draft.evidence(case, ["tensorflow"], None, draft.Runs({case: [raised]}, {}, {}), None,
                       Path("."))
