"""The web UI's pieces without a browser: coding at a target rate (against exhaustive
searches), the model shelf, the work folder, the request wrapper, ``pixseq ui``'s checks."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _codec_models import sample_image, tiny_igpt, tiny_taming
from pixseq.errors import PixseqError

SRC = Path(__file__).resolve().parents[1] / "src"


# ---------------------------------------------------------------- coding at a target rate
@pytest.mark.parametrize("codec", ["jpeg", "webp"])
@pytest.mark.parametrize("target", [0.8, 2.5])
def test_classic_at_bpp_is_the_best_quality_within_the_budget(codec, target):
    from pixseq.codec.compare import classic_round_trip
    from pixseq.codec.target import classic_at_bpp

    image = sample_image(128, 160, seed=1)  # large enough for the headers to leave room at 0.8 bpp
    got = classic_at_bpp(image, codec, target)
    # reference: every quality, encoded; the answer is the highest within the budget
    rates = {q: len(classic_round_trip(image, codec, q)[0]) * 8 / (128 * 160) for q in range(1, 101)}
    best = max(q for q, r in rates.items() if r <= target)
    assert got.within and got.setting == f"q{best}" and got.bpp == pytest.approx(rates[best])
    assert got.decoded.shape == image.shape


def test_classic_at_bpp_says_when_no_quality_fits():
    from pixseq.codec.target import classic_at_bpp

    got = classic_at_bpp(sample_image(32, 32), "jpeg", 0.01)  # below any JPEG file's header
    assert not got.within and got.setting == "q1" and "over the target" in got.notes[0]


@pytest.mark.parametrize("target", [0.3, 1.0, 3.0])
def test_pixseq_at_bpp_is_the_finest_scale_within_the_budget(target):
    from pixseq.codec import compress_with_stats, reconstruct
    from pixseq.codec.target import one_tile_scale, pixseq_at_bpp

    model, image = tiny_igpt(size=8), sample_image(40, 56, seed=2)
    got = pixseq_at_bpp(image, model, target)
    coarse = one_tile_scale(model, 40, 56)
    rates = {s: compress_with_stats(image, model, scale=s)[1].bpp for s in range(1, coarse + 1)}
    fits = [s for s, r in rates.items() if r <= target]
    assert got.within == bool(fits)
    assert got.setting == f"scale{min(fits) if fits else coarse}"
    scale = int(got.setting[5:])
    assert got.bpp == pytest.approx(rates[scale])
    # decoded from the bytes, it is the tokenizer's own reconstruction, bit for bit
    np.testing.assert_array_equal(got.decoded, reconstruct(image, model, scale=scale))


def test_pixseq_at_bpp_keeps_to_the_token_bound_and_says_so():
    from pixseq.codec.codec import plan
    from pixseq.codec.target import pixseq_at_bpp

    model, image = tiny_taming(num_classes=2), sample_image(64, 64, seed=3)  # class-conditional: label 0
    got = pixseq_at_bpp(image, model, 50.0, max_tokens=40, name="tiny")
    scale = int(got.setting[5:])
    assert plan(model, 64, 64, scale, label=0).num_tokens <= 40 < plan(model, 64, 64, scale - 1, label=0).num_tokens
    assert any("more than 40 tokens" in n for n in got.notes)


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
def test_a_bad_target_is_one_line(bad):
    from pixseq.codec.target import classic_at_bpp

    with pytest.raises(PixseqError, match="target bits per pixel must be a finite number > 0"):
        classic_at_bpp(sample_image(), "jpeg", bad)


# ---------------------------------------------------------------- the shelf of models
def roles():
    from pixseq.app.tabs import roles as tab_roles

    return tab_roles()


def _save(model, folder: Path, **meta) -> Path:
    from pixseq.checkpoint import save_pretrained

    return save_pretrained(model, folder, meta=meta)


def test_shelf_finds_model_folders_and_loads_each_once(tmp_path):
    from pixseq.app.shelf import ModelShelf

    _save(tiny_igpt(), tmp_path / "runs" / "a")
    _save(tiny_taming(), tmp_path / "runs" / "b")
    _save(tiny_igpt(seed=1), tmp_path / "other" / "a")  # same folder name: told apart by its parent
    (tmp_path / "runs" / "notes").mkdir()  # not a model: left out
    shelf = ModelShelf([str(tmp_path / "runs"), str(tmp_path / "other" / "a")], roles=roles(), zoo=False)
    assert shelf.names() == ["runs/a", "b", "other/a"]
    assert shelf.names("complete") == shelf.names()
    first = shelf.load("b", "sample")
    assert shelf.load("b") is first and not first.training
    with pytest.raises(PixseqError, match="unknown model 'c'"):
        shelf.load("c")


def test_shelf_keeps_image_conditioned_priors_out_of_sample_and_codec(tmp_path):
    import dataclasses

    from pixseq.app.shelf import ModelShelf
    from pixseq.models.taming import Taming

    cond = tiny_taming()
    cfg = dataclasses.replace(cond.config, condition="lowres")
    try:
        model = Taming(cfg)
    except (ValueError, TypeError, PixseqError):
        pytest.skip("this Taming config cannot be made image-conditioned directly")
    _save(model, tmp_path / "low")
    entry = ModelShelf([str(tmp_path / "low")], roles=roles(), zoo=False).entry("low")
    assert "sample" not in entry.capabilities and "codec" not in entry.capabilities
    assert "complete" in entry.capabilities


def test_shelf_offers_zoo_models_after_the_given_ones_without_building_them(tmp_path):
    from pixseq.app.shelf import ModelShelf
    from pixseq.zoo import entries

    _save(tiny_igpt(), tmp_path / "mine")
    shelf = ModelShelf([str(tmp_path / "mine")], roles=roles())
    names = shelf.names()
    assert names[0] == "mine" and names[1:] == [f"zoo:{n}" for n in entries()]
    upscalers = [n for n in names if n.startswith("zoo:realesrgan")]
    assert upscalers and all("upscale" in shelf.entry(n).capabilities for n in upscalers)
    assert all(shelf.entry(n).folder is None for n in upscalers if not entries()[n[4:]].stored)  # none built


@pytest.mark.parametrize("case, message", [
    ("missing", "not found"),
    ("file", "is a file"),
    ("empty", "neither a model directory"),
])
def test_bad_models_sources_are_one_line(tmp_path, case, message):
    from pixseq.app.shelf import ModelShelf

    path = tmp_path / "x"
    if case == "file":
        path.write_text("x")
    elif case == "empty":
        path.mkdir()
    with pytest.raises(PixseqError, match=message):
        ModelShelf([str(path)], zoo=False)


# ---------------------------------------------------------------- work folder, uploads, status
def test_work_folder_sweeps_old_requests_and_cleans_up(tmp_path):
    from pixseq.app.work import WorkFolder

    work = WorkFolder(tmp_path / "w", keep_s=60)
    old = work.request_dir()
    (old / "a.pxs").write_bytes(b"x")
    past = time.time() - 120
    os.utime(old, (past, past))
    new = work.request_dir()  # sweeps the folder older than the keep time
    assert not old.exists() and new.is_dir()
    work.cleanup()
    assert list((tmp_path / "w").iterdir()) == []  # a given folder stays, empty
    own = WorkFolder(None)
    own.cleanup()
    assert not own.root.exists()  # a folder the server made goes entirely


def test_work_folder_that_is_a_file_is_refused(tmp_path):
    from pixseq.app.work import WorkFolder

    (tmp_path / "f").write_text("x")
    with pytest.raises(PixseqError, match="exists and is not a folder"):
        WorkFolder(tmp_path / "f")


def test_upload_messages_name_the_file_not_the_server_path(tmp_path):
    from pixseq.app.common import load_upload

    bad = tmp_path / "deep" / "inside" / "photo.png"
    bad.parent.mkdir(parents=True)
    buf = io.BytesIO()
    Image.fromarray(sample_image()).save(buf, format="PNG")
    bad.write_bytes(buf.getvalue()[:-30])
    with pytest.raises(PixseqError) as exc:
        load_upload(str(bad), 10**6)
    assert str(exc.value).startswith("cannot read image photo.png") and "deep" not in str(exc.value)
    Image.fromarray(sample_image()).save(tmp_path / "ok.png")
    image, name = load_upload(str(tmp_path / "ok.png"), 10**6)
    assert name == "ok.png" and image.shape == (19, 13, 3)


def test_a_hundred_megapixel_image_is_refused_with_its_size(tmp_path):
    from pixseq.io import load_image

    Image.new("1", (10_000, 10_000)).save(tmp_path / "huge.png")  # over Pillow's bomb warning (89 M)
    with pytest.raises(PixseqError, match="has 10000x10000 = 100000000 pixels, limit is 64000000"):
        load_image(tmp_path / "huge.png")


def test_request_wrapper_shows_errors_and_notices_escaped(tmp_path):
    pytest.importorskip("gradio")
    from types import SimpleNamespace

    from pixseq.app.common import request
    from pixseq.app.work import WorkFolder
    from pixseq.runtime import notice

    ctx = SimpleNamespace(work=WorkFolder(tmp_path / "w"))

    @request(ctx, outputs=1)
    def ok(x):
        notice("resized <a> to b_c_d")
        return x * 2, "done"

    @request(ctx, outputs=1)
    def bad(x):
        raise PixseqError(f"no good: {x}")

    @request(ctx, outputs=1)
    def bug(x):
        raise KeyError(x)

    value, status = ok(2)
    assert value == 4 and "done" in status and "note: resized &lt;a&gt; to b_c_d" in status
    skipped, status = bad("<x>")
    assert "<b>Error:</b> no good: &lt;x&gt;" in status
    _, status = bug("k")
    assert "internal error (KeyError" in status and "server log" in status


# ---------------------------------------------------------------- pixseq ui
def _ui(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run([sys.executable, "-m", "pixseq", "ui", *args], capture_output=True, text=True,
                          env=env, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["--models", "/nonexistent/models"], "--models /nonexistent/models: not found"),
    (["--port", "70000"], "--port must be in 1..65535"),
    (["--concurrency", "0"], "--concurrency must be >= 1"),
])
def test_ui_bad_options_are_one_line(args, message):
    res = _ui(*args)
    assert res.returncode == 2 and res.stderr.startswith(f"pixseq: error: {message}"), res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def _ui_here(capsys, *args: str) -> tuple[int, str]:
    """``pixseq ui ARGS`` in this process (the CLI's imports once for all the cases): exit code, stderr."""
    from pixseq.cli import main

    code = main(["ui", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--port", "0"], "--port must be in 1..65535, got 0"),
    (["--host", "no-such-host.invalid"], "--host no-such-host.invalid: not a known host name or address ("),
    (["--host", "192.0.2.1"], "cannot serve on 192.0.2.1:7860: Cannot assign requested address; check --host"),
])
def test_ui_bad_address_is_one_line(capsys, args, message):
    code, err = _ui_here(capsys, *args)
    assert code == 2 and err.startswith(f"pixseq: error: {message}"), err
    assert len(err.strip().splitlines()) == 1


def test_ui_on_a_busy_port_is_one_line_before_anything_is_written(tmp_path, capsys):
    """The port is checked before the work folder is made (and before Gradio's import: seconds)."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, err = _ui_here(capsys, "--port", str(port), "--work", str(tmp_path / "work"), "--no-zoo")
    assert code == 2, err
    assert err == f"pixseq: error: cannot serve on 127.0.0.1:{port}: Address already in use; pass another --port\n"
    assert not (tmp_path / "work").exists()


def test_ui_has_no_seed_option_that_would_do_nothing(capsys):
    """Each request has its own seed field; a server-wide --seed was accepted and ignored."""
    with pytest.raises(SystemExit) as exc:
        _ui_here(capsys, "--seed", "3")
    assert exc.value.code == 2
    assert "unrecognized arguments: --seed 3" in capsys.readouterr().err


def test_ui_help_names_every_tab():
    from pixseq.app.tabs import available_tabs
    from pixseq.cli.ui import HELP

    for tab in available_tabs():
        assert tab.TITLE.lower() in HELP, tab.TITLE


# ---------------------------------------------------------------- progress of long runs
def test_capture_progress_reports_steps_per_thread_and_can_stop_the_work():
    from pixseq.runtime import capture_progress, progress

    seen, other = [], []
    with capture_progress(lambda desc, done, total: seen.append((desc, done, total))):
        assert list(progress(range(3), desc="steps")) == [0, 1, 2]  # the items pass through unchanged
        bar = progress(total=10, desc="tiles", initial=2)
        bar.update(3)
        bar.close()
        worker = threading.Thread(target=lambda: other.extend(progress(range(2))))  # another thread: not captured
        worker.start()
        worker.join()
    assert seen == [("steps", 1, 3), ("steps", 2, 3), ("steps", 3, 3), ("tiles", 5, 10)]
    assert other == [0, 1]

    def stop(desc, done, total):
        if done >= 2:
            raise KeyboardInterrupt

    done = []
    with pytest.raises(KeyboardInterrupt), capture_progress(stop):
        for i in progress(range(10)):
            done.append(i)
    assert done == [0, 1]


def test_a_job_stops_after_the_current_step_and_reports_progress():
    from pixseq.app.jobs import JobBoard
    from pixseq.runtime import notice, progress

    started = threading.Event()

    def work(job):
        notice("warming up")
        for step in progress(range(10_000), desc="generate"):
            started.set()
            time.sleep(0.001)
        return "finished"  # never reached: stopped

    board = JobBoard()
    job = board.start(work, ())
    assert started.wait(30)
    while job.progress is None:  # the first step's report
        time.sleep(0.01)
    assert "generate:" in job.line() and "of 10000" in job.line()
    assert board.stop(job.id)
    assert job.done.wait(30)
    assert job.error == "stopped before there was anything to show" and job.notes == ["warming up"]
    assert not board.stop("no-such-job")
