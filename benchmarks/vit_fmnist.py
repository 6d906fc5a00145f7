"""Fashion-MNIST from scratch under a CPU-time budget: test accuracy against process CPU time.

Trains with ``pixseq train vit``'s own code: the options after ``--`` are parsed by that
verb's parser and go to :func:`pixseq.classifiers.vit_train.train_vit` exactly as the verb
passes them (``--data fashion-mnist:train``, ``--val-data fashion-mnist:test`` with all
10 000 test images and ``--ckpt-every 0`` are set here). On one thread
(``torch.set_num_threads(1)``; run it with ``OMP_NUM_THREADS=1``).

The clock is the process's CPU time (``time.process_time``) from the call of ``train_vit``
on (data loading, model build and every training step count) less the time spent in
held-out evaluations, which are the measurement, not the training. At each point of
``--points`` (CPU minutes) the weights that would be saved are evaluated on the 10 000 test
images (the Trainer's ``evaluate``: eval mode, every RNG restored, so training is the same
with or without the curve); the last point is the finished run's own held-out evaluation.

The schedule needs the number of steps. Without ``--steps`` among the training options (and
without ``--no-calibrate``, which trains the recipe's own steps) the script first times ``--calibrate`` steps of the same recipe (a throwaway run in a temporary
folder, not counted) and plans ``steps = budget * 0.97 / CPU seconds per step`` after the
setup time; with ``--steps`` that count is used. Either way the run stops when the budget is
spent (said in the output; the cosine is then cut short). With ``--ckpt-every N`` among the
options every checkpoint's held-out evaluation is a point of the curve too, and the clocks
are saved with it (``OUT.bench-state.json``): an interrupted run goes on with ``--resume``
(same options), exactly as the Trainer resumes, its clocks from that checkpoint (the resumed
process's own data loading counts too). Writes ``OUT/curve.json`` and
``OUT/curve.png`` (or ``--json`` / ``--png``) and leaves the model in ``OUT`` (a normal
``pixseq train vit`` directory: ``pixseq evaluate`` / ``classify`` take it).

``--table A.json B.json ...`` prints runs side by side (an ablation: runs of one budget)::

    OMP_NUM_THREADS=1 python benchmarks/vit_fmnist.py --cpu-minutes 20 --no-calibrate --out runs/vit-fm20 -- --recipe fmnist
    OMP_NUM_THREADS=1 python benchmarks/vit_fmnist.py --cpu-minutes 4 --out runs/abl-spt -- --recipe fmnist --no-spt
    python benchmarks/vit_fmnist.py --table runs/abl-*/curve.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

SAFETY = 0.97  # of the budget left after setup, planned for training steps (the stopper ends the rest)


class CpuCurve:
    """Trainer callback: the CPU clock without evaluations, test accuracy at CPU-time points,
    and the budget stop (``trainer.config.steps = step``, as the demo's time budget)."""

    def __init__(self, start_cpu: float, points_s: list[float], budget_s: float, state: Path,
                 resumed: dict | None = None) -> None:
        self.start, self.points, self.budget, self.state = start_cpu, sorted(points_s), budget_s, state
        self.eval_cpu = 0.0
        self.curve: list[dict] = []
        self.step_cpu: list[float] = []  # training CPU clock at each step's end
        self.stopped_at: int | None = None
        self.last_step, self.n_images = 0, 1
        self._wrapped = False
        self._wall0 = time.perf_counter()
        # a resumed run: the clocks go on from its last checkpoint (what followed it is redone)
        self.cpu_before, self.wall_before, self.eval_before = 0.0, 0.0, 0.0
        if resumed is not None:
            self.cpu_before, self.wall_before = resumed["train_cpu_s"], resumed["wall_s"]
            self.eval_before, self.curve = resumed["eval_cpu_s"], resumed["curve"]
            self.points = [p for p in self.points if p > self.cpu_before]

    def clock(self) -> float:
        """Training CPU seconds so far (evaluations excluded)."""
        return self.cpu_before + time.process_time() - self.start - self.eval_cpu

    def wall(self) -> float:
        return self.wall_before + time.perf_counter() - self._wall0

    def on_checkpoint(self, trainer, step: int) -> None:
        """The clocks and the curve with every checkpoint (``--resume`` goes on from them)."""
        self.state.write_text(json.dumps({"step": step, "train_cpu_s": self.clock(), "wall_s": self.wall(),
                                          "eval_cpu_s": self.eval_before + self.eval_cpu, "curve": self.curve}))

    def _wrap(self, trainer) -> None:
        """Time every held-out evaluation, the Trainer's own included (its last step's), so
        that the clock leaves them out."""
        evaluate = trainer.evaluate

        def timed() -> dict[str, float]:
            c = time.process_time()
            try:
                return evaluate()
            finally:
                self.eval_cpu += time.process_time() - c

        trainer.evaluate = timed
        self._wrapped = True

    def on_record(self, trainer, step: int, record: dict) -> None:
        if not self._wrapped:  # before the first step's own evaluation could run
            self._wrap(trainer)

    def on_step_end(self, trainer, step: int, record: dict) -> None:
        now = self.clock()
        self.step_cpu.append(now)
        self.last_step, self.n_images = step, len(trainer.dataset)
        if step >= trainer.config.steps:
            return  # the last step: its evaluation is the run's own (read after the run)
        if "eval/accuracy" in record:  # a checkpoint's held-out evaluation (--ckpt-every)
            self.add_point(step, now, record, trainer.config.batch_size, len(trainer.dataset))
        elif self.points and now >= self.points[0]:
            while self.points and now >= self.points[0]:
                self.points.pop(0)
            self.add_point(step, now, trainer.evaluate(), trainer.config.batch_size, len(trainer.dataset))
        if now >= self.budget:
            self.stopped_at = step
            trainer.config.steps = step  # the loop's condition: no more steps

    def add_point(self, step: int, cpu_s: float, scores: dict, batch: int, n_images: int) -> None:
        point = {"cpu_min": round(cpu_s / 60, 3), "wall_min": round(self.wall() / 60, 3),
                 "step": step, "epochs": round(step * batch / n_images, 2),
                 "test_accuracy": scores["eval/accuracy"], "test_loss": scores["eval/loss"]}
        self.curve.append(point)
        print(f"  {point['cpu_min']:6.2f} CPU min  step {step:6d}  epoch {point['epochs']:5.2f}  "
              f"test accuracy {point['test_accuracy']:.4f}", flush=True)


def vit_parser() -> argparse.ArgumentParser:
    """``pixseq train vit``'s own parser (its options and their defaults)."""
    from pixseq.cli import _Parser, add_common
    from pixseq.cli.train_vit import add_parser

    p = _Parser(prog="pixseq train vit")
    add_parser(p)
    add_common(p)
    return p


def parse_vit_args(extra: list[str], out: Path, steps: int | None = None, **train: int) -> argparse.Namespace:
    """The verb's arguments for a run into ``out`` (data and the held-out set set here)."""
    argv = ["--data", "fashion-mnist:train", "--out", str(out), "--val-data", "fashion-mnist:test",
            "--val-limit", "10000", "--ckpt-every", "0", "--device", "cpu", *extra]
    if steps is not None:
        argv += ["--steps", str(steps)]
    for k, v in train.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return vit_parser().parse_args(argv)


def train(args: argparse.Namespace, callbacks=(), resume: bool = False):
    """What ``pixseq train vit`` runs (:func:`pixseq.cli.train_vit.run`), with callbacks."""
    from pixseq.classifiers.vit_train import RUN_KEYS, train_vit
    from pixseq.cli.train_args import given, train_options

    return train_vit(**given(args, RUN_KEYS), out=args.out, train=train_options(args), device=args.device,
                     resume=resume, force=not resume, seed=args.seed, weights_dir=args.weights_dir, offline=True,
                     callbacks=callbacks)


class _StepClock:
    def __init__(self) -> None:
        self.marks: list[float] = []

    def on_step_end(self, trainer, step: int, record: dict) -> None:
        self.marks.append(time.process_time())


def calibrate(extra: list[str], steps: int) -> tuple[float, float]:
    """(CPU seconds of setup, median CPU seconds per training step) of the recipe, from a
    throwaway run of ``steps`` steps (the first few, allocations and warm caches, left out)."""
    clock = _StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        args = parse_vit_args(extra, Path(tmp) / "calib", steps=steps, warmup_steps=1)  # the step cost only
        c0 = time.process_time()
        train(args, [clock])
    deltas = [b - a for a, b in zip(clock.marks, clock.marks[1:])][3:]
    per_step = statistics.median(deltas)
    setup = clock.marks[0] - c0 - per_step
    return max(0.0, setup), per_step


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def plot(curves: list[tuple[str, list[dict]]], path: Path, budget_min: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, curve in curves:
        ax.plot([p["cpu_min"] for p in curve], [100 * p["test_accuracy"] for p in curve], "o-", label=label)
    ax.axhline(92, color="grey", ls="--", lw=1, label="92 % target")
    ax.set_xlabel("process CPU time, 1 thread (min)")
    ax.set_ylabel("Fashion-MNIST test accuracy (%), 10 000 images")
    ax.set_xlim(0, budget_min * 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(a: argparse.Namespace, extra: list[str]) -> None:
    torch.set_num_threads(1)
    budget = a.cpu_minutes * 60
    points = ([] if a.points == "none" else
              sorted({float(x) * 60 for x in a.points.split(",") if x.strip()} if a.points
                     else {budget * f for f in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.85)}))
    parsed = vit_parser().parse_args(["--out", "x", *extra])
    state_path = a.out.parent / f"{a.out.name}.bench-state.json"
    resumed = json.loads(state_path.read_text()) if a.resume else None
    calib = None
    extra_steps: list[str] = []
    if a.resume:  # the run's own steps (from its checkpoint)
        steps = None
    elif parsed.train_steps is not None:
        steps = parsed.train_steps
    elif a.no_calibrate:  # the recipe's (or the verb's default) steps
        from pixseq.classifiers.vit_train import default_train_config

        steps = default_train_config(parsed.recipe).steps
    else:
        setup, per_step = calibrate(extra, a.calibrate)
        steps = max(1, int((budget - setup) * SAFETY / per_step))
        calib = {"setup_cpu_s": round(setup, 2), "cpu_s_per_step": round(per_step, 4), "steps": steps}
        print(f"calibration: setup {setup:.1f} CPU s, {per_step * 1000:.1f} CPU ms a step -> {steps} steps",
              flush=True)
        extra_steps = ["--steps", str(steps)]
    args = parse_vit_args([*extra, *extra_steps], a.out)
    command = "pixseq train vit " + " ".join(shlex.quote(x) for x in [
        "--data", "fashion-mnist:train", "--out", str(a.out), "--val-data", "fashion-mnist:test",
        "--val-limit", "10000", *extra, *extra_steps])
    print(f"{a.label or a.out}: {command}\n  budget {a.cpu_minutes:g} CPU min, 1 thread", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    curve = CpuCurve(time.process_time(), [p for p in points if p < budget], budget, state_path, resumed)
    result = train(args, [curve], resume=a.resume)
    steps = result.train_config.steps if steps is None else steps
    if not curve.step_cpu:
        print(f"error: the run in {a.out} had no steps left to train (finished already?)", file=sys.stderr)
        sys.exit(2)
    last = result.history[-1]
    final_cpu = curve.step_cpu[-1]
    curve.add_point(curve.last_step, final_cpu, last, result.train_config.batch_size, curve.n_images)
    s = result.settings
    record = {"label": a.label or str(a.out), "command": command, "budget_cpu_min": a.cpu_minutes,
              "steps_planned": steps, "steps_done": curve.last_step, "stopped_by_budget": curve.stopped_at,
              "final_test_accuracy": last["eval/accuracy"], "train_cpu_min": round(final_cpu / 60, 3),
              "eval_cpu_min": round((curve.eval_before + curve.eval_cpu) / 60, 3),
              "wall_min": round(curve.wall() / 60, 2), "resumed": a.resume,
              "params": result.model.num_params(), "calibration": calib, "machine": machine(),
              # system time is where a loaded machine shows: direct memory reclaim is charged to
              # the process that allocates (a run at 1 GB free took 2.5x the CPU per step)
              "process_user_s": round(os.times().user, 1), "process_system_s": round(os.times().system, 1),
              "settings": {k: v for k, v in s.items() if k not in ("data", "val_data", "val_limit", "limit")},
              "train_config": {k: getattr(result.train_config, k) for k in
                               ("steps", "batch_size", "lr", "weight_decay", "warmup_steps", "min_lr_ratio",
                                "ema_decay", "precision", "compile")},
              "curve": curve.curve}
    out_json = a.json or a.out / "curve.json"
    out_png = a.png or a.out / "curve.png"
    out_json.write_text(json.dumps(record, indent=1))
    plot([(record["label"], curve.curve)], out_png, a.cpu_minutes)
    cut = f" (stopped by the budget at step {curve.stopped_at} of {steps})" if curve.stopped_at else ""
    print(f"\n{record['label']}: {record['final_test_accuracy']:.2%} test accuracy after {final_cpu / 60:.2f} CPU min "
          f"(1 thread), {curve.last_step} steps{cut}; evaluations took {record['eval_cpu_min']:.2f} CPU min more")
    print_curve(record)
    print(f"wrote {out_json}, {out_png}, model {a.out}")


def print_curve(r: dict) -> None:
    print(f"{'CPU min':>8s} {'wall min':>8s} {'step':>6s} {'epochs':>6s} {'test acc':>9s}")
    for p in r["curve"]:
        print(f"{p['cpu_min']:8.2f} {p['wall_min']:8.2f} {p['step']:6d} {p['epochs']:6.2f} {p['test_accuracy']:9.4f}")


def table(paths: list[Path], png: Path | None) -> None:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    print(f"{'run':28s} {'budget':>6s} {'params':>7s} {'steps':>6s} {'ms/step':>7s} {'CPU min':>7s} "
          f"{'test acc':>8s}   (process CPU, 1 thread; accuracy on the 10 000 test images)")
    for r in runs:
        ms = 60000 * r["train_cpu_min"] / max(1, r["steps_done"])
        print(f"{r['label'][:28]:28s} {r['budget_cpu_min']:6g} {r['params'] / 1e6:6.2f}M {r['steps_done']:6d} "
              f"{ms:7.0f} {r['train_cpu_min']:7.2f} {r['final_test_accuracy']:8.4f}")
    if png is not None:
        plot([(r["label"], r["curve"]) for r in runs], png, max(r["budget_cpu_min"] for r in runs))
        print(f"wrote {png}")


def main() -> None:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-minutes", type=float, default=20.0, help="training budget in process CPU minutes")
    ap.add_argument("--points", default=None, help="CPU minutes at which to evaluate, comma-separated "
                                                   "(default: 5, 10, 20, 30, 50, 70 and 85 %% of the budget; none: "
                                                   "only the end)")
    ap.add_argument("--out", type=Path, default=None, help="model directory (and curve.json / curve.png)")
    ap.add_argument("--label", default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--calibrate", type=int, default=25, help="steps timed to plan the steps (without --steps)")
    ap.add_argument("--resume", action="store_true",
                    help="go on with an interrupted run in --out (its checkpoint and clocks; give the same options)")
    ap.add_argument("--no-calibrate", action="store_true",
                    help="without --steps, train the recipe's own steps (the budget still caps them)")
    ap.add_argument("--table", type=Path, nargs="+", default=None, help="print these curve.json side by side")
    a = ap.parse_args(argv)
    if a.table:
        table(a.table, a.png)
        return
    if a.out is None or a.cpu_minutes <= 0 or a.calibrate < 6:
        print("error: --out is required, --cpu-minutes must be > 0 and --calibrate >= 6", file=sys.stderr)
        sys.exit(2)
    run(a, extra)


if __name__ == "__main__":
    main()
