"""The ViT command line, in-process: train vit (from scratch and --init), classify (top-k,
attention overlays), evaluate (accuracy, confusion, HTML), convert timm-vit / hf-vit, assess
--backbone with the user's classifier, probe with an iGPT and a ViT in one table, and every
bad input the issue lists (one line, exit 2).

Tiny models on a tiny synthetic folder (three classes told apart by where a bright column
is); these check the wiring, the files and the errors, not accuracy (tests/test_vit.py and
benchmarks/vit_fmnist.py do that)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pixseq.cli import main
from pixseq.io import load_image, save_image
from test_cli_igpt import _one_line_error  # noqa: E402 - one checker of one-line errors for every CLI test

SIDE = 8
CLASSES = ("left", "middle", "right")
TRAIN = ["--image-size", str(SIDE), "--patch-size", "4", "--dim", "16", "--depth", "1", "--heads", "2",
         "--batch-size", "8", "--lr", "3e-3", "--warmup-steps", "1", "--log-every", "0", "--ckpt-every", "0"]


def _image(cls: int, rng) -> np.ndarray:
    im = rng.integers(0, 50, (SIDE, SIDE), dtype=np.uint8)
    im[:, cls * 3:cls * 3 + 2] += 200
    return np.repeat(im[..., None], 3, axis=-1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir()
        for i in range(16):
            save_image(_image(c, rng), root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def vit_dir(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "vit"
    assert main(["train", "vit", "--data", str(folder), "--out", str(out), "--steps", "30", "--val-data",
                 str(folder)] + TRAIN) == 0
    return out


@pytest.fixture(scope="module")
def timm_file(tmp_path_factory):
    """A random timm VisionTransformer (8x8 images, patch 4, width 16, depth 1, 5 classes) as a file."""
    from safetensors.torch import save_file
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    net = VisionTransformer(img_size=SIDE, patch_size=4, num_classes=5, embed_dim=16, depth=1, num_heads=2)
    path = tmp_path_factory.mktemp("timm") / "vit.safetensors"
    save_file(net.state_dict(), str(path))
    return path


def test_train_vit_writes_a_classifier(vit_dir, capsys):
    from pixseq.checkpoint import load_model

    model = load_model(vit_dir)
    assert model.kind == "vit" and model.class_names == CLASSES
    assert model.pretrained_meta["held_out_accuracy"] >= 0.0
    assert (vit_dir / "train" / "run.json").is_file()


def test_classify_prints_top_k_names_and_resizes_other_sizes(vit_dir, folder, tmp_path, capsys):
    big = tmp_path / "big.png"
    save_image(np.repeat(np.repeat(load_image(folder / "right" / "0.png"), 3, 0), 3, 1), big)  # 24x24
    code = main(["classify", str(folder / "left" / "0.png"), str(big), "--model", str(vit_dir), "-k", "2",
                 "--json", str(tmp_path / "p.json"), "--attention", str(tmp_path / "att")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "1 image of another size (24x24) resized to the model's 8x8" in err
    rows = [line for line in out.splitlines() if line.startswith("| ") and ".png" in line]
    assert len(rows) == 2 and all(any(c in r for c in CLASSES) for r in rows)
    doc = json.loads((tmp_path / "p.json").read_text())
    assert [len(p["top"]) for p in doc["predictions"]] == [2, 2]
    assert sorted(p.name for p in (tmp_path / "att").iterdir()) == ["0.attention.png", "big.attention.png"]


def test_classify_attention_into_the_input_folder_is_refused(vit_dir, folder, capsys):
    code = main(["classify", str(folder / "left" / "0.png"), "--model", str(vit_dir), "--attention",
                 str(folder / "left")])
    assert "holds the input image" in _one_line_error(capsys, code)


def test_a_classifier_given_to_sample_is_one_line(vit_dir, tmp_path, capsys):
    code = main(["sample", "--model", str(vit_dir), "--out", str(tmp_path / "s.png")])
    assert "kind 'vit'" in _one_line_error(capsys, code)
    assert not (tmp_path / "s.png").exists()


def test_evaluate_gives_accuracy_per_class_confusion_and_a_page(vit_dir, folder, tmp_path, capsys):
    code = main(["evaluate", "--model", str(vit_dir), "--data", str(folder), "--json", str(tmp_path / "e.json"),
                 "--html", str(tmp_path / "page")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "accuracy" in out and "confusion matrix" in out and "| middle |" in out
    doc = json.loads((tmp_path / "e.json").read_text())
    cm = np.array(doc["confusion"])
    assert cm.shape == (3, 3) and cm.sum() == 48 and doc["accuracy"] == pytest.approx(np.trace(cm) / 48)
    assert "Confusion matrix" in (tmp_path / "page" / "index.html").read_text()


def test_evaluate_with_labels_the_model_does_not_know(vit_dir, tmp_path, capsys):
    rng = np.random.default_rng(1)
    for name in ("left", "zebra"):
        (tmp_path / name).mkdir()
        save_image(_image(0, rng), tmp_path / name / "a.png")
    code = main(["evaluate", "--model", str(vit_dir), "--data", str(tmp_path)])
    assert "not in the model's classes: zebra" in _one_line_error(capsys, code)


def test_training_on_unlabelled_data_is_one_line(tmp_path, capsys):
    (tmp_path / "flat").mkdir()
    save_image(_image(0, np.random.default_rng(0)), tmp_path / "flat" / "a.png")
    code = main(["train", "vit", "--data", str(tmp_path / "flat"), "--out", str(tmp_path / "o")] + TRAIN)
    assert "needs labelled data" in _one_line_error(capsys, code)
    assert not (tmp_path / "o" / "config.json").exists()


def test_fine_tuning_from_a_timm_file_gets_a_new_head(timm_file, folder, tmp_path, capsys):
    out = tmp_path / "ft"
    code = main(["train", "vit", "--data", str(folder), "--out", str(out), "--init", str(timm_file), "--heads", "2",
                 "--steps", "3", "--batch-size", "8", "--warmup-steps", "1", "--log-every", "0", "--ckpt-every", "0"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert "a new 3-class head: the checkpoint's head has 5 classes" in err
    from pixseq.checkpoint import load_model

    model = load_model(out)
    assert (model.config.dim, model.config.depth, model.config.heads) == (16, 1, 2)
    assert model.pretrained_meta["init"] == str(timm_file)


def test_a_recipe_sets_model_regularisation_and_training_and_options_override_it(folder, tmp_path, capsys):
    from pixseq.checkpoint import load_model
    from pixseq.classifiers.vit_train import RECIPES

    recipe = RECIPES["fmnist"]
    out = tmp_path / "r"
    # the recipe's width and steps overridden (a test-sized run); everything else is the recipe's
    code = main(["train", "vit", "--recipe", "fmnist", "--data", str(folder), "--out", str(out), "--image-size",
                 str(SIDE), "--dim", "16", "--depth", "1", "--steps", "2", "--log-every", "0", "--ckpt-every", "0"])
    err = capsys.readouterr().err
    assert code == 0, err
    run = json.loads((out / "train" / "run.json").read_text())
    for key, value in recipe["settings"].items():
        if key != "size":
            assert run[key] == value, key
    assert run["recipe"] == "fmnist" and run["dim"] == 16
    cfg = load_model(out).config
    assert (cfg.pool, cfg.spt, cfg.lsa, cfg.dim, cfg.depth) == (recipe["settings"]["pool"], True, True, 16, 1)
    state = torch.load(out / "train" / "train_state.pt", weights_only=True)
    assert state["config"]["steps"] == 2  # given
    assert state["config"]["lr"] == recipe["train"]["lr"]
    # the recipe's batch, capped to the 48 images (the recipe's warm-up to half the 2 steps)
    assert f"fewer than --batch-size {recipe['train']['batch_size']}" in err and state["config"]["batch_size"] == 48
    assert state["config"]["warmup_steps"] == 1


def test_a_recipe_with_init_or_an_unknown_recipe_is_one_line(timm_file, folder, tmp_path, capsys):
    code = main(["train", "vit", "--recipe", "fmnist", "--data", str(folder), "--out", str(tmp_path / "o"),
                 "--init", str(timm_file), "--heads", "2"])
    assert "--init sets the architecture" in _one_line_error(capsys, code)
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as info:  # argparse's choices: its own one-line usage error
        main(["train", "vit", "--recipe", "cifar", "--data", str(folder), "--out", str(tmp_path / "o")])
    assert "--recipe" in _one_line_error(capsys, info.value.code)


@pytest.mark.parametrize("extra, what", [(["--depth", "3"], "depth 1 (asked: 3)"),
                                         (["--dim", "32"], "dim 16 (asked: 32)"),
                                         (["--size", "tiny"], "dim 16 (asked: 192)")])
def test_init_with_another_depth_or_width_is_one_line(timm_file, folder, tmp_path, capsys, extra, what):
    code = main(["train", "vit", "--data", str(folder), "--out", str(tmp_path / "o"), "--init", str(timm_file),
                 "--heads", "2"] + extra)
    assert what in _one_line_error(capsys, code)
    assert not (tmp_path / "o").exists()


def test_convert_timm_and_hf_then_classify(timm_file, folder, tmp_path, capsys):
    assert main(["convert", "timm-vit", str(timm_file), str(tmp_path / "t"), "--heads", "2"]) == 0
    from transformers import ViTConfig as HFConfig, ViTForImageClassification

    hf = ViTForImageClassification(HFConfig(image_size=SIDE, patch_size=4, hidden_size=16, num_hidden_layers=1,
                                            num_attention_heads=2, intermediate_size=32, num_labels=2))
    hf.save_pretrained(tmp_path / "hf")
    assert main(["convert", "hf-vit", str(tmp_path / "hf"), str(tmp_path / "h")]) == 0
    out = capsys.readouterr().out
    assert "wrote" in out and "5 classes" in out and "2 classes" in out
    assert main(["classify", str(folder / "left" / "0.png"), "--model", str(tmp_path / "h")]) == 0
    code = main(["convert", "timm-vit", str(timm_file), str(tmp_path / "t2")])  # width 16: heads unknown
    assert "give it (--heads)" in _one_line_error(capsys, code)


def test_assess_with_the_users_classifier_is_a_label_overlap_score(vit_dir, folder, tmp_path, capsys):
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    for name in ("0.png", "1.png"):
        im = load_image(folder / "middle" / name).astype(np.int16)
        save_image(np.clip(im + 60, 0, 255).astype(np.uint8), noisy / name)
    code = main(["assess", str(folder / "middle"), str(noisy), "--backbone", str(vit_dir), "--metrics", "vit_score",
                 "--json", str(tmp_path / "a.json")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"label-overlap score ({vit_dir}, K=1)" in out and "ViT-Score" not in out
    assert "its 3 classes" in err
    code = main(["assess", str(folder / "middle"), str(noisy), "--backbone", str(vit_dir), "--metrics",
                 "vit_score", "-k", "5"])
    assert "more than the 3 classes" in _one_line_error(capsys, code)


def test_probe_puts_an_igpt_and_a_vit_in_one_table(vit_dir, folder, tmp_path, capsys):
    igpt = tmp_path / "igpt"
    assert main(["train", "igpt", "--data", str(folder), "--out", str(igpt), "--image-size", str(SIDE), "--palette",
                 "4", "--steps", "2", "--batch-size", "8", "--warmup-steps", "1", "--log-every", "0",
                 "--ckpt-every", "0"]) == 0
    capsys.readouterr()
    assert main(["probe", "--model", str(igpt), "--model", str(vit_dir), "--data", str(folder), "--limit", "48"]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert sum("raw pixels 8x8" in line for line in table) == 1  # the same size: pixels once
    assert any("(igpt)" in line for line in table) and any("(vit)" in line for line in table)
    assert "the same split for every model" in out
