"""weights.resolve_weights: resolution order, offline errors, atomic checked downloads."""
from __future__ import annotations

import hashlib

import pytest

from pixseq.errors import PixseqError
from pixseq.weights import WeightFile, cache_dir, resolve_weights


def _spec(tmp_path, payload: bytes, sha: str | None = None) -> WeightFile:
    src = tmp_path / "server" / "model.bin"
    src.parent.mkdir(parents=True, exist_ok=True)
    src.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest() if sha is None else sha
    # A file:// URL exercises the real download code path without any network.
    return WeightFile("model.bin", src.as_uri(), digest[:8], "test weights")


def test_explicit_path_wins_over_cache(tmp_path):
    spec = _spec(tmp_path, b"abc")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "model.bin").write_bytes(b"abc")
    explicit = tmp_path / "mine.bin"
    explicit.write_bytes(b"other")
    assert resolve_weights(spec, path=explicit, weights_dir=cache) == explicit
    assert resolve_weights(spec, weights_dir=cache, offline=True) == cache / "model.bin"
    with pytest.raises(PixseqError, match="weights file not found"):
        resolve_weights(spec, path=tmp_path / "nope.bin")


def test_cache_dir_env_and_option(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSEQ_WEIGHTS_DIR", str(tmp_path / "env"))
    assert cache_dir() == tmp_path / "env"
    assert cache_dir(tmp_path / "opt") == tmp_path / "opt"
    monkeypatch.delenv("PIXSEQ_WEIGHTS_DIR")
    assert cache_dir().parts[-2:] == (".cache", "pixseq")


def test_offline_error_names_file_source_and_option(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSEQ_OFFLINE", "1")
    with pytest.raises(PixseqError) as err:
        resolve_weights("pt_inception", weights_dir=tmp_path)
    msg = str(err.value)
    assert "pt_inception-2015-12-05-6726825d.pth" in msg
    assert "https://github.com/mseitzer/pytorch-fid" in msg
    assert "--weights-dir" in msg and "offline" in msg
    assert "\n" not in msg


def test_download_is_atomic_and_checked(tmp_path):
    spec = _spec(tmp_path, b"x" * 3000)
    cache = tmp_path / "cache"
    got = resolve_weights(spec, weights_dir=cache, offline=False)
    assert got == cache / "model.bin" and got.read_bytes() == b"x" * 3000
    # A second call finds it in the cache even offline.
    assert resolve_weights(spec, weights_dir=cache, offline=True) == got


def test_bad_checksum_leaves_nothing(tmp_path):
    spec = _spec(tmp_path, b"payload", sha="deadbeef")
    cache = tmp_path / "cache"
    with pytest.raises(PixseqError, match="checksum mismatch"):
        resolve_weights(spec, weights_dir=cache, offline=False)
    assert not any(cache.iterdir())  # no half-written or unchecked file in the cache


def test_unreachable_url_is_one_clear_line(tmp_path):
    spec = WeightFile("gone.bin", (tmp_path / "missing" / "gone.bin").as_uri())
    with pytest.raises(PixseqError, match="cannot download gone.bin.*--weights-dir"):
        resolve_weights(spec, weights_dir=tmp_path / "cache", offline=False)
