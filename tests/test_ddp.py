"""Two CPU processes under ``torchrun`` (Gloo): identical weights on every rank, gradients
really averaged (equal to one process with the combined batch), only rank 0 writes files,
and a 2-process resume continues the run like a 1-process resume does."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from pixseq.train import CKPT_NAME, HISTORY_NAME, TrainConfig, Trainer
from trainer_toy import ToyTask, toy_data

TESTS = Path(__file__).resolve().parent
CFG = dict(steps=6, batch_size=4, lr=2e-2, warmup_steps=1, ckpt_every=3, log_every=2, seed=2)


def _torchrun(script: Path, text: str) -> None:
    """Write ``text`` (dedented) to ``script`` and run it as 2 CPU processes under torchrun;
    fail with the end of its stderr unless it exits 0."""
    script.write_text(textwrap.dedent(text))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=110, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

WORKER = """
import os, sys, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
from trainer_toy import ToyTask, toy_data
from pixseq.train import TrainConfig, Trainer
rank = int(os.environ["RANK"])
# A different initialisation per rank: the Trainer must broadcast rank 0's weights first.
task = ToyTask(seed=10 + rank, dropout=0.0, noisy=False)
# held-out data of 9 items: rank 0 evaluates 5 of them, rank 1 four
trainer = Trainer(task, toy_data(), TrainConfig(**{cfg!r}), os.path.join({root!r}, f"rank{{rank}}"),
                  eval_data=toy_data(n=9, seed=3))
history = trainer.fit()
# Resume on both ranks from rank 0's checkpoint (a shared folder, as on a cluster) and go on
# to step 8: each rank restores its own RNG state and the shared data position.
task2 = ToyTask(seed=50 + rank, dropout=0.0, noisy=False)
more = Trainer(task2, toy_data(), TrainConfig(**{{**{cfg!r}, "steps": 8}}), os.path.join({root!r}, "rank0"))
history2 = more.fit(resume=True)
torch.save({{"weights": task.net.state_dict(), "loss": [r["loss"] for r in history],
            "eval": [r.get("eval/mse") for r in history],
            "world": trainer.dist.world_size, "weights2": task2.net.state_dict(),
            "loss2": [r["loss"] for r in history2]}}, os.path.join({root!r}, f"result{{rank}}.pt"))
"""


@pytest.mark.timeout(120)
def test_two_process_gloo_training(tmp_path):
    _torchrun(tmp_path / "worker.py", WORKER.format(tests=str(TESTS), cfg=CFG, root=str(tmp_path)))
    r0, r1 = (torch.load(tmp_path / f"result{r}.pt", weights_only=True) for r in range(2))
    assert r0["world"] == r1["world"] == 2
    for k, v in r0["weights"].items():  # same start, same averaged gradients -> bitwise equal
        assert torch.equal(v, r1["weights"][k]), k
    assert r0["loss"] == r1["loss"]  # the logged loss is the mean over ranks on every rank
    assert r0["eval"] == r1["eval"] and [e is not None for e in r0["eval"]] == [False, False, True] * 2
    for k, v in r0["weights2"].items():  # still identical after a 2-process resume
        assert torch.equal(v, r1["weights2"][k]), k
    assert r0["loss2"][:6] == r0["loss"] and len(r0["loss2"]) == 8

    # Only rank 0 writes: its folder has the checkpoint, history and TensorBoard logs;
    # rank 1's folder was never created.
    assert {p.name for p in (tmp_path / "rank0").iterdir()} == {CKPT_NAME, HISTORY_NAME, "tb"}
    assert not (tmp_path / "rank1").exists()
    assert torch.load(tmp_path / "rank0" / CKPT_NAME, weights_only=True)["world_size"] == 2

    # One process with batch 2x4 sees the same samples per step (see BatchStream), so with
    # mean losses the averaged gradient is the same; only float summation order differs
    # (mean of 8 vs mean of two means of 4), hence 1e-5 rather than bitwise.
    torch.set_num_threads(1)
    task = ToyTask(seed=10, dropout=0.0, noisy=False)
    single = Trainer(task, toy_data(), TrainConfig(**{**CFG, "batch_size": 8, "log_every": 0}), tmp_path / "single",
                     eval_data=toy_data(n=9, seed=3))
    history = single.fit()
    assert [r["loss"] for r in history] == pytest.approx(r0["loss"], rel=1e-5, abs=1e-6)
    # the held-out mean over both ranks' shards is the mean over all 9 items
    assert [r["eval/mse"] for r in history if "eval/mse" in r] == pytest.approx([e for e in r0["eval"] if e], rel=1e-5)
    for k, v in task.net.state_dict().items():
        torch.testing.assert_close(v, r0["weights"][k], rtol=1e-5, atol=1e-5)
    task2 = ToyTask(seed=77, dropout=0.0, noisy=False)
    more = Trainer(task2, toy_data(), TrainConfig(**{**CFG, "steps": 8, "batch_size": 8, "log_every": 0}),
                   tmp_path / "single")
    assert [r["loss"] for r in more.fit(resume=True)] == pytest.approx(r0["loss2"], rel=1e-5, abs=1e-6)
    for k, v in task2.net.state_dict().items():
        torch.testing.assert_close(v, r0["weights2"][k], rtol=1e-5, atol=1e-5)


@pytest.mark.timeout(150)
def test_train_igpt_under_torchrun(tmp_path):
    """The CLI under torchrun: both ranks train, rank 0 alone writes the model; --resume
    extends the run with its own settings; a fresh run into the finished model is refused on
    every rank; each command ends with the ranks leaving the process group together."""
    from pixseq.io import save_image

    rng = np.random.default_rng(0)
    for i in range(16):
        save_image(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), tmp_path / "data" / f"{i}.png")
    out = tmp_path / "m"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "pixseq",
           "train", "igpt", "--data", str(tmp_path / "data"), "--out", str(out)]

    def launch(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(run + list(extra), capture_output=True, text=True, timeout=60, env=env)

    too_few = launch("--size", "s", "--image-size", "8", "--palette", "4", "--limit", "1")
    assert too_few.returncode != 0 and too_few.stderr.count("fewer than the 2 processes") == 2
    assert not out.exists()  # checked for 2 processes before anything is written (run.json was)
    # a batch beyond each process's share (16 images / 2) is capped at it, said once
    first = launch("--size", "s", "--image-size", "8", "--palette", "4", "--steps", "2", "--batch-size", "12",
                   "--log-every", "0")
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stderr.count("8 per process over 2 processes, fewer than --batch-size 12 per process") == 1
    assert first.stdout.count("wrote ") == 1  # rank 0 alone reports (and writes)
    more = launch("--resume", "--steps", "3")
    assert more.returncode == 0, more.stderr[-3000:]
    assert more.stderr.count("--steps changed from 2 to 3") == 1  # a notice comes from rank 0 only
    history = (out / "train" / "history.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in history] == [0, 1, 2]
    assert json.loads((out / "config.json").read_text())["meta"]["steps"] == 3
    again = launch("--steps", "2")
    assert again.returncode != 0 and again.stderr.count("already holds a trained model") == 2


QUANTIZER_WORKER = """
import os, sys, torch
torch.set_num_threads(1)
from pixseq.tokenizers.quantize import QuantizerConfig, VectorQuantizer
import torch.distributed as dist
dist.init_process_group("gloo")
rank = int(os.environ["RANK"])
out = {{}}
for name, cfg in {configs!r}.items():
    torch.manual_seed(0)  # the same initial codebook on both ranks ...
    q = VectorQuantizer(QuantizerConfig(**cfg)).train()
    torch.manual_seed(100 + rank)  # ... but other random draws (reservoir, restart picks)
    data = torch.load({data!r})
    for step in range(data.shape[0]):
        q(data[step, rank * 4:(rank + 1) * 4])  # each rank sees its half of the batch
    out[name] = {{k: v.clone() for k, v in q.state_dict().items()}}
    out[name].update(code_age=q.code_age.clone(), ever_used=q.ever_used.clone())
torch.save(out, os.path.join({root!r}, f"q{{rank}}.pt"))
dist.destroy_process_group()
"""


@pytest.mark.timeout(120)
def test_quantizer_statistics_are_global_under_torchrun(tmp_path):
    """Code counts and EMA sums are summed over ranks, k-means and restarted codes come from
    rank 0: both ranks hold the same codebook and statistics (they drifted apart, EMA state
    per rank), and with EMA they equal one process given the whole batch."""
    from pixseq.tokenizers.quantize import QuantizerConfig, VectorQuantizer

    g = torch.Generator().manual_seed(5)
    data = torch.randn(6, 8, 4, 3, 3, generator=g)  # 6 steps of batch 8 (4 per rank), d=4, 3x3 grid
    torch.save(data, tmp_path / "data.pt")
    configs = {"ema": dict(num_codes=16, dim=4, ema=True, kmeans_init=False, dead_restart=False),
               "all": dict(num_codes=16, dim=4, ema=True, kmeans_init=True, dead_restart=True, dead_after=2,
                           reservoir=32)}
    _torchrun(tmp_path / "worker.py",
              QUANTIZER_WORKER.format(configs=configs, data=str(tmp_path / "data.pt"), root=str(tmp_path)))
    r0, r1 = (torch.load(tmp_path / f"q{r}.pt", weights_only=True) for r in range(2))
    for name in configs:
        for k, v in r0[name].items():
            assert torch.equal(v, r1[name][k]), (name, k)
    assert int(r0["all"]["code_age"].max()) < 6  # restarts happened (dead_after=2) and stayed in step
    torch.manual_seed(0)
    single = VectorQuantizer(QuantizerConfig(**configs["ema"])).train()
    for step in range(data.shape[0]):
        single(data[step])
    for k, v in single.state_dict().items():  # float sums in another order: 1e-6
        torch.testing.assert_close(v, r0["ema"][k], rtol=1e-5, atol=1e-6)
    assert torch.equal(single.code_age, r0["ema"]["code_age"])


TASKS_WORKER = """
import os, sys, torch
sys.path.insert(0, {tests!r})
torch.set_num_threads(1)
import trainer_toy
from pixseq.train import TrainConfig, Trainer
rank = int(os.environ["RANK"])
for name, (task_name, cfg) in {jobs!r}.items():
    task = getattr(trainer_toy, task_name)(seed=10 + rank, dropout=0.0, noisy=False)
    Trainer(task, trainer_toy.toy_data(), TrainConfig(**cfg), os.path.join({root!r}, name)).fit()
    torch.save({{n: m.state_dict() for n, m in task.modules().items()}},
               os.path.join({root!r}, f"{{name}}{{rank}}.pt"))
"""
#: name -> (trainer_toy task, config): trained under one torchrun launch (about 8 s each)
JOBS = {"late": ("LatePartTask", {**CFG, "weight_decay": 0.1, "ckpt_every": 0, "log_every": 0}),
        "buffer": ("BufferTask", {**CFG, "ema_decay": 0.5, "log_every": 0})}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    """Each job of :data:`JOBS` trained by 2 processes: ``{name: (rank 0's, rank 1's final
    {module name: state_dict})}``."""
    root = tmp_path_factory.mktemp("tasks")
    _torchrun(root / "worker.py", TASKS_WORKER.format(tests=str(TESTS), jobs=JOBS, root=str(root)))
    return {name: tuple(torch.load(root / f"{name}{r}.pt", weights_only=True) for r in range(2)) for name in JOBS}


@pytest.mark.timeout(120)
def test_parameters_without_gradient_stay_out_of_the_update_like_in_one_process(tmp_path, two_ranks):
    """Parameters no rank has a gradient for in a step (a VQGAN's discriminator before
    disc_start) are left alone, as AdamW leaves a gradient of None in one process; they were
    given zero gradients on every rank, so two processes decayed them and advanced their Adam
    step counts, and trained differently from one process with the combined batch."""
    from trainer_toy import LatePartTask

    r0, r1 = two_ranks["late"]
    cfg = JOBS["late"][1]
    torch.set_num_threads(1)
    task = LatePartTask(seed=10, dropout=0.0, noisy=False)
    Trainer(task, toy_data(), TrainConfig(**{**cfg, "batch_size": 8}), tmp_path / "single").fit()
    for name in ("net", "late"):
        for k, v in getattr(task, name).state_dict().items():
            assert torch.equal(r0[name][k], r1[name][k]), (name, k)
            # one mean of 8 vs the mean of two means of 4: float rounding only
            torch.testing.assert_close(v, r0[name][k], rtol=1e-5, atol=1e-5, msg=f"{name}.{k}")


@pytest.mark.timeout(120)
def test_ema_of_buffers_is_the_same_on_every_rank(two_ranks):
    """The EMA was updated before rank 0's buffers (BatchNorm statistics) were broadcast, so
    each rank averaged its own: the EMA weights (held-out scores per shard, the final model)
    differed between ranks."""
    r0, r1 = two_ranks["buffer"]
    for k, v in r0["net"].items():  # the EMA weights, swapped in at the end
        assert torch.equal(v, r1["net"][k]), k
