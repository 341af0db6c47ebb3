"""The pytest plugin, driven through pytester on a real backend (jax: the fastest import)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

# pytester's in-process runs drop the modules they imported when they end; ml_dtypes registers
# its dtypes with NumPy once per process and refuses a second import ("bfloat16 appears already
# registered"). Imported here, it outlives every inner run, as it does in the full suite.
pytest.importorskip("ml_dtypes")

from conv_parity.case import ConvCase
from conv_parity.engine import installed_backends

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.skipif("jax" not in installed_backends(),
                                reason="the plugin tests drive the jax backend, not installed")

SUITE = "from conv_parity.suite.test_conformance import test_conformance\n"
# A real upstream bug on the installed Keras (jax backend): ops.max_pool with strides=None
# converts pool_size to a full operand and then converts it again.
MAXPOOL_NONE = ConvCase.make("ops.max_pool", {"pool_size": 2, "strides": None}, (1, 6, 5, 2))
CONV = ConvCase.make("Conv2D", {"filters": 3, "kernel_size": (3, 2), "strides": 2,
                                "padding": "same"}, (2, 7, 6, 3))


def _cases_file(pytester: pytest.Pytester, *cases: ConvCase) -> Path:
    path = pytester.path / "cases.json"
    path.write_text(json.dumps([c.to_json() for c in cases]))
    return path


def _registry(pytester: pytest.Pytester, body: str) -> Path:
    path = pytester.path / "known.toml"
    path.write_text(body)
    return path


ENTRY = """
[[discrepancy]]
id = "{id}"
keras = ">=3"
backends = ["jax"]
layers = ["{layer}"]
{where}
verdict = "{verdict}"
link = "unreported"
note = "test entry"
"""


def test_runs_cases_and_writes_a_report(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    report = pytester.path / "rep"
    result = pytester.runpytest("--conv-backends=jax", f"--conv-cases={_cases_file(pytester, CONV)}",
                                f"--conv-report={report}", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*conv-parity conformance matrix*", "*Conv2D*1 ok*"])
    doc = json.loads((report / "report.json").read_text())
    assert doc["schema_version"] >= 1 and doc["complete"] is True
    (entry,) = doc["results"]
    assert entry["backend"] == "jax" and entry["verdict"] == "pass"
    assert entry["case"]["layer"] == "Conv2D" and entry["reference_shape"] == [2, 4, 3, 3]
    assert doc["environment"]["backends"]["jax"]["keras_version"]
    assert (report / "report.md").exists() and (report / "report.html").exists()


def test_real_discrepancy_fails_with_a_description(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("--conv-backends=jax",
                                f"--conv-cases={_cases_file(pytester, MAXPOOL_NONE)}",
                                f"--conv-registry={_registry(pytester, '')}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ops.max_pool*on jax: fail-error-parity*",
                                 "*the spec accepts this configuration*"])


def test_known_discrepancy_is_a_strict_xfail(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    reg = _registry(pytester, ENTRY.format(id="maxpool-none", layer="ops.max_pool", where="",
                                           verdict="fail-error-parity"))
    result = pytester.runpytest("--conv-backends=jax",
                                f"--conv-cases={_cases_file(pytester, MAXPOOL_NONE)}",
                                f"--conv-registry={reg}")
    result.assert_outcomes(xfailed=1)


def test_known_discrepancy_that_no_longer_reproduces_fails(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    reg = _registry(pytester, ENTRY.format(id="stale-one", layer="Conv2D",
                                           where='where = { padding = "same" }', verdict="fail-values"))
    result = pytester.runpytest("--conv-backends=jax", f"--conv-cases={_cases_file(pytester, CONV)}",
                                f"--conv-registry={reg}", "--conv-strict-registry=true")
    result.assert_outcomes(failed=1)  # a FAILED test, not an XPASS(strict): one count everywhere
    result.stdout.fnmatch_lines(["*on jax: stale known discrepancy stale-one*",
                                 "*no longer reproduces*narrow or delete it*",
                                 "*Conv2D*0 ok 1 FAIL*"])
    assert "XPASS" not in result.stdout.str()


@pytest.mark.parametrize("ini", ["conv_strict_registry = true", "conv_fail_on_known = true"])
def test_two_word_options_are_read_from_the_ini_file(pytester: pytest.Pytester, ini: str) -> None:
    """The repo's own pyproject sets ``conv_strict_registry``: an ini key spelt with an
    underscore must take effect (it was once registered as ``conv_strict-registry`` and
    silently ignored)."""
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini(f"[pytest]\n{ini}\n")
    stale = ini.startswith("conv_strict")
    reg = _registry(pytester, ENTRY.format(
        id="stale-one" if stale else "maxpool-none", layer="Conv2D" if stale else "ops.max_pool",
        where='where = { padding = "same" }' if stale else "",
        verdict="fail-values" if stale else "fail-error-parity"))
    cases = _cases_file(pytester, CONV if stale else MAXPOOL_NONE)
    result = pytester.runpytest("--conv-backends=jax", f"--conv-cases={cases}",
                                f"--conv-registry={reg}")
    result.assert_outcomes(failed=1)
    assert "Unknown config option" not in result.stdout.str()


def test_for_a_user_an_entry_that_does_not_reproduce_is_a_noted_pass(
        pytester: pytest.Pytester) -> None:
    """Without --conv-strict-registry (a user's run), a registered bug that does not reproduce
    (fixed in their Keras, another CPU) passes, is counted and named, and nobody is asked to
    edit the installed package."""
    pytester.makepyfile(test_suite=SUITE)
    reg = _registry(pytester, ENTRY.format(id="stale-one", layer="Conv2D",
                                           where='where = { padding = "same" }', verdict="fail-values"))
    result = pytester.runpytest("--conv-backends=jax", f"--conv-cases={_cases_file(pytester, CONV)}",
                                f"--conv-registry={reg}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*Conv2D*0 ok 1 not-reproduced*",
                                 "*1 known discrepancy did not reproduce here*stale-one*"])
    assert "known_discrepancies.toml" not in result.stdout.str()


def test_fail_on_known_turns_a_known_discrepancy_into_a_failure(
        pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    reg = _registry(pytester, ENTRY.format(id="maxpool-none", layer="ops.max_pool", where="",
                                           verdict="fail-error-parity"))
    result = pytester.runpytest("--conv-backends=jax",
                                f"--conv-cases={_cases_file(pytester, MAXPOOL_NONE)}",
                                f"--conv-registry={reg}", "--conv-fail-on-known=true")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*known discrepancy maxpool-none*", "*--conv-fail-on-known*"])


def test_entry_matching_no_case_is_warned_about_under_a_strict_registry_only(
        pytester: pytest.Pytester) -> None:
    """Registry hygiene is for the maintainers (--conv-strict-registry); a user's session
    does not print a list of entry ids to narrow or delete."""
    pytester.makepyfile(test_suite=SUITE)
    reg = _registry(pytester, ENTRY.format(id="never", layer="Conv3DTranspose",
                                           where="where = { batch = 99 }", verdict="fail-values"))
    args = ("--conv-backends=jax", "--conv-profile=smoke", f"--conv-registry={reg}",
            "--collect-only", "-q")
    strict = pytester.runpytest(*args, "--conv-strict-registry=true")
    strict.stdout.fnmatch_lines(["*known discrepancies 'never' match no collected case*"])
    user = pytester.runpytest(*args)
    assert "match no collected case" not in user.stdout.str()


def test_shards_cover_every_case_exactly_once(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)

    def ids(*args: str) -> set[str]:
        res = pytester.runpytest("--conv-backends=jax", "--conv-profile=default",
                                 "--collect-only", "-q", *args)
        return {line for line in res.stdout.lines if "::test_conformance[" in line}

    full = ids()
    parts = [ids(f"--conv-shard={i}/3") for i in (1, 2, 3)]
    assert len(full) > 150
    assert set().union(*parts) == full
    assert sum(len(p) for p in parts) == len(full)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--conv-profile=huge"], "*--conv-profile 'huge'*"),
        (["--conv-backends=mxnet"], "*unknown backend 'mxnet'*"),
        (["--conv-shard=5/2"], "*shard*"),
        (["--conv-timeout=-3"], "*--conv-timeout must be a positive number*"),
        (["--conv-layers=Dense"], "*unknown layer or op 'Dense'*"),
        (["--conv-modes=eager,jitted"], "*--conv-modes: unknown mode 'jitted'*"),
    ],
)
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, args: list[str],
                                      needle: str) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([needle])


def test_ini_options_are_read(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\nconv_backends = jax\nconv_profile = smoke\nconv_layers = Conv2D\n")
    result = pytester.runpytest("--collect-only", "-q")
    lines = [line for line in result.stdout.lines if "::test_conformance[" in line]
    assert lines and all(line.endswith("-jax]") and "[Conv2D-" in line for line in lines)


def test_modes_option_and_ini_select_the_modes(pytester: pytest.Pytester) -> None:
    """Case ids show the mode; --conv-modes (or ini conv_modes) picks which modes run."""
    pytester.makepyfile(test_suite=SUITE)
    # Conv1D: the default profile's layer with a case in a policy's share that grad runs
    # (a layer selection narrows the profile; it does not draw a new sample, issue 21)
    pytester.makeini("[pytest]\nconv_backends = jax\nconv_profile = default\n"
                     "conv_layers = Conv1D\nconv_modes = grad\n")
    result = pytester.runpytest("--collect-only", "-q")
    lines = [line for line in result.stdout.lines if "::test_conformance[" in line]
    assert lines and all("-grad-" in line for line in lines)
    assert any("-float32-grad-" in line for line in lines)
    assert any("-mixed_bfloat16-grad-" in line for line in lines)  # the policies' share
    result = pytester.runpytest("--collect-only", "-q", "--conv-modes=eager,predict")
    lines = [line for line in result.stdout.lines if "::test_conformance[" in line]
    assert any("-float32-predict-" in line for line in lines)
    assert any("-float32-jax]" in line for line in lines)  # eager: no mode in the id
    assert not any("-grad-" in line for line in lines)


def test_policies_option_keeps_the_cases_under_the_named_policies(
        pytester: pytest.Pytester) -> None:
    """--conv-policies narrows the profile to its cases under the policies named: a subset of
    the unfiltered collection (same ids), never a re-sample (issue 21)."""
    import re

    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\nconv_backends = jax\nconv_profile = default\n"
                     "conv_layers = Conv2D,ops.conv\n")

    def collected(*args: str) -> set[str]:
        result = pytester.runpytest("--collect-only", "-q", *args)
        return {line for line in result.stdout.lines if "::test_conformance[" in line}

    whole = collected()
    lines = collected("--conv-policies=mixed_float16,bfloat16")
    named = re.compile(r"-(mixed_float16|bfloat16)(-[a-z]+)?-jax\]")
    assert lines and lines == {li for li in whole if named.search(li)}
    assert any("Conv2D-" in li and "-mixed_float16" in li for li in lines)
    assert any("ops.conv-" in li and "-bfloat16" in li for li in lines)
    assert not any("ops.conv-" in li and "mixed_" in li for li in lines)  # ops: no policy
    assert not any("-float32" in li for li in lines)
    result = pytester.runpytest("--collect-only", "-q", "--conv-policies=mixed_float32")
    assert result.ret != 0
    assert "--conv-policies" in "\n".join(result.stderr.lines + result.stdout.lines)


def test_grad_mode_runs_and_skips_numpy_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    grad = ConvCase.make("Conv2D", {"filters": 2, "kernel_size": 2}, (1, 4, 4, 2), mode="grad")
    result = pytester.runpytest("--conv-backends=jax,numpy",
                                f"--conv-cases={_cases_file(pytester, grad)}", "-rs",
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*no gradients on this backend*"])


def test_plugin_can_be_disabled(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-p", "no:conv_parity")
    result.stdout.fnmatch_lines(["*fixture 'conv_case' not found*"])


FUZZ_DRAWS = '''
import pytest
from hypothesis import given, settings, strategies as st
from conv_parity.registry import Registry, installed_keras_version
from conv_parity.generate.strategies import KnownFilter, cases_for

REGISTRY = Registry.load(r"{registry}")


@pytest.mark.conv_fuzz
@settings(max_examples=25, deadline=None, database=None, derandomize=True)
@given(data=st.data())
def test_draw_{name}(conv_filter_counter, data):
    known = KnownFilter(REGISTRY, ["jax"], installed_keras_version(), conv_filter_counter)
    data.draw(cases_for("Conv2D", exclude_known=known))
'''


def test_fuzz_filtered_count_reaches_the_report_also_under_xdist(pytester: pytest.Pytester) -> None:
    """The known-discrepancy filter's count is in report.json and the summary, summed over
    every fuzz test, and the same when the tests run in xdist workers (where the counter is)."""
    reg = _registry(pytester, ENTRY.format(id="valid-conv2d", layer="Conv2D",
                                           where='where = { padding = "valid" }',
                                           verdict="fail-values"))
    for name in ("a", "b"):
        pytester.makepyfile(**{f"test_draws_{name}": FUZZ_DRAWS.format(registry=reg, name=name)})
    runs = [[]]
    if __import__("importlib").util.find_spec("xdist") is not None:
        runs.append(["-p", "xdist", "-n", "2"])
    counts = []
    for extra in runs:
        report = pytester.path / f"rep{len(counts)}"
        result = pytester.runpytest("--conv-backends=jax", f"--conv-registry={reg}",
                                    f"--conv-report={report}", "-p", "no:cacheprovider", *extra)
        result.assert_outcomes(passed=2)
        fuzz = json.loads((report / "report.json").read_text())["fuzz"]
        assert fuzz["tests"] == 2 and fuzz["filtered_known"] > 0
        result.stdout.fnmatch_lines([f"*fuzzing skipped {fuzz['filtered_known']} drawn examples*"])
        assert "fuzz examples skipped as known discrepancies" in (report / "report.md").read_text()
        counts.append(fuzz["filtered_known"])
    assert len(set(counts)) == 1, counts  # derandomized: the same draws, wherever they ran


def test_the_plugin_can_be_disabled_in_this_repo() -> None:
    """`pytest -p no:conv_parity` (documented) must not crash on the repo's conftest."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:conv_parity", "-q",
                           "tests/report/test_matrix.py"], cwd=root, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "INTERNALERROR" not in proc.stdout


def test_worker_logs_in_tmp_are_removed_on_close(tmp_path) -> None:
    """A pool that made its own log folder removes it when it closes."""
    from conv_parity.workers import WorkerPool

    pool = WorkerPool()
    folder = pool.log_dir
    assert folder.exists()
    pool.close()
    assert not folder.exists()


def test_a_bad_case_file_entry_is_skipped_and_fuzz_tests_stay_out(
        pytester: pytest.Pytester) -> None:
    """--conv-cases runs exactly its cases: a bad entry is warned about (index and reason) and
    the others run; the shipped fuzz tests are deselected."""
    pytester.makepyfile(test_suite=SUITE + "from conv_parity.suite.test_fuzz import "
                                           "test_fuzz_valid\n")
    path = pytester.path / "cases.json"
    path.write_text(json.dumps([CONV.to_json(), {"layer": "Conv2D", "kwargs": {"stride": 2},
                                                 "input_shape": [1, 6, 6, 2]}]))
    result = pytester.runpytest("--conv-backends=jax", f"--conv-cases={path}")
    result.assert_outcomes(passed=1, deselected=1, warnings=1)
    result.stdout.fnmatch_lines(["*entry 1 is not a valid case, skipped*stride*"])
