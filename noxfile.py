"""nox sessions: per-backend tests, lint, fuzz, nightly Keras, the nightly watch, oldest Keras,
registry docs, the docs site.

`nox -l` lists them. Each backend session installs only that backend's extra and selects only
that backend, so a CI job proves the suite runs where only one backend is installed.
"""

from __future__ import annotations

import nox

nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "tests"]

PYTHONS = ["3.10", "3.11", "3.12"]
BACKENDS = ["tensorflow", "torch", "jax", "numpy", "openvino"]
#: The oldest Keras 3 release of each backend's `oldest` session, with what it needs to import,
#: and backend releases of its time (docs/registry.md). OpenVINO became a Keras
#: backend in 3.8.0 (whose backend imports ``openvino.runtime.opset14``, gone from OpenVINO
#: 2026). torch: this project installs only torch 2.13.0 (the CPU build); Keras 3.1.0 with it is
#: green once the release triage's entries are in (torch "same" padding before 3.9 and 3.5,
#: transposed "same" crops before 3.15).
OLDEST_KERAS = {"tensorflow": ["keras==3.1.0", "numpy<2"], "torch": ["keras==3.1.0"],
                "jax": ["keras==3.1.0", "numpy<2"], "numpy": ["keras==3.1.0", "numpy<2"],
                "openvino": ["keras==3.8.0", "numpy<2"]}
OLDEST_BACKEND = {"tensorflow": ["tensorflow-cpu==2.16.1"], "torch": [],
                  "jax": ["jax[cpu]==0.4.30"], "numpy": ["jax[cpu]==0.4.30"],
                  "openvino": ["openvino==2024.6.0"]}
# The pip extra that brings each backend's library (the Keras NumPy backend convolves with jax).
EXTRA = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax", "numpy": "jax",
         "openvino": "openvino"}


def _install(session: nox.Session, backend: str, *keras: str) -> None:
    if backend == "torch":
        # Pinned first: an unpinned torch pulls a multi-GB CUDA build (docs/install.md).
        session.install("torch==2.13.0")
    session.install("-e", f".[{EXTRA[backend]},dev]")
    if keras:
        session.install(*keras)


def _suite(session: nox.Session, backend: str, profile: str) -> None:
    report = f"conv-parity-report/{session.name}"
    session.run("pytest", f"--conv-backends={backend}", f"--conv-profile={profile}",
                f"--conv-report={report}", "--conv-strict-registry=true", *session.posargs)


@nox.session(python=PYTHONS)
@nox.parametrize("backend", BACKENDS)
def tests(session: nox.Session, backend: str) -> None:
    """The repo's tests and the suite (default profile) with only `backend` installed."""
    _install(session, backend)
    _suite(session, backend, "default")


@nox.session(python=PYTHONS)
@nox.parametrize("backend", BACKENDS)
def nightly(session: nox.Session, backend: str) -> None:
    """keras-nightly: the smoke profile without a crash, then the suite (full profile)."""
    _install(session, backend)
    session.run("pip", "uninstall", "-y", "keras")
    session.install("--pre", "keras-nightly")
    # No crash on the nightly first (issue 23: a moved private module stopped every worker).
    session.run("pytest", "-q", "tests/cli/test_nightly_smoke.py",
                env={"CONV_PARITY_NIGHTLY_SMOKE": "1"})
    _suite(session, backend, "full")


@nox.session(python=PYTHONS[-1])
def watch(session: nox.Session) -> None:
    """The nightly watch: the default profile on the newest keras-nightly (installed with
    --no-deps --target into .keras-cache) against the installed release; report.md's "Nightly
    watch" section lists fixed entries, new failures (bisected over the last nightlies) and
    every changed result (docs/upstream.md). Extra run options after --."""
    session.install("torch==2.13.0")
    session.install("-e", ".[all,dev]")
    session.run("conv-parity", "run", "--keras", "nightly", "--report",
                "conv-parity-report/watch", "--cache", ".keras-cache", *session.posargs)


@nox.session(python=PYTHONS)
@nox.parametrize("backend", BACKENDS)
def oldest(session: nox.Session, backend: str) -> None:
    """The suite against the oldest Keras 3 release we claim to support."""
    _install(session, backend, *OLDEST_KERAS[backend], *OLDEST_BACKEND[backend])
    _suite(session, backend, "default")


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff over the whole tree, mypy over src/ and the import contract (run from the dev
    environment): no import cycle, each layer imports only from the layers below it."""
    session.run("ruff", "check", ".")
    session.run("mypy")
    session.run("pytest", "-q", "tests/meta")


@nox.session(python=PYTHONS[-1])
def slow(session: nox.Session) -> None:
    """The tests marked ``slow`` (the default ``pytest`` deselects them to stay under 8 minutes
    on 2 cores): every mutant on the smoke grid, whole-model and end-to-end CLI runs, ..."""
    session.install("torch==2.13.0")
    session.install("-e", ".[all,dev]")
    session.install("--no-deps", "tf-keras==2.21.0")
    # the [models] extra without its tensorflow-text (which pulls `tensorflow`): the corpus test
    session.install("--no-deps", "keras-hub==0.32.0", "regex", "tokenizers")
    session.run("pytest", "-m", "slow", *session.posargs)


@nox.session(python=PYTHONS[-1])
def fuzz(session: nox.Session) -> None:
    """A long hypothesis campaign over every backend (nightly profile, persisted database)."""
    session.install("torch==2.13.0")
    session.install("-e", ".[all,dev]")
    budget = session.posargs[0] if session.posargs else "1800"
    session.run("conv-parity", "fuzz", "--time-budget", budget, "--report",
                "conv-parity-report/fuzz")


@nox.session(python=False)
def registry(session: nox.Session) -> None:
    """Regenerate docs/known-discrepancies.md from the registry."""
    session.run("python", "-m", "conv_parity.registry", "--write", "docs/known-discrepancies.md")


@nox.session(python=PYTHONS[-1])
def docs(session: nox.Session) -> None:
    """The documentation site: mkdocs build --strict (the GitHub workflow's `docs` job)."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", *session.posargs)
