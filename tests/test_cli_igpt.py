"""The iGPT command line, in-process: train igpt, sample, complete, probe, convert hf-imagegpt, demo.

Tiny models on a tiny synthetic folder dataset (two classes that differ in where the
bright half is), a few steps each: these check the wiring, the files and the errors, not
image quality.
"""
from __future__ import annotations

import dataclasses
import gzip
import json
import re
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from pixseq import checkpoint
from pixseq.cli import main
from pixseq.models.generate import MASK_COLOUR
from pixseq.io import save_image

SIDE = 8
TRAIN = ["--image-size", str(SIDE), "--palette", "4", "--batch-size", "8", "--lr", "3e-3", "--warmup-steps", "1",
         "--log-every", "0", "--ckpt-every", "0"]


def _one_line_error(capsys, code: int) -> str:
    """The exit code is 2 and stderr ends with exactly one 'pixseq: error:' line, no traceback."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("pixseq: error:") and sum(l.startswith("pixseq: error") for l in err.splitlines()) == 1
    return last


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two classes of 8x8 grey images: 'top' is bright above, 'bottom' bright below (+ noise)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for cls, bright_top in (("bottom", False), ("top", True)):
        (root / cls).mkdir()
        for i in range(24):
            im = rng.integers(0, 60, (SIDE, SIDE), dtype=np.uint8)
            half = slice(0, SIDE // 2) if bright_top else slice(SIDE // 2, SIDE)
            im[half] += 190
            save_image(np.repeat(im[..., None], 3, axis=-1), root / cls / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def model_dir(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "m"
    assert main(["train", "igpt", "--data", str(folder), "--out", str(out), "--classes", "--steps", "4"] + TRAIN) == 0
    return out


def test_help_lists_verbs_and_common_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for verb in ("demo", "train", "sample", "complete", "probe", "evaluate", "convert"):
        assert verb in out
    for argv in (["train", "igpt"], ["sample"], ["complete"], ["probe"], ["evaluate"], ["convert", "hf-imagegpt"], ["demo"]):
        with pytest.raises(SystemExit) as info:
            main(argv + ["--help"])
        text = capsys.readouterr().out
        assert info.value.code == 0 and "--device" in text and "--seed" in text, argv


def test_interrupts_and_file_system_errors_anywhere_are_one_line(tmp_path, monkeypatch, capsys):
    import pixseq.cli as cli

    def interrupted(*_):  # Ctrl-C while the parser is built (it imports torch: seconds)
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(cli, "build_parser", interrupted)
        assert "interrupted" in _one_line_error(capsys, main(["sample", "--help"]))

    def disk_full(path, mode="wb"):  # the file system refuses an output after the work is done
        raise OSError(28, "No space left on device", str(path))

    img = tmp_path / "a.png"
    save_image(np.zeros((16, 16, 3), np.uint8), img)
    import pixseq.report.assess as assess_report

    monkeypatch.setattr(assess_report, "atomic_write", disk_full)
    line = _one_line_error(capsys, main(["assess", str(img), str(img), "--metrics", "mse",
                                         "--json", str(tmp_path / "s.json")]))
    assert "No space left on device" in line and "s.json" in line


def test_train_writes_a_model_dir(model_dir, capsys):
    model = checkpoint.from_pretrained(model_dir, expected_kind="igpt")
    assert model.num_classes == 2 and model.image_size == (SIDE, SIDE) and model.tokenizer.vocab_size == 4
    assert model.pretrained_meta["class_names"] == ["bottom", "top"]
    history = [json.loads(line) for line in (model_dir / "train" / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == [0, 1, 2, 3]
    assert json.loads((model_dir / "train" / "run.json").read_text())["palette"] == 4


def test_train_refuses_to_overwrite_and_bad_resume(model_dir, folder, capsys):
    base = ["train", "igpt", "--data", str(folder), "--out", str(model_dir)]
    assert "--resume" in _one_line_error(capsys, main(base + ["--steps", "4"] + TRAIN))
    msg = _one_line_error(capsys, main(base + ["--resume", "--palette", "8", "--steps", "4"]))
    assert "--palette" in msg
    assert "unknown data spec" in _one_line_error(capsys, main(["train", "igpt", "--data", "nope", "--out",
                                                                str(model_dir.parent / "x")]))


def test_resume_with_more_steps_says_the_schedule_moved(folder, tmp_path, capsys):
    out = tmp_path / "run"
    base = ["train", "igpt", "--data", str(folder), "--out", str(out)] + TRAIN
    assert main(base + ["--steps", "2"]) == 0
    capsys.readouterr()
    assert main(base + ["--steps", "3", "--resume"]) == 0
    assert "--steps changed from 2 to 3 on resume" in capsys.readouterr().err
    history = [json.loads(line) for line in (out / "train" / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == [0, 1, 2]


def test_resume_encodes_with_the_saved_palette_not_a_refit(folder, tmp_path, monkeypatch, capsys):
    """--resume fitted the k-means palette again and encoded the data with it before the
    Trainer restored the saved one: identical only on the same machine and versions. A refit
    that comes out differently (here: reversed colours) must not reach the resumed run."""
    from pixseq.models import igpt

    out = tmp_path / "run"
    base = ["train", "igpt", "--data", str(folder), "--out", str(out)] + TRAIN
    assert main(base + ["--steps", "2"]) == 0
    first = checkpoint.from_pretrained(out).tokenizer.palette.clone()
    real_fit = igpt.fit_palette
    monkeypatch.setattr(igpt, "fit_palette", lambda *a, **k: real_fit(*a, **k).flip(0))
    encoded = []
    real_dataset = igpt.IGPTTokenDataset

    def spy(model, *a, **k):
        encoded.append(model.tokenizer.palette.clone())
        return real_dataset(model, *a, **k)

    monkeypatch.setattr(igpt, "IGPTTokenDataset", spy)
    capsys.readouterr()
    assert main(base + ["--steps", "3", "--resume"]) == 0
    assert encoded and all(torch.equal(p, first) for p in encoded)  # the data were encoded with the saved palette
    assert torch.equal(checkpoint.from_pretrained(out).tokenizer.palette, first)


def test_interrupted_training_resumes_exactly(model_dir, folder, tmp_path, stop_training_after, capsys):
    args = ["--data", str(folder), "--classes", "--steps", "4"] + TRAIN  # as model_dir was trained
    stop_training_after(2)
    msg = _one_line_error(capsys, main(["train", "igpt", "--out", str(tmp_path / "b")] + args))
    assert "interrupted" in msg and "--resume" in msg
    assert not (tmp_path / "b" / "config.json").exists()  # no half-finished model directory
    stop_training_after(None)
    # Only --data, --out and --resume (as the README says): the model settings come back from
    # run.json and the training options (--steps 4, --batch-size 8, --lr ...) from the checkpoint.
    assert main(["train", "igpt", "--data", str(folder), "--out", str(tmp_path / "b"), "--resume"]) == 0
    a = checkpoint.from_pretrained(model_dir).state_dict()
    b = checkpoint.from_pretrained(tmp_path / "b").state_dict()
    for k in a:  # CPU training is deterministic: the resumed run matches bit for bit
        assert torch.equal(a[k], b[k]), k


def test_unfinished_run_is_kept_unless_forced(folder, tmp_path, stop_training_after, capsys):
    """A second run into the --out of an interrupted one used to overwrite its checkpoint with
    a notice; now it is refused like a finished model, and --force starts over cleanly."""
    out = tmp_path / "u"
    base = ["train", "igpt", "--data", str(folder), "--out", str(out)] + TRAIN
    stop_training_after(3)
    _one_line_error(capsys, main(base + ["--steps", "6", "--ckpt-every", "1", "--log-every", "1"]))
    stop_training_after(None)
    ckpt = out / "train" / "train_state.pt"
    before = ckpt.read_bytes()
    msg = _one_line_error(capsys, main(base + ["--steps", "6"]))
    assert "unfinished run (step 3 of 6)" in msg and "--resume" in msg and "--force" in msg
    assert ckpt.read_bytes() == before
    msg = _one_line_error(capsys, main(base + ["--resume", "--steps", "2"]))  # used to "finish" at step 3
    assert "already trained 3 steps" in msg and "--steps >= 3" in msg
    assert ckpt.read_bytes() == before and not (out / "config.json").exists()
    assert "contradict" in _one_line_error(capsys, main(base + ["--resume", "--force"]))
    assert any((out / "train" / "tb").iterdir())
    assert main(base + ["--steps", "2", "--force"]) == 0  # starts over: the old curves go too
    assert not (out / "train" / "tb").exists()  # this run logs nothing (--log-every 0)
    history = [json.loads(line) for line in (out / "train" / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == [0, 1]


def test_sample(model_dir, tmp_path, capsys):
    out = tmp_path / "s.png"
    assert main(["sample", "--model", str(model_dir), "-n", "4", "--out", str(out), "--top-k", "3"]) == 0
    grid = np.asarray(Image.open(out))
    assert grid.ndim == 3 and grid.shape[1] > 2 * SIDE  # two columns (one per class), upscaled
    again = ["--force"]  # the same --out each time: replacing it takes --force
    assert main(["sample", "--model", str(model_dir), "-n", "2", "--class", "top", "--out", str(out)] + again) == 0
    assert "class 1" in capsys.readouterr().out
    # the model has 2 classes: one sample is of class 0 only (it said "all classes")
    assert main(["sample", "--model", str(model_dir), "-n", "1", "--out", str(out)] + again) == 0
    assert "1 sample (class 0)" in capsys.readouterr().out
    assert main(["sample", "--model", str(model_dir), "-n", "3", "--out", str(out)] + again) == 0
    assert "3 samples (all classes)" in capsys.readouterr().out


@pytest.mark.parametrize("extra, pattern", [
    (["--class", "2"], "out of range"),
    (["--class", "shoe"], "not a class index"),
    (["--temperature", "0"], "temperature"),
    (["--temperature", "inf"], "--temperature must be a finite number"),  # named Python's greedy=True
    (["--top-p", "1.5"], "top-p"),
    (["--size", "16x16"], "trained size"),
    (["-n", "0"], "-n"),
    (["-n", "100000"], "from 1 to 10000"),  # was an out-of-memory traceback
    (["--ncol", "-3"], "--ncol"),  # was a numpy traceback
])
def test_sample_bad_input(model_dir, tmp_path, capsys, extra, pattern):
    code = main(["sample", "--model", str(model_dir), "--out", str(tmp_path / "s.png")] + extra)
    assert pattern in _one_line_error(capsys, code)
    assert not (tmp_path / "s.png").exists()


def test_model_dir_with_an_absurd_image_size_is_refused_on_load(model_dir, tmp_path, capsys):
    import shutil

    bad = tmp_path / "big"
    shutil.copytree(model_dir, bad)
    doc = json.loads((bad / "config.json").read_text())
    doc["config"]["image_size"] = 100000  # would allocate terabytes of positions
    (bad / "config.json").write_text(json.dumps(doc))
    code = main(["sample", "--model", str(bad), "--out", str(tmp_path / "s.png")])
    assert "image_size 1..256" in _one_line_error(capsys, code)


def test_sample_not_a_model_dir(tmp_path, capsys):
    msg = _one_line_error(capsys, main(["sample", "--model", str(tmp_path), "--out", str(tmp_path / "s.png")]))
    assert "not a pixseq model directory" in msg


def test_complete_resizes_with_notice_and_writes_grid(model_dir, tmp_path, capsys):
    img = np.zeros((20, 20, 3), np.uint8)
    img[:10] = 230  # bright top: the 'top' class
    save_image(img, tmp_path / "in.png")
    out = tmp_path / "c.png"
    assert main(["complete", str(tmp_path / "in.png"), "--model", str(model_dir), "-n", "3", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "resized to 8x8" in captured.err and "no --class given" in captured.err
    assert "3 completions" in captured.out
    grid = np.asarray(Image.open(out))
    scale = (grid.shape[0] - 4) // SIDE  # make_grid: pad 2 around one row of upscaled tiles
    assert grid.shape[1] == 5 * SIDE * scale + 6 * 2  # original | kept | 3 completions
    kept = grid[2:2 + SIDE * scale, 2 + SIDE * scale + 2: 2 + 2 * SIDE * scale + 2]
    assert (kept[SIDE * scale // 2:] == MASK_COLOUR).all()  # the bottom half is masked


@pytest.mark.parametrize("case", ["keep0", "keep1", "missing", "corrupt", "class"])
def test_complete_bad_input(model_dir, tmp_path, capsys, case):
    image = tmp_path / "in.png"
    save_image(np.zeros((8, 8, 3), np.uint8), image)
    extra = {"keep0": ["--keep", "0"], "keep1": ["--keep", "1.5"], "class": ["--class", "-1"]}.get(case, [])
    if case == "missing":
        image = tmp_path / "none.png"
    if case == "corrupt":
        image.write_bytes(image.read_bytes()[:30])
    code = main(["complete", str(image), "--model", str(model_dir), "--out", str(tmp_path / "c.png")] + extra)
    msg = _one_line_error(capsys, code)
    pattern = {"keep0": "--keep", "keep1": "--keep", "missing": "not found",
               "corrupt": "not an image|cannot read", "class": "out of range"}[case]
    assert re.search(pattern, msg)
    assert not (tmp_path / "c.png").exists()


@pytest.mark.parametrize("extra, pattern", [
    (["--class", "shoe"], "not a class index"),
    (["--class", "7"], "out of range"),
    (["--top-p", "0"], "--top-p"),
    (["--temperature", "-1"], "--temperature"),
    (["--temperature", "inf"], "--temperature must be a finite number"),  # was the sampler's error, after notices
    (["--top-k", "0"], "--top-k"),
    (["-n", "100000000"], "from 1 to 10000"),  # was an allocation-failure traceback
    (["-n", "0"], "from 1 to 10000"),
])
def test_complete_bad_options_are_the_only_line(model_dir, tmp_path, capsys, extra, pattern):
    # a 20x20 image is resized to the model's 8x8 with a notice; the notice used to come
    # first, then the error (two lines on stderr)
    image = tmp_path / "in.png"
    save_image(np.zeros((20, 20, 3), np.uint8), image)
    code = main(["complete", str(image), "--model", str(model_dir), "--out", str(tmp_path / "c.png")] + extra)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("pixseq: error:") and pattern in err, err
    assert not (tmp_path / "c.png").exists()


def test_complete_bounds_all_completions_not_only_n(model_dir, tmp_path, monkeypatch, capsys):
    """-n is bounded by MAX_SAMPLES (one grid image), but -n per image times many images was
    not: the whole product was sampled into one huge grid."""
    from pixseq.models import generate as sample_verb

    monkeypatch.setattr(sample_verb, "MAX_SAMPLES", 5)
    images = []
    for i in range(2):
        images.append(str(tmp_path / f"in{i}.png"))
        save_image(np.zeros((SIDE, SIDE, 3), np.uint8), images[-1])
    code = main(["complete", *images, "--model", str(model_dir), "-n", "3", "--out", str(tmp_path / "c.png")])
    assert "2 images x -n 3 = 6 completions" in _one_line_error(capsys, code)
    assert not (tmp_path / "c.png").exists()


def test_complete_one_row_model_is_one_line(tmp_path, capsys):
    """A 1x1 model has no row to keep and one to draw: one line before any notice (it was the
    model's "keep_rows must be in 0..0, got 1" after the resize notice)."""
    from pixseq.models.igpt import IGPT, IGPTConfig
    from pixseq.priors.gpt import gpt_config

    model = IGPT(IGPTConfig(palette_size=4, image_size=1, gpt=gpt_config("s", n_layer=1, n_embd=16, n_head=2)))
    checkpoint.save_pretrained(model, tmp_path / "m")
    save_image(np.zeros((8, 8, 3), np.uint8), tmp_path / "in.png")
    code = main(["complete", str(tmp_path / "in.png"), "--model", str(tmp_path / "m"), "--out", str(tmp_path / "c.png")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "1 pixel row high" in err, err
    assert not (tmp_path / "c.png").exists()


def test_complete_help_defaults_and_singular_output(model_dir, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        main(["complete", "--help"])
    assert "(default 0.5)" in " ".join(capsys.readouterr().out.split())  # --keep's default was not shown
    image = tmp_path / "in.png"
    save_image(np.zeros((8, 8, 3), np.uint8), image)
    base = ["complete", str(image), "--model", str(model_dir), "--class", "0", "--out", str(tmp_path / "c.png")]
    assert main(base + ["-n", "1"]) == 0
    out = capsys.readouterr().out
    assert "| 1 completion" in out and "completions" not in out  # said "1 completions"
    assert main(["sample", "--model", str(model_dir), "-n", "1", "--out", str(tmp_path / "s.png")]) == 0
    assert ": 1 sample (" in capsys.readouterr().out  # said "1 samples"
    # -n beyond one batch is drawn batch by batch (bounded memory)
    import pixseq.models.generate as sample_mod

    monkeypatch.setattr(sample_mod, "SAMPLE_BATCH", 2)
    assert main(base + ["-n", "5", "--force"]) == 0  # the same --out: replaced with --force
    assert "| 5 completions" in capsys.readouterr().out
    grid = np.asarray(Image.open(tmp_path / "c.png"))
    scale = (grid.shape[0] - 4) // SIDE
    assert grid.shape[1] == 7 * SIDE * scale + 8 * 2  # original | kept | 5 completions
    # more than 8 completions wrap into rows (one row of -n 10000 was ~a million pixels wide)
    assert main(base + ["-n", "11", "--force"]) == 0
    grid = np.asarray(Image.open(tmp_path / "c.png"))
    cell = SIDE * scale + 2
    assert grid.shape[:2] == (2 * cell + 2, 10 * cell + 2)  # 2 rows of original | kept | 8 completions
    assert (grid[cell + 2:, 2:2 * cell] == 255).all()  # the second row starts under two blank cells
    assert (grid[cell + 2:, 5 * cell + 2:] == 255).all()  # and holds completions 9-11 only


def test_complete_several_images_one_block_each(model_dir, tmp_path, capsys):
    """complete IMAGE IMAGE ...: one block of grid rows per image (like the demo's page);
    every image is loaded, and refused if broken, before any work."""
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    save_image(np.zeros((SIDE, SIDE, 3), np.uint8), a)
    save_image(np.full((SIDE, SIDE, 3), 255, np.uint8), b)
    out = tmp_path / "c.png"
    base = ["complete", str(a), str(b), "--model", str(model_dir), "--class", "1", "-n", "3", "--out", str(out)]
    assert main(base) == 0
    assert "2 images, original | top 4 of 8 rows kept | 3 completions each" in capsys.readouterr().out
    grid = np.asarray(Image.open(out))
    scale = (grid.shape[0] - 2 * 2 - 2) // (2 * SIDE)
    cell = SIDE * scale + 2
    assert grid.shape[:2] == (2 * cell + 2, 5 * cell + 2)  # 2 blocks of original | kept | 3 completions
    assert (grid[2:cell, 2:cell] == 0).all() and (grid[cell + 2:2 * cell, 2:cell] == 255).all()  # a, then b
    (tmp_path / "broken.png").write_text("not an image")
    assert main(base[:3] + [str(tmp_path / "broken.png")] + base[3:] + ["--force"]) == 2
    assert "broken.png" in capsys.readouterr().err


def test_python_api_labels_take_class_names(model_dir):
    """generate / complete take the stored class names like --class does; a name was a raw
    `TypeError: new(): invalid data type 'str'`."""
    from pixseq.errors import PixseqError
    from pixseq.models.igpt import IGPT

    model = checkpoint.from_pretrained(model_dir)  # classes "bottom", "top"
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731 - same draws for both spellings
    assert torch.equal(model.generate(2, labels="Top", generator=g()), model.generate(2, labels=1, generator=g()))
    assert torch.equal(model.generate(2, labels=["top", "bottom"], generator=g()),
                       model.generate(2, labels=torch.tensor([1, 0]), generator=g()))
    x = torch.zeros(1, 3, SIDE, SIDE)
    assert torch.equal(model.complete(x, 4, num=2, labels="bottom", generator=g()),
                       model.complete(x, 4, num=2, labels=0, generator=g()))
    with pytest.raises(PixseqError, match="'shoe' is not a class index 0..1 or one of: bottom, top"):
        model.generate(2, labels="shoe")
    with pytest.raises(PixseqError, match=r"integer class ids 0..1 or class names \(bottom, top\), got dtype"):
        model.generate(2, labels=[0.5, 1.0])  # floats were silently truncated to class ids
    fresh = IGPT(model.config)  # built in Python: no stored names
    with pytest.raises(PixseqError, match="labels must be integer class ids 0..1, got 'Sneaker'"):
        fresh.generate(2, labels="Sneaker")
    with pytest.raises(PixseqError, match="unconditional"):
        IGPT(dataclasses.replace(model.config, num_classes=0)).complete(x, 4, labels="top")


def test_outputs_never_replace_the_input_image(model_dir, tmp_path, capsys):
    image = tmp_path / "in.png"
    save_image(np.zeros((8, 8, 3), np.uint8), image)
    before = image.read_bytes()
    code = main(["complete", str(image), "--model", str(model_dir), "--out", str(tmp_path / "." / "in.png")])
    assert "is also an input" in _one_line_error(capsys, code)
    assert image.read_bytes() == before


def test_sample_in_batches_of_bounded_size(model_dir, monkeypatch):
    # -n beyond one batch samples batch after batch (bounded KV-cache memory), each batch
    # with its share of the cycling class labels; up to one batch it is a single call.
    import pixseq.models.generate as sample_mod

    model = checkpoint.load_model(str(model_dir), ("igpt", "taming"), torch.device("cpu"))
    monkeypatch.setattr(sample_mod, "SAMPLE_BATCH", 4)
    torch.manual_seed(0)
    got, ncol = sample_mod.sample_images(model, 6, None, None)
    torch.manual_seed(0)
    labels = torch.arange(6) % 2
    want = torch.cat([model.generate(4, labels[:4]), model.generate(2, labels[4:])])
    assert torch.equal(got, want) and ncol == 2  # one column per class
    torch.manual_seed(0)
    single, _ = sample_mod.sample_images(model, 3, None, None)
    torch.manual_seed(0)
    assert torch.equal(single, model.generate(3, torch.arange(3) % 2))


def test_a_batch_larger_than_the_data_is_capped_with_a_notice(folder, tmp_path, capsys):
    """The default batch (32) failed on the 22 built-in photos; a batch beyond the data now
    trains with every image in each batch, says so once, and records the batch it used (so a
    resume on the same data sees no change)."""
    from pixseq.train.files import read_checkpoint_head

    out = tmp_path / "run"
    args = ["train", "igpt", "--data", str(folder), "--out", str(out), "--steps", "1", *TRAIN]
    assert main([*args, "--batch-size", "1000", "--ckpt-every", "1"]) == 0
    err = capsys.readouterr().err
    assert err.count("fewer than --batch-size 1000: training with batches of 48") == 1, err
    assert read_checkpoint_head(out / "train")["config"]["batch_size"] == 48
    assert main(["train", "igpt", "--data", str(folder), "--out", str(out), "--resume", "--steps", "2"]) == 0
    assert "batches of" not in capsys.readouterr().err


@pytest.mark.parametrize("extra, pattern", [
    (["--image-size", "0"], "--image-size must be in 1..256"),  # 0 used to mean "the default"
    (["--palette", "0"], "--palette >= 2"),
    (["--palette", "100000"], "more colours than"),
    (["--steps", "0"], "--steps must be >= 1"),  # would save an untrained model
    (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "bogus"], "cuda|bogus|invalid"),
])
def test_train_bad_options_write_nothing(folder, tmp_path, capsys, extra, pattern):
    out = tmp_path / "run"
    args = ["train", "igpt", "--data", str(folder), "--out", str(out), "--steps", "1", *TRAIN, *extra]
    try:
        code = main(args)
    except SystemExit as exc:  # argparse rejects --device bogus itself
        code = exc.code
    assert re.search(pattern, _one_line_error(capsys, code))
    assert not out.exists()  # no run.json, no TensorBoard files left behind


def test_probe(model_dir, folder, capsys):
    assert main(["probe", "--model", str(model_dir), "--data", str(folder), "--limit", "48"]) == 0
    out = capsys.readouterr().out
    assert "| pixels |" in out and "block 1" in out and "final norm" in out and "best layer" in out


def test_probe_counts_the_classes_it_probes(model_dir, tmp_path, capsys):
    """A --limit on a folder (sorted by class) keeps the first classes only: the summary said
    the folder's 3 classes and chance 1/3, where always guessing the commoner of the 2 probed
    classes scores 8/12."""
    rng = np.random.default_rng(0)
    for cls in ("a", "b", "c"):
        (tmp_path / cls).mkdir()
        for i in range(8):
            save_image(rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8), tmp_path / cls / f"{i}.png")
    assert main(["probe", "--model", str(model_dir), "--data", str(tmp_path), "--limit", "12"]) == 0
    out = capsys.readouterr().out
    assert "(2 classes," in out and "chance (the commonest class's share): 0.667" in out, out


def test_probe_needs_labels(model_dir, tmp_path, capsys):
    for i in range(8):
        save_image(np.full((8, 8, 3), i * 20, np.uint8), tmp_path / f"{i}.png")
    assert "no labels" in _one_line_error(capsys, main(["probe", "--model", str(model_dir), "--data", str(tmp_path)]))


def test_probe_split_that_leaves_too_little_to_fit_is_one_line(model_dir, folder, capsys):
    """A large --test-fraction was a scikit-learn traceback: an empty training part, or one
    image (with more classes: fewer training images than classes, asked to stratify)."""
    for limit, fraction in (("48", "0.99"), ("48", "0.97")):
        msg = _one_line_error(capsys, main(["probe", "--model", str(model_dir), "--data", str(folder),
                                            "--limit", limit, "--test-fraction", fraction]))
        assert "to fit the probe on" in msg, msg


def test_probe_split_refuses_a_one_class_training_part():
    """Without stratification (a class seen once) a split can leave one class to train on,
    which LogisticRegression refused with a traceback; it is a PixseqError, and a split that
    returns always trains on two or more classes."""
    from pixseq.errors import PixseqError
    from pixseq.probe import split_indices

    labels = np.array([0] * 9 + [1])
    refused = 0
    for seed in range(20):
        try:
            train, test = split_indices(labels, 0.5, seed)
        except PixseqError as exc:
            assert "only one class" in str(exc)
            refused += 1
        else:
            assert len(np.unique(labels[train])) == 2 and len(train) + len(test) == 10
    assert 0 < refused < 20  # the lone class 1 lands in either part, depending on the seed
    # 10 classes, 8 training images: stratifying was asked for and refused by scikit-learn
    train, test = split_indices(np.repeat(np.arange(10), 4), 0.8, 0)
    assert (len(train), len(test)) == (8, 32)


def test_linear_probe_finds_the_informative_feature():
    """fit_probe on synthetic features: one informative direction -> high accuracy, noise -> chance."""
    from pixseq.probe import fit_probe, split_indices

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 100)
    noise = rng.normal(size=(200, 5))
    informative = noise.copy()
    informative[:, 0] += 4.0 * labels  # classes separated by 4 standard deviations
    train, test = split_indices(labels, 0.25, 0)
    assert fit_probe(informative, labels, train, test)[1] > 0.95
    assert fit_probe(noise, labels, train, test)[1] < 0.75


def test_convert_hf_imagegpt(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    K = 6
    cfg = transformers.ImageGPTConfig(vocab_size=K + 1, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    torch.manual_seed(0)
    transformers.ImageGPTForCausalImageModeling(cfg).save_pretrained(tmp_path / "hf")
    clusters = np.random.default_rng(0).uniform(-1, 1, (K, 3))
    (tmp_path / "hf" / "preprocessor_config.json").write_text(json.dumps({"clusters": clusters.tolist()}))
    assert main(["convert", "hf-imagegpt", str(tmp_path / "hf"), str(tmp_path / "m")]) == 0
    model = checkpoint.from_pretrained(tmp_path / "m", expected_kind="igpt")
    assert model.image_size == (4, 4)
    torch.testing.assert_close(model.tokenizer.palette, torch.from_numpy((clusters + 1) / 2).float())
    assert main(["sample", "--model", str(tmp_path / "m"), "-n", "2", "--out", str(tmp_path / "s.png")]) == 0
    assert "--force" in _one_line_error(capsys, main(["convert", "hf-imagegpt", str(tmp_path / "hf"),
                                                      str(tmp_path / "m")]))
    # a missing source said "not a folder"
    assert "does not exist" in _one_line_error(capsys, main(["convert", "hf-imagegpt", str(tmp_path / "x"),
                                                             str(tmp_path / "m2")]))
    (tmp_path / "f").write_text("")
    assert "not a folder" in _one_line_error(capsys, main(["convert", "hf-imagegpt", str(tmp_path / "f"),
                                                           str(tmp_path / "m2")]))
    # -3 was a ValueError traceback, 0 silently meant the default, 3 used 9 of the 16 positions
    for size, words in (("-3", ["--image-size must be >= 1"]), ("0", ["--image-size must be >= 1"]),
                        ("3", ["image size 3", "16 positions"])):
        msg = _one_line_error(capsys, main(["convert", "hf-imagegpt", str(tmp_path / "hf"), str(tmp_path / "m2"),
                                            "--image-size", size]))
        assert all(w in msg for w in words), msg
    assert not (tmp_path / "m2").exists()


def test_convert_hf_imagegpt_empty_paths_are_refused(tmp_path, monkeypatch, capsys):
    """An empty DIR was the current folder: the model's files were written into it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hf").mkdir()
    for argv in (["hf", ""], ["", "m"]):
        try:
            code = main(["convert", "hf-imagegpt", *argv])
        except SystemExit as exc:  # argparse's own usage errors exit 2 themselves
            code = exc.code
        assert code == 2
        assert "empty path" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def _fake_fashion_mnist(root, n: int = 60) -> None:
    """A small Fashion-MNIST in IDX format: blobs whose size depends on the class (0..9 cycled)."""
    yy, xx = np.mgrid[:28, :28]
    labels = np.arange(n) % 10
    images = np.stack([((yy - 14) ** 2 + (xx - 14) ** 2 < (3 + c) ** 2) * 220 for c in labels]).astype(np.uint8)
    for prefix in ("train", "t10k"):
        for kind, arr in (("images-idx3", images), ("labels-idx1", labels.astype(np.uint8))):
            header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
            with gzip.open(root / f"{prefix}-{kind}-ubyte.gz", "wb") as fh:
                fh.write(header + arr.tobytes())


def test_demo_quick(tmp_path, monkeypatch, capsys):
    from pixseq import demo

    _fake_fashion_mnist(tmp_path)
    monkeypatch.setenv("PIXSEQ_FASHION_MNIST", str(tmp_path))
    monkeypatch.setattr(demo, "SECTION_PROVIDERS", ())  # other systems' sections have their own tests
    calls = []
    monkeypatch.setattr(demo, "SECTIONS", [lambda page, out, device, quick: calls.append(quick) or
                                           page.section("Extra section")])
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--steps", "6"]) == 0
    html = (out / "index.html").read_text()
    for heading in ("Training loss", "Completions of held-out images", "Class-conditional samples",
                    "Unconditional samples", "Linear probe", "Extra section", "Run summary"):
        assert heading in html
    assert calls == [True]
    for src in re.findall(r"src='([^']+)'", html):
        assert (out / src).is_file()
    model = checkpoint.from_pretrained(out / "model")
    assert model.num_classes == 11 and model.pretrained_meta["class_names"][-1] == "any (unconditional)"
    # the held-out loss at each of the 6 checkpoints, plotted and stated on the page
    history = [json.loads(line) for line in (out / "model" / "train" / "history.jsonl").read_text().splitlines()]
    assert sum("eval/bits_per_pixel" in r for r in history) == 6
    assert f"{history[-1]['eval/bits_per_pixel']:.2f} bits/pixel at the end" in html
    assert "<code>pixseq sample --model" in html and " 1 threads" not in html
    # the probe's baseline is the commonest class's share of the probed images (1/K only if balanced)
    from pixseq.probe import chance_accuracy

    assert chance_accuracy(np.array([0, 0, 0, 1])) == 0.75
    assert "always guessing the commonest class" in html


def test_demo_without_fashion_mnist(tmp_path, monkeypatch, capsys):
    from pixseq import data

    monkeypatch.setenv("PIXSEQ_FASHION_MNIST", str(tmp_path))
    monkeypatch.setattr(data, "FASHION_MNIST_DIRS", ())
    msg = _one_line_error(capsys, main(["demo", "--quick", "--out", str(tmp_path / "d")]))
    assert "dataset-fashion-mnist" in msg and not (tmp_path / "d").exists()


def test_train_with_held_out_data(folder, tmp_path, capsys):
    """--val-data: the held-out loss of the saved weights at each checkpoint, printed at the end;
    a held-out folder with a subset of the classes is matched to the training classes by name."""
    held = tmp_path / "held"
    (held / "top").mkdir(parents=True)
    rng = np.random.default_rng(1)
    images = []
    for i in range(5):
        im = rng.integers(0, 60, (SIDE, SIDE), dtype=np.uint8)
        im[: SIDE // 2] += 190
        images.append(np.repeat(im[..., None], 3, axis=-1))
        save_image(images[-1], held / "top" / f"{i}.png")
    out = tmp_path / "m"
    argv = ["train", "igpt", "--data", str(folder), "--out", str(out), "--classes", "--steps", "3",
            "--val-data", str(held)] + TRAIN
    assert main(argv) == 0
    printed = re.search(r"held-out \(5 images of .*\): ([0-9.]+) bits/pixel", capsys.readouterr().out)
    assert printed
    last = json.loads((out / "train" / "history.jsonl").read_text().splitlines()[-1])
    model = checkpoint.from_pretrained(out, expected_kind="igpt")
    tokens = model.encode_uint8(np.stack(images))
    top = model.pretrained_meta["class_names"].index("top")  # 1 in training, 0 in the held-out folder
    with torch.no_grad():
        expected = float(model.prior.loss(tokens, torch.full((5, 1), top)))
    assert last["eval/loss"] == pytest.approx(expected, rel=1e-5)  # one batch of 5: same mean, float32
    assert float(printed.group(1)) == pytest.approx(expected / np.log(2), abs=6e-4)
    assert model.pretrained_meta["held_out_loss"] == last["eval/loss"]
    code = main(["train", "igpt", "--data", str(folder), "--out", str(out), "--resume", "--steps", "4",
                 "--val-data", str(folder)])
    assert "--val-data" in _one_line_error(capsys, code)  # a held-out curve keeps its data


def test_evaluate_json_never_replaces_a_model_or_input_file(model_dir, folder, tmp_path, capsys):
    """--json naming the model's config.json (or its weights, its training history, an input
    image) overwrote it with the numbers and destroyed the model: refused before any work."""
    import shutil

    model = tmp_path / "m"
    shutil.copytree(model_dir, model)
    image = sorted(folder.rglob("*.png"))[0]
    for target, words in ((model / "config.json", "file of the --model directory"),
                          (model / "train" / "history.jsonl", "file of the --model directory"),
                          (image, "file of the --data folder")):
        before = target.read_bytes()
        code = main(["evaluate", "--model", str(model), "--data", str(folder), "--json", str(target)])
        assert words in _one_line_error(capsys, code) and target.read_bytes() == before
    assert main(["evaluate", "--model", str(model), "--data", str(folder), "--json", str(model / "e.json")]) == 0


def test_held_out_same_as_training_data_is_noticed_however_written(folder, capsys):
    """The notice that --val-data is the training data compared the spec strings, so
    'DIR/' or 'fashion-mnist:train' for the training data 'DIR' or 'fashion-mnist' said nothing."""
    from pixseq.train.runs import _same_data, load_val_data

    settings = {"data": str(folder), "val_limit": 2, "classes": False}
    for spec in (str(folder) + "/", str(folder / ".." / folder.name)):
        assert load_val_data({**settings, "val_data": spec}, None) is not None
        assert "is the training data" in capsys.readouterr().err
    assert _same_data("fashion-mnist", "fashion-mnist:train") and not _same_data("fashion-mnist", "fashion-mnist:test")
    assert not _same_data(str(folder), str(folder.parent))


def test_usage_errors_name_the_program_once(capsys):
    """An unknown option or verb said "pixseq: error: pixseq: ..."; a verb's own errors keep
    the verb's name ("pixseq: error: pixseq sample: ...")."""
    for argv, words in ((["--bogus"], "pixseq: error: the following arguments are required"),
                        (["trian"], "pixseq: error: argument <verb>: invalid choice: 'trian'"),
                        (["sample", "--model", "m", "--out", "x.png", "--bogus"],
                         "pixseq: error: unrecognized arguments: --bogus"),
                        (["sample"], "pixseq: error: pixseq sample: the following arguments are required")):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
        err = capsys.readouterr().err
        assert code == 2 and err.startswith(words) and err.count("\n") == 1, err


def test_one_mistake_is_one_line_even_when_a_notice_is_due(tmp_path, capsys):
    """--steps below the warm-up printed the warm-up notice before the data were checked, so a
    mistyped --data gave two lines; the notice now comes when training starts."""
    code = main(["train", "igpt", "--data", "fashoin-mnist", "--out", str(tmp_path / "m"), "--steps", "3"])
    assert "unknown data spec" in _one_line_error(capsys, code)


@pytest.mark.parametrize("extra, words", [
    (["--val-limit", "3"], "--val-limit needs --val-data"),
    (["--val-data", "DATA", "--val-limit", "0"], "--val-limit must be >= 1"),
    (["--val-data", "fashion-mnist:test", "--classes"], "not in the training data"),
    (["--val-data", "/no/such/folder"], "data folder not found: /no/such/folder"),
])
def test_train_held_out_bad_input(folder, tmp_path, capsys, extra, words):
    out = tmp_path / "m"
    extra = [str(folder) if e == "DATA" else e for e in extra]
    code = main(["train", "igpt", "--data", str(folder), "--out", str(out), "--steps", "2"] + TRAIN + extra)
    assert words in _one_line_error(capsys, code) and not out.exists()


def test_evaluate_igpt(model_dir, folder, tmp_path, capsys):
    """pixseq evaluate: the mean NLL over all images (batches of 5 over 48: item-weighted) equals
    the prior's loss on every token at once; classes by name; strict JSON; bad input."""
    out = tmp_path / "e.json"
    assert main(["evaluate", "--model", str(model_dir), "--data", str(folder), "--batch-size", "5",
                 "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text(), parse_constant=lambda c: pytest.fail(c))
    model = checkpoint.from_pretrained(model_dir, expected_kind="igpt")
    from pixseq.data import load_data

    data = load_data(str(folder))
    tokens = model.encode_uint8(np.stack(data.images))
    with torch.no_grad():
        nats = float(model.prior.loss(tokens, torch.as_tensor(data.labels)[:, None]).double())
    assert doc["images"] == 48 and doc["loss"] == pytest.approx(nats, rel=1e-5)  # float32 sums in two orders
    assert f"bits/pixel {nats / np.log(2):.4f}" in printed and "with their class labels" in printed
    assert f"at their own {SIDE}x{SIDE}" in printed and "resized" not in printed  # said "resized" regardless
    flat = tmp_path / "flat"
    save_image(np.zeros((SIDE, SIDE, 3), np.uint8), flat / "a.png")
    for argv, words in (
        (["--data", str(flat)], "class-conditional and"),  # no labels, no 'any class' token
        (["--data", str(folder), "--image-size", "8"], "--image-size is for vqgan"),
        (["--data", str(folder), "--limit", "0"], "--limit must be >= 1"),
        (["--data", str(folder), "--json", str(tmp_path)], "is a folder"),
    ):
        assert words in _one_line_error(capsys, main(["evaluate", "--model", str(model_dir)] + argv))
