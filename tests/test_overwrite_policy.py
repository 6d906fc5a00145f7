"""One overwrite policy for every verb that writes (pixseq.io.claim_output): an existing output
is refused in one line naming it and --force; --force replaces it; an output that is one of
the verb's own inputs is refused even with --force; a missing output folder is an error
naming it, and nothing is created on the way."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest
import torch

from _codec_models import sample_image, tiny_igpt, tiny_taming
from pixseq.checkpoint import save_pretrained
from pixseq.cli import main
from pixseq.io import save_image

SENTINEL = b"an earlier file the verb must not touch\n"


class Case(NamedTuple):
    """``argv(world, out)``: the verb writing to ``out``; ``name``: the out path's last part;
    ``target``: the file the verb writes, relative to ``out`` ("" = ``out`` itself); ``clash``:
    ``argv(world)`` of the verb with an output naming one of its inputs (None: no input
    can be named by an output), and ``victim(world)``: that input."""

    argv: Callable[[Path, Path], list]
    name: str
    target: str = ""
    clash: Callable[[Path], list] | None = None
    victim: Callable[[Path], Path] = lambda w: w / "in" / "a.png"


def _s(*parts) -> list[str]:
    return [str(p) for p in parts]


TRAIN_IGPT = ["--steps", "1", "--batch-size", "2", "--image-size", "8", "--palette", "4", "--size", "s",
              "--log-every", "0", "--ckpt-every", "0"]
GENERATE = ["--size", "16x16", "--steps", "1", "--cutn", "2", "--cut-batch", "2"]

CASES: dict[str, Case] = {
    "sample": Case(lambda w, o: _s("sample", "--model", w / "igpt", "-n", 2, "--out", o), "o.png"),
    "complete": Case(lambda w, o: _s("complete", w / "in/a.png", "--model", w / "igpt", "-n", 1, "--out", o), "o.png",
                     clash=lambda w: _s("complete", w / "in/a.png", "--model", w / "igpt", "-n", 1,
                                        "--out", w / "in/a.png")),
    "reconstruct": Case(lambda w, o: _s("reconstruct", w / "in/a.png", "--model", w / "taming", "--out", o), "o.png",
                        clash=lambda w: _s("reconstruct", w / "in/a.png", "--model", w / "taming",
                                           "--out", w / "in/a.png")),
    "compress": Case(lambda w, o: _s("compress", w / "in/a.png", "--model", w / "igpt", "--out", o), "o.pxs",
                     clash=lambda w: _s("compress", w / "in/a.png", "--model", w / "igpt", "--out", w / "in/a.png")),
    # an image output cannot name the .pxs input (nor a model's files): no clash to test
    "decompress": Case(lambda w, o: _s("decompress", w / "a.pxs", "--model", w / "igpt", "--out", o), "o.png"),
    "assess --json": Case(lambda w, o: _s("assess", w / "in/a.png", w / "in/b.png", "--metrics", "psnr",
                                          "--json", o), "o.json",
                          clash=lambda w: _s("assess", w / "in/a.png", w / "in/b.png", "--metrics", "psnr",
                                             "--json", w / "in/b.png"), victim=lambda w: w / "in/b.png"),
    "assess --html": Case(lambda w, o: _s("assess", w / "in/a.png", w / "in/b.png", "--metrics", "psnr",
                                          "--html", o), "page", "index.html"),
    "evaluate --json": Case(lambda w, o: _s("evaluate", "--model", w / "igpt", "--data", w / "data", "--limit", 4,
                                            "--batch-size", 2, "--json", o), "o.json",
                            clash=lambda w: _s("evaluate", "--model", w / "igpt", "--data", w / "data", "--limit", 4,
                                               "--json", w / "igpt/config.json"),
                            victim=lambda w: w / "igpt/config.json"),
    "evaluate --html": Case(lambda w, o: _s("evaluate", "--model", w / "vit", "--data", w / "data", "--limit", 4,
                                            "--batch-size", 2, "--html", o), "page", "index.html",
                            clash=lambda w: _s("evaluate", "--model", w / "vit", "--data", w / "data", "--limit", 4,
                                               "--html", w / "vit"), victim=lambda w: w / "vit/config.json"),
    "bench codecs": Case(lambda w, o: _s("bench", "codecs", "--images", w / "in", "--out", o, "--qualities", 50,
                                         "--limit", 1, "--no-label-overlap"), "bench", "index.html",
                         clash=lambda w: _s("bench", "codecs", "--images", w / "in", "--out", w / "in",
                                            "--qualities", 50, "--limit", 1, "--no-label-overlap")),
    "restore": Case(lambda w, o: _s("restore", w / "in/a.png", "--model", w / "restore", "--out", o), "r", "a.png",
                    clash=lambda w: _s("restore", w / "in/a.png", "--model", w / "restore", "--out", w / "in")),
    "translate": Case(lambda w, o: _s("translate", w / "in/a.png", "--model", w / "cyclegan", "--out", o), "t", "a.png",
                      clash=lambda w: _s("translate", w / "in/a.png", "--model", w / "cyclegan", "--out", w / "in")),
    "upscale": Case(lambda w, o: _s("upscale", w / "in/a.png", "--model", w / "rrdb", "--out", o), "u", "a.png",
                    clash=lambda w: _s("upscale", w / "in/a.png", "--model", w / "rrdb", "--out", w / "in")),
    "generate": Case(lambda w, o: _s("generate", "a shoe", "--vqgan", w / "vq", "--clip", w / "clip", *GENERATE,
                                     "--out", o), "g.png",
                     clash=lambda w: _s("generate", "a shoe", "--vqgan", w / "vq", "--clip", w / "clip", *GENERATE,
                                        "--init-image", w / "in/a.png", "--out", w / "in/a.png")),
    "classify --json": Case(lambda w, o: _s("classify", w / "in/a.png", "--model", w / "vit", "--json", o), "c.json",
                            clash=lambda w: _s("classify", w / "in/a.png", "--model", w / "vit",
                                               "--json", w / "in/a.png")),
    "classify --attention": Case(lambda w, o: _s("classify", w / "in/a.png", "--model", w / "vit", "--attention", o),
                                 "att", "a.attention.png",
                                 clash=lambda w: _s("classify", w / "in/a.png", "--model", w / "vit",
                                                    "--attention", w / "in")),
    "classify --labels --json": Case(lambda w, o: _s("classify", w / "in/a.png", "--labels", "shoe,bag", "--clip",
                                                     w / "clip", "--json", o), "z.json",
                                     clash=lambda w: _s("classify", w / "in/a.png", "--labels", "shoe,bag", "--clip",
                                                        w / "clip", "--json", w / "in/a.png")),
    "train igpt": Case(lambda w, o: _s("train", "igpt", "--data", w / "data", "--out", o, *TRAIN_IGPT), "m",
                       "config.json",
                       clash=lambda w: _s("train", "igpt", "--data", w / "data", "--out", w / "data", *TRAIN_IGPT),
                       victim=lambda w: w / "data/bag/0.png"),
    "train prior": Case(lambda w, o: _s("train", "prior", "--tokenizer", w / "vq", "--data", w / "data", "--out", o,
                                        "--image-size", 16, "--steps", 1, "--batch-size", 2, "--log-every", 0,
                                        "--ckpt-every", 0), "p", "config.json",
                        clash=lambda w: _s("train", "prior", "--tokenizer", w / "vq", "--data", w / "data",
                                           "--out", w / "vq", "--image-size", 16, "--steps", 1),
                        victim=lambda w: w / "vq/model.safetensors"),
    "convert hf-imagegpt": Case(lambda w, o: _s("convert", "hf-imagegpt", w / "hf", o), "m", "config.json",
                                clash=lambda w: _s("convert", "hf-imagegpt", w / "hf", w / "hf"),
                                victim=lambda w: w / "hf/config.json"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """Two small photos, a labelled data folder and a tiny model for every verb (random weights)."""
    from pixseq.classifiers.vit_train import build_vit
    from pixseq.gans.generators import GeneratorConfig
    from pixseq.gans.train import build_restore
    from pixseq.gans.translator import CycleGAN, TranslatorConfig
    from pixseq.guidance.clip import random_clip, tiny_clip_config
    from pixseq.tokenizers.vqgan import VQGAN, vqgan_config
    from pixseq.upscale.rrdb import RRDBNet, RRDBNetConfig

    w = tmp_path_factory.mktemp("world")
    save_image(sample_image(16, 16, seed=1), w / "in" / "a.png")
    save_image(sample_image(16, 16, seed=2), w / "in" / "b.png")
    for c, name in enumerate(("bag", "shoe")):
        for i in range(4):
            save_image(sample_image(16, 16, seed=10 * c + i), w / "data" / name / f"{i}.png")
    torch.manual_seed(0)
    save_pretrained(tiny_igpt(), w / "igpt")
    save_pretrained(tiny_taming(), w / "taming")
    save_pretrained(build_restore("denoise", width=4, depth=1, disc_width=4, image_size=16)[0], w / "restore")
    save_pretrained(CycleGAN(TranslatorConfig(generator=GeneratorConfig(width=4, blocks=1))).eval(), w / "cyclegan")
    save_pretrained(RRDBNet(RRDBNetConfig(scale=2, num_feat=4, num_block=1, num_grow_ch=4)).eval(), w / "rrdb")
    save_pretrained(build_vit(2, 16, "micro", ["bag", "shoe"]).eval(), w / "vit")
    vq = VQGAN(vqgan_config(4, 32, 8, 16)).eval()
    save_pretrained(vq, w / "vq", meta={"image_size": 16})
    save_pretrained(random_clip(tiny_clip_config()), w / "clip")
    assert main(_s("compress", w / "in/a.png", "--model", w / "igpt", "--out", w / "a.pxs")) == 0
    _hf_imagegpt(w / "hf")
    return w


def _hf_imagegpt(folder: Path) -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.ImageGPTConfig(vocab_size=7, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    transformers.ImageGPTForCausalImageModeling(cfg).save_pretrained(folder)
    clusters = np.random.default_rng(0).uniform(-1, 1, (6, 3))
    (folder / "preprocessor_config.json").write_text(json.dumps({"clusters": clusters.tolist()}))


def _one_line(capsys, code: int) -> str:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("pixseq: error:") and "Traceback" not in err, err
    # one line: notices said before the check (none should come first) would be lines too
    assert len(lines) == 1, err
    return lines[0]


def _planted(case: Case, out: Path) -> Path:
    """The file ``case`` would write under ``out``, planted with :data:`SENTINEL`."""
    target = out / case.target if case.target else out
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(SENTINEL)
    return target


@pytest.mark.parametrize("verb", sorted(CASES))
def test_an_existing_output_is_refused_without_force_and_replaced_with_it(verb, world, tmp_path, capsys):
    case = CASES[verb]
    out = tmp_path / case.name
    target = _planted(case, out)
    err = _one_line(capsys, main(case.argv(world, out)))
    assert "--force" in err and (str(target) in err or str(out) in err), err
    assert target.read_bytes() == SENTINEL
    assert main(case.argv(world, out) + ["--force"]) == 0, capsys.readouterr().err
    assert target.is_file() and target.read_bytes() != SENTINEL


@pytest.mark.parametrize("verb", sorted(v for v in CASES if CASES[v].clash is not None))
def test_an_output_that_is_an_input_is_refused_even_with_force(verb, world, capsys):
    case = CASES[verb]
    victim = case.victim(world)
    before = victim.read_bytes()
    err = _one_line(capsys, main(case.clash(world) + ["--force"]))
    assert "input" in err, err
    assert victim.read_bytes() == before


@pytest.mark.parametrize("verb", sorted(CASES))
def test_a_missing_output_folder_is_named_and_not_created(verb, world, tmp_path, capsys):
    """`--out /nonexistent/dir/x.png` must not make /nonexistent/dir/ (nor does a verb that
    writes a whole folder, such as train --out, make more than that folder's last level)."""
    case = CASES[verb]
    missing = tmp_path / "typo" / "deeper"
    err = _one_line(capsys, main(case.argv(world, missing / case.name)))
    assert str(missing) in err and "does not exist" in err, err
    assert list(tmp_path.iterdir()) == []


def test_the_last_level_of_a_whole_output_folder_is_created(world, tmp_path, capsys):
    """What the verbs above refuse two levels deep, they do one level deep."""
    assert main(CASES["restore"].argv(world, tmp_path / "new")) == 0
    assert (tmp_path / "new" / "a.png").is_file()


def test_demo_out_creates_only_its_last_level(tmp_path, capsys):
    err = _one_line(capsys, main(["demo", "--quick", "--out", str(tmp_path / "typo" / "demo")]))
    assert str(tmp_path / "typo") in err and "does not exist" in err
    assert list(tmp_path.iterdir()) == []


def test_ui_work_folder_creates_only_its_last_level(tmp_path):
    from pixseq.app.work import WorkFolder
    from pixseq.errors import PixseqError

    with pytest.raises(PixseqError, match="typo.* does not exist"):
        WorkFolder(tmp_path / "typo" / "w")
    assert list(tmp_path.iterdir()) == []
    assert (WorkFolder(tmp_path / "w").root / "requests").is_dir()
