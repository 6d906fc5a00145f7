"""pixseq.fused: C kernels on by default, built once per machine, that fall back to eager code loudly and once."""
from __future__ import annotations

import multiprocessing
import os
import shutil
import subprocess

import pytest
import torch

from pixseq import fused
from pixseq.errors import PixseqError


@pytest.fixture
def clean_state(monkeypatch):
    monkeypatch.setattr(fused, "_broken", None)
    yield
    fused.set_enabled(None)


def test_on_by_default_and_env_switch(clean_state, monkeypatch):
    monkeypatch.delenv("PIXSEQ_COMPILE", raising=False)
    assert fused.enabled()
    for off in ("0", "false", " OFF ", "no"):
        monkeypatch.setenv("PIXSEQ_COMPILE", off)
        assert not fused.enabled()
    monkeypatch.setenv("PIXSEQ_COMPILE", "1")
    assert fused.enabled()
    fused.set_enabled(False)  # the explicit setting wins over the environment
    assert not fused.enabled()
    with fused.using(True):
        assert fused.enabled()
    assert not fused.enabled()


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


@needs_cc
def test_a_compiler_refusing_march_native_gets_the_portable_build(kernel_cache, monkeypatch, tmp_path_factory, capsys):
    # Older clang on ARM (and some cross compilers) reject -march=native: the kernels are
    # then built without it, quietly, rather than not at all.
    real = next(shutil.which(c) for c in ("cc", "gcc", "clang") if shutil.which(c))
    wrapper = tmp_path_factory.mktemp("bin") / "picky-cc"
    wrapper.write_text("#!/bin/sh\n"
                       'for a in "$@"; do [ "$a" = -march=native ] && { echo "error: unsupported -march=native" >&2; exit 1; }; done\n'
                       f'exec {real} "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("CC", str(wrapper))
    fused.set_enabled(True)
    lib = fused.native("pixel")
    assert lib is not None and fused.available()
    assert len(list(kernel_cache.glob("pixel-*.so"))) == 1 and "unavailable" not in capsys.readouterr().err
    # A kernel the compiler rejects either way reports the first (native) build's error.
    source = tmp_path_factory.mktemp("src") / "broken.c"
    source.write_text("int broken(void) { return 1 + ; }\n")
    with pytest.raises(fused.BuildFailed, match="unsupported -march=native"):
        fused._build_for_this_cpu(source)


@needs_cc
def test_cc_may_carry_flags(kernel_cache, monkeypatch):
    real = next(shutil.which(c) for c in ("cc", "gcc", "clang") if shutil.which(c))
    monkeypatch.setenv("CC", f"{real} -w")  # as in CC="ccache gcc" or CC="gcc -m64"
    fused.set_enabled(True)
    assert fused.native("pixel") is not None and fused.available()


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


@needs_cc
def test_bad_inputs_are_not_blamed_on_the_kernels(clean_state, capsys):
    from pixseq.metrics.pixel import psnr
    from pixseq.metrics.ssim import ssim

    fused.set_enabled(True)
    a = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    bad = a.clone()
    bad[1, 0, 5, 5] = float("nan")
    with pytest.raises(PixseqError, match="NaN or infinite"):
        psnr(a, bad)
    with pytest.raises(PixseqError, match="data_range"):
        ssim(a, a * 255)
    assert fused.available() and "unavailable" not in capsys.readouterr().err


@needs_cc
def test_threads_split_the_images_and_change_no_bit(clean_state):
    from pixseq.metrics.brisque import brisque
    from pixseq.metrics.ssim import ssim

    fused.set_enabled(True)
    g = torch.Generator().manual_seed(1)
    a = torch.rand(5, 3, 48, 40, generator=g)
    b = (a + 0.1 * torch.rand(a.shape, generator=g)).clamp(0, 1)
    one = (ssim(a, b), brisque(b))
    try:
        torch.set_num_threads(2)  # images / maps go to two threads, each with its own buffers
        two = (ssim(a, b), brisque(b))
    finally:
        torch.set_num_threads(1)
    assert all(torch.equal(x, y) for x, y in zip(one, two))


@needs_cc
def test_psnr_kernel_cuts_images_into_runs_and_threads_change_no_bit(clean_state, monkeypatch):
    # Images of 3 x 37 x 41 = 4551 values cut into runs of 1000 (the last one 551: vector
    # tails in every run) and a thread woken for any run: every path of the split.
    from pixseq.metrics import pixel

    fused.set_enabled(True)
    monkeypatch.setattr(pixel, "_RUN", 1000)
    monkeypatch.setattr(pixel, "_VALUES_PER_THREAD", 1)
    g = torch.Generator().manual_seed(3)
    a = torch.rand(3, 3, 37, 41, generator=g)
    b = (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    ua, ub = (x.mul(255).round().to(torch.uint8) for x in (a, b))
    one = (pixel.mse(a, b), pixel.mse(ua, ub), pixel.psnr_thesis(a, b))
    try:
        torch.set_num_threads(2)
        two = (pixel.mse(a, b), pixel.mse(ua, ub), pixel.psnr_thesis(a, b))
    finally:
        torch.set_num_threads(1)
    assert all(torch.equal(x, y) for x, y in zip(one, two))
    # float32: differences and squares rounded in float32 (2^-24 relative each), sums of
    # at most 256 of them in float32 (~1e-7): 1e-6 relative to the float64 formula.
    torch.testing.assert_close(one[0], (a.double() - b.double()).square().flatten(1).mean(1), rtol=1e-6, atol=0)
    exact = (ua.long() - ub.long()).square().flatten(1).sum(1).double() / ua[0].numel()
    assert torch.equal(one[1], exact)  # integer sums: exact however the runs are cut
    span = a.flatten(1).amax(1) - a.flatten(1).amin(1)  # the thesis peak: extremes over all runs
    err = (a.double() - b.double()).square().flatten(1).mean(1)
    torch.testing.assert_close(one[2], 10 * torch.log10(span.double() ** 2 / err), rtol=0, atol=1e-5)
    for at, value in (((2, 2, 36, 40), 1.5), ((1, 1, 20, 3), float("nan"))):  # last run, a middle one
        z = b.clone()
        z[at] = value
        with pytest.raises(PixseqError, match="data_range" if value == 1.5 else "NaN or infinite"):
            pixel.psnr(a, z)


@needs_cc
def test_portable_build_without_avx_or_fma_gives_the_same_numbers(kernel_cache, monkeypatch):
    # The kernels' generic code paths (no AVX / FMA intrinsics: other CPUs, other compilers)
    # must compute the same metrics; built here for the x86-64 baseline when that is the
    # machine (elsewhere the native build is the generic one already).
    import platform

    from pixseq.metrics.brisque import brisque
    from pixseq.metrics.pixel import psnr
    from pixseq.metrics.ssim import ms_ssim, ssim

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the baseline build is x86-64 specific")
    g = torch.Generator().manual_seed(2)
    a = torch.rand(2, 3, 170, 165, generator=g)
    b = (a + 0.05 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    ua, ub = (x.mul(255).round().to(torch.uint8) for x in (a, b))

    def scores() -> list[torch.Tensor]:
        return [psnr(a, b), psnr(ua, ub, data_range=255), psnr(a.double(), b.double()), ssim(a, b),
                ssim(a, b, precision="float64"), ms_ssim(a, b), brisque(b)]

    eager = scores()
    fused.set_enabled(True)
    native = scores()
    baseline_flags = tuple("-march=x86-64" if f == "-march=native" else f for f in fused._CFLAGS)
    monkeypatch.setattr(fused, "_CFLAGS", baseline_flags)
    monkeypatch.setattr(fused, "_libraries", {})
    portable = scores()
    assert fused.available() and len(list(kernel_cache.glob("*.so"))) == 6  # 3 kernels x 2 builds
    for e, n, p in zip(eager, native, portable):
        # Without FMA the filters round each product: float32 SSIM moves by ~1e-7.
        torch.testing.assert_close(p, n, rtol=1e-6, atol=0)
        torch.testing.assert_close(p, e, rtol=1e-6, atol=0)


@needs_cc
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_kernel_threads_work_in_a_forked_child(clean_state):
    # A forked process (a DataLoader worker, say) inherits the parent's thread pool object
    # but none of its threads: the kernels must not wait on it forever.
    from pixseq.metrics.ssim import ssim

    fused.set_enabled(True)
    a = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    try:
        torch.set_num_threads(2)
        want = ssim(a, a.flip(-1))  # creates the pool in this process
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(1) as pool:
            got = pool.apply_async(_ssim_in_child, (a,)).get(timeout=60)
    finally:
        torch.set_num_threads(1)
    assert torch.equal(got, want)


def _ssim_in_child(a: torch.Tensor) -> torch.Tensor:
    from pixseq.metrics.ssim import ssim

    torch.set_num_threads(2)
    return ssim(a, a.flip(-1))
