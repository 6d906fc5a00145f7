"""pixseq.fused: opt-in compiled kernels that fall back to eager code, loudly and once."""
from __future__ import annotations

import shutil
import subprocess

import pytest
import torch

from pixseq import fused


@pytest.fixture
def clean_state(monkeypatch):
    monkeypatch.setattr(fused, "_broken", None)
    yield
    fused.set_enabled(None)


def test_off_by_default_and_env_switch(clean_state, monkeypatch):
    monkeypatch.delenv("PIXSEQ_COMPILE", raising=False)
    assert not fused.enabled()
    monkeypatch.setenv("PIXSEQ_COMPILE", "1")
    assert fused.enabled()
    fused.set_enabled(False)  # the explicit setting wins over the environment
    assert not fused.enabled()


def test_compile_failure_falls_back_once_with_a_notice(clean_state, monkeypatch, capsys):
    calls = []

    def eager(x: torch.Tensor) -> torch.Tensor:
        calls.append("eager")
        return x * 2

    @fused.fusable(eager=eager)
    def double(x: torch.Tensor) -> torch.Tensor:
        return x + x

    def broken_compile(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no C++ compiler found\nlong details")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    x = torch.arange(3.0)
    assert double(x).tolist() == [0.0, 2.0, 4.0]  # off: the eager function
    fused.set_enabled(True)
    assert double(x).tolist() == [0.0, 2.0, 4.0]  # compile fails: eager result, one notice
    assert double(x).tolist() == [0.0, 2.0, 4.0]  # and eager from then on, silently
    err = capsys.readouterr().err
    assert err.count("fused kernels unavailable") == 1 and "no C++ compiler found" in err
    assert "long details" not in err  # one line, not a traceback
    assert not fused.available() and calls == ["eager"] * 3


def test_errors_from_bad_inputs_are_not_blamed_on_the_compiler(clean_state, monkeypatch, capsys):
    @fused.fusable()
    def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b

    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)  # "compiled" = the function itself
    fused.set_enabled(True)
    with pytest.raises(RuntimeError, match="size"):
        add(torch.zeros(2), torch.zeros(3))
    assert fused.available() and "unavailable" not in capsys.readouterr().err


# ---- pixseq's own C kernels (fused.native) ------------------------------------------------

needs_cc = pytest.mark.skipif(
    not any(shutil.which(c) for c in ("cc", "gcc", "clang")), reason="needs a C compiler"
)


@pytest.fixture
def kernel_cache(clean_state, monkeypatch, tmp_path):
    """An empty kernel cache and no library loaded yet in this process."""
    monkeypatch.setenv("PIXSEQ_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setattr(fused, "_libraries", {})
    return tmp_path


def test_native_is_off_unless_fused_kernels_are_on(kernel_cache):
    fused.set_enabled(False)
    assert fused.native("brisque") is None
    assert list(kernel_cache.iterdir()) == []  # nothing was built


@needs_cc
def test_native_builds_once_per_machine_into_the_cache(kernel_cache, monkeypatch):
    fused.set_enabled(True)
    lib = fused.native("brisque")
    assert lib is not None and hasattr(lib, "pixseq_brisque_sums")
    built = list(kernel_cache.iterdir())
    assert len(built) == 1 and built[0].suffix == ".so"  # no temporary file left beside it
    stamp = built[0].stat().st_mtime_ns
    calls = []
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda args, **kw: calls.append(args) or real_run(args, **kw))
    assert fused._build(fused._KERNELS / "brisque.c") == built[0]  # found in the cache ...
    assert built[0].stat().st_mtime_ns == stamp and not any("-o" in a for a in calls)  # ... not rebuilt


@needs_cc
def test_native_compile_error_is_one_line_and_leaves_nothing(kernel_cache, tmp_path_factory):
    source = tmp_path_factory.mktemp("src") / "broken.c"
    source.write_text("int broken(void) { return 1 + ; }\n")
    with pytest.raises(RuntimeError, match="building broken.c with .* failed: .*broken.c") as info:
        fused._build(source)
    assert "\n" not in str(info.value)
    assert list(kernel_cache.iterdir()) == []  # no half-written library, no temporary file


def test_native_without_a_compiler_falls_back_with_one_notice(kernel_cache, monkeypatch, capsys):
    from pixseq.metrics.brisque import brisque

    x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    eager = brisque(x)
    monkeypatch.setenv("CC", str(kernel_cache / "no-such-compiler"))
    fused.set_enabled(True)
    assert torch.equal(brisque(x), eager)  # the eager code, same numbers
    assert torch.equal(brisque(x), eager)  # and from then on, silently
    err = capsys.readouterr().err
    assert err.count("fused kernels unavailable") == 1 and "no-such-compiler" in err
    assert not fused.available() and list(kernel_cache.iterdir()) == []
