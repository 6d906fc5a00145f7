"""The Vision Transformer library: the shared blocks' bidirectional mode, the model against a
float64 reference written from the paper, SPT / LSA / stochastic depth, position
interpolation (timm's), converters (random timm / transformers models), rollout, training
(exact resume with augmentation), fine-tuning, prediction and evaluation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixseq.checkpoint import load_model, save_pretrained
from pixseq.classifiers.augment import AugmentSettings, BatchMix, ImageAugment, classification_loss
from pixseq.classifiers.convert import hf_vit_state, load_hf_folder, load_timm_file, resolve_init, timm_vit_state
from pixseq.classifiers.predict import classify, predict
from pixseq.classifiers.rollout import rollout, rollout_maps
from pixseq.classifiers.vit import ViT, ViTConfig, resample_positions, shifted_images, vit_config
from pixseq.classifiers.vit_train import build_vit, check_init_architecture
from pixseq.errors import PixseqError
from pixseq.nn.transformer import Block, DropPath
from pixseq.runtime import capture_notices

NAMES = tuple(f"c{i}" for i in range(5))


def tiny(**kw) -> ViT:
    cfg = dict(image_size=16, patch_size=4, num_classes=5, dim=16, depth=2, heads=2, mlp_ratio=2, class_names=NAMES)
    model = ViT(ViTConfig(**{**cfg, **kw})).eval()
    with torch.no_grad():  # away from the tiny N(0, 0.02) init, so that every path matters in the logits
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return model


def reference_logits(model: ViT, x: torch.Tensor) -> torch.Tensor:
    """The ViT written out in float64 from Dosovitskiy et al. (+ Lee et al.'s SPT and LSA),
    head by head, reading the model's weights: patches flattened by hand, explicit softmax,
    the LayerNorm formula."""
    W = {k: v.double() for k, v in model.state_dict().items()}
    cfg = model.config
    C, nh, p, eps = cfg.dim, cfg.heads, cfg.patch_size, cfg.norm_eps

    def ln(h, name):
        mu, var = h.mean(-1, keepdim=True), h.var(-1, unbiased=False, keepdim=True)
        return (h - mu) / torch.sqrt(var + eps) * W[name + ".weight"] + W[name + ".bias"]

    def lin(h, name):
        return h @ W[name + ".weight"].T + W[name + ".bias"]

    x = (x.double() - torch.tensor(cfg.mean).double().view(1, 3, 1, 1)) / torch.tensor(cfg.std).double().view(1, 3, 1, 1)
    B, _, H, Wd = x.shape
    if cfg.spt:  # the four diagonal shifts by half a patch, by index arithmetic
        s = p // 2
        shifts = []
        for dy, dx in ((s, s), (s, -s), (-s, s), (-s, -s)):
            out = torch.zeros_like(x)
            for i in range(H):
                for j in range(Wd):
                    if 0 <= i + dy < H and 0 <= j + dx < Wd:
                        out[..., i, j] = x[..., i + dy, j + dx]
            shifts.append(out)
        x = torch.cat([x, *shifts], 1)
    patches = [x[:, :, i:i + p, j:j + p].reshape(B, -1) for i in range(0, H, p) for j in range(0, Wd, p)]
    tok = torch.stack(patches, 1)  # (B, S, C_in * p * p), flattened as the conv weight is
    if cfg.spt:
        tok = lin(ln(tok, "patch_embed.norm"), "patch_embed.proj")
    else:
        tok = tok @ W["patch_embed.proj.weight"].reshape(C, -1).T + W["patch_embed.proj.bias"]
    if cfg.pool == "cls":
        tok = torch.cat([W["cls_token"].expand(B, 1, C), tok], 1)
    h = tok + W["pos_embed"]
    T = h.size(1)
    for i in range(cfg.depth):
        pre = f"blocks.{i}."
        q, k, v = lin(ln(h, pre + "ln_1"), pre + "attn.c_attn").split(C, -1)
        heads = []
        for hd in range(nh):
            sl = slice(hd * C // nh, (hd + 1) * C // nh)
            if cfg.lsa:
                scores = q[..., sl] @ k[..., sl].transpose(1, 2) * math.exp(float(W[pre + "attn.log_scale"]))
                scores = scores.masked_fill(torch.eye(T, dtype=torch.bool), -math.inf)
            else:
                scores = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(C // nh)
            heads.append(scores.softmax(-1) @ v[..., sl])
        h = h + lin(torch.cat(heads, -1), pre + "attn.c_proj")
        m = lin(ln(h, pre + "ln_2"), pre + "mlp.c_fc")
        h = h + lin(0.5 * m * (1 + torch.erf(m / math.sqrt(2))), pre + "mlp.c_proj")
    pooled = h[:, 0] if cfg.pool == "cls" else h.mean(1)
    return lin(ln(pooled, "ln_f"), "head")


@pytest.mark.parametrize("options", [{}, {"pool": "mean"}, {"spt": True}, {"lsa": True},
                                     {"spt": True, "lsa": True, "pool": "mean"}])
def test_vit_matches_the_float64_reference(options):
    model = tiny(**options)
    x = torch.rand(3, 3, 16, 16)
    # float32 through two blocks of width 16 against float64: rounding of ~1e-6 relative
    torch.testing.assert_close(model(x).double(), reference_logits(model, x), atol=2e-5, rtol=1e-4)


def test_shifted_images_are_the_four_diagonal_shifts():
    x = torch.arange(2 * 36, dtype=torch.float32).view(1, 2, 6, 6)
    out = shifted_images(x, 2)
    assert out.shape == (1, 10, 6, 6)
    torch.testing.assert_close(out[:, :2], x)
    # left-up: pixel (i, j) shows (i + 2, j + 2), zero where that falls outside
    torch.testing.assert_close(out[:, 2:4, :4, :4], x[..., 2:, 2:])
    assert out[:, 2:4, 4:].abs().sum() == 0 and out[:, 2:4, :, 4:].abs().sum() == 0
    torch.testing.assert_close(out[:, 8:10, 2:, 2:], x[..., :4, :4])  # right-down


def test_bidirectional_block_sees_the_future_and_causal_does_not():
    torch.manual_seed(0)
    causal, full = Block(16, 2), Block(16, 2, causal=False)
    full.load_state_dict(causal.state_dict())
    x = torch.randn(1, 5, 16)
    y = x.clone()
    y[:, -1] += torch.randn(16)  # change the last token only (not by a constant: LayerNorm removes that)
    assert torch.equal(causal(x)[:, :-1], causal(y)[:, :-1])  # earlier positions cannot see it
    assert not torch.allclose(full(x)[:, 0], full(y)[:, 0])
    with pytest.raises(ValueError, match="bidirectional"):
        Block(16, 2, causal=True, locality=True)


def test_attention_probs_are_what_the_block_computes():
    model = tiny(lsa=True)
    x = torch.rand(2, 3, 16, 16)
    block = model.blocks[0]
    h = block.ln_1(model.embed(x))
    probs = block.attn.attention_probs(h)  # (B, nh, T, T)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 2, 17))
    assert probs.diagonal(dim1=-2, dim2=-1).abs().max() == 0  # LSA: no token attends to itself
    B, T, C = h.shape
    v = block.attn.c_attn(h)[..., 2 * C:].view(B, T, 2, C // 2).transpose(1, 2)
    y = block.attn.c_proj((probs @ v).transpose(1, 2).reshape(B, T, C))
    torch.testing.assert_close(y, block.attn(h), atol=1e-5, rtol=1e-4)


def test_drop_path_drops_whole_samples_and_keeps_the_mean():
    torch.manual_seed(0)
    drop = DropPath(0.3)
    x = torch.ones(4000, 3, 2)
    y = drop(x)
    per_sample = y.flatten(1)
    kept = torch.tensor(1 / 0.7, dtype=torch.float32).item()
    assert set(per_sample.min(1).values.tolist()) == {0.0, kept} == set(per_sample.max(1).values.tolist())
    assert abs(y.mean().item() - 1.0) < 0.03  # E[y] = x: 3 sigma of 4000 Bernoulli draws is ~0.02
    assert torch.equal(drop.eval()(x), x)
    model = ViT(vit_config("micro", drop_path=0.2, depth=3))
    assert [b.drop_path.p if isinstance(b.drop_path, DropPath) else 0.0 for b in model.blocks] == [0.0, 0.1, 0.2]


def test_positions_are_interpolated_like_timm():
    from timm.layers import resample_abs_pos_embed

    pos = torch.randn(1, 16, 8)
    ours = resample_positions(pos, (4, 4), (6, 3))
    theirs = resample_abs_pos_embed(pos, new_size=(6, 3), old_size=(4, 4), num_prefix_tokens=0)
    torch.testing.assert_close(ours, theirs)
    model = tiny()
    assert model(torch.rand(2, 3, 24, 12)).shape == (2, 5)  # a 6x3 grid: interpolated positions
    with pytest.raises(PixseqError, match="not whole 4x4 patches"):
        model(torch.rand(1, 3, 18, 16))


# ---------------------------------------------------------------------------- converters
def _random_timm(**kw):
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(1)
    net = VisionTransformer(img_size=32, patch_size=8, num_classes=7, embed_dim=32, depth=2, num_heads=4, **kw).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.2)
    return net


@pytest.mark.parametrize("pool", ["token", "avg"])
def test_timm_vision_transformer_converts_to_the_same_logits(pool, tmp_path):
    from safetensors.torch import save_file

    net = _random_timm(global_pool=pool, class_token=pool == "token")
    save_file(net.state_dict(), str(tmp_path / "vit.safetensors"))
    model = load_timm_file(tmp_path / "vit.safetensors", heads=4, mean=(0.0,) * 3, std=(1.0,) * 3).model()
    assert model.config.pool == ("cls" if pool == "token" else "mean") and model.config.image_size == 32
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), atol=1e-5, rtol=1e-5)  # the same float32 ops in the same order
        big = torch.rand(1, 3, 48, 40)
        net.set_input_size((48, 40))  # timm's own position interpolation
        torch.testing.assert_close(model(big), net(big), atol=1e-4, rtol=1e-4)


def test_timm_checkpoint_with_parts_this_vit_lacks_is_refused():
    net = _random_timm(init_values=1e-5)  # LayerScale: blocks.*.ls1.gamma
    with pytest.raises(PixseqError, match=r"does not have.*ls1\.gamma"):
        timm_vit_state(net.state_dict(), "layerscale.pth", heads=4)
    state = _random_timm().state_dict()
    del state["blocks.1.mlp.fc2.bias"]
    with pytest.raises(PixseqError, match="missing blocks.1.mlp.fc2.bias"):
        timm_vit_state(state, "broken.pth", heads=4)
    with pytest.raises(PixseqError, match="give it"):
        timm_vit_state(_random_timm().state_dict(), "no-heads.pth")  # width 32: heads cannot be guessed


def _random_hf():
    from transformers import ViTConfig as HFConfig, ViTForImageClassification

    torch.manual_seed(2)
    cfg = HFConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=64, num_labels=3, id2label={0: "cat", 1: "dog", 2: "fox"},
                   label2id={"cat": 0, "dog": 1, "fox": 2})
    net = ViTForImageClassification(cfg).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.2)
    return net


def test_hugging_face_vit_converts_to_the_same_logits(tmp_path):
    net = _random_hf()
    net.save_pretrained(tmp_path / "hf")  # the hub layout (vit.encoder.layer.*.attention.attention.query ...)
    converted = load_hf_folder(tmp_path / "hf", mean=(0.0,) * 3, std=(1.0,) * 3)
    model = converted.model()
    assert model.config.class_names == ("cat", "dog", "fox") and model.config.norm_eps == 1e-12
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(pixel_values=x).logits, atol=1e-5, rtol=1e-5)
        # transformers >= 5 names the same tensors differently in memory: both layouts map
        mem = hf_vit_state(net.state_dict(), net.config.to_dict(), "memory", mean=(0.0,) * 3, std=(1.0,) * 3)
        torch.testing.assert_close(mem.model()(x), net(pixel_values=x).logits, atol=1e-5, rtol=1e-5)


def test_named_weights_resolve_through_pixseq_weights(tmp_path):
    with pytest.raises(PixseqError, match=r"vit_tiny_patch16_224.augreg_in21k_ft_in1k.safetensors.*not found"):
        resolve_init("vit_tiny_patch16_224.augreg_in21k_ft_in1k", weights_dir=tmp_path, offline=True)
    with pytest.raises(PixseqError, match=r"hf--google--vit-base-patch16-224/config.json.*not found"):
        resolve_init("hf:google/vit-base-patch16-224", weights_dir=tmp_path, offline=True)
    with pytest.raises(PixseqError, match="unknown weights"):
        resolve_init("resnet_that_does_not_exist", weights_dir=tmp_path, offline=True)


def test_timm_name_loads_from_the_weights_cache(tmp_path):
    """A timm name's file in the cache is used with timm's heads and preprocessing (a tiny
    random model stored under the real name's cache file: the shapes are what count)."""
    from safetensors.torch import save_file
    from timm.models.vision_transformer import VisionTransformer

    net = VisionTransformer(img_size=32, patch_size=16, num_classes=10, embed_dim=192, depth=1, num_heads=3)
    save_file(net.state_dict(), str(tmp_path / "timm--vit_tiny_patch16_224.augreg_in21k_ft_in1k.safetensors"))
    converted = resolve_init("vit_tiny_patch16_224.augreg_in21k_ft_in1k", weights_dir=tmp_path, offline=True)
    assert converted.config.heads == 3 and converted.config.interpolation == "bicubic"
    assert converted.config.mean == (0.5, 0.5, 0.5) and converted.config.depth == 1


# ---------------------------------------------------------------------------- fine-tuning
def test_init_keeps_weights_swaps_the_head_and_interpolates_positions():
    source = tiny()
    from pixseq.classifiers.convert import Converted

    init = Converted(source.config, source.state_dict(), "src")
    with capture_notices() as notes:
        model = build_vit(3, 24, class_names=("a", "b", "c"), init=init, drop_path=0.1)
    assert any("new 3-class head" in n for n in notes) and any("interpolated" in n for n in notes)
    assert model.config.image_size == 24 and model.config.depth == 2
    torch.testing.assert_close(model.blocks[1].mlp.c_fc.weight, source.blocks[1].mlp.c_fc.weight)
    same = build_vit(5, 16, class_names=NAMES, init=init)
    torch.testing.assert_close(same.head.weight, source.head.weight)  # same classes: the head is kept
    with pytest.raises(PixseqError, match=r"another shape: dim 16 \(asked: 32\), depth 2 \(asked: 4\)"):
        check_init_architecture(init, {"depth": 4, "dim": 32})
    with pytest.raises(PixseqError, match="another shape: dim 16"):
        check_init_architecture(init, {"size": "tiny"})


# ---------------------------------------------------------------------------- training pieces
def test_label_smoothing_loss_is_the_formula():
    logits, labels, eps = torch.randn(6, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 0, 1]), 0.1
    logp = logits.log_softmax(-1)
    target = torch.full((6, 4), eps / 4, dtype=torch.float64)
    target[torch.arange(6), labels] += 1 - eps
    expected = -(target * logp).sum(-1).mean()
    torch.testing.assert_close(classification_loss(logits, labels, eps).double(), expected, rtol=1e-6, atol=1e-7)


def test_augmentations_keep_shape_and_mixing_gives_soft_targets():
    torch.manual_seed(0)
    image = torch.randint(0, 256, (3, 12, 12), dtype=torch.uint8)
    aug = ImageAugment(AugmentSettings(crop_pad=2, flip=True, randaugment=9))
    outs = [aug(image) for _ in range(8)]
    assert all(o.shape == image.shape and o.dtype == torch.uint8 for o in outs)
    assert any(not torch.equal(o, image) for o in outs)
    mix = BatchMix(AugmentSettings(mixup=0.8, cutmix=1.0), num_classes=4)
    x, t = mix(torch.rand(8, 3, 12, 12), torch.arange(8) % 4)
    assert x.shape == (8, 3, 12, 12) and t.shape == (8, 4)
    torch.testing.assert_close(t.sum(-1), torch.ones(8))
    with pytest.raises(PixseqError, match="--randaugment"):
        AugmentSettings(randaugment=40)


def _fmnist_like(n=64, side=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    images = rng.integers(0, 40, (n, side, side, 3), dtype=np.uint8)
    for i, c in enumerate(labels):
        images[i, :, c * 2:c * 2 + 3] += 200  # the class is where a bright column is
    return images, labels


def test_training_resumes_exactly_with_augmentation(tmp_path, stop_training_after):
    from pixseq.classifiers.vit_train import fit_vit
    from pixseq.train import TrainConfig

    images, labels = _fmnist_like()
    aug = AugmentSettings(crop_pad=1, flip=True, randaugment=5, mixup=0.4)
    cfg = TrainConfig(steps=4, batch_size=8, warmup_steps=1, ckpt_every=2, log_every=0)

    def fresh():
        return build_vit(3, 8, "micro", seed=0, dim=16, depth=1, heads=2, patch_size=4, drop_path=0.1)

    whole, _ = fit_vit(fresh(), images, labels, tmp_path / "a", cfg, label_smoothing=0.1, augment=aug)
    stop_training_after(2)
    with pytest.raises(PixseqError, match="interrupted"):
        fit_vit(fresh(), images, labels, tmp_path / "b", cfg, label_smoothing=0.1, augment=aug)
    stop_training_after(None)
    resumed, _ = fit_vit(fresh(), images, labels, tmp_path / "b", cfg, resume=True, label_smoothing=0.1, augment=aug)
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k


def test_a_small_vit_learns_a_simple_task(tmp_path):
    from pixseq.classifiers.vit_train import fit_vit
    from pixseq.train import TrainConfig

    images, labels = _fmnist_like(96)
    model = build_vit(3, 8, "micro", class_names=("left", "middle", "right"), dim=16, depth=1, heads=2, patch_size=2)
    cfg = TrainConfig(steps=60, batch_size=16, lr=3e-3, warmup_steps=5, ckpt_every=0, log_every=0)
    test_images, test_labels = _fmnist_like(30, seed=1)
    model, history = fit_vit(model, images, labels, tmp_path / "m", cfg, held_out=(test_images, test_labels))
    assert history[-1]["eval/accuracy"] > 0.9
    loaded = load_model(tmp_path / "m")
    assert loaded.kind == "vit" and loaded.pretrained_meta["held_out_accuracy"] > 0.9
    preds = classify(loaded, list(test_images), top_k=2)
    assert [p.label for p in preds] == [("left", "middle", "right")[c] for c in test_labels]
    assert len(preds[0].top) == 2 and preds[0].top[0][1] >= preds[0].top[1][1]
    with capture_notices() as notes:  # another size: resized, and said once
        probs = predict(loaded, [np.repeat(np.repeat(im, 2, 0), 2, 1) for im in test_images[:4]])
    assert probs.shape == (4, 3) and len(notes) == 1 and "16x16" in notes[0]
    torch.testing.assert_close(probs.sum(-1), torch.ones(4))


# ---------------------------------------------------------------------------- rollout, evaluation
def test_rollout_follows_the_published_recursion():
    torch.manual_seed(0)
    maps = [torch.rand(2, 3, 5, 5).softmax(-1) for _ in range(3)]
    got = rollout(maps)
    ref = np.stack([np.eye(5)] * 2)
    for a in maps:  # Abnar & Zuidema: Ã = 0.5 A + 0.5 I (heads averaged), rows renormalised, Ã_l @ R_{l-1}
        a = a.double().numpy().mean(1)
        a = 0.5 * a + 0.5 * np.eye(5)
        a /= a.sum(-1, keepdims=True)
        ref = np.einsum("bij,bjk->bik", a, ref)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-12)


def test_rollout_maps_find_the_attended_patch():
    """A model whose class token attends only to patch 5 in every layer: the map peaks there."""
    model = tiny()
    T = 17

    def fixed(x):
        probs = torch.full((x.size(0), 2, T, T), 1.0 / T)
        probs[:, :, 0] = 0.0
        probs[:, :, 0, 1 + 5] = 1.0
        return probs

    for block in model.blocks:
        block.attn.attention_probs = fixed
    rel = rollout_maps(model, torch.rand(1, 3, 16, 16))
    assert rel.shape == (1, 4, 4) and int(rel.flatten().argmax()) == 5
    torch.testing.assert_close(rel.sum(), torch.tensor(1.0))


def test_confusion_matrix_and_per_class_accuracy_match_scikit_learn():
    from sklearn.metrics import accuracy_score, confusion_matrix, recall_score

    from pixseq.classifiers.evaluate import ClassifierScores

    rng = np.random.default_rng(0)
    labels, preds = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    labels[labels == 3] = 2  # class 3 absent from the data: left out of the per-class table
    scores = ClassifierScores(("a", "b", "c", "d"), labels, preds, 0.0)
    np.testing.assert_array_equal(scores.confusion, confusion_matrix(labels, preds, labels=range(4)))
    assert scores.accuracy == pytest.approx(accuracy_score(labels, preds))
    per_class = recall_score(labels, preds, labels=[0, 1, 2], average=None)
    assert [round(a, 12) for _, _, a in scores.per_class()] == [round(a, 12) for a in per_class]


def test_saved_vit_round_trips_and_a_wrong_depth_is_one_error(tmp_path):
    import json

    model = tiny()
    save_pretrained(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m", "vit")
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(loaded(x), model(x))
    doc = json.loads((tmp_path / "m" / "config.json").read_text())
    doc["config"]["depth"] = 3  # the weights are of depth 2
    (tmp_path / "m" / "config.json").write_text(json.dumps(doc))
    with pytest.raises(PixseqError, match="does not match the model: missing.*blocks.2"):
        load_model(tmp_path / "m")
