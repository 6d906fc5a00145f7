"""Code paths that differ on a CUDA GPU, checked without one.

CI has no GPU, so device mismatches (a CPU tensor meeting a CUDA one) are looked for with
torch's FakeTensorMode: tensors that say they are on ``cuda`` but hold no data, on which
torch's device checks run as on real ones. Code that reads values back (``.tolist()``,
``bool(t)``) cannot run on them; the @gpu tests compare such code with its CPU results
where a GPU exists.
"""
from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn

from pixseq.metrics import brisque as brisque_mod
from pixseq.metrics import ssim as ssim_mod
from pixseq.metrics.base import filter_valid


@pytest.fixture
def fake_cuda():
    """A FakeTensorMode in which ``device="cuda"`` makes data-less CUDA tensors (no GPU needed)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    try:
        with mode:
            torch.empty(1, device="cuda")
    except Exception as exc:  # noqa: BLE001 - e.g. a torch built without CUDA support
        pytest.skip(f"this torch cannot make fake CUDA tensors ({type(exc).__name__})")
    return mode


def test_ssim_filters_with_its_window_where_the_images_are(fake_cuda):
    """The window is built on the CPU; SSIM and MS-SSIM of CUDA images failed in conv2d
    ('weight is on cpu') and MS-SSIM's scale weights in the final power."""
    w = ssim_mod._window(11, 1.5, True, torch.float32)
    weights = torch.tensor([0.0448, 0.2856, 0.3001, 0.2363, 0.1333], dtype=torch.float64)
    with fake_cuda:
        maps = torch.empty(2, 4, 32, 32, device="cuda")
        assert filter_valid(maps, w).device.type == "cuda"
        a, b = torch.empty(1, 3, 200, 200, device="cuda"), torch.empty(1, 3, 200, 200, device="cuda")
        ssim_c, cs_c = ssim_mod._ssim_and_cs(a, b, w, 1.0, 0.01, 0.03)
        assert ssim_c.device.type == cs_c.device.type == "cuda"
        assert ssim_mod._ms_ssim_part(a, b, w, weights, 0.01, 0.03, 1.0).device.type == "cuda"


def test_brisque_downsamples_and_scores_where_the_images_are(fake_cuda):
    """BRISQUE's border indices and SVR model were CPU tensors used with CUDA maps/features."""
    brisque_mod._half_weights(), brisque_mod._model()  # cached outside: they read numbers
    with fake_cuda:
        luma = torch.empty(2, 40, 36, device="cuda", dtype=torch.float64)
        assert brisque_mod.downsample_half(luma).device.type == "cuda"
        features = torch.empty(2, 36, device="cuda", dtype=torch.float64)
        assert brisque_mod.svr_score(features).device.type == "cuda"


def test_metric_state_is_reduced_on_the_gpu_under_nccl(monkeypatch, fake_cuda):
    """NCCL reduces CUDA tensors only: the metrics' CPU state goes through the GPU and back."""
    from pixseq.metrics.pixel import MSE

    metric = MSE()
    metric.update(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    seen = []
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda *a, **k: 2)
    monkeypatch.setattr(dist, "get_backend", lambda *a, **k: "nccl")
    monkeypatch.setattr(dist, "all_reduce", lambda t, *a, **k: seen.append(t.device))
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with fake_cuda:
        state = metric.synced_state()
    assert seen and all(d == torch.device("cuda", 0) for d in seen)
    assert all(v.device.type == "cpu" for v in state.values())


def test_local_device_is_the_local_ranks_gpu_under_torchrun(monkeypatch):
    from pixseq.train.distributed import local_device

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert local_device(torch.device("cuda")) == torch.device("cuda")  # one process: as given
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "2")
    assert local_device(torch.device("cuda")) == torch.device("cuda", 2)
    assert local_device(torch.device("cuda", 0)) == torch.device("cuda", 0)  # explicit: kept
    assert local_device(torch.device("cpu")) == torch.device("cpu")


# ------------------------------------------------------------------ on a real GPU
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_pixel_metrics_on_cuda_match_the_cpu():
    from pixseq.metrics.brisque import brisque
    from pixseq.metrics.pixel import psnr
    from pixseq.metrics.ssim import ms_ssim, ssim, ssim_thesis

    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 180, 170, generator=g)
    b = (a + 0.05 * torch.randn(2, 3, 180, 170, generator=g)).clamp(0, 1)
    for fn in (ssim, ms_ssim, ssim_thesis, psnr):
        # float32 kernels (cuDNN vs the CPU's shifted adds) differ in the last bits only
        assert torch.allclose(fn(a.cuda(), b.cuda()).cpu(), fn(a, b), rtol=1e-4, atol=1e-5), fn.__name__
    # float64 moments, but the luma and the half-size image are float32 (a GPU's fused
    # multiply-adds may round their last bit otherwise)
    assert torch.allclose(brisque(b.cuda()).cpu(), brisque(b), rtol=1e-4)


class _StubInception(nn.Module):
    """The two methods SetScores calls, with an fc weight like FIDInceptionV3's."""

    num_features = 12

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(12, 5, bias=False)

    def pool_features(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(images, 2).flatten(1)  # (B, 12)

    def logits_unbiased(self, features: torch.Tensor) -> torch.Tensor:
        return features @ self.fc.weight.T


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_set_metrics_take_features_from_a_model_on_cuda():
    """assess --device cuda: Inception Score logits came from the CPU copy of the features
    (a CUDA fc weight); FID added CUDA features to its CPU sums."""
    from pixseq.assess import SetScores

    g = torch.Generator().manual_seed(0)
    images = [(torch.rand(2, 3, 8, 8, generator=g), torch.rand(2, 3, 8, 8, generator=g)) for _ in range(4)]
    results = []
    for device in ("cpu", "cuda"):
        torch.manual_seed(0)
        sets = SetScores(["fid", "kid", "is"], _StubInception().to(device))
        for a, b in images:
            sets.update(a.to(device), b.to(device))
        results.append(sets.compute([]))
    for key in results[0]:
        assert results[1][key]["value"] == pytest.approx(results[0][key]["value"], rel=1e-4, abs=1e-6), key
    feats = torch.rand(6, 12, generator=g)
    assert _fid_of(feats, "cuda") == pytest.approx(_fid_of(feats, "cpu"), rel=1e-9)


def _fid_of(feats: torch.Tensor, device: str) -> float:
    """FID of ``feats`` against a scaled, reordered copy, with the features given on ``device``."""
    from pixseq.metrics.fid import FID

    fid = FID(num_features=feats.shape[1])
    fid.update_features(feats.to(device), True)
    fid.update_features(feats.flip(0).to(device) * 0.9, False)
    return fid.compute()


def test_fit_leaves_the_trained_model_where_it_trained(tmp_path, monkeypatch):
    """fit_vqgan / fit_prior / fit_igpt saved ``model.cpu()``: on a GPU that moved the model
    they return to the CPU, in rank 0 only (save_pretrained copies the weights itself)."""
    import numpy as np

    from pixseq.models.taming_train import fit_vqgan
    from pixseq.tokenizers.losses import VQGANLossConfig
    from pixseq.tokenizers.vqgan import vqgan_config
    from pixseq.train.config import TrainConfig

    def refuse(self):
        raise AssertionError(f"{type(self).__name__}.cpu() called")

    monkeypatch.setattr(nn.Module, "cpu", refuse)
    images = [np.zeros((24, 24, 3), np.uint8)] * 4
    fit_vqgan(images, tmp_path / "a", vqgan_config(4, 16, 8, 8), VQGANLossConfig(perceptual="none", disc_start=100),
              TrainConfig(steps=1, batch_size=4, warmup_steps=1, log_every=0, ckpt_every=0), 24, announce=None)
    assert (tmp_path / "a" / "model.safetensors").is_file()
