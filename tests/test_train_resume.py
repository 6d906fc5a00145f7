"""``--resume`` takes the run's recorded settings, its data spec included, in every train verb;
with nothing to resume that is the one error; the warm-up rule is the same for every verb."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from _codec_models import sample_image
from pixseq.checkpoint import save_pretrained
from pixseq.cli import main
from pixseq.io import save_image

VERBS = ("igpt", "vqgan", "prior", "vit", "clip", "gan", "restore", "esrgan", "pix2pix", "cyclegan")
IGPT = ["--image-size", "8", "--palette", "4", "--batch-size", "2", "--log-every", "0", "--ckpt-every", "0"]
VQGAN = ["--factor", "4", "--codes", "16", "--dim", "8", "--ch", "8", "--batch-size", "4", "--perceptual", "none",
         "--log-every", "0", "--ckpt-every", "0", "--image-size", "24"]


def _one_line(capsys, code: int) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("pixseq: error:"), err
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """Two classes of four 24x24 images."""
    root = tmp_path_factory.mktemp("data")
    for c, name in enumerate(("bag", "shoe")):
        for i in range(4):
            save_image(sample_image(24, 24, seed=10 * c + i), root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("verb", VERBS)
def test_nothing_to_resume_is_the_first_and_only_error(verb, data, tmp_path, capsys):
    """It was a batch-size complaint about the new data (or a missing --data) first."""
    code = main(["train", verb, "--out", str(tmp_path / "none"), "--resume", "--data", str(data),
                 "--batch-size", "100000"])
    err = _one_line(capsys, code)
    assert "nothing to resume" in err and str(tmp_path / "none") in err
    assert _one_line(capsys, main(["train", verb, "--out", str(tmp_path / "none"), "--resume"])) == err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("verb", VERBS)
def test_a_fresh_run_without_data_is_one_line(verb, tmp_path, capsys):
    extra = ["--tokenizer", str(tmp_path)] if verb == "prior" else []
    err = _one_line(capsys, main(["train", verb, "--out", str(tmp_path / "m"), *extra]))
    assert "--data is required" in err and "--resume" in err
    assert not (tmp_path / "m").exists()


def _history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def test_resume_takes_the_recorded_data_and_refuses_other_data(data, tmp_path, capsys):
    out = tmp_path / "B"
    assert main(["train", "igpt", "--data", str(data), "--out", str(out), "--steps", "1", *IGPT]) == 0
    # no --data: the run's own; the same folder spelled otherwise is the same data
    assert main(["train", "igpt", "--out", str(out), "--resume", "--steps", "2"]) == 0
    assert [r["step"] for r in _history(out / "train")] == [0, 1]
    assert main(["train", "igpt", "--out", str(out), "--resume", "--steps", "3", "--data", f"{data}/../{data.name}/"]) == 0
    assert len(_history(out / "train")) == 3
    capsys.readouterr()
    other = tmp_path / "other"
    save_image(sample_image(24, 24), other / "x" / "0.png")
    err = _one_line(capsys, main(["train", "igpt", "--out", str(out), "--resume", "--steps", "4",
                                  "--data", str(other)]))
    assert "--resume must keep" in err and "--data" in err and str(other) in err
    assert len(_history(out / "train")) == 3


def test_prior_resume_needs_neither_tokenizer_nor_data(data, tmp_path, capsys):
    from pixseq.tokenizers.vqgan import VQGAN, vqgan_config

    for name in ("vq", "vq2"):  # made before training, which reseeds: two different random tokenizers
        save_pretrained(VQGAN(vqgan_config(4, 16, 8, 8)).eval(), tmp_path / name, meta={"image_size": 24})
    out = tmp_path / "p"
    run = ["train", "prior", "--out", str(out), "--batch-size", "2", "--log-every", "0", "--ckpt-every", "0"]
    assert main([*run, "--tokenizer", str(tmp_path / "vq"), "--data", str(data), "--steps", "1"]) == 0
    assert main([*run, "--resume", "--steps", "2"]) == 0
    assert [r["step"] for r in _history(out)] == [0, 1]
    capsys.readouterr()
    err = _one_line(capsys, main([*run, "--resume", "--steps", "3", "--tokenizer", str(tmp_path / "vq2")]))
    assert "is different from the one this prior was trained with" in err


def test_vqgan_resume_that_keeps_the_run_inside_its_warmup_says_so(data, tmp_path, capsys, monkeypatch):
    """`train vqgan --resume --steps N` with a warm-up past N was silent where a fresh run spoke."""
    out = tmp_path / "vq"
    assert main(["train", "vqgan", "--data", str(data), "--out", str(out), "--steps", "1", "--warmup-steps", "5",
                 *VQGAN]) == 0
    assert capsys.readouterr().err.count("warms up over 5 steps but the run has 1") == 1
    assert main(["train", "vqgan", "--out", str(out), "--resume", "--steps", "2"]) == 0
    assert capsys.readouterr().err.count("warms up over 5 steps but the run has 2") == 1
    assert main(["train", "vqgan", "--out", str(out), "--resume", "--steps", "6"]) == 0
    assert "warms up" not in capsys.readouterr().err


def test_the_demos_own_settings_never_trip_the_warmup_rule(monkeypatch, tmp_path):
    """`demo --quick` said the warm-up never ends; the demo's iGPT (the part it trains) keeps
    its warm-up shorter than its steps, also than a --steps the user gives."""
    import pixseq.demo as demo
    from pixseq.train.schedule import endless_warmup

    for s in (demo.QUICK, demo.FULL):
        assert endless_warmup(s.warmup_steps, s.steps, s.lr) is None
    seen = []
    monkeypatch.setattr(demo, "run_demo", lambda out, device, quick, seed, settings: seen.append(settings))
    monkeypatch.setattr(demo, "check_demo_data", lambda: None)
    assert main(["demo", "--quick", "--steps", "3", "--out", str(tmp_path / "d")]) == 0
    assert seen[0].steps == 3 and endless_warmup(seen[0].warmup_steps, 3, seen[0].lr) is None
