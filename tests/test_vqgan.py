"""VQGAN tokenizer, vector quantizer and VQGAN losses."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch

from pixseq import registry
from pixseq.checkpoint import from_pretrained, save_pretrained
from pixseq.config import to_dict
from pixseq.errors import PixseqError
from pixseq.tokenizers.losses import (PatchDiscriminator, VQGANLoss, VQGANLossConfig, adaptive_weight,
                                      d_loss_fn, g_loss_fn)
from pixseq.tokenizers.quantize import QuantizerConfig, VectorQuantizer
from pixseq.tokenizers.vqgan import VQGAN, vqgan_config


@pytest.fixture(autouse=True)
def _one_thread():
    """Two OpenMP threads on a shared, oversubscribed 2-core box run ~50x slower than one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _vq(**kw) -> VectorQuantizer:
    base = dict(num_codes=16, dim=4, kmeans_init=False, dead_restart=False)
    base.update(kw)
    return VectorQuantizer(QuantizerConfig(**base))


def test_nearest_code_and_losses_match_float64_reference():
    q = _vq().eval()
    z = torch.randn(2, 4, 3, 5, requires_grad=True)
    z_q, loss, info = q(z)
    flat = z.detach().double().permute(0, 2, 3, 1).reshape(-1, 4)
    cb = q.embedding.weight.detach().double()
    ref_idx = torch.cdist(flat, cb).argmin(1)
    assert torch.equal(info["indices"].flatten(), ref_idx)
    # VQ-VAE loss: ||sg z - e||^2 + beta ||z - sg e||^2, both means over elements (1e-6: fp32 vs fp64)
    mse = (flat - cb[ref_idx]).pow(2).mean()
    assert float(loss.detach()) == pytest.approx(float((1 + 0.25) * mse), rel=1e-5)
    # forward value is the code vector, gradient is straight through (identity)
    assert torch.allclose(z_q.detach().permute(0, 2, 3, 1).reshape(-1, 4).double(), cb[ref_idx], atol=1e-6)
    (z_q * torch.arange(z_q.numel()).view_as(z_q)).sum().backward()
    assert torch.equal(z.grad, torch.arange(z.numel()).view_as(z).float())


def test_perplexity_matches_scipy_entropy():
    q = _vq().eval()
    z = torch.randn(1, 4, 8, 8)
    _, _, info = q(z)
    counts = np.bincount(info["indices"].flatten().numpy(), minlength=16)
    ref = math.exp(scipy.stats.entropy(counts / counts.sum()))
    assert float(info["perplexity"]) == pytest.approx(ref, rel=1e-5)


def test_ema_update_follows_formula():
    q = _vq(ema=True, ema_decay=0.9).train()
    before_sum, before_cnt = q.ema_sum.clone().double(), q.ema_count.clone().double()
    z = torch.randn(1, 4, 4, 4)
    _, loss, info = q(z)
    idx = info["indices"].flatten()
    flat = z.double().permute(0, 2, 3, 1).reshape(-1, 4)
    k = int(idx[0])
    cnt = before_cnt * 0.9 + 0.1 * torch.bincount(idx, minlength=16).double()
    s = before_sum[k] * 0.9 + 0.1 * flat[idx == k].sum(0)
    n = cnt.sum()
    ref = s / ((cnt[k] + 1e-5) / (n + 16e-5) * n)
    assert torch.allclose(q.embedding.weight[k].double(), ref, atol=1e-5)  # fp32 accumulation
    assert not q.embedding.weight.requires_grad  # EMA codebook is not trained by gradients


def test_l2_norm_codes_are_unit_length():
    q = _vq(l2_norm=True).eval()
    z_q, _, _ = q(torch.randn(2, 4, 3, 3) * 7)
    assert torch.allclose(z_q.norm(dim=1), torch.ones(2, 3, 3), atol=1e-5)


def test_kmeans_init_finds_clusters():
    centers = torch.tensor([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 5.0, 0], [0, 0, 0, 5.0]])
    pts = centers.repeat(64, 1) + 0.05 * torch.randn(256, 4)
    q = _vq(num_codes=4, kmeans_init=True).train()
    q(pts.t().reshape(1, 4, 16, 16))
    dist = torch.cdist(centers, q.embedding.weight.detach()).min(1).values
    assert bool(q.initialized) and dist.max() < 0.5


def test_kmeans_flag_is_read_once_and_again_after_loading():
    """The 'initialized' buffer used to be read back at every training forward (a GPU host
    wait); it is read until it is True, and again after a state dict is loaded."""
    class NoBool(torch.Tensor):
        def __bool__(self):
            raise AssertionError("read back")

    q = _vq(num_codes=4, kmeans_init=True).train()
    z = torch.randn(1, 4, 8, 8)
    q(z)
    q.initialized = q.initialized.as_subclass(NoBool)
    q(z)  # no read of the flag once it is known to be True
    q.initialized = q.initialized.as_subclass(torch.Tensor)  # readable again: a load must re-read it
    fresh = _vq(num_codes=4, kmeans_init=True).state_dict()  # initialized=False
    q.load_state_dict(fresh)
    q(z)
    assert bool(q.initialized) and not torch.equal(q.embedding.weight, fresh["embedding.weight"])  # k-means ran again


def test_dead_codes_restart_from_recent_outputs_and_usage():
    q = _vq(num_codes=8, dead_restart=True, dead_after=3, usage_window=3).train()
    with torch.no_grad():
        q.embedding.weight.zero_()
        q.embedding.weight[1:] += 100.0  # only code 0 is ever nearest
    z = torch.randn(1, 4, 4, 4)
    q(z)
    assert q.usage() == pytest.approx(1 / 8)
    for _ in range(3):
        q(z)
    # dead codes now sit on (noisy copies of) recent encoder outputs
    flat = z.permute(0, 2, 3, 1).reshape(-1, 4)
    assert torch.cdist(q.embedding.weight[1:].detach(), flat).min(1).values.max() < 0.1
    for _ in range(3):
        q(z)
    assert q.usage() > 1 / 8


@pytest.mark.parametrize("factor,grid", [(4, (7, 8)), (8, (4, 4)), (16, (2, 2))])
def test_vqgan_factor_grid_and_pad_crop(factor, grid):
    m = VQGAN(vqgan_config(factor, codes=32, dim=8, ch=8)).eval()
    assert m.factor == factor and m.grid_size(28, 30) == grid
    x = torch.rand(2, 3, 28, 30)
    tokens = m.encode(x)
    assert tokens.shape == (2, *grid) and tokens.dtype == torch.long
    assert 0 <= int(tokens.min()) and int(tokens.max()) < 32
    out = m.reconstruct(x)
    assert out.shape == x.shape and 0 <= float(out.min()) and float(out.max()) <= 1



@pytest.mark.parametrize("bad", [dict(ch=0), dict(ch_mult=[1, 0]), dict(num_res_blocks=-1), dict(dropout=1.5),
                                 dict(quantizer=dict(num_codes=0)), dict(quantizer=dict(ema_decay=float("nan")))])
def test_config_json_with_bad_sizes_is_one_error(bad):
    # ch=0 used to build a model of empty convolutions, num_codes=0 a ZeroDivisionError
    doc = to_dict(vqgan_config(4, codes=16, dim=8, ch=8))
    for key, value in bad.items():
        doc[key] = {**doc[key], **value} if isinstance(value, dict) else value
    with pytest.raises(PixseqError, match="invalid (VQGAN|Quantizer)Config"):
        registry.build("vqgan", doc)


def test_encode_decode_check_their_inputs():
    m = VQGAN(vqgan_config(4, codes=16, dim=8, ch=8, kmeans_init=False)).eval()
    bad_images = [(torch.randint(0, 256, (1, 3, 8, 8), dtype=torch.uint8), "float"),  # raw conv dtype error
                  (torch.rand(1, 3, 8, 8) * 2 - 1, r"in \[0, 1\]"),  # silently wrong codes
                  (torch.rand(1, 1, 8, 8), r"\(B, 3, H, W\)")]
    for images, pattern in bad_images:
        with pytest.raises(PixseqError, match=pattern):
            m.encode(images)
    assert m.encode(torch.rand(1, 3, 8, 8, dtype=torch.float64)).shape == (1, 2, 2)  # was a conv dtype error
    bad_tokens = [(torch.tensor([[[1.0, 0.0]]]), "integer"), (torch.tensor([[1, 0]]), r"\(B, h, w\)"),
                  (torch.tensor([[[16, 0]]]), r"0..15"), (torch.tensor([[[1]]]), "too small")]
    for tokens, pattern in bad_tokens:
        with pytest.raises(PixseqError, match=pattern):
            m.decode(tokens)
    assert m.decode(torch.zeros(0, 2, 2, dtype=torch.long)).shape == (0, 3, 8, 8)  # min() of nothing used to fail

def test_save_load_roundtrip(tmp_path):
    m = VQGAN(vqgan_config(4, codes=32, dim=8, ch=8)).eval()
    x = torch.rand(1, 3, 16, 16)
    save_pretrained(m, tmp_path / "vq")
    m2 = from_pretrained(tmp_path / "vq", "vqgan")
    assert torch.equal(m.encode(x), m2.encode(x))
    assert torch.allclose(m.reconstruct(x), m2.reconstruct(x))


def test_gan_losses_and_adaptive_weight():
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    # hinge: 0.5*(mean relu(1-real) + mean relu(1+fake)) = 0.5*(0.25 + 0.75)
    assert float(d_loss_fn("hinge", real, fake)) == pytest.approx(0.5)
    assert float(g_loss_fn("hinge", fake)) == pytest.approx(0.75)
    assert float(d_loss_fn("nonsat", real, fake)) == pytest.approx(
        0.5 * (np.log1p(np.exp(-real.numpy())).mean() + np.log1p(np.exp(fake.numpy())).mean()), rel=1e-6)
    w = torch.randn(5, requires_grad=True)
    rec, gan = (3 * w).sum(), (w * w).sum()
    lam = adaptive_weight(rec, gan, w, scale=0.5)
    ref = 0.5 * (3 * math.sqrt(5)) / (float((2 * w.detach()).norm()) + 1e-6)
    assert float(lam) == pytest.approx(ref, rel=1e-5)


def test_patch_discriminator_outputs_patch_map():
    d = PatchDiscriminator(3, 8, layers=2)
    assert d(torch.rand(2, 3, 32, 32)).shape == (2, 1, 6, 6)


def test_vqgan_loss_switches_gan_on_at_disc_start():
    m = VQGAN(vqgan_config(4, codes=16, dim=8, ch=8))
    crit = VQGANLoss(VQGANLossConfig(perceptual="none", disc_start=5, disc_channels=8, disc_layers=2))
    x = torch.rand(2, 3, 16, 16)
    x_hat, vq, _ = m(x)
    _, before = crit.generator_loss(x * 2 - 1, x_hat, vq, 4, m.last_layer())
    loss, after = crit.generator_loss(x * 2 - 1, x_hat, vq, 5, m.last_layer())
    assert "g_adv" not in before and "adaptive_weight" in after and after["adaptive_weight"] > 0
    d_loss, _ = crit.discriminator_loss(x * 2 - 1, x_hat, 5)
    loss.backward()
    assert m.decoder.conv_out.weight.grad is not None and d_loss.requires_grad


def test_effnet_perceptual_loss_is_zero_for_identical_and_positive_otherwise():
    from pixseq.tokenizers.losses import PerceptualLoss

    p = PerceptualLoss("effnet")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert "EfficientNet" in p.description
    assert float(p(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(p(x, x.flip(-1))) > 0.01


def test_tiny_vqgan_learns_to_reconstruct():
    torch.manual_seed(0)
    m = VQGAN(vqgan_config(4, codes=32, dim=8, ch=16))
    crit = VQGANLoss(VQGANLossConfig(perceptual="none", disc_start=10**9))
    opt = torch.optim.Adam(m.parameters(), lr=2e-3)
    x = torch.rand(4, 3, 1, 1).expand(4, 3, 16, 16).contiguous()  # flat colours: learnable fast
    first = None
    for step in range(40):
        x_hat, vq, _ = m(x)
        loss, logs = crit.generator_loss(x * 2 - 1, x_hat, vq, step, m.last_layer())
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else logs["rec"]
    assert logs["rec"] < 0.7 * first  # measured ~0.55 after 40 steps


def test_nearest_code_is_fp32_under_bf16_autocast():
    q = _vq(num_codes=64, dim=8).eval()
    z = torch.randn(4, 8, 5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, _, info = q(z)
    ref = torch.cdist(z.double().permute(0, 2, 3, 1).reshape(-1, 8), q.embedding.weight.double()).argmin(1)
    assert torch.equal(info["indices"].flatten(), ref)


def test_resume_restarts_the_same_dead_codes(tmp_path, stop_training_after):
    """Code ages, codes ever used and the reservoir are training state: a run stopped at step 4
    and resumed used to forget them (the restarts, the usage log and the weights all differed
    from the uninterrupted run's); now it ends bit for bit the same (CPU)."""
    from pixseq.models.taming_train import fit_vqgan
    from pixseq.train.config import TrainConfig

    images = [np.random.default_rng(i).integers(0, 256, (24, 24, 3), dtype=np.uint8) for i in range(16)]
    args = (vqgan_config(4, 64, 8, 8, dead_after=2, usage_window=2), VQGANLossConfig(perceptual="none", disc_start=100),
            TrainConfig(steps=7, batch_size=2, warmup_steps=1, log_every=0, ckpt_every=1), 24)
    a, history_a = fit_vqgan(images, tmp_path / "a", *args, announce=None)
    stop_training_after(4)
    with pytest.raises(PixseqError, match="interrupted"):
        fit_vqgan(images, tmp_path / "b", *args, announce=None)
    stop_training_after(None)
    b, history_b = fit_vqgan(images, tmp_path / "b", *args, announce=None, resume=True)
    assert [r["gen/usage"] for r in history_a] == [r["gen/usage"] for r in history_b]
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert set(sa) == set(VQGAN(args[0]).state_dict())  # the statistics stay out of the model files


def test_attention_feeds_contiguous_tensors_to_sdpa(monkeypatch):
    """Strided q/k/v made torch's CPU attention fall back to materialising the (HW, HW)
    matrix (2.9 GB instead of 0.6 GB at 128x128 positions; a 512x512 reconstruct with an
    f=2 model was OOM-killed). The output still matches a float64 softmax(QK^T/sqrt(C))V."""
    import torch.nn.functional as F

    from pixseq.nn.conv import AttnBlock

    seen = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention",
                        lambda q, k, v, **kw: seen.append([t.is_contiguous() for t in (q, k, v)]) or sdpa(q, k, v, **kw))
    block = AttnBlock(32).eval()
    x = torch.randn(2, 32, 5, 7)
    with torch.no_grad():
        out = block(x)
        h = block.norm(x).double()
        q, k, v = (F.conv2d(h, m.weight.double(), m.bias.double()).flatten(2) for m in (block.q, block.k, block.v))
        w = torch.softmax(q.transpose(1, 2) @ k / 32 ** 0.5, dim=-1)  # (B, query, key)
        ref = x.double() + F.conv2d((v @ w.transpose(1, 2)).view(2, 32, 5, 7), block.proj.weight.double(),
                                    block.proj.bias.double())
    assert seen == [[True, True, True]]
    assert torch.allclose(out.double(), ref, atol=1e-5)  # float32 attention over 35 positions: ~1e-7 error


def test_grad_accumulation_puts_each_micro_batch_through_the_quantizer_once(tmp_path, monkeypatch):
    """The disc part reuses the gen part's reconstructions; with grad_accum > 1 it found only
    the last micro-batch's and ran the others through the model again in training mode, so
    the codebook statistics counted them twice (3 updates for 2 micro-batches)."""
    from pixseq.models.taming_train import ImageDataset, VQGANTask
    from pixseq.train import TrainConfig, Trainer

    model = VQGAN(vqgan_config(4, 16, 8, 8))
    loss = VQGANLoss(VQGANLossConfig(perceptual="none", disc_start=0, disc_layers=2, disc_channels=8))
    seen = []
    update = model.quantizer._update_stats
    monkeypatch.setattr(model.quantizer, "_update_stats", lambda flat, idx: (seen.append(len(flat)), update(flat, idx)))
    images = [np.random.default_rng(i).integers(0, 256, (24, 24, 3), dtype=np.uint8) for i in range(8)]
    cfg = TrainConfig(steps=2, batch_size=2, grad_accum=2, warmup_steps=0, log_every=0, ckpt_every=0)
    Trainer(VQGANTask(model, loss), ImageDataset(images, 24), cfg, tmp_path).fit()
    assert len(seen) == 2 * 2  # steps x micro-batches


def test_vqgan_task_logs_tensors_only():
    """The Trainer reads a step's logged numbers back in one go; the codebook usage was a
    Python float (one GPU host wait per generator micro-batch), now a 0-d tensor like the rest."""
    from pixseq.models.taming_train import VQGANTask

    model = VQGAN(vqgan_config(4, 16, 8, 8)).train()
    loss = VQGANLoss(VQGANLossConfig(perceptual="none", disc_start=0, disc_layers=2, disc_channels=8))
    task = VQGANTask(model, loss)
    batch = {"image": torch.rand(2, 3, 24, 24) * 2 - 1}
    for part in task.parts():
        _, logs = task.training_step(batch, 0, part)
        assert logs and all(isinstance(v, torch.Tensor) and v.numel() == 1 for v in logs.values()), logs
    assert float(logs.get("usage", model.quantizer.usage_tensor())) == model.quantizer.usage()
