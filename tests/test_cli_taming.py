"""CLI of the Taming system: train vqgan / train prior / reconstruct, and their bad inputs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from pixseq.checkpoint import from_pretrained
from pixseq.cli import main
from pixseq.errors import PixseqError
from pixseq.io import load_image, save_image

TINY = ["--factor", "4", "--codes", "16", "--dim", "8", "--ch", "8", "--batch-size", "8",
        "--perceptual", "none", "--log-every", "0", "--ckpt-every", "0", "--warmup-steps", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny VQGAN and a class-conditional prior on 32 Fashion-MNIST test images."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("taming")
    vq, prior = root / "vq", root / "prior"
    assert main(["train", "vqgan", "--data", "fashion-mnist:test", "--limit", "32", "--out", str(vq),
                 "--steps", "3", "--disc-start", "2", *TINY]) == 0
    assert main(["train", "prior", "--tokenizer", str(vq), "--data", "fashion-mnist:test", "--limit", "32",
                 "--out", str(prior), "--classes", "--steps", "3", "--batch-size", "8", "--log-every", "0",
                 "--ckpt-every", "0"]) == 0
    return root, vq, prior


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert err.startswith("pixseq: error:") and err.count("\n") == 1, err
    for w in words:
        assert w in err, err


def test_train_writes_loadable_models(trained):
    _, vq, prior = trained
    tok = from_pretrained(vq, "vqgan")
    assert tok.factor == 4 and tok.vocab_size == 16 and tok.pretrained_meta["image_size"] == 28
    model = from_pretrained(prior, "taming")
    assert model.num_classes == 10 and model.image_size == (28, 28) and model.grid == (7, 7)
    assert torch.equal(model.tokenizer.state_dict()["quantizer.embedding.weight"],
                       tok.state_dict()["quantizer.embedding.weight"])
    assert model.generate(2, labels=[3, 9], size=(56, 28)).shape == (2, 3, 56, 28)


def test_reconstruct_pads_crops_and_reports(trained, tmp_path, capsys):
    _, vq, prior = trained
    rng = np.random.default_rng(0)
    save_image(rng.integers(0, 256, (30, 21, 3), dtype=np.uint8), tmp_path / "in.png")  # not divisible by 4
    for model in (vq, prior):
        assert main(["reconstruct", str(tmp_path / "in.png"), "--model", str(model),
                     "--out", str(tmp_path / "out.png"), "--force"]) == 0
        out = capsys.readouterr().out
        assert load_image(tmp_path / "out.png").shape == (30, 21, 3)
        # 6x8 codes (width x height) of 16 entries: 48 * 4 bits over 630 pixels
        assert f"{48 * math.log2(16) / 630:.4f} bits/pixel" in out and "PSNR" in out
        assert out.startswith("21x30 -> 6x8 codes of 16")  # width x height, as every size pixseq prints


def test_complete_without_a_whole_code_row_cycles_classes_in_batches(trained, tmp_path, monkeypatch, capsys):
    # --keep 0.1 keeps 3 of 28 pixel rows: no whole 4-pixel code row, so no class can be
    # guessed and each completion gets the next class; -n 3 in batches of 2 is one grid row
    import pixseq.models.generate as sample_mod

    _, _, prior = trained
    monkeypatch.setattr(sample_mod, "SAMPLE_BATCH", 2)
    save_image(np.zeros((28, 28, 3), np.uint8), tmp_path / "in.png")
    assert main(["complete", str(tmp_path / "in.png"), "--model", str(prior), "--keep", "0.1", "-n", "3",
                 "--out", str(tmp_path / "c.png")]) == 0
    assert "| 3 completions" in capsys.readouterr().out
    grid = load_image(tmp_path / "c.png")
    scale = (grid.shape[0] - 4) // 28
    assert grid.shape[1] == 5 * 28 * scale + 6 * 2  # original | kept | 3 completions


def test_prior_with_missing_or_different_tokenizer(trained, tmp_path, capsys):
    root, vq, prior = trained
    assert main(["train", "prior", "--tokenizer", str(tmp_path / "nope"), "--data", "fashion-mnist:test",
                 "--out", str(tmp_path / "p")]) == 2
    _one_line_error(capsys, "tokenizer not found", "nope")
    other = root / "vq2"
    assert main(["train", "vqgan", "--data", "fashion-mnist:test", "--limit", "16", "--out", str(other),
                 "--steps", "1", "--seed", "5", *TINY]) == 0
    capsys.readouterr()
    assert main(["train", "prior", "--tokenizer", str(other), "--data", "fashion-mnist:test", "--limit", "32",
                 "--out", str(prior), "--classes", "--steps", "4", "--batch-size", "8", "--resume"]) == 2
    _one_line_error(capsys, "different", str(other))


def test_train_refuses_to_replace_a_finished_model(trained, capsys):
    """train vqgan / train prior into a finished model's folder: refused unless --force (both
    used to overwrite it silently, the VQGAN with it the prior's tokenizer)."""
    _, vq, prior = trained
    before = (vq / "model.safetensors").read_bytes()
    assert main(["train", "vqgan", "--data", "fashion-mnist:test", "--limit", "16", "--out", str(vq),
                 "--steps", "1", *TINY]) == 2
    _one_line_error(capsys, "already holds a trained model", "--force")
    assert main(["train", "prior", "--tokenizer", str(vq), "--data", "fashion-mnist:test", "--limit", "16",
                 "--out", str(prior), "--steps", "1"]) == 2
    _one_line_error(capsys, "already holds a trained model", "--resume")
    assert (vq / "model.safetensors").read_bytes() == before


def test_vqgan_resumes_with_its_own_settings(trained, tmp_path, stop_training_after, capsys):
    """Interrupted, then resumed with only --data/--out/--resume: the model settings come from
    run.json, the training options from the checkpoint, and the result is the uninterrupted
    run's model bit for bit (CPU). A changed model setting on resume is refused."""
    _, vq, _ = trained
    out = tmp_path / "vq"
    stop_training_after(2)
    assert main(["train", "vqgan", "--data", "fashion-mnist:test", "--limit", "32", "--out", str(out),
                 "--steps", "3", "--disc-start", "2", *TINY]) == 2  # as the fixture, stopped at step 2
    stop_training_after(None)
    capsys.readouterr()
    assert main(["train", "vqgan", "--data", "fashion-mnist:test", "--out", str(out), "--resume",
                 "--codes", "32"]) == 2
    _one_line_error(capsys, "--codes 16 -> 32")
    assert main(["train", "vqgan", "--data", "fashion-mnist:test", "--out", str(out), "--resume"]) == 0
    a, b = from_pretrained(vq, "vqgan").state_dict(), from_pretrained(out, "vqgan").state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bad_sampling_requests(trained):
    model = from_pretrained(trained[2], "taming")
    with pytest.raises(PixseqError, match="class index out of range"):
        model.generate(1, labels=10)
    with pytest.raises(PixseqError, match="smaller than the model's window"):
        model.generate(1, labels=0, size=(16, 28))


def test_bad_vqgan_options(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:  # argparse usage errors exit 2 themselves
        main(["train", "vqgan", "--data", "fashion-mnist:test", "--out", str(tmp_path / "x"), "--factor", "3"])
    assert exc.value.code == 2
    _one_line_error(capsys, "--factor")
    assert main(["train", "vqgan", "--data", "no-such-data", "--out", str(tmp_path / "x")]) == 2
    _one_line_error(capsys, "no-such-data")


def test_too_small_images_and_sizes_are_refused_up_front(trained, tmp_path, capsys):
    _, vq, _ = trained
    save_image(np.zeros((1, 1, 3), np.uint8), tmp_path / "dot.png")
    # one latent position: GroupNorm over one value per group used to raise a torch ValueError
    assert main(["reconstruct", str(tmp_path / "dot.png"), "--model", str(vq), "--out", str(tmp_path / "r.png")]) == 2
    _one_line_error(capsys, "too small", "4x4")
    assert not (tmp_path / "r.png").exists()
    # below the discriminator's smallest input: refused before training (it crashed at the
    # first discriminator step, leaving TensorBoard files behind)
    out = tmp_path / "vq16"
    assert main(["train", "vqgan", "--data", "fashion-mnist:test", "--limit", "8", "--out", str(out),
                 "--image-size", "16", "--steps", "2", *TINY]) == 2
    _one_line_error(capsys, "--image-size must be at least 24")
    assert not out.exists()


def test_fit_vqgan_announces_its_perceptual_loss(tmp_path, capsys):
    """`train vqgan` keeps its notice naming the perceptual loss; announce=None silences it."""
    from pixseq.models.taming_train import fit_vqgan
    from pixseq.tokenizers.losses import VQGANLossConfig
    from pixseq.tokenizers.vqgan import vqgan_config
    from pixseq.train.config import TrainConfig

    images = [np.zeros((24, 24, 3), np.uint8)] * 4
    args = (vqgan_config(4, 16, 8, 8), VQGANLossConfig(perceptual="none", disc_start=100),
            TrainConfig(steps=1, batch_size=4, warmup_steps=1, log_every=0, ckpt_every=0), 24)
    fit_vqgan(images, tmp_path / "a", *args)
    assert "pixseq: perceptual loss: none" in capsys.readouterr().err
    fit_vqgan(images, tmp_path / "b", *args, announce=None)
    assert "perceptual loss" not in capsys.readouterr().err


def test_reconstruct_psnr_is_that_of_the_written_file(trained, tmp_path, capsys):
    """A lossy --out (.jpg) changes the pixels once more: the printed PSNR is the file's
    (float64 formula on the file read back), not that of the 8-bit image before encoding."""
    _, vq, _ = trained
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
    save_image(image, tmp_path / "in.png")
    assert main(["reconstruct", str(tmp_path / "in.png"), "--model", str(vq), "--out", str(tmp_path / "r.jpg")]) == 0
    printed = float(capsys.readouterr().out.split("PSNR ")[1].split(" dB")[0])
    mse = np.mean((load_image(tmp_path / "r.jpg").astype(np.float64) - image.astype(np.float64)) ** 2)
    assert printed == pytest.approx(10 * np.log10(255.0 ** 2 / mse), abs=0.006)  # printed to 2 decimals


def test_class_conditional_prior_stores_its_class_names(trained, tmp_path, capsys):
    """train prior --classes records the data's class names like train igpt: --class takes
    a name (it was 'this model stores no class names')."""
    model = from_pretrained(trained[2], "taming")
    assert model.pretrained_meta["class_names"][7] == "Sneaker"
    assert main(["sample", "--model", str(trained[2]), "-n", "1", "--class", "sneaker",
                 "--out", str(tmp_path / "s.png")]) == 0
    assert "(class 7)" in capsys.readouterr().out


def test_fit_prior_keeps_class_names_and_checks_them_first(trained, tmp_path, capsys):
    """The demo's prior was saved by fit_prior without the names its iGPT had ('--class
    Sneaker' -> 'stores no class names'): names given are kept and checked before training,
    a conditional model saved without them is said once."""
    from pixseq.data import load_data
    from pixseq.errors import PixseqError
    from pixseq.models.base import class_index
    from pixseq.models.taming import taming_config
    from pixseq.models.taming_train import fit_prior
    from pixseq.train import TrainConfig

    data = load_data("fashion-mnist:test", limit=8)
    tok = from_pretrained(trained[1], "vqgan")
    cfg = taming_config(tok.config, (28, 28), num_classes=10, size="s")
    tc = TrainConfig(steps=1, batch_size=8, warmup_steps=0, log_every=0, ckpt_every=0)
    with pytest.raises(PixseqError, match="class_names must be 10 strings.*got 3"):
        fit_prior(trained[1], data.images, data.labels, tmp_path / "bad", cfg, tc, meta={"class_names": ["a", "b", "c"]})
    assert not (tmp_path / "bad").exists()
    fit_prior(trained[1], data.images, data.labels, tmp_path / "named", cfg, tc,
              meta={"class_names": list(data.class_names)})
    assert "without class names" not in capsys.readouterr().err
    assert class_index(from_pretrained(tmp_path / "named", "taming"), "Sneaker", "--class") == 7
    fit_prior(trained[1], data.images, data.labels, tmp_path / "unnamed", cfg, tc)
    err = capsys.readouterr().err
    assert err.count("class-conditional taming model is saved without class names") == 1, err
    with pytest.raises(PixseqError, match="stores no class names"):
        class_index(from_pretrained(tmp_path / "unnamed", "taming"), "Sneaker", "--class")


@pytest.mark.parametrize("option", [["vqgan", "--limit", "0"], ["vqgan", "--limit", "-1"],
                                    ["prior", "--limit", "0"], ["prior", "--image-size", "0"],
                                    ["prior", "--image-size", "-3"]])
def test_non_positive_limit_and_image_size_are_refused(trained, tmp_path, option, capsys):
    """--limit 0 was a StopIteration / ValueError traceback, --limit -1 silently dropped the
    last image, prior --image-size 0 fell back to the default and -3 was a traceback."""
    verb, *opt = option
    extra = ["--tokenizer", str(trained[1]), "--warmup-steps", "1"] if verb == "prior" else list(TINY)
    out = tmp_path / "run"
    assert main(["train", verb, "--data", "fashion-mnist:test", "--out", str(out), "--steps", "1",
                 *extra, *opt]) == 2
    _one_line_error(capsys, f"{opt[0]} must be >= 1")
    assert not out.exists()


def test_prior_resume_keeps_its_conditioning_tokenizer(trained, tmp_path, stop_training_after, capsys):
    """A conditional prior resumed with another --cond-tokenizer of the same shapes (or none)
    went on training on different conditioning codes without a word."""
    root, vq, _ = trained
    other = tmp_path / "vq-other"
    assert main(["train", "vqgan", "--data", "fashion-mnist:test", "--limit", "16", "--out", str(other),
                 "--steps", "1", "--seed", "7", *TINY]) == 0
    run = ["train", "prior", "--tokenizer", str(vq), "--data", "fashion-mnist:test", "--limit", "16",
           "--out", str(tmp_path / "p"), "--condition", "lowres", "--batch-size", "8", "--log-every", "0"]
    stop_training_after(1)
    assert main([*run, "--cond-tokenizer", str(other), "--steps", "2"]) == 2
    stop_training_after(None)
    capsys.readouterr()
    assert main([*run, "--cond-tokenizer", str(vq), "--resume"]) == 2
    _one_line_error(capsys, "--cond-tokenizer", "different", str(other))
    # not given, it is the run's own: --resume takes the recorded settings
    assert main([*run, "--resume"]) == 0
    assert json.loads((tmp_path / "p" / "tokenizer.json").read_text())["cond_path"] == str(other)


def test_sample_size_is_width_x_height(trained, tmp_path, capsys):
    """--size and the sizes printed are width x height, as everywhere in pixseq (sample took
    HxW while generate took WxH)."""
    from pixseq.models.generate import parse_size

    assert parse_size("96x64") == (64, 96) and parse_size("32") == (32, 32)  # (H, W) for the library
    assert main(["sample", "--model", str(trained[2]), "-n", "1", "--size", "56x28",
                 "--out", str(tmp_path / "wide.png")]) == 0
    assert "56x28 each" in capsys.readouterr().out
    assert main(["sample", "--model", str(trained[2]), "-n", "1", "--size", "56x20",
                 "--out", str(tmp_path / "low.png")]) == 2
    _one_line_error(capsys, "--size 56x20 is smaller than the model's window 28x28")


def test_sample_size_beyond_the_image_limit_is_refused_up_front(trained, tmp_path, capsys):
    """--size 100000x100000 (a typo) started sampling ~10^9 codes instead of failing."""
    assert main(["sample", "--model", str(trained[2]), "-n", "1", "--size", "100000x100000",
                 "--out", str(tmp_path / "big.png")]) == 2
    _one_line_error(capsys, "--size 100000x100000", "pixels")
    assert not (tmp_path / "big.png").exists()


def test_sample_names_the_way_to_use_an_image_conditional_model(trained, tmp_path, capsys):
    """sample with a --condition model said 'give one per sample', which no option of sample does."""
    low = tmp_path / "lowres"
    assert main(["train", "prior", "--tokenizer", str(trained[1]), "--data", "fashion-mnist:test", "--limit", "8",
                 "--out", str(low), "--condition", "lowres", "--steps", "1", "--batch-size", "8",
                 "--warmup-steps", "0", "--log-every", "0"]) == 0
    capsys.readouterr()
    assert main(["sample", "--model", str(low), "-n", "1", "--out", str(tmp_path / "s.png")]) == 2
    _one_line_error(capsys, "conditioned on 'lowres' images", "pixseq complete", "cond_images")
    assert not (tmp_path / "s.png").exists()


def test_prior_with_held_out_data(trained, tmp_path, capsys):
    """train prior --val-data: the held-out bits/code of the saved prior, printed and in its
    meta, equal to the prior's own loss on those images' codes; a plain --resume keeps it."""
    out = tmp_path / "p"
    assert main(["train", "prior", "--tokenizer", str(trained[1]), "--data", "fashion-mnist:test", "--limit", "32",
                 "--out", str(out), "--classes", "--steps", "2", "--batch-size", "8", "--log-every", "0",
                 "--ckpt-every", "0", "--val-data", "fashion-mnist:train", "--val-limit", "6"]) == 0
    printed = capsys.readouterr().out
    assert "held-out (6 images of fashion-mnist:train)" in printed
    model = from_pretrained(out, "taming")
    from pixseq.data import load_data
    from pixseq.io import to_tensor

    held = load_data("fashion-mnist:train", limit=6)
    with torch.no_grad():
        codes = model.encode(to_tensor(np.stack(held.images)))
        nats = float(model.prior.loss(codes, torch.as_tensor(held.labels)[:, None]))
    assert model.pretrained_meta["held_out_bits_per_code"] == pytest.approx(nats / math.log(2), rel=1e-5)
    assert f"{nats / math.log(2):.3f} bits/code with the saved weights" in printed
    assert main(["train", "prior", "--tokenizer", str(trained[1]), "--data", "fashion-mnist:test",
                 "--out", str(out), "--resume", "--steps", "3"]) == 0
    assert "held-out (6 images of fashion-mnist:train)" in capsys.readouterr().out  # recorded with the run


def test_mixed_sizes_smaller_than_the_default_crop_name_the_default(tmp_path, capsys):
    """Mixed-size images below the default 64-pixel crop blamed '--image-size 64', an option
    the user never gave; the error now says it is the default and which size would do."""
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate([(80, 90), (40, 30), (70, 70)]):
        save_image(rng.integers(0, 255, (h, w, 3), dtype=np.uint8), tmp_path / "data" / f"{i}.png")
    assert main(["train", "vqgan", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "vq"),
                 "--steps", "2", *TINY]) == 2
    _one_line_error(capsys, "mixed sizes", "(the default --image-size)", "e.g. 30x40", "--image-size 30 or less")
    assert not (tmp_path / "vq").exists()


def test_vqgan_with_held_out_data(tmp_path, capsys):
    """train vqgan --val-data: held-out PSNR / L1 of the saved VQGAN's reconstructions of
    centre crops, printed and kept in its meta; checked against a float64 PSNR."""
    out = tmp_path / "vq"
    assert main(["train", "vqgan", "--data", "fashion-mnist:test", "--limit", "16", "--out", str(out),
                 "--steps", "2", "--val-data", "fashion-mnist:train", "--val-limit", "5", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "held-out (5 images of fashion-mnist:train, centre 28x28 crops)" in printed
    from pixseq.data import load_data
    from pixseq.io import to_tensor

    tok = from_pretrained(out, "vqgan")
    x = to_tensor(np.stack(load_data("fashion-mnist:train", limit=5).images))
    with torch.no_grad():
        rec = tok.reconstruct(x).double()
    psnr = (10 * torch.log10(1 / (rec - x.double()).pow(2).flatten(1).mean(1))).mean()
    assert tok.pretrained_meta["held_out_psnr_db"] == pytest.approx(float(psnr), abs=1e-3)  # float32 model
    assert f"PSNR {float(psnr):.2f} dB" in printed
    save_image(np.zeros((20, 40, 3), np.uint8), tmp_path / "small" / "a.png")
    code = main(["train", "vqgan", "--data", "fashion-mnist:test", "--limit", "16", "--out", str(tmp_path / "v2"),
                 "--steps", "2", "--val-data", str(tmp_path / "small"), *TINY])
    assert code == 2 and not (tmp_path / "v2").exists()
    _one_line_error(capsys, "held-out images must be at least 28x28", "e.g. 40x20")


def test_evaluate_taming_and_vqgan(trained, tmp_path, capsys):
    """pixseq evaluate on the prior (bits per code and per pixel) and on the VQGAN (PSNR of
    centre crops against a float64 formula)."""
    _, vq, prior = trained
    assert main(["evaluate", "--model", str(prior), "--data", "fashion-mnist:test", "--limit", "6",
                 "--json", str(tmp_path / "p.json")]) == 0
    import json

    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["bits_per_pixel"] == pytest.approx(doc["bits_per_code"] * 49 / 784)  # 7x7 codes, 28x28 pixels
    from pixseq.data import load_data
    from pixseq.io import to_tensor

    data = load_data("fashion-mnist:test", limit=6)
    model = from_pretrained(prior, "taming")
    with torch.no_grad():
        nats = float(model.prior.loss(model.encode(to_tensor(np.stack(data.images))),
                                      torch.as_tensor(data.labels)[:, None]))
    assert doc["loss"] == pytest.approx(nats, rel=1e-5)
    assert main(["evaluate", "--model", str(vq), "--data", "fashion-mnist:test", "--limit", "6",
                 "--batch-size", "4", "--json", str(tmp_path / "v.json")]) == 0
    x = to_tensor(np.stack(data.images)).double()
    with torch.no_grad():
        rec = from_pretrained(vq, "vqgan").reconstruct(x.float()).double()
    psnr = float((10 * torch.log10(1 / (rec - x).pow(2).flatten(1).mean(1))).mean())
    assert json.loads((tmp_path / "v.json").read_text())["psnr_db"] == pytest.approx(psnr, abs=1e-3)
    assert f"PSNR {psnr:.2f} dB" in capsys.readouterr().out
    assert main(["evaluate", "--model", str(vq), "--data", "fashion-mnist:test", "--image-size", "40"]) == 2
    _one_line_error(capsys, "at least 40x40")


def test_vqgan_records_what_perceptual_auto_resolved_to(tmp_path, capsys):
    """--perceptual auto was recorded as 'auto', so a resume after LPIPS weights appeared would
    switch losses mid-run; the run record now holds the loss actually used."""
    import json

    tiny = [a for a in TINY if a not in ("--perceptual", "none")]
    out = tmp_path / "vq"
    assert main(["train", "vqgan", "--data", "fashion-mnist:test", "--limit", "8", "--out", str(out),
                 "--steps", "1", "--perceptual", "auto", *tiny]) == 0
    kind = json.loads((out / "run.json").read_text())["perceptual"]
    described = from_pretrained(out, "vqgan").pretrained_meta["perceptual"]
    assert (kind, described.split()[0]) in {("lpips", "LPIPS"), ("effnet", "EfficientNet-Lite0")}


@pytest.mark.parametrize("verb", ["prior", "vqgan"])
def test_too_few_images_for_a_batch_cap_it(trained, tmp_path, verb, capsys):
    """5 images and --batch-size 8 failed (train prior had written tokenizer.json first); both
    verbs now train with batches of all 5, saying so once."""
    extra = ["--tokenizer", str(trained[1]), "--warmup-steps", "1"] if verb == "prior" else list(TINY)
    out = tmp_path / "run"
    assert main(["train", verb, "--data", "fashion-mnist:test", "--limit", "5", "--out", str(out), "--steps", "1",
                 *extra, "--batch-size", "8"]) == 0
    assert capsys.readouterr().err.count("fewer than --batch-size 8: training with batches of 5") == 1
    assert (out / "config.json").exists()


def test_interrupted_encoding_leaves_no_prior_folder(trained, tmp_path, monkeypatch, capsys):
    """train prior wrote tokenizer.json into --out before encoding the data (minutes for
    Fashion-MNIST); a Ctrl-C there left a folder holding only that record. The record is now
    written once the data are encoded."""
    from pixseq.models import taming_train

    def interrupted(*_args, **_kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(taming_train, "TamingTokenDataset", interrupted)
    out = tmp_path / "p"
    assert main(["train", "prior", "--tokenizer", str(trained[1]), "--data", "fashion-mnist:test", "--limit", "16",
                 "--out", str(out), "--steps", "2", "--batch-size", "8", "--warmup-steps", "1"]) == 2
    assert "interrupted" in capsys.readouterr().err
    assert not out.exists()


def test_vqgan_says_when_the_discriminator_never_starts(tmp_path, capsys):
    """--disc-start at or past --steps trained without the adversarial loss, without a word."""
    assert main(["train", "vqgan", "--data", "fashion-mnist:test", "--limit", "16", "--out", str(tmp_path / "v"),
                 "--steps", "1", "--disc-start", "5", *TINY]) == 0
    assert "the discriminator starts at step 5 but the run has 1 step:" in capsys.readouterr().err
