"""MSE / PSNR / SSIM / MS-SSIM / thesis preset against scikit-image and pytorch-msssim."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from pixseq.data import load_data
from pixseq.errors import PixseqError
from pixseq.metrics.pixel import MSE, PSNR, mse, psnr, psnr_thesis
from pixseq.metrics.ssim import MSSSIM, SSIM, ms_ssim, ssim, ssim_thesis


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
    """Four natural-photo crops (uint8, N x 96 x 128 x 3) and noisy, partly darkened copies."""
    photos = load_data("photos", limit=4)
    ref = np.stack([im[40:136, 60:188] for im in photos.images])
    rng = np.random.default_rng(0)
    dist = ref.astype(np.float64) * np.linspace(0.6, 1.0, 128)[None, None, :, None]
    dist = np.clip(dist + rng.normal(0, 12, ref.shape), 0, 255).round().astype(np.uint8)
    return ref, dist


def to_t(x: np.ndarray) -> torch.Tensor:
    """N x H x W x C uint8 -> (N, C, H, W) float64 in 0..255 (same values skimage sees)."""
    return torch.from_numpy(x).permute(0, 3, 1, 2).to(torch.float64)


def wang_sk(r: np.ndarray, d: np.ndarray, data_range: float) -> float:
    return structural_similarity(
        r, d, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=data_range, channel_axis=-1,
    )


# ---------------------------------------------------------------- MSE / PSNR

def test_mse_psnr_match_skimage(pairs):
    ref, dist = pairs
    a, b = to_t(ref), to_t(dist)
    want_mse = [mean_squared_error(r, d) for r, d in zip(ref, dist)]
    want_psnr = [peak_signal_noise_ratio(r, d, data_range=255) for r, d in zip(ref, dist)]
    # Both sides are float64 means of the same squared errors; only summation order
    # differs (~1e-13 relative), so 1e-6 is a comfortable bound.
    torch.testing.assert_close(mse(a, b), torch.tensor(want_mse, dtype=torch.float64), rtol=1e-6, atol=0)
    torch.testing.assert_close(psnr(a, b, data_range=255), torch.tensor(want_psnr, dtype=torch.float64),
                               rtol=0, atol=1e-6)
    # Same images on the [0, 1] scale with data_range 1 give the same PSNR.
    torch.testing.assert_close(psnr(a / 255, b / 255), torch.tensor(want_psnr, dtype=torch.float64),
                               rtol=0, atol=1e-6)
    assert psnr(a, b, 255, reduction="mean").item() == pytest.approx(np.mean(want_psnr), abs=1e-6)


def test_psnr_identical_is_inf_and_thesis_matches_skimage(pairs):
    ref, dist = pairs
    a, b = to_t(ref), to_t(dist)
    assert torch.isinf(psnr(a, a, 255)).all()
    want = [peak_signal_noise_ratio(r, d, data_range=float(r.max()) - float(r.min())) for r, d in zip(ref, dist)]
    torch.testing.assert_close(psnr_thesis(a, b), torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-6)


# ---------------------------------------------------------------- SSIM

@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_ssim_wang_matches_skimage(pairs, precision):
    ref, dist = pairs
    want = torch.tensor([wang_sk(r, d, 255) for r, d in zip(ref, dist)], dtype=torch.float64)
    got = ssim(to_t(ref), to_t(dist), data_range=255, precision=precision)
    # float64: same formula, same 11-tap kernel, same cropped border -> ~1e-15.
    # float32: inputs are rescaled to [0, 1] and mean-shifted before filtering, which keeps
    # the variance cancellation error ~1e-7, well inside the 1e-5 requirement.
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    assert got.dtype == torch.float64 and got.shape == (len(ref),)
    assert (got < 0.99).all()  # the distortion is visible: not a vacuous comparison


def test_ssim_grey_and_identical(pairs):
    ref, dist = pairs
    g_ref, g_dist = ref[..., :1], dist[..., :1]
    want = [structural_similarity(r[..., 0], d[..., 0], gaussian_weights=True, sigma=1.5,
                                  use_sample_covariance=False, data_range=255) for r, d in zip(g_ref, g_dist)]
    torch.testing.assert_close(ssim(to_t(g_ref), to_t(g_dist), 255), torch.tensor(want, dtype=torch.float64),
                               rtol=0, atol=1e-5)
    a = to_t(ref) / 255
    torch.testing.assert_close(ssim(a, a), torch.ones(len(ref), dtype=torch.float64), rtol=0, atol=1e-12)


def test_ssim_thesis_matches_skimage_defaults(pairs):
    ref, dist = pairs
    # The study's call: skimage defaults (7x7 uniform, sample covariance) on float images
    # with data_range = max - min of the reference.
    want = [structural_similarity(r.astype(np.float64), d.astype(np.float64),
                                  data_range=float(r.max()) - float(r.min()), channel_axis=-1)
            for r, d in zip(ref, dist)]
    got = ssim_thesis(to_t(ref), to_t(dist))
    torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=0, atol=1e-5)
    # ... and it is *not* the standard SSIM: the preset matters.
    assert (got - ssim(to_t(ref), to_t(dist), 255)).abs().max() > 1e-3


def test_ms_ssim_matches_pytorch_msssim():
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    g = torch.Generator().manual_seed(0)
    # Odd sizes exercise the zero-padded pooling; smooth + noise is image-like.
    a = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 163, 175, generator=g, dtype=torch.float64), 3, 1, 1)
    b = (a + 0.05 * torch.randn(a.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    want = pytorch_msssim.ms_ssim(a, b, data_range=1.0, size_average=False)
    # [0, 1] float64 inputs: the reference's float32-rounded window shifts its values by
    # ~1e-7 here (at data_range=255 that grows to ~1e-5 through E[x^2] - E[x]^2), so 1e-5 holds.
    torch.testing.assert_close(ms_ssim(a, b), want, rtol=0, atol=1e-5)
    torch.testing.assert_close(ms_ssim(a, b, precision="float32"), want, rtol=0, atol=1e-5)
    assert want.min() < 0.99


def test_fused_ssim_family_matches_references(pairs, fused_kernels):
    ref, dist = pairs
    a, b = to_t(ref), to_t(dist)
    got = ssim(a, b, data_range=255)
    if not fused_kernels.available():
        pytest.skip("pixseq's C kernel cannot be built here (no C compiler)")
    want = torch.tensor([wang_sk(r, d, 255) for r, d in zip(ref, dist)], dtype=torch.float64)
    # float32 like the eager default (the kernel filters columns as FMA chains where eager
    # convolves: ~1e-7 apart on photos), inside the 1e-5 requirement.
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    fused_kernels.set_enabled(False)
    eager = ssim(a, b, data_range=255)
    fused_kernels.set_enabled(True)
    torch.testing.assert_close(got, eager, rtol=0, atol=1e-6)
    # Odd sizes (vector-loop tails) and a window size without specialised code.
    crop = (slice(None), slice(None), slice(2, 40), slice(3, 32))
    want_crop = [structural_similarity(r[2:40, 3:32], d[2:40, 3:32], win_size=9, gaussian_weights=True, sigma=1.2,
                                       use_sample_covariance=False, data_range=255, channel_axis=-1)
                 for r, d in zip(ref.astype(np.float64), dist.astype(np.float64))]
    torch.testing.assert_close(ssim(a[crop], b[crop], data_range=255, win_size=9, sigma=1.2, precision="float64"),
                               torch.tensor(want_crop, dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(ssim(a, b, data_range=255, precision="float64"), want, rtol=0, atol=1e-9)
    thesis = [structural_similarity(r.astype(np.float64), d.astype(np.float64),
                                    data_range=float(r.max()) - float(r.min()), channel_axis=-1)
              for r, d in zip(ref, dist)]
    torch.testing.assert_close(ssim_thesis(a, b), torch.tensor(thesis, dtype=torch.float64), rtol=0, atol=1e-5)
    # Identical images: numerator and denominator still round identically -> exactly 1.
    assert ssim(a / 255, a / 255).tolist() == [1.0] * len(ref)
    pytorch_msssim = pytest.importorskip("pytorch_msssim")
    x = torch.from_numpy(ref).permute(0, 3, 1, 2).double() / 255
    y = torch.from_numpy(dist).permute(0, 3, 1, 2).double() / 255
    x, y = (torch.nn.functional.interpolate(t, size=(176, 176), mode="bilinear") for t in (x, y))  # 5 scales fit
    assert ms_ssim(x, x).tolist() == [1.0] * len(ref)
    torch.testing.assert_close(ms_ssim(x, y), pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False),
                               rtol=0, atol=1e-5)


# ---------------------------------------------------------------- Metric classes

def test_metric_classes_accumulate_like_one_shot(pairs):
    ref, dist = pairs
    a, b = to_t(ref) / 255, to_t(dist) / 255
    for metric, fn in [(MSE(), mse), (PSNR(), psnr), (SSIM(), ssim)]:
        metric.update(a[:1], b[:1])
        metric.update(a[1:], b[1:])
        torch.testing.assert_close(metric.compute(), fn(a, b).mean(), rtol=1e-12, atol=0)
        metric.reset()
        assert torch.isnan(metric.compute())
    assert MSE.higher_is_better is False and PSNR.higher_is_better and SSIM.higher_is_better
    assert MSSSIM.higher_is_better


def _ddp_worker(rank: int, init_file: str, a: torch.Tensor, b: torch.Tensor, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)  # forked child: stay out of the parent's OpenMP pool
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        metrics = [MSE(), PSNR(), SSIM()]
        half = slice(0, 1) if rank == 0 else slice(1, None)  # unequal shards on purpose
        for m in metrics:
            m.update(a[half], b[half])
        values = torch.stack([m.compute() for m in metrics])
        if rank == 0:
            torch.save(values, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(180)
def test_metric_classes_sum_across_ddp_ranks(pairs, tmp_path):
    ref, dist = pairs
    a, b = to_t(ref) / 255, to_t(dist) / 255
    out = tmp_path / "values.pt"
    # fork: no re-import of torch in the children, so the test takes ~1 s instead of ~15
    mp.start_processes(_ddp_worker, args=(str(tmp_path / "init"), a, b, str(out)), nprocs=2,
                       start_method="fork")
    got = torch.load(out, weights_only=True)
    want = torch.stack([mse(a, b).mean(), psnr(a, b).mean(), ssim(a, b).mean()])
    torch.testing.assert_close(got, want, rtol=1e-12, atol=0)


# ---------------------------------------------------------------- bad input

def test_bad_inputs_raise_pixseq_error():
    x = torch.rand(2, 3, 32, 40)
    with pytest.raises(PixseqError, match=r"40x32.*48x32"):
        psnr(x, torch.rand(2, 3, 32, 48))
    with pytest.raises(PixseqError, match="differ in shape"):
        ssim(x, torch.rand(2, 1, 32, 40))
    with pytest.raises(PixseqError, match="data_range"):
        psnr(x * 255, x * 255)  # uint8-scaled values with the default data_range=1
    with pytest.raises(PixseqError, match="C = 1 or 3"):
        mse(x[:, :2], x[:, :2])
    with pytest.raises(PixseqError, match="smaller than"):
        ssim(x[..., :8, :8], x[..., :8, :8])
    with pytest.raises(PixseqError, match="MS-SSIM"):
        ms_ssim(x, x)
    with pytest.raises(PixseqError, match="reduction"):
        mse(x, x, reduction="sum")
    with pytest.raises(PixseqError, match="NaN"):
        psnr(x * float("nan"), x)
    for metric in (mse, psnr, ssim):  # zero-size images: a clear error, not a torch one
        with pytest.raises(PixseqError, match=r"no pixels \(40x0\)"):
            metric(x[:, :, :0], x[:, :, :0])


@pytest.mark.parametrize("fused", [False, True], ids=["eager", "fused"])
def test_options_dtypes_and_graphs_behave_the_same_on_both_paths(fused):
    from pixseq import fused as fused_kernels
    from pixseq.metrics.brisque import BRISQUE, brisque

    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 3, 32, 40, generator=g)
    y = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    with fused_kernels.using(fused):
        for bad in (float("inf"), float("nan"), 0, -1.0, torch.tensor([1.0, 1.0]), "1"):
            for call in (lambda: psnr(x, y, data_range=bad), lambda: ssim(x, y, data_range=bad),
                         lambda: brisque(y, data_range=bad), lambda: PSNR(data_range=bad),
                         lambda: SSIM(data_range=bad), lambda: BRISQUE(data_range=bad)):
                with pytest.raises(PixseqError, match="data_range must be a"):
                    call()
        assert torch.equal(psnr(x, y, data_range=torch.tensor(1.0)), psnr(x, y))  # a 0-d tensor is a number
        with pytest.raises(PixseqError, match="no reduction option"):
            SSIM(reduction="mean")  # update() would count each batch mean as one image
        with pytest.raises(PixseqError, match="unexpected keyword"):
            MSSSIM(window=7)
        with pytest.raises(PixseqError, match="at least one scale weight"):
            ms_ssim(x, y, weights=())
        with pytest.raises(PixseqError, match="complex values"):
            psnr(torch.complex(x, x), torch.complex(y, y))
        with pytest.raises(PixseqError, match="constant reference"):
            psnr_thesis(torch.full_like(x, 0.5), y)  # range 0: no peak (ssim_thesis says the same)
        # Half precision is summed in float32: bf16 MSE within float32 rounding of the exact
        # float64 value (summing in bf16 was 0.3 % off), and a sum beyond float16's 65504
        # is no overflow.
        xb, yb = x.bfloat16(), y.bfloat16()
        torch.testing.assert_close(mse(xb, yb), (xb.double() - yb.double()).square().flatten(1).mean(1),
                                   rtol=1e-6, atol=0)
        zeros = torch.zeros(1, 3, 256, 256, dtype=torch.float16)
        assert psnr(zeros, zeros + 1).item() == 0.0
        # Inputs that carry a graph give the plain values (metrics are measurements).
        xg = x.clone().requires_grad_()
        for metric in (mse, psnr, ssim, psnr_thesis):
            got = metric(xg, y)
            assert not got.requires_grad and torch.equal(got, metric(x, y))
        # bool images (0 / 1) are numbers like any other, on both paths
        torch.testing.assert_close(psnr_thesis(x > 0.5, y > 0.5), psnr((x > 0.5).double(), (y > 0.5).double()))


@pytest.mark.parametrize("fused", [False, True], ids=["eager", "fused"])
def test_float32_ssim_keeps_its_precision_under_a_brightness_shift(fused):
    # A dark image against a bright one (a "mean shift" distortion): with one shift for both
    # images (the reference's mean), float32 MS-SSIM was 1e-5 off its float64 value here;
    # each image shifted by its own mean keeps both near 0, and float32 within ~1e-7.
    from pixseq import fused as fused_kernels

    g = torch.Generator().manual_seed(0)
    a = 0.01 * torch.rand(2, 3, 176, 176, generator=g)
    b = 0.9 + 0.01 * torch.rand(2, 3, 176, 176, generator=g)
    with fused_kernels.using(fused):
        torch.testing.assert_close(ms_ssim(a, b), ms_ssim(a, b, precision="float64"), rtol=0, atol=1e-7)
        torch.testing.assert_close(ssim(b, a), ssim(b, a, precision="float64"), rtol=0, atol=1e-7)
        assert ssim(b, b).tolist() == [1.0, 1.0]  # identical images: the same shift, exactly 1


@pytest.mark.parametrize("fused", [False, True], ids=["eager", "fused"])
def test_cheap_checks_on_large_and_channels_last_batches(fused):
    # Batches above the sample size take the sampled span check (eager; the fused pass
    # checks every value); NaN / inf must still be found exactly (through the per-image
    # sums), wherever the one bad pixel sits.
    from pixseq import fused as fused_kernels

    with fused_kernels.using(fused):
        _check_large_and_channels_last(fused)


def _check_large_and_channels_last(fused: bool) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 160, 200, generator=g).contiguous(memory_format=torch.channels_last)
    y = (x + 0.01).clamp(0, 1)
    # Both layouts are read in memory order: the float32 squares are summed in another
    # order, ~1e-7 relative on the MSE at most, i.e. < 1e-6 dB (measured: 2e-9 dB fused;
    # the eager sums happen to agree to 1e-9).
    torch.testing.assert_close(psnr(x, y), psnr(x.contiguous(), y.contiguous()), rtol=0,
                               atol=1e-6 if fused else 1e-9)
    for bad in (float("nan"), float("inf")):
        z = y.clone()
        z[1, 2, 159, 199] = bad  # the last pixel: outside any sampled run is possible
        with pytest.raises(PixseqError, match="NaN or infinite"):
            psnr(x, z)
        with pytest.raises(PixseqError, match="NaN or infinite"):
            mse(z, x)
    with pytest.raises(PixseqError, match="data_range"):
        psnr(x * 255, y * 255)  # the scale mistake is caught by the sample
    with pytest.raises(PixseqError, match="data_range"):
        psnr(x, y * 2 - 1)  # a [-1, 1] distorted batch against a [0, 1] reference


def test_uint8_batches_are_exact_in_any_layout(pairs):
    # uint8 batches are differenced in bytes (|a - b| = max - min, exact), in memory
    # order for channels-last views: the squared errors are exact integers, so the only
    # difference from scikit-image's float64 mean is the float32 cascade sum, ~1e-7
    # relative (~5e-7 dB); 1e-6 relative / 1e-6 dB covers it.
    ref, dist = pairs
    want_mse = torch.tensor([mean_squared_error(r, d) for r, d in zip(ref, dist)], dtype=torch.float64)
    want_psnr = torch.tensor([peak_signal_noise_ratio(r, d) for r, d in zip(ref, dist)], dtype=torch.float64)
    hwc_a, hwc_b = torch.from_numpy(ref), torch.from_numpy(dist)
    for a, b in [(hwc_a.permute(0, 3, 1, 2), hwc_b.permute(0, 3, 1, 2)),  # channels-last views
                 (hwc_a.permute(0, 3, 1, 2).contiguous(), hwc_b.permute(0, 3, 1, 2).contiguous()),
                 (hwc_a.permute(0, 3, 1, 2), hwc_b.permute(0, 3, 1, 2).contiguous())]:  # mixed layouts
        assert a.dtype == torch.uint8
        torch.testing.assert_close(mse(a, b), want_mse, rtol=1e-6, atol=0)
        torch.testing.assert_close(psnr(a, b, 255), want_psnr, rtol=0, atol=1e-6)
        # |a - b| in bytes must not wrap around where the distorted pixel is brighter.
        torch.testing.assert_close(mse(b, a), want_mse, rtol=1e-6, atol=0)
    with pytest.raises(PixseqError, match="data_range"):
        psnr(hwc_a.permute(0, 3, 1, 2), hwc_b.permute(0, 3, 1, 2))  # uint8 with the [0, 1] default


def test_halving_matches_zero_padded_avg_pool():
    from pixseq.metrics.ssim import _halve

    for h, w in [(8, 8), (7, 9), (9, 6), (5, 5)]:
        x = torch.rand(2, 3, h, w, dtype=torch.float64)
        want = torch.nn.functional.avg_pool2d(x, 2, padding=[h % 2, w % 2])
        torch.testing.assert_close(_halve(x), want, rtol=0, atol=1e-15)  # same 4-term mean


def test_fused_mse_psnr_match_skimage_and_check_exhaustively(pairs, fused_kernels):
    ref, dist = pairs
    a = torch.from_numpy(ref).permute(0, 3, 1, 2).float() / 255  # channels-last float32
    b = torch.from_numpy(dist).permute(0, 3, 1, 2).float() / 255
    got = psnr(a, b)
    if not fused_kernels.available():
        pytest.skip("pixseq's C kernel cannot be built here (no C compiler)")
    want = torch.tensor([peak_signal_noise_ratio(r, d) for r, d in zip(ref, dist)], dtype=torch.float64)
    # uint8 (channels-last views, as decoded): exact sums, so equal up to the final log10.
    ua, ub = torch.from_numpy(ref).permute(0, 3, 1, 2), torch.from_numpy(dist).permute(0, 3, 1, 2)
    torch.testing.assert_close(psnr(ua, ub, data_range=255), want, rtol=1e-13, atol=0)
    # Mixed layouts, odd sizes (vector-loop tails) and views that are not one block.
    crop = (slice(None), slice(None), slice(3, 16), slice(1, 8))
    want_crop = [peak_signal_noise_ratio(r[3:16, 1:8], d[3:16, 1:8]) for r, d in zip(ref, dist)]
    torch.testing.assert_close(psnr(a.contiguous()[crop], b[crop]), torch.tensor(want_crop, dtype=torch.float64),
                               rtol=0, atol=2e-4)
    # float32 inputs are x/255 rounded (~3e-8 relative each); their differences of a few
    # levels carry up to ~1e-5 relative error, which bounds the PSNR difference at ~5e-5 dB
    # for both the eager and the fused path (the fused sum itself is float64).
    torch.testing.assert_close(got, want, rtol=0, atol=2e-4)
    a64, b64 = to_t(ref), to_t(dist)  # float64 0..255: identical arithmetic to scikit-image
    want_mse = torch.tensor([mean_squared_error(r, d) for r, d in zip(ref, dist)], dtype=torch.float64)
    torch.testing.assert_close(mse(a64, b64), want_mse, rtol=1e-12, atol=0)
    want_thesis = [peak_signal_noise_ratio(r, d, data_range=float(r.max()) - float(r.min())) for r, d in zip(ref, dist)]
    torch.testing.assert_close(psnr_thesis(a64, b64), torch.tensor(want_thesis, dtype=torch.float64),
                               rtol=0, atol=1e-9)
    # The fused pass checks every value: one bad pixel anywhere is found.
    z = b.clone()
    z[-1, 1, -1, -1] = 1.5
    with pytest.raises(PixseqError, match="data_range"):
        psnr(a, z)  # spans 1.5 > 1.01
    z[-1, 1, -1, -1] = float("nan")
    with pytest.raises(PixseqError, match="NaN or infinite"):
        psnr(z, a)
