"""CLIP as guide and metric, VQGAN-CLIP, LiT: tiny random models, offline, one thread.

References: open_clip itself for the CLIP layout, torchmetrics for the CLIP score, float64
formulas for the spherical distance, zero-shot probabilities and the contrastive loss.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixseq.checkpoint import save_pretrained
from pixseq.cli import main
from pixseq.errors import PixseqError
from pixseq.guidance.clip import CLIP, load_guide, random_clip, tiny_clip_config
from pixseq.guidance.cutouts import CutoutConfig, draw_cutouts, make_cutouts
from pixseq.guidance.prompts import parse_prompts
from pixseq.guidance.vqgan_clip import (GenerateConfig, LatentDecoder, embed_targets, spherical_distance,
                                        vqgan_clip)
from pixseq.tokenizers.vqgan import VQGAN, vqgan_config


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny random VQGAN (f=4) and a tiny random CLIP, as model directories."""
    root = tmp_path_factory.mktemp("guidance")
    torch.manual_seed(0)
    save_pretrained(VQGAN(vqgan_config(4, 32, 8, 16)).eval(), root / "vq")
    save_pretrained(random_clip(tiny_clip_config()), root / "clip")
    return root


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("pixseq: error: ") and "Traceback" not in "\n".join(err)
    return err[-1]


# ------------------------------------------------------------------ CLIP
def test_clip_is_open_clips_model_with_its_layout():
    from open_clip.model import CLIP as OpenCLIP
    from open_clip.model import CLIPTextCfg, CLIPVisionCfg

    ours = random_clip(tiny_clip_config(), seed=3).eval()
    cfg = ours.config
    ref = OpenCLIP(cfg.embed_dim, CLIPVisionCfg(**cfg.vision), CLIPTextCfg(**cfg.text)).eval()
    assert list(ref.state_dict()) == list(ours.state_dict())
    ref.load_state_dict(ours.state_dict())
    x = torch.rand(2, 3, 32, 32)
    from open_clip.tokenizer import SimpleTokenizer

    tokens = SimpleTokenizer(context_length=16)(["a red dog", "a cat"])
    with torch.no_grad():
        assert torch.allclose(ours.embed_images(x, resize=False), ref.encode_image(ours.normalize(x), normalize=True))
        assert torch.allclose(ours.embed_text(["a red dog", "a cat"]), ref.encode_text(tokens, normalize=True))


def test_load_guide_folders_weights_and_errors(models, tmp_path):
    g = load_guide(models / "clip")
    assert isinstance(g, CLIP) and not any(p.requires_grad for p in g.parameters())
    # an open_clip hub folder: config + safetensors in open_clip's layout
    from safetensors.torch import save_file

    hub = tmp_path / "hub"
    hub.mkdir()
    c = g.config
    (hub / "open_clip_config.json").write_text(json.dumps(
        {"model_cfg": {"embed_dim": c.embed_dim, "vision_cfg": c.vision, "text_cfg": c.text}}))
    save_file({k: v.contiguous() for k, v in g.state_dict().items()}, hub / "open_clip_model.safetensors")
    h = load_guide(hub)
    assert torch.equal(h.embed_text(["x"]), g.embed_text(["x"]))
    # CLIP weights of the wrong shape: one line naming the tensor
    other = random_clip(tiny_clip_config(width=32))
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, hub / "open_clip_model.safetensors")
    with pytest.raises(PixseqError, match="has shape"):
        load_guide(hub)
    # official weights absent offline: the file is named
    with pytest.raises(PixseqError, match="open_clip--timm--vit_base_patch32_clip_224.openai.safetensors"):
        load_guide("ViT-B-32", weights_dir=tmp_path, offline=True)
    with pytest.raises(PixseqError, match="unknown CLIP architecture"):
        load_guide("ViT-Q-99")
    # OpenAI's TorchScript .pt is refused (never unpickled)
    script = tmp_path / "ViT-B-32.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), script)
    with pytest.raises(PixseqError, match="TorchScript"):
        load_guide("ViT-B-32", weights=script, weights_dir=tmp_path)


def test_spherical_distance_is_half_the_squared_angle():
    a, b = F.normalize(torch.randn(5, 7, dtype=torch.float64), dim=1), F.normalize(torch.randn(3, 7, dtype=torch.float64), dim=1)
    angle = torch.acos((a @ b.t()).clamp(-1, 1))  # float64 reference: great-circle distance
    assert torch.allclose(spherical_distance(a, b), angle ** 2 / 2, atol=1e-12)


# ------------------------------------------------------------------ prompts and cut-outs
def test_prompt_syntax():
    p = parse_prompts("a castle|pencil sketch:0.5|blurry:-1:-0.2|note: a cat:2")
    assert [(x.text, x.weight, x.stop) for x in p] == [
        ("a castle", 1.0, -math.inf), ("pencil sketch", 0.5, -math.inf), ("blurry", -1.0, -0.2), ("note: a cat", 2.0, -math.inf)]
    for bad, msg in (("", "empty prompt"), ("a||b", "empty prompt"), (":0.5", "empty prompt"),
                     ("cat:O.5", "not a number"), ("cat:0", "does nothing"), ("cat:nan", "finite")):
        with pytest.raises(PixseqError, match=msg):
            parse_prompts(bad)


def test_cutouts_are_true_crops_and_antialiased():
    img = torch.rand(1, 3, 64, 64)
    still = CutoutConfig(cutn=4, flip=0, rotate=0, jitter=0, noise=0)
    d = draw_cutouts(still, 64, 64, 32, torch.Generator().manual_seed(0))
    assert ((d.size >= 32) & (d.size <= 64)).all()
    d.size[:] = torch.tensor([32.0, 32.0, 64.0, 48.0])
    d.x[:2], d.y[:2] = torch.tensor([5.0, 32.0]), torch.tensor([7.0, 0.0])
    d.x[2:], d.y[2:] = 0.0, torch.tensor([0.0, 3.0])
    cut = make_cutouts(img, d, slice(None), 32, torch.Generator())
    # bilinear at pixel centres of a same-size crop reads the pixels exactly
    assert torch.allclose(cut[0], img[0, :, 7:39, 5:37], atol=1e-5)
    assert torch.allclose(cut[1], img[0, :, 0:32, 32:64], atol=1e-5)
    # a 64-pixel cut-out to 32: the 2x2 area average, not every other pixel
    assert torch.allclose(cut[2], F.avg_pool2d(img, 2)[0], atol=1e-5)
    small = draw_cutouts(CutoutConfig(cutn=2000, cut_pow=3.0), 64, 64, 16, torch.Generator().manual_seed(1))
    large = draw_cutouts(CutoutConfig(cutn=2000, cut_pow=0.3), 64, 64, 16, torch.Generator().manual_seed(1))
    assert small.size.mean() < 30 < large.size.mean()  # E[16 + 48 u^p]: 28 and 52.9


# ------------------------------------------------------------------ the loop
def _run(models, **kw):
    vq = load_guide  # noqa: F841 (keeps the import list honest)
    from pixseq.checkpoint import load_model

    vqgan, guide = load_model(models / "vq"), load_guide(models / "clip")
    targets = embed_targets(guide, parse_prompts("a red dog|blue:-0.5"))
    cfg = GenerateConfig(steps=kw.pop("steps", 3), cutouts=CutoutConfig(cutn=4, chunk=kw.pop("chunk", 2)),
                         tv_weight=0.1, **kw)
    return vqgan, vqgan_clip(vqgan, guide, targets, (16, 24), cfg)


def test_seed_reproduces_and_memory_options_do_not_change_the_result(models):
    vqgan, a = _run(models, seed=1)
    _, b = _run(models, seed=1)
    assert torch.equal(a.image, b.image) and a.losses == b.losses
    assert not torch.equal(_run(models, seed=2)[1].image, a.image)
    # recomputed decoder blocks and other cut-out chunks: the same optimisation (float rounding only)
    for kw in ({"recompute": "on"}, {"chunk": 4}):
        c = _run(models, seed=1, **kw)[1]
        assert np.allclose(c.losses, a.losses, rtol=1e-5) and torch.allclose(c.image, a.image, atol=1e-4)
    # straight-through quantisation: the image is the VQGAN's decoding of the codes found
    assert torch.allclose(a.image, vqgan.decode(a.codes[None])[0], atol=1e-5)


def test_ctrl_c_keeps_the_last_finished_step(models, monkeypatch):
    import pixseq.guidance.vqgan_clip as vc

    real, calls = vc.step_loss, []

    def stop_third(*args, **kw):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(vc, "step_loss", stop_third)
    _, r = _run(models, steps=10)
    assert r.interrupted and r.steps_done == 2 and len(r.losses) == 2 and r.image.shape == (3, 16, 24)


def test_init_image_pulls_toward_its_own_latent(models):
    from pixseq.checkpoint import load_model
    from pixseq.guidance.vqgan_clip import encode_init

    vqgan, guide = load_model(models / "vq"), load_guide(models / "clip")
    with torch.no_grad():
        vqgan.quantizer.embedding.weight.normal_()  # a codebook with room to move in
    lo, hi = LatentDecoder(vqgan).value_range()
    init = encode_init(vqgan, torch.rand(1, 3, 16, 24)).maximum(lo).minimum(hi)
    targets = embed_targets(guide, parse_prompts("a red dog:0.01"))

    def drift(weight: float) -> float:
        cfg = GenerateConfig(steps=8, lr=0.05, cutouts=CutoutConfig(cutn=2), init_weight=weight)
        return float((vqgan_clip(vqgan, guide, targets, (16, 24), cfg, init_latent=init).latent - init).abs().mean())

    # Adam moves about lr a step whatever the scale: without the pull z walks off (~8 x 0.05),
    # with it z stays around the init latent (the anchor's term pulls toward zero instead)
    assert drift(1e3) < 0.5 * drift(0.0)


# ------------------------------------------------------------------ the verb and its bad inputs
def test_generate_writes_image_frames_video_and_score(models, tmp_path, capsys):
    out = tmp_path / "o.png"
    code = main(["generate", "a red shoe|blurry:-0.5", "--vqgan", str(models / "vq"), "--clip", str(models / "clip"),
                 "--size", "30x22", "--steps", "4", "--cutn", "4", "--out", str(out), "--frame-every", "2",
                 "--video", str(tmp_path / "o.gif"), "--frames", str(tmp_path / "frames")])
    captured = capsys.readouterr()
    assert code == 0 and "generating 32x24" in captured.err  # rounded to the factor 4, with a notice
    assert "CLIP score" in captured.out and "'a red shoe'" in captured.out and "blurry" not in captured.out
    from PIL import Image

    assert Image.open(out).size == (32, 24) and Image.open(tmp_path / "o.gif").n_frames == 2
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == ["frame-00002.png", "frame-00004.png"]


@pytest.mark.parametrize("case", ["empty", "weight", "igpt", "shape", "init", "steps"])
def test_generate_bad_input_is_one_line_and_writes_nothing(models, tmp_path, capsys, case):
    vq, clip, prompt, extra = str(models / "vq"), str(models / "clip"), "a shoe", []
    if case == "empty":
        prompt, want = "", "empty prompt"
    elif case == "weight":
        prompt, want = "a shoe:heavy", "weight 'heavy' in prompt 'a shoe:heavy' is not a number"
    elif case == "igpt":
        (tmp_path / "igpt").mkdir()
        (tmp_path / "igpt" / "config.json").write_text(json.dumps({"kind": "igpt", "config": {}}))
        vq, want = str(tmp_path / "igpt"), "kind 'igpt'; text to image needs a VQGAN"
    elif case == "shape":
        bad = random_clip(tiny_clip_config(embed_dim=16))
        save_pretrained(bad, tmp_path / "c")
        cfg = json.loads((tmp_path / "c" / "config.json").read_text())
        cfg["config"]["embed_dim"] = 32  # the weights are another CLIP's
        (tmp_path / "c" / "config.json").write_text(json.dumps(cfg))
        clip, want = str(tmp_path / "c"), "has shape"
    elif case == "init":
        extra, want = ["--init-image", str(tmp_path / "missing.png")], "--init-image not found"
    else:
        extra, want = ["--steps", "0"], "--steps must be >= 1"
    code = main(["generate", prompt, "--vqgan", vq, "--clip", clip, "--out", str(tmp_path / "o.png"),
                 "--steps" if case != "steps" else "--lr", "2" if case != "steps" else "0.1", *extra])
    assert code == 2 and want in _one_line(capsys)
    assert not (tmp_path / "o.png").exists()


# ------------------------------------------------------------------ CLIP as a metric
def _torchmetrics_clip(guide):
    """torchmetrics' ``model_name_or_path`` as a callable: the same open_clip network behind a
    Hugging Face image processor (rescale + normalise, no resampling: the images given are at
    the input size) and tokenizer, so that torchmetrics' own code computes the score."""
    from transformers import CLIPImageProcessor

    hf = CLIPImageProcessor(do_resize=False, do_center_crop=False, do_rescale=True, rescale_factor=1 / 255,
                            do_normalize=True, image_mean=list(guide.pixel_mean), image_std=list(guide.pixel_std))

    class Processor:
        def __call__(self, images=None, text=None, **kw):
            if images is not None:
                return hf(images=images, return_tensors="pt")
            return {"input_ids": guide.tokenize(text), "attention_mask": torch.ones(len(text), 16, dtype=torch.long)}

    class Model:
        config = None

        def to(self, device):
            return self

        def get_image_features(self, pixels):
            return guide.encode_image(pixels)

        def get_text_features(self, ids, mask):
            return guide.encode_text(ids)

    return lambda: (Model(), Processor())


def test_clip_score_matches_torchmetrics_on_the_same_weights(models):
    """torchmetrics' clip_score (its formula 100 * cos, clamped at 0) on the same network."""
    from torchmetrics.functional.multimodal import clip_score as tm_clip_score

    from pixseq.metrics.clip_score import CLIPScore, clip_cosines, clip_score

    guide = load_guide(models / "clip")
    images = torch.rand(3, 3, 32, 32)
    texts = ["a red dog", "a blue car", "a cat"]
    model = _torchmetrics_clip(guide)
    ref = [float(tm_clip_score((images[i] * 255).round(), texts[i], model))
           for i in range(3)]
    ours = clip_score((images * 255).round() / 255, texts, guide)
    assert np.allclose(ours.numpy(), ref, atol=1e-4)  # float32 networks on identical inputs
    metric = CLIPScore(guide)
    metric.update((images * 255).round() / 255, texts)
    cos = clip_cosines((images * 255).round() / 255, texts, guide)
    assert metric.compute() == pytest.approx(max(float(cos.double().mean()), 0.0), abs=1e-9)


def test_assess_clip_score_is_torchmetrics_clip_score(models, tmp_path):
    """``pixseq assess --metrics clip_score`` on image files: each image's number in the JSON
    record is torchmetrics' clip_score of that 8-bit image and the prompt (same network),
    including torchmetrics' clamp at 0 (random weights give negative cosines too)."""
    from torchmetrics.functional.multimodal import clip_score as tm_clip_score

    from pixseq.io import save_image

    guide = load_guide(models / "clip")
    assert guide.input_size == 32  # files at the input size: no resampling to differ in
    gen = torch.Generator().manual_seed(3)
    images = (torch.rand(2, 32, 32, 3, generator=gen) * 255).to(torch.uint8)
    for name, im in zip("ab", images):
        save_image(im.numpy(), tmp_path / f"{name}.png")
    for prompt in ("a red dog", "a blue car"):
        assert main(["assess", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--metrics", "clip_score",
                     "--prompt", prompt, "--clip", str(models / "clip"), "--json", str(tmp_path / "s.json"),
                     "--force"]) == 0
        pair = json.loads((tmp_path / "s.json").read_text())["pairs"][0]
        want = [float(tm_clip_score(im.permute(2, 0, 1).float(), prompt, _torchmetrics_clip(guide)))
                for im in images]
        assert [pair["clip_score_ref"], pair["clip_score_dist"]] == pytest.approx(want, abs=1e-4)


def test_zero_shot_is_the_softmax_of_scaled_cosines(models):
    from pixseq.guidance.zero_shot import zero_shot_classify

    guide = load_guide(models / "clip")
    images, labels = torch.rand(2, 3, 40, 32), ["dog", "car", "tree"]
    templates = ("a photo of a {}.", "a {}.")
    got = zero_shot_classify(images, labels, guide, templates)
    # float64 reference from the raw embeddings
    with torch.no_grad():
        img = guide.embed_images(images).double()
        cls = torch.stack([F.normalize(guide.embed_text([t.format(l) for t in templates]).double().mean(0), dim=0)
                           for l in labels])
    want = (guide.logit_scale_value() * img @ cls.t()).softmax(-1)
    assert torch.allclose(got.probs.double(), want, atol=1e-5) and got.top() == [labels[i] for i in want.argmax(1)]
    for bad in ("dog", "dog,,car", "dog,dog"):
        with pytest.raises(PixseqError):
            zero_shot_classify(images, bad, guide)


def test_assess_and_classify_with_a_guide(models, tmp_path, capsys):
    from pixseq.io import save_image

    save_image(np.full((24, 20, 3), 128, np.uint8), tmp_path / "a.png")
    assert main(["assess", str(tmp_path / "a.png"), "--metrics", "clip_score", "--prompt", "a grey square",
                 "--clip", str(models / "clip"), "--json", str(tmp_path / "s.json")]) == 0
    doc = json.loads((tmp_path / "s.json").read_text())
    assert "CLIP score" in capsys.readouterr().out and "clip_score_dist" in json.dumps(doc)
    assert main(["assess", str(tmp_path / "a.png"), "--metrics", "clip_score", "--clip", str(models / "clip")]) == 2
    assert "needs --prompt" in _one_line(capsys)
    assert main(["assess", str(tmp_path / "a.png"), "--metrics", "ssim"]) == 2
    assert "give DIST too" in _one_line(capsys)
    assert main(["classify", str(tmp_path / "a.png"), "--labels", "cat,dog", "--clip", str(models / "clip")]) == 0
    out = capsys.readouterr().out
    assert "a.png:" in out and "cat" in out and "dog" in out


# ------------------------------------------------------------------ LiT
def test_multi_positive_loss_against_float64_formula():
    from pixseq.guidance.lit_train import multi_positive_loss

    img = F.normalize(torch.randn(6, 5, dtype=torch.float64), dim=1)
    txt = F.normalize(torch.randn(6, 5, dtype=torch.float64), dim=1)
    concepts = torch.tensor([0, 1, 0, 2, 1, 0])
    got = multi_positive_loss(img, txt, concepts, torch.tensor(7.0, dtype=torch.float64))
    total = 0.0
    for a, b in ((img, txt), (txt, img)):
        for i in range(6):
            logits = [7.0 * float(a[i] @ b[j]) for j in range(6)]
            lse = math.log(sum(math.exp(v) for v in logits))
            pos = [j for j in range(6) if concepts[j] == concepts[i]]
            total += -sum(logits[j] - lse for j in pos) / len(pos) / 6
    assert float(got) == pytest.approx(total / 2, rel=1e-12)
    # with one concept per item it is CLIP's symmetric InfoNCE
    distinct = multi_positive_loss(img, txt, torch.arange(6), torch.tensor(7.0, dtype=torch.float64))
    logits = 7.0 * img @ txt.t()
    ce = (F.cross_entropy(logits, torch.arange(6)) + F.cross_entropy(logits.t(), torch.arange(6))) / 2
    assert float(distinct) == pytest.approx(float(ce), rel=1e-12)


@pytest.mark.slow
def test_train_clip_on_a_captions_folder_and_guide_with_it(models, tmp_path, capsys):
    from pixseq.io import save_image

    data = tmp_path / "data"
    rng = np.random.default_rng(0)
    lines = []
    for i in range(16):
        bright = i % 2 == 0
        save_image((rng.integers(150, 255) if bright else rng.integers(0, 60)) * np.ones((16, 16, 3), np.uint8),
                   data / f"im{i}.png")
        lines.append(f"im{i}.png\t{'a bright square' if bright else 'a dark square'}")
    (data / "captions.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "lit"
    assert main(["train", "clip", "--data", str(data), "--out", str(out), "--image-size", "16", "--channels", "8,16",
                 "--steps", "3", "--batch-size", "8", "--warmup-steps", "1"]) == 0
    said = capsys.readouterr().out
    assert "2 concepts" in said and "knows only the concepts it was trained on (a bright square, a dark square)" in said
    guide = load_guide(out)
    assert guide.kind == "lit" and guide.embed_text(["a dark square"]).shape == (1, 384)
    code = main(["generate", "a bright square", "--vqgan", str(models / "vq"), "--clip", str(out), "--size", "16x16",
                 "--steps", "2", "--cutn", "2", "--out", str(tmp_path / "g.png")])
    assert code == 0 and "knows only" in capsys.readouterr().out
    # a captions file that misses an image is one line, before anything is written
    (data / "captions.tsv").write_text("\n".join(lines[:-1]) + "\n")
    assert main(["train", "clip", "--data", str(data), "--out", str(tmp_path / "lit2"), "--steps", "1"]) == 2
    assert "no caption for 1 image" in _one_line(capsys) and not (tmp_path / "lit2").exists()


def test_generate_upscale_writes_the_big_image_too(models, tmp_path, capsys):
    from PIL import Image

    from pixseq.upscale.rrdb import RRDBNet, RRDBNetConfig

    save_pretrained(RRDBNet(RRDBNetConfig(num_feat=8, num_block=1, num_grow_ch=4)), tmp_path / "sr")
    out = tmp_path / "o.png"
    assert main(["generate", "a shoe", "--vqgan", str(models / "vq"), "--clip", str(models / "clip"), "--size", "16x16",
                 "--steps", "1", "--cutn", "2", "--out", str(out), "--upscale", "4",
                 "--upscale-model", str(tmp_path / "sr")]) == 0
    assert Image.open(tmp_path / "o-x4.png").size == (64, 64) and "o-x4.png: 4x" in capsys.readouterr().out
