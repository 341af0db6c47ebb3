"""`conv-parity bisect` end to end on real workers: three Keras releases cached side by side
(/work/main/.keras-releases, or $CONV_PARITY_TEST_KERAS_RELEASES), pip's index unreachable, so the
cached releases are the list. Slow: each release starts a fresh worker."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conv_parity.cli.main import main
from conv_parity.upstream import releases

RELEASES = Path(os.environ.get("CONV_PARITY_TEST_KERAS_RELEASES", "/work/main/.keras-releases"))
WANTED = ("3.4.1", "3.10.0", "3.14.0")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not all((RELEASES / v / "keras").is_dir() for v in WANTED),
                       reason=f"Keras {', '.join(WANTED)} not unpacked under {RELEASES}"),
]


def test_bisect_rediscovers_the_torch_avgpool_fix(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    cache = tmp_path / "cache"
    cache.mkdir()
    for v in WANTED:
        (cache / v).symlink_to(RELEASES / v)

    def offline(*_a, **_k):
        raise releases.ReleaseUnavailable("pip index versions keras failed: no index (test)")

    monkeypatch.setattr(releases, "index_versions", offline)
    registry = tmp_path / "known.toml"
    from conv_parity.registry import DEFAULT_PATH

    registry.write_text(DEFAULT_PATH.read_text())
    code = main(["bisect", "torch-avgpool-same-zero-padded-before-3.5", "--cache", str(cache),
                 "--registry", str(registry), "--write", "--apply"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "using the 3 releases in" in err
    assert "fixed in Keras 3.10.0 (last bad 3.4.1: torch=fail-values" in out
    assert "3.4.1  | torch=fail-values" in out and "3.14.0 | torch=pass" in out
    # the recorded fixed_in (3.5.0) lies between the releases tried: no change proposed
    assert "already agrees with this bisect (no change)" in out
    assert registry.read_text() == DEFAULT_PATH.read_text()
