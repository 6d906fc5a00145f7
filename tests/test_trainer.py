"""The Trainer: schedule, update rule vs a plain PyTorch loop, exact resume (crash, SIGKILL,
Ctrl-C), non-finite loss, config refusal, GAN-style parts, bf16, EMA, logs."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from pixseq.config import to_dict
from pixseq.errors import PixseqError
from pixseq.train import CKPT_NAME, HISTORY_NAME, NonFiniteError, TrainConfig, Trainer, warmup_cosine
from pixseq.train.batches import BatchStream, cap_batch, capped_batch_size
from trainer_toy import ToyTask, toy_data, weights

TESTS = Path(__file__).resolve().parent
# 64 samples, batch 8, accumulation 2 -> 4 steps per epoch: 12 steps cross two epoch boundaries.
BASE = dict(steps=12, batch_size=8, lr=2e-2, warmup_steps=3, ckpt_every=4, log_every=0,
            grad_accum=2, ema_decay=0.9, seed=3)
LOSS_KEYS = ("step", "loss", "loss/model", "lr/model", "grad_norm/model", "model/mae")


def curve(history: list[dict]) -> list[tuple]:
    return [tuple(r[k] for k in LOSS_KEYS) for r in history]


class Raise:
    """Callback raising ``exc`` once ``step`` steps are complete."""

    def __init__(self, step: int, exc: BaseException) -> None:
        self.step, self.exc = step, exc

    def on_step_end(self, trainer, step, record):
        if step == self.step:
            raise self.exc


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run every resume test must reproduce."""
    torch.set_num_threads(1)
    task = ToyTask(seed=0)
    trainer = Trainer(task, toy_data(), TrainConfig(**BASE), tmp_path_factory.mktemp("ref"))
    history = trainer.fit()
    return curve(history), weights(task), trainer.ema_state()


def test_warmup_cosine_shape():
    # Reference values from the closed form: warm-up is linear, cosine hits the floor at the end.
    assert warmup_cosine(0, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 110, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 110, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(109, 10, 110, 0.1) == pytest.approx(0.1)
    mid = 10 + 99 / 2
    assert warmup_cosine(mid, 10, 110, 0.1) == pytest.approx(0.55)
    assert warmup_cosine(500, 10, 110, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(0, 0, 10, 0.0) == pytest.approx(1.0)


def test_config_validation():
    with pytest.raises(PixseqError, match="precision"):
        TrainConfig(precision="fp16")
    with pytest.raises(PixseqError, match="grad_accum"):
        TrainConfig(grad_accum=0)



@pytest.mark.parametrize("bad, pattern", [
    (dict(steps=2.5), "steps must be an integer"),  # used to train silently
    (dict(batch_size=True), "batch_size must be an integer"),
    (dict(lr="1e-3"), "lr must be a finite number"),  # was a TypeError from the range check
    (dict(lr=float("inf")), "lr must be a finite number"),
    (dict(betas=0.9), "betas must be two numbers"),  # was a TypeError from len()
    (dict(betas=("a", "b")), "betas must be two numbers"),
    (dict(seed=-1), "seed must be in"),
])
def test_config_built_in_python_is_type_checked(bad, pattern):
    with pytest.raises(PixseqError, match=pattern):
        TrainConfig(**bad)


def test_batch_stream_shards_like_one_big_batch():
    data = toy_data(50)
    one = BatchStream(data, 6, seed=5, rank=0, world_size=1).epoch_batches(0)
    ranks = [BatchStream(data, 3, seed=5, rank=r, world_size=2).epoch_batches(0) for r in range(2)]
    assert len(one) == 50 // 6 and len(ranks[0]) == 50 // 6  # drop_last
    for i, batch in enumerate(one):  # micro-batch i of both ranks == batch i of one process
        assert sorted(ranks[0][i] + ranks[1][i]) == sorted(batch)
    flat = [i for b in one for i in b]
    assert len(set(flat)) == len(flat)
    assert one != BatchStream(data, 6, seed=5).epoch_batches(1)  # a new permutation per epoch


@pytest.mark.parametrize("n, batch, world, want", [(22, 32, 1, 22), (22, 8, 1, 8), (5, 32, 2, 2), (16, 12, 2, 8),
                                                    (2, 4, 2, 1)])
def test_the_batch_is_capped_at_each_process_share(n, batch, world, want):
    assert capped_batch_size(n, batch, world) == want
    assert BatchStream(toy_data(n), want, seed=0, world_size=world).batches_per_epoch >= 1  # a whole batch


def test_fewer_items_than_processes_is_an_error():
    with pytest.raises(PixseqError, match="1 item.*fewer than the 2 processes"):
        capped_batch_size(1, 8, 2)


def test_the_trainer_caps_the_batch_once_with_a_notice(tmp_path, capsys):
    """The default batch (32) failed on 22 built-in photos: the Trainer now trains with batches
    of the whole data, says so once, and saves the batch it used."""
    config = TrainConfig(steps=2, batch_size=32, warmup_steps=0, log_every=0)
    trainer = Trainer(ToyTask(seed=0), toy_data(22), config, tmp_path)
    assert trainer.config.batch_size == 22 and config.batch_size == 32  # the caller's config is not changed
    trainer.fit()
    assert capsys.readouterr().err.count("22 items, fewer than --batch-size 32: training with batches of 22") == 1
    state = torch.load(tmp_path / CKPT_NAME, weights_only=True)
    assert state["config"]["batch_size"] == 22
    assert cap_batch(trainer.config, 22) is trainer.config  # nothing to cap: no second notice
    assert capsys.readouterr().err == ""


def test_training_reports_plain_progress_lines_without_a_terminal(tmp_path, capsys, monkeypatch):
    """stderr is a pipe here (capsys): the run's progress comes as plain lines with the loss."""
    from pixseq import runtime

    monkeypatch.setattr(runtime, "PLAIN_EVERY_S", 0.0)
    Trainer(ToyTask(seed=0), toy_data(16), TrainConfig(steps=2, batch_size=8, warmup_steps=0, log_every=0),
            tmp_path).fit()
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pixseq: train ")]
    assert [line.split(",")[0] for line in lines] == ["pixseq: train 1/2 (50%)", "pixseq: train 2/2 (100%)",
                                                      "pixseq: train 2/2 (100%)"]  # + the closing line
    assert all(" elapsed" in line and ", loss " in line for line in lines)


def test_a_data_set_tiny_for_the_model_is_said_once(tmp_path, capsys):
    """Without held-out data: more parameters per training token than PARAMS_PER_UNIT, over
    enough passes to recite them, is one notice at the start (the toy net: 97 parameters;
    2 items of 4 values = 8 tokens). Fewer passes, or more data, say nothing."""
    def run(n: int, steps: int, out: str) -> str:
        config = TrainConfig(steps=steps, batch_size=2, warmup_steps=0, log_every=0, ckpt_every=0)
        Trainer(ToyTask(seed=0), toy_data(n), config, tmp_path / out).fit()
        return capsys.readouterr().err

    err = run(2, 12, "tiny")
    assert err.count("memorise") == 1, err
    assert "97 trainable parameters for 8 training tokens (12 per token) and the run passes over them 12 times" in err
    assert "memorise" not in run(2, 4, "few-passes")  # 4 passes
    assert "memorise" not in run(64, 400, "enough-data")  # 0.4 parameters per token


def test_a_training_loss_far_below_the_held_out_loss_is_said_once(tmp_path, capsys):
    """With held-out data: a held-out loss far above the recent training loss (here: held-out
    targets shifted by 10) is one notice, at the first evaluation that shows it; held-out
    data like the training data say nothing."""
    class LossEval(ToyTask):
        def eval_step(self, batch):
            x, y = batch
            return {"loss": ((self.net(x) - y) ** 2).mean().item()}

    config = TrainConfig(steps=6, batch_size=8, warmup_steps=0, log_every=0, ckpt_every=2, lr=1e-2)
    x, y = toy_data(16).tensors
    shifted = torch.utils.data.TensorDataset(x, y + 10)
    Trainer(LossEval(seed=0), toy_data(64), config, tmp_path / "gap", eval_data=shifted).fit()
    err = capsys.readouterr().err
    assert err.count("far below the held-out loss") == 1 and "at step 2:" in err, err
    Trainer(LossEval(seed=0), toy_data(64), config, tmp_path / "same", eval_data=toy_data(16, seed=5)).fit()
    assert "far below" not in capsys.readouterr().err


def test_trainer_refuses_an_iterable_dataset(tmp_path):
    """A generator has no len() / indexing: one PixseqError naming the need (was a raw TypeError)."""
    items = (x for x in toy_data(16))
    with pytest.raises(PixseqError, match="map-style dataset.*got generator"):
        Trainer(ToyTask(seed=0), items, TrainConfig(steps=1, batch_size=4), tmp_path)
    assert not any(tmp_path.iterdir())  # refused before writing anything


def test_matches_plain_pytorch_loop(tmp_path):
    """Accumulation, clipping, the schedule and AdamW match a hand-written loop."""
    cfg = TrainConfig(steps=6, batch_size=8, lr=5e-2, warmup_steps=2, min_lr_ratio=0.2, grad_clip=0.3,
                      grad_accum=2, weight_decay=0.1, log_every=0, ckpt_every=0, seed=1)
    data = toy_data()
    task = ToyTask(seed=4, dropout=0.0, noisy=False)
    history = Trainer(task, data, cfg, tmp_path).fit()

    ref = ToyTask(seed=4, dropout=0.0, noisy=False).net
    decay = [p for p in ref.parameters() if p.dim() >= 2]
    no_decay = [p for p in ref.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=5e-2, betas=cfg.betas)
    stream = BatchStream(data, 8, seed=1)
    batches = stream.epoch_batches(0) + stream.epoch_batches(1)  # 12 micro-batches span 2 epochs
    for step in range(6):
        lr = 5e-2 * warmup_cosine(step, 2, 6, 0.2)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        losses = []
        for idx in batches[2 * step: 2 * step + 2]:
            x, y = data.tensors[0][idx], data.tensors[1][idx]
            loss = ((ref(x) - y) ** 2).mean()
            (loss / 2).backward()
            losses.append(loss.item())
        norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.3)
        opt.step()
        # Same float32 ops in the same order -> equal up to rounding; 1e-6 leaves room only for that.
        assert history[step]["loss"] == pytest.approx(sum(losses) / 2, rel=1e-6, abs=1e-6)
        assert history[step]["grad_norm/model"] == pytest.approx(float(norm), rel=1e-5)  # before clipping
        assert history[step]["lr/model"] == pytest.approx(lr, rel=1e-12)
    for (k, a), b in zip(task.net.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=k)


def test_unclipped_gradients_are_measured_not_changed(tmp_path):
    """grad_clip 0: the logged norm is the gradients' L2 norm (float64 reference) and the
    update is plain AdamW on them (the norm is only read, never applied)."""
    cfg = TrainConfig(steps=3, batch_size=8, lr=5e-2, warmup_steps=0, min_lr_ratio=1.0, grad_clip=0.0,
                      weight_decay=0.0, log_every=0, ckpt_every=0, seed=2)
    data = toy_data()
    task = ToyTask(seed=5, dropout=0.0, noisy=False)
    history = Trainer(task, data, cfg, tmp_path).fit()
    ref = ToyTask(seed=5, dropout=0.0, noisy=False).net
    opt = torch.optim.AdamW(ref.parameters(), lr=5e-2, betas=cfg.betas, weight_decay=0.0)
    for step, idx in enumerate(BatchStream(data, 8, seed=2).epoch_batches(0)[:3]):
        opt.zero_grad()
        ((ref(data.tensors[0][idx]) - data.tensors[1][idx]) ** 2).mean().backward()
        norm64 = sum(float(p.grad.double().pow(2).sum()) for p in ref.parameters()) ** 0.5
        assert history[step]["grad_norm/model"] == pytest.approx(norm64, rel=1e-5)
        opt.step()
    for (k, a), b in zip(task.net.state_dict().items(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6, msg=k)


def test_resume_after_crash_is_exact(tmp_path, reference):
    ref_curve, ref_weights, ref_ema = reference
    with pytest.raises(RuntimeError, match="boom"):
        Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**BASE), tmp_path,
                callbacks=[Raise(10, RuntimeError("boom"))]).fit()
    assert torch.load(tmp_path / CKPT_NAME, weights_only=True)["step"] == 8  # steps 9-10 are lost
    task = ToyTask(seed=123)  # a different init: everything must come from the checkpoint
    trainer = Trainer(task, toy_data(), TrainConfig(**BASE), tmp_path)
    history = trainer.fit(resume=True)
    # Bitwise: weights, Adam moments, step counters, RNGs and data position are restored
    # exactly and the same deterministic CPU kernels run, so nothing may differ at all.
    assert curve(history) == ref_curve
    for k, v in ref_weights.items():
        assert torch.equal(weights(task)[k], v), k
    for k, v in ref_ema["net"].items():
        assert torch.equal(trainer.ema_state()["net"][k], v), k
    assert len(_read_jsonl(tmp_path / HISTORY_NAME)) == BASE["steps"]


def test_resume_after_sigkill_is_exact(tmp_path, reference):
    """A real process killed with SIGKILL mid-run; the survivor checkpoint resumes exactly."""
    script = textwrap.dedent(f"""
        import os, signal, sys, torch
        sys.path.insert(0, {str(TESTS)!r})
        torch.set_num_threads(1)
        from trainer_toy import ToyTask, toy_data
        from pixseq.train import TrainConfig, Trainer
        class Kill:
            def on_step_end(self, trainer, step, record):
                if step == 6:
                    os.kill(os.getpid(), signal.SIGKILL)
        Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**{BASE!r}), {str(tmp_path)!r}, callbacks=[Kill()]).fit()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [HISTORY_NAME, CKPT_NAME]  # no temp files
    task = ToyTask(seed=7)
    history = Trainer(task, toy_data(), TrainConfig(**BASE), tmp_path).fit(resume=True)
    assert curve(history) == reference[0]
    assert all(torch.equal(weights(task)[k], v) for k, v in reference[1].items())


def test_keyboard_interrupt_saves_then_resumes(tmp_path, reference):
    with pytest.raises(PixseqError, match=r"interrupted at step 5; resume with --resume"):
        Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**BASE), tmp_path,
                callbacks=[Raise(5, KeyboardInterrupt())]).fit()
    assert torch.load(tmp_path / CKPT_NAME, weights_only=True)["step"] == 5
    history = Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**BASE), tmp_path).fit(resume=True)
    assert curve(history) == reference[0]


class SignalMidStep(ToyTask):
    """Sends this process SIGTERM (what SLURM sends before a time limit) inside step 6."""

    def training_step(self, batch, step, part):
        if step == 6 and not getattr(self, "sent", False):
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
        return super().training_step(batch, step, part)


def test_sigterm_mid_step_finishes_the_step_then_saves(tmp_path, reference):
    old = signal.getsignal(signal.SIGTERM)
    with pytest.raises(PixseqError, match=r"interrupted at step 7; resume with --resume"):
        Trainer(SignalMidStep(seed=0), toy_data(), TrainConfig(**BASE), tmp_path).fit()
    assert signal.getsignal(signal.SIGTERM) is old  # the Trainer's handler is gone again
    assert torch.load(tmp_path / CKPT_NAME, weights_only=True)["step"] == 7  # step 6 (0-based) completed
    history = Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**BASE), tmp_path).fit(resume=True)
    assert curve(history) == reference[0]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    cfg = TrainConfig(**{**BASE, "ema_decay": 0.0})
    with pytest.raises(NonFiniteError, match=r"non-finite loss \(nan\).*step 6.*checkpoint.*\(step 4\).*lower --lr"):
        Trainer(ToyTask(seed=0, nan_at=6), toy_data(), cfg, tmp_path).fit()
    state = torch.load(tmp_path / CKPT_NAME, weights_only=True)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["modules"]["net"].values())
    # the log keeps the steps that led to the NaN (it used to stop at the checkpoint) ...
    assert [r["step"] for r in _read_jsonl(tmp_path / HISTORY_NAME)] == list(range(6))
    # ... and a resume from step 4 drops the two uncheckpointed records again
    Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**{**BASE, "ema_decay": 0.0}), tmp_path).fit(resume=True)
    assert [r["step"] for r in _read_jsonl(tmp_path / HISTORY_NAME)] == list(range(BASE["steps"]))


def test_resume_refusals_and_extension(tmp_path):
    with pytest.raises(PixseqError, match="nothing to resume"):
        Trainer(ToyTask(), toy_data(), TrainConfig(**BASE), tmp_path).fit(resume=True)
    Trainer(ToyTask(), toy_data(), TrainConfig(**{**BASE, "steps": 4}), tmp_path).fit()
    with pytest.raises(PixseqError, match=r"cannot resume .*batch_size: 8 -> 4"):
        Trainer(ToyTask(), toy_data(), TrainConfig(**{**BASE, "batch_size": 4}), tmp_path).fit(resume=True)
    # More steps is allowed: training continues from step 4 to 6.
    history = Trainer(ToyTask(), toy_data(), TrainConfig(**{**BASE, "steps": 6}), tmp_path).fit(resume=True)
    assert [r["step"] for r in history] == list(range(6))


def test_compile_trains_like_eager_and_resumes_either_way(tmp_path):
    """compile=True computes the same function: inductor fuses the MLP's ops and may sum in
    another order, so the losses agree with eager to float32 rounding (rel. 1e-5 over 12
    Adam steps), not bitwise. The parameters keep their names, so a compiled run's
    checkpoint resumes without compile (and the other way round) and the model loads as usual."""
    cfg = {**BASE, "ema_decay": 0.0}
    toy = lambda: ToyTask(seed=0, dropout=0.0)  # noqa: E731 - dropout masks differ under inductor's RNG
    eager = Trainer(toy(), toy_data(), TrainConfig(**cfg), tmp_path / "eager").fit()
    with pytest.raises(RuntimeError, match="boom"):
        Trainer(toy(), toy_data(), TrainConfig(**cfg, compile=True), tmp_path / "mixed",
                callbacks=[Raise(6, RuntimeError("boom"))]).fit()
    state = torch.load(tmp_path / "mixed" / CKPT_NAME, weights_only=True)
    assert state["step"] == 4 and set(state["modules"]["net"]) == {"0.weight", "0.bias", "3.weight", "3.bias"}
    mixed = Trainer(toy(), toy_data(), TrainConfig(**cfg), tmp_path / "mixed").fit(resume=True)  # eager now
    assert [r["step"] for r in mixed] == list(range(12))
    for a, b in zip(curve(eager), curve(mixed)):
        assert a[0] == b[0] and a[1:] == pytest.approx(b[1:], rel=1e-5, abs=1e-7)


def test_compile_refusals(tmp_path, monkeypatch):
    import pixseq.train.compiling as T

    with pytest.raises(PixseqError, match="compile must be true or false"):
        TrainConfig(compile="yes")
    monkeypatch.setattr(T, "_cxx_available", lambda: False)
    with pytest.raises(PixseqError, match="needs a C\\+\\+ compiler.*without --compile"):
        Trainer(ToyTask(), toy_data(), TrainConfig(compile=True), tmp_path)
    assert T.is_compile_error(torch._dynamo.exc.BackendCompilerFailed(print, RuntimeError("x"), None))
    assert not T.is_compile_error(RuntimeError("a model bug"))


class TwoPartTask:
    """GAN-shaped: each part's loss depends on both modules; only its own may change."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.gen, self.disc = nn.Linear(3, 3), nn.Linear(3, 1)

    def parts(self):
        return ["disc", "gen"]

    def modules(self):
        return {"gen": self.gen, "disc": self.disc}

    def parameters(self, part):
        return getattr(self, part).parameters()

    def optim_overrides(self, part):
        return {"betas": (0.5, 0.999)} if part == "gen" else {}

    def training_step(self, batch, step, part):
        x = batch[0][:, :3]
        score = self.disc(self.gen(x)).mean()
        loss = -score if part == "gen" else score + self.disc(x).pow(2).mean()
        return loss, {}


def test_parts_update_only_their_own_parameters(tmp_path):
    cfg = TrainConfig(steps=3, batch_size=8, lr=1e-2, warmup_steps=0, min_lr_ratio=1.0, grad_clip=0.0,
                      weight_decay=0.0, log_every=0, ckpt_every=0)
    task = TwoPartTask()
    Trainer(task, toy_data(), cfg, tmp_path).fit()
    # Reference: the textbook alternating loop (D step, then G step) with separate optimizers.
    ref = TwoPartTask()
    opt_d = torch.optim.AdamW(ref.disc.parameters(), lr=1e-2, weight_decay=0.0, betas=cfg.betas)
    opt_g = torch.optim.AdamW(ref.gen.parameters(), lr=1e-2, weight_decay=0.0, betas=(0.5, 0.999))
    data = toy_data()
    for idx in BatchStream(data, 8, seed=0).epoch_batches(0)[:3]:
        batch = (data.tensors[0][idx],)
        for part, opt in (("disc", opt_d), ("gen", opt_g)):
            ref.gen.zero_grad(), ref.disc.zero_grad()
            ref.training_step(batch, 0, part)[0].backward()
            opt.step()
    for mine, theirs in ((task.gen, ref.gen), (task.disc, ref.disc)):
        for a, b in zip(mine.parameters(), theirs.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)  # same ops: rounding only


def test_bf16_autocast_trains(tmp_path):
    task = ToyTask(seed=0, dropout=0.0)
    cfg = TrainConfig(steps=30, batch_size=16, lr=3e-2, warmup_steps=2, precision="bf16", log_every=0, ckpt_every=0)
    history = Trainer(task, toy_data(), cfg, tmp_path).fit()
    assert torch.bfloat16 in task.seen_dtypes  # the forward really ran under autocast
    assert all(p.dtype == torch.float32 for p in task.net.parameters())  # master weights stay fp32
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]


def test_ema_matches_float64_formula(tmp_path):
    decay = 0.8
    task = ToyTask(seed=0)
    shadow = {k: v.double() for k, v in weights(task).items()}

    class Track:
        def on_step_end(self, trainer, step, record):
            for k, v in task.net.state_dict().items():
                shadow[k] = decay * shadow[k] + (1 - decay) * v.double()

    cfg = TrainConfig(steps=5, batch_size=8, lr=5e-2, warmup_steps=0, ema_decay=decay, log_every=0, ckpt_every=0)
    trainer = Trainer(task, toy_data(), cfg, tmp_path, callbacks=[Track()])
    trainer.fit()
    # float32 lerp vs float64 recursion over 5 steps: errors of a few float32 ulps (~1e-7).
    for k, v in weights(task).items():  # EMA weights were swapped in at the end
        torch.testing.assert_close(v.double(), shadow[k], rtol=1e-6, atol=1e-6)
        assert torch.equal(v, trainer.ema_state()["net"][k])


def test_tensorboard_history_and_throughput(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = TrainConfig(steps=7, batch_size=8, lr=1e-2, warmup_steps=1, log_every=2, image_every=3, ckpt_every=0)
    history = Trainer(ToyTask(seed=0), toy_data(), cfg, tmp_path).fit()
    assert all(r["tokens_per_s"] > 0 and r["samples_per_s"] > 0 for r in history)
    assert [r["step"] for r in _read_jsonl(tmp_path / HISTORY_NAME)] == list(range(7))
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss/model")] == [2, 4, 6, 7]  # and the last step
    assert [e.value for e in acc.Scalars("loss/model")] == pytest.approx([history[i]["loss"] for i in (1, 3, 5, 6)])
    assert [e.step for e in acc.Images("samples")] == [3, 6, 7]  # the final model's grid too


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_resume_is_exact(tmp_path):
    """On CUDA too (CUDA RNG state saved; cuBLAS GEMMs are deterministic for fixed shapes)."""
    cfg = TrainConfig(**{**BASE, "precision": "bf16"})
    ref = Trainer(ToyTask(seed=0), toy_data(), cfg, tmp_path / "a", device="cuda").fit()
    with pytest.raises(RuntimeError, match="boom"):
        Trainer(ToyTask(seed=0), toy_data(), cfg, tmp_path / "b", device="cuda",
                callbacks=[Raise(10, RuntimeError("boom"))]).fit()
    resumed = Trainer(ToyTask(seed=5), toy_data(), cfg, tmp_path / "b", device="cuda").fit(resume=True)
    assert curve(resumed) == curve(ref)


def test_train_arguments_round_trip():
    import argparse

    from pixseq.cli.train_args import add_train_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_train_arguments(parser, TrainConfig(steps=50, lr=1e-3))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(["--batch-size", "4", "--precision", "bf16", "--resume", "--seed", "9"])
    cfg = config_from_args(args, TrainConfig(steps=50, lr=1e-3, betas=(0.5, 0.9)))
    assert (cfg.steps, cfg.lr, cfg.batch_size, cfg.precision, cfg.seed, cfg.betas) == (50, 1e-3, 4, "bf16", 9, (0.5, 0.9))
    assert args.resume
    with pytest.raises(PixseqError, match="batch_size"):
        config_from_args(parser.parse_args(["--batch-size", "0"]))


def test_numpy_numbers_become_python_numbers():
    """np.int64 / np.float32 pass the type checks; kept as they were, the first checkpoint's
    JSON config failed after the steps before it had been trained."""
    cfg = TrainConfig(steps=np.int64(3), batch_size=np.int32(8), lr=np.float32(1e-3), compile=np.bool_(False))
    assert type(cfg.steps) is int and type(cfg.batch_size) is int and type(cfg.lr) is float
    assert type(cfg.compile) is bool
    assert json.loads(json.dumps(to_dict(cfg)))["steps"] == 3


def test_task_shape_is_checked_up_front(tmp_path):
    class NoParts(ToyTask):
        def parts(self):
            return []

    with pytest.raises(PixseqError, match="no parts"):
        Trainer(NoParts(), toy_data(), TrainConfig(steps=1, batch_size=8), tmp_path)

    class Stray(ToyTask):  # optimizes a layer that modules() does not list: never checkpointed
        def __init__(self):
            super().__init__()
            self.extra = nn.Linear(2, 2)

        def parameters(self, part):
            return [*self.net.parameters(), *self.extra.parameters()]

    with pytest.raises(PixseqError, match="2 parameter.*in none of task.modules"):
        Trainer(Stray(), toy_data(), TrainConfig(steps=1, batch_size=8), tmp_path)


def test_damaged_checkpoint_or_history(tmp_path, capsys):
    cfg = TrainConfig(**{**BASE, "steps": 4})
    Trainer(ToyTask(), toy_data(), cfg, tmp_path).fit()
    # a damaged loss log is skipped with a notice: the resume itself needs none of it
    with open(tmp_path / HISTORY_NAME, "a") as fh:
        fh.write("garbage\n")
    history = Trainer(ToyTask(), toy_data(), TrainConfig(**{**BASE, "steps": 5}), tmp_path).fit(resume=True)
    assert [r["step"] for r in history] == list(range(5)) and "skipped 1 damaged line" in capsys.readouterr().err
    good = torch.load(tmp_path / CKPT_NAME, weights_only=True)
    torch.save({**good, "world_size": 2}, tmp_path / CKPT_NAME)  # a run made under torchrun, resumed alone
    with pytest.raises(PixseqError, match=r"processes: 2 -> 1 \(launch with torchrun --nproc-per-node 2"):
        Trainer(ToyTask(), toy_data(), TrainConfig(**{**BASE, "steps": 6}), tmp_path).fit(resume=True)
    for damage, words in (({"rng": None}, "damaged"), ({"version": 2}, "version 2"),
                          ({"optimizers": {"model": {"state": {}, "param_groups": []}}}, "damaged")):
        torch.save({**good, **damage}, tmp_path / CKPT_NAME)
        with pytest.raises(PixseqError, match=words):  # were KeyError / TypeError / ValueError tracebacks
            Trainer(ToyTask(), toy_data(), TrainConfig(**{**BASE, "steps": 6}), tmp_path).fit(resume=True)


def test_interrupt_before_the_first_checkpoint_says_nothing_to_resume(tmp_path):
    trainer = Trainer(ToyTask(), toy_data(), TrainConfig(**BASE), tmp_path)
    trainer._in_step = True
    with pytest.raises(PixseqError, match="before the first checkpoint: nothing to resume"):
        trainer._interrupted(in_step=True)  # a second Ctrl-C inside step 0 (was "checkpoint is at step None")


def test_history_is_appended_after_the_first_checkpoint(tmp_path):
    """Rewriting history.jsonl at every checkpoint made its I/O quadratic in the run length:
    the first checkpoint of a process writes it atomically (a new file), later ones append
    (same file), and the records are those of every step."""
    class Inodes:
        seen: list[int] = []

        def on_checkpoint(self, trainer, step):
            self.seen.append(os.stat(tmp_path / HISTORY_NAME).st_ino)

    cb = Inodes()
    Trainer(ToyTask(), toy_data(), TrainConfig(**{**BASE, "steps": 8, "ckpt_every": 2}), tmp_path,
            callbacks=[cb]).fit()
    assert len(cb.seen) == 4 and len(set(cb.seen)) == 1
    assert [r["step"] for r in _read_jsonl(tmp_path / HISTORY_NAME)] == list(range(8))


def test_a_flipped_byte_in_the_checkpoint_is_caught(tmp_path):
    """torch.load ignores the zip CRCs: a flipped byte inside a stored tensor resumed silently
    (inexactly). The resume now checks them first."""
    Trainer(ToyTask(), toy_data(), TrainConfig(**{**BASE, "steps": 4}), tmp_path).fit()
    path = tmp_path / CKPT_NAME
    import zipfile

    with zipfile.ZipFile(path) as zf:  # a byte inside the first tensor's data, not in zip metadata
        info = next(i for i in zf.infolist() if "/data/" in i.filename and i.file_size > 8)
    raw = bytearray(path.read_bytes())
    h = info.header_offset  # local header: 30 bytes, then name and extra field (torch pads there)
    start = h + 30 + int.from_bytes(raw[h + 26:h + 28], "little") + int.from_bytes(raw[h + 28:h + 30], "little")
    raw[start + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(PixseqError, match="fails its checksum"):
        Trainer(ToyTask(), toy_data(), TrainConfig(**{**BASE, "steps": 6}), tmp_path).fit(resume=True)


def test_history_is_strict_json_and_reads_back_nan(tmp_path):
    """A task scalar that is NaN was written as a bare ``NaN`` token, which strict JSON readers
    reject; it is written as null and reads back as NaN on resume."""
    class NanScalar(ToyTask):
        def training_step(self, batch, step, part):
            loss, scalars = super().training_step(batch, step, part)
            return loss, {**scalars, "odd": float("nan")}

    Trainer(NanScalar(), toy_data(), TrainConfig(**{**BASE, "steps": 4}), tmp_path).fit()
    lines = (tmp_path / HISTORY_NAME).read_text().splitlines()
    strict = [json.loads(line, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
              for line in lines]
    assert len(strict) == 4 and all(r["model/odd"] is None for r in strict)
    history = Trainer(NanScalar(), toy_data(), TrainConfig(**{**BASE, "steps": 5}), tmp_path).fit(resume=True)
    assert math.isnan(history[0]["model/odd"]) and len(history) == 5


@pytest.mark.parametrize("break_it, words", [
    (lambda t: setattr(t, "training_step", None), "is not a training task: it lacks training_step"),
    (lambda t: setattr(t, "modules", lambda: {"net": lambda x: x}), "not a module: net"),
    (lambda t: setattr(t, "training_step", lambda b, s, p: ToyTask.training_step(t, b, s, p)[0]),
     r"must return \(loss, \{name: scalar\}\), got Tensor"),
    (lambda t: setattr(t, "training_step", lambda b, s, p: (t.net(b[0]), {})), "got a tensor of shape"),
    (lambda t: setattr(t, "training_step", lambda b, s, p: (torch.tensor(1.0), {})), "without gradient"),
])
def test_malformed_tasks_are_named(tmp_path, break_it, words):
    """Python-API users writing their own task got AttributeError / 'grad can be implicitly
    created only for scalar outputs' tracebacks mid-step; each is now one PixseqError."""
    task = ToyTask()
    break_it(task)
    with pytest.raises(PixseqError, match=words):
        Trainer(task, toy_data(), TrainConfig(**{**BASE, "steps": 1}), tmp_path).fit()
    assert not (tmp_path / CKPT_NAME).exists()


def test_a_second_fresh_fit_is_refused_but_resume_continues(tmp_path, reference):
    """A second fit() on the same Trainer used to 'start fresh' from trained weights with a
    spent learning-rate schedule; it is refused, and fit(resume=True) continues exactly."""
    trainer = Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**BASE), tmp_path,
                      callbacks=[Raise(9, RuntimeError("boom"))])
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit()
    with pytest.raises(PixseqError, match="already trained"):
        trainer.fit()
    trainer.callbacks = []
    assert curve(trainer.fit(resume=True)) == reference[0]


def test_held_out_evaluation(tmp_path, reference):
    """eval/<name> at each checkpoint step and the last one: the item-weighted mean over the
    whole held-out set (odd-sized last batch), on the saved (EMA) weights; training itself
    is bitwise the same as without evaluation, and so is a resume."""
    held_out = toy_data(n=21, seed=7)
    seen = []

    class Snap:  # the EMA weights at each checkpoint: what evaluate() must have used
        def on_checkpoint(self, trainer, step):
            seen.append((step, {k: v.clone() for k, v in trainer.ema_state()["net"].items()}))

    trainer = Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**BASE), tmp_path / "a", callbacks=[Snap()],
                      eval_data=held_out)
    history = trainer.fit()
    assert curve(history) == reference[0]  # evaluating changed nothing in training
    evaluated = {r["step"] + 1: r["eval/mse"] for r in history if "eval/mse" in r}
    assert sorted(evaluated) == [4, 8, 12]
    x, y = held_out.tensors
    net = ToyTask(seed=0).net.eval()
    for step, state in seen:
        net.load_state_dict(state)
        with torch.no_grad():
            expected = float(((net(x).double() - y.double()) ** 2).mean())
        assert evaluated[step] == pytest.approx(expected, rel=1e-5)  # float32 batches vs one float64 mean
    # stopped mid-run and resumed: the same records, eval entries included
    with pytest.raises(RuntimeError, match="boom"):
        Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**BASE), tmp_path / "b",
                callbacks=[Raise(6, RuntimeError("boom"))], eval_data=held_out).fit()
    resumed = Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**BASE), tmp_path / "b", eval_data=held_out).fit(
        resume=True)
    assert [r.get("eval/mse") for r in resumed] == [r.get("eval/mse") for r in history]


def test_held_out_evaluation_of_a_run_a_callback_ended_early(tmp_path):
    class Budget:  # like the demo's time budget: shortens the run from a callback
        def on_step_end(self, trainer, step, record):
            if step == 5:
                trainer.config.steps = 5

    history = Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**{**BASE, "ckpt_every": 0}), tmp_path,
                      callbacks=[Budget()], eval_data=toy_data(n=9)).fit()
    assert len(history) == 5 and [("eval/mse" in r) for r in history] == [False] * 4 + [True]
    assert "eval/mse" in _read_jsonl(tmp_path / HISTORY_NAME)[-1]


def test_held_out_evaluation_of_a_run_cut_short_reaches_tensorboard(tmp_path):
    """The last step of a run a callback ended early was evaluated after the TensorBoard writer
    had closed: its eval/ scalars were in history.jsonl but not in TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    class Budget:
        def on_step_end(self, trainer, step, record):
            if step == 5:
                trainer.config.steps = 5

    cfg = TrainConfig(**{**BASE, "ckpt_every": 4, "log_every": 1})
    history = Trainer(ToyTask(seed=0), toy_data(), cfg, tmp_path, callbacks=[Budget()],
                      eval_data=toy_data(n=9)).fit()
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    events = acc.Scalars("eval/mse")
    assert [e.step for e in events] == [4, 5]
    assert events[-1].value == pytest.approx(history[-1]["eval/mse"], rel=1e-6)  # float32 in TensorBoard


def test_held_out_evaluation_needs_eval_step_and_data(tmp_path):
    class NoEval(ToyTask):
        eval_step = None

    with pytest.raises(PixseqError, match="has no eval_step"):
        Trainer(NoEval(), toy_data(), TrainConfig(**BASE), tmp_path, eval_data=toy_data())
    with pytest.raises(PixseqError, match="held-out data is empty"):
        Trainer(ToyTask(), toy_data(), TrainConfig(**BASE), tmp_path, eval_data=[])


def test_tensor_scalars_are_logged_like_numbers(tmp_path, reference):
    """A task may log one-element tensors (no .item() between forward and backward, which
    makes a GPU host wait); they are logged like the numbers, and training is unchanged."""
    class NoSync(torch.Tensor):  # reading one value back to the host is what must not happen per scalar
        def item(self):
            raise AssertionError("host sync on a logged scalar")

        def __float__(self):
            raise AssertionError("host sync on a logged scalar")

    class TensorScalars(ToyTask):
        def training_step(self, batch, step, part):
            loss, scalars = super().training_step(batch, step, part)
            return loss, {"mae": torch.tensor(scalars["mae"]).as_subclass(NoSync)}

    history = Trainer(TensorScalars(seed=0), toy_data(), TrainConfig(**BASE), tmp_path).fit()
    got, want = curve(history), reference[0]
    assert [g[:5] for g in got] == [w[:5] for w in want]  # step, losses, lr, grad norm: bitwise
    assert [g[5] for g in got] == pytest.approx([w[5] for w in want], rel=1e-6)  # mae: float32 vs float64 sum
    assert all(isinstance(r["model/mae"], float) for r in history)


class _Died(BaseException):
    """A process killed outright (nothing catches it, like SIGKILL)."""


@pytest.mark.parametrize("when", ["during", "after"])
def test_killed_while_saving_a_checkpoint_resumes_exactly_with_the_whole_history(tmp_path, reference, monkeypatch,
                                                                                 when):
    """Killed mid-write, the previous checkpoint loads and no temp file is left. Killed just
    after the checkpoint's rename, the history used to lack the steps since the previous
    checkpoint for good (it was appended after the checkpoint); now it is written first."""
    import pixseq.train.trainer as T

    real = T.atomic_write

    @contextmanager
    def dying(path, mode="wb"):
        fatal = Path(path).name == CKPT_NAME and dying.armed
        with real(path, mode) as fh:
            yield fh
            if fatal and when == "during":
                dying.armed = False
                raise _Died
        if fatal:
            dying.armed = False
            raise _Died

    class Arm:  # callbacks run after a step's checkpoint: arm after step 7, die saving step 8's
        def on_step_end(self, trainer, step, record):
            dying.armed = step == 7

    dying.armed = False
    monkeypatch.setattr(T, "atomic_write", dying)
    with pytest.raises(_Died):
        Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**BASE), tmp_path, callbacks=[Arm()]).fit()
    monkeypatch.setattr(T, "atomic_write", real)
    assert sorted(p.name for p in tmp_path.iterdir()) == [HISTORY_NAME, CKPT_NAME]  # no temp file
    assert torch.load(tmp_path / CKPT_NAME, weights_only=True)["step"] == (4 if when == "during" else 8)
    history = Trainer(ToyTask(seed=1), toy_data(), TrainConfig(**BASE), tmp_path).fit(resume=True)
    assert curve(history) == reference[0]
    assert [r["step"] for r in _read_jsonl(tmp_path / HISTORY_NAME)] == list(range(BASE["steps"]))


def test_resume_with_more_steps_uses_the_new_schedule_from_its_first_step(tmp_path):
    """Extending a finished run (--resume --steps 10): its first resumed step ran at the old
    schedule's final rate (the floor), and the new cosine only took over one step later."""
    cfg = {**BASE, "ema_decay": 0.0, "steps": 6}
    Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**cfg), tmp_path).fit()
    history = Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**{**cfg, "steps": 10}), tmp_path).fit(resume=True)
    want = [BASE["lr"] * warmup_cosine(s, BASE["warmup_steps"], 10, 0.1) for s in range(6, 10)]
    assert [r["lr/model"] for r in history[6:]] == pytest.approx(want, rel=1e-12)


def test_resume_with_a_lower_lr_or_grad_clip(tmp_path, capsys):
    """lr and grad_clip may change on resume (the way out of a NaN stop, whose checkpoint
    replayed the same steps into the same NaN): the new rate follows the schedule from the
    resumed step on, with a notice; what was trained stays; the clip is the new one."""
    cfg = {**BASE, "ema_decay": 0.0, "steps": 10}
    first = Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**{**cfg, "steps": 4}), tmp_path / "r").fit()
    capsys.readouterr()
    lower = {**cfg, "lr": BASE["lr"] / 10, "grad_clip": 0.25}
    history = Trainer(ToyTask(seed=0), toy_data(), TrainConfig(**lower), tmp_path / "r").fit(resume=True)
    err = capsys.readouterr().err
    assert f"--lr changed from {BASE['lr']} to {BASE['lr'] / 10} on resume" in err and "--grad-clip changed" in err
    assert [r["loss"] for r in history[:4]] == [r["loss"] for r in first]  # the steps already trained are kept
    want = [BASE["lr"] / 10 * warmup_cosine(s, BASE["warmup_steps"], 10, 0.1) for s in range(4, 10)]
    assert [r["lr/model"] for r in history[4:]] == pytest.approx(want, rel=1e-12)
    state = torch.load(tmp_path / "r" / CKPT_NAME, weights_only=True)
    assert state["config"]["lr"] == BASE["lr"] / 10  # a later plain resume keeps the lower rate
    assert state["schedulers"]["model"]["base_lrs"] == [BASE["lr"] / 10] * 2
    assert state["config"]["grad_clip"] == 0.25


def test_the_largest_seed_trains(tmp_path):
    """Seeds from ~1.8e14 up to 2**63 - 1 pass the config check, but the data order's generator
    seed (seed * 100003 + epoch) overflowed torch's: a ValueError at the first batch."""
    big = 2**63 - 1
    stream = BatchStream(toy_data(), 8, seed=big)
    assert stream.epoch_batches(0) != stream.epoch_batches(1)
    # smaller seeds keep their data order (runs made before resume as they were)
    perm = torch.randperm(64, generator=torch.Generator().manual_seed(5 * 100_003 + 1)).tolist()
    assert BatchStream(toy_data(), 8, seed=5).epoch_batches(1) == [perm[i:i + 8] for i in range(0, 64, 8)]
    history = Trainer(ToyTask(), toy_data(), TrainConfig(**{**BASE, "steps": 2, "seed": big}), tmp_path).fit()
    assert len(history) == 2


def test_image_grids_show_the_weights_being_saved(tmp_path, reference):
    """With EMA on, the TensorBoard grids (the last one "the final model's") came from the raw
    weights while the model saved, and the held-out scores, are the EMA; now the EMA, and
    training is still bitwise the same."""
    seen, ema = {}, {}

    class Look(ToyTask):
        def sample_images(self, batch):
            seen[len(seen)] = (self.net.training, {k: v.clone() for k, v in self.net.state_dict().items()})
            return super().sample_images(batch)

    class Snap:  # callbacks run after the step's logging: the EMA the grid must have shown
        def on_step_end(self, trainer, step, record):
            ema[step] = trainer.ema_state()["net"]

    cfg = TrainConfig(**{**BASE, "log_every": 1, "image_every": 5})
    trainer = Trainer(Look(seed=0), toy_data(), cfg, tmp_path, callbacks=[Snap()])
    assert curve(trainer.fit()) == reference[0]
    assert len(seen) == 3  # steps 5, 10 and the last, 12
    for (training, state), step in zip(seen.values(), (5, 10, 12)):
        assert not training and all(torch.equal(v, ema[step][k]) for k, v in state.items()), step


class SignalAt(ToyTask):
    """Sends this process SIGTERM once, inside step ``at`` (0-based)."""

    def __init__(self, at: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.at = at

    def training_step(self, batch, step, part):
        if step == self.at and not getattr(self, "sent", False):
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
        return super().training_step(batch, step, part)


def test_a_stop_in_the_last_step_lets_the_run_finish(tmp_path, reference):
    """A stop asked for during the last step raised "interrupted at step 12; resume with
    --resume" (no model written by the CLI) for a run that was done."""
    history = Trainer(SignalAt(11, seed=0), toy_data(), TrainConfig(**BASE), tmp_path).fit()
    assert curve(history) == reference[0]
    assert torch.load(tmp_path / CKPT_NAME, weights_only=True)["step"] == 12


def test_a_stop_at_a_checkpoint_step_saves_once(tmp_path):
    """A stop asked for in a step that ends with a checkpoint saved the same state twice."""
    saves = []

    class Count:
        def on_checkpoint(self, trainer, step):
            saves.append(step)

    with pytest.raises(PixseqError, match=r"interrupted at step 8; resume with --resume"):
        Trainer(SignalAt(7, seed=0), toy_data(), TrainConfig(**BASE), tmp_path, callbacks=[Count()]).fit()
    assert saves == [4, 8]


def test_an_out_dir_that_cannot_be_written_is_refused_before_training(tmp_path):
    """An --out below a file trained the whole run (ckpt_every=0) and then failed to save it."""
    from pixseq.train.runs import check_out_dir

    (tmp_path / "file").write_text("")
    with pytest.raises(PixseqError, match=r"cannot write the training state to .*file.* is not a folder"):
        Trainer(ToyTask(), toy_data(), TrainConfig(**BASE), tmp_path / "file" / "run" / "train")
    with pytest.raises(PixseqError, match="file is a file, not a folder"):  # the train verbs, before loading data
        check_out_dir(tmp_path / "file" / "m", tmp_path / "file" / "m" / "train", resume=False, force=True)
    with pytest.raises(PixseqError, match="new.* does not exist"):  # only the last level of --out is made
        check_out_dir(tmp_path / "new" / "m", tmp_path / "new" / "m" / "train", resume=False, force=False)
    if os.getuid() != 0:  # root may write anywhere
        (tmp_path / "ro").mkdir(mode=0o555)
        with pytest.raises(PixseqError, match="is not writable"):
            Trainer(ToyTask(), toy_data(), TrainConfig(**BASE), tmp_path / "ro" / "train")
    Trainer(ToyTask(), toy_data(), TrainConfig(**BASE), tmp_path / "new" / "deeper")  # to be created: fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "ro"][:1 + (os.getuid() != 0)]


def test_warmup_longer_than_the_run_is_said_once_when_it_starts(tmp_path, capsys, stop_training_after):
    """Moved from the CLI's option parsing (where it came before the data checks, so one
    mistake gave two lines) to the start of a fresh run; a resume with the same last step
    does not repeat it, one that moves the last step still inside the warm-up says it again
    (every train verb: `train vqgan --resume --steps N` was silent where a fresh run spoke)."""
    cfg = {**BASE, "steps": 3, "warmup_steps": 6}
    stop_training_after(2)
    with pytest.raises(PixseqError, match="interrupted at step 2"):
        Trainer(ToyTask(), toy_data(), TrainConfig(**cfg), tmp_path).fit()
    assert capsys.readouterr().err.count("warms up over 6 steps but the run has 3") == 1
    stop_training_after(None)
    Trainer(ToyTask(), toy_data(), TrainConfig(**cfg), tmp_path).fit(resume=True)
    assert "warms up" not in capsys.readouterr().err
    Trainer(ToyTask(), toy_data(), TrainConfig(**{**cfg, "steps": 5}), tmp_path).fit(resume=True)
    assert capsys.readouterr().err.count("warms up over 6 steps but the run has 5") == 1
    Trainer(ToyTask(), toy_data(), TrainConfig(**{**cfg, "steps": 8}), tmp_path).fit(resume=True)
    assert "warms up" not in capsys.readouterr().err  # 8 steps: the warm-up ends


def test_the_default_warmup_never_outlasts_a_short_run():
    """A family's default warm-up (100 steps) with --steps 10 tripped the notice above: a
    warning pixseq's own default caused. Not given, it is at most half the run."""
    from pixseq.train.runs import train_config

    defaults = TrainConfig(steps=2000, warmup_steps=100)
    assert train_config({"steps": 10}, defaults).warmup_steps == 5
    assert train_config({"steps": 1}, defaults).warmup_steps == 0
    assert train_config({"steps": 1000}, defaults).warmup_steps == 100  # long runs keep the family's
    assert train_config({"steps": 10, "warmup_steps": 50}, defaults).warmup_steps == 50  # given: as given


def test_ema_averages_weights_not_statistics_modules():
    """A module of buffers alone (a VQ codebook's statistics) was averaged too, at every step:
    a blend of reservoir samples, loaded into the quantizer by copy_to."""
    from pixseq.train import EMA

    stats = nn.Module()
    stats.register_buffer("recent", torch.zeros(3))
    net = nn.Linear(2, 2)
    ema = EMA({"net": net, "stats": stats}, 0.5)
    assert set(ema.shadow) == {"net"}
    stats.recent.fill_(4.0)
    ema.update({"net": net, "stats": stats})
    ema.copy_to({"net": net, "stats": stats})
    assert torch.equal(stats.recent, torch.full((3,), 4.0))
