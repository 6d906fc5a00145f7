"""The DCGAN target: Fashion-MNIST FID <= 25 against the 10 000 test images (10 000 samples,
the real Inception features) within 30 CPU minutes of training; FID against wall and CPU time.

Trains ``pixseq.gans`` DCGAN (28 px, grey, width 64, non-saturating loss, Adam 2e-4 / 0.5,
batch 64, EMA 0.999 of G) on the 60 000 training images on ONE thread until the process
has used ``--cpu-minutes`` of CPU time, snapshotting the EMA generator at ``--points``
evenly spaced CPU times. Then (``--eval-threads`` threads) FID/KID of ``--curve-samples``
samples of each snapshot and of ``--samples`` samples of the last one against the cached
test-set features (``benchmarks/gan_fid_reference.py`` computes them once). Run under the
heavy lock::

    flock /tmp/pixseq-heavy.lock python benchmarks/gan_fid_target.py --out /tmp/gan-target

Writes ``OUT/results.json`` and ``OUT/fid_curve.png``; the final generator is a ``gan``
model directory ``OUT/model`` (``pixseq sample --model OUT/model``).
"""
from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch


class Budget:
    """Stop training after ``cpu_s`` seconds of process CPU time; snapshot G at ``points`` marks."""

    def __init__(self, cpu_s: float, points: int, folder: Path | None = None) -> None:
        self.c0, self.w0 = time.process_time(), time.perf_counter()
        self.cpu_s, self.marks = cpu_s, [cpu_s * (i + 1) / points for i in range(points)]
        self.snapshots: list[dict] = []
        self.folder = folder  # snapshots also saved here, so that --eval-only can score them later

    def on_step_end(self, trainer, step: int, record: dict) -> None:
        cpu = time.process_time() - self.c0
        if self.marks and cpu >= self.marks[0]:
            self.marks.pop(0)
            ema = trainer.ema_state()
            state = ema["generator"] if ema else trainer.modules["generator"].state_dict()
            self.snapshots.append({"step": step, "cpu_s": cpu, "wall_s": time.perf_counter() - self.w0,
                                   "state": copy.deepcopy({k: v.cpu() for k, v in state.items()})})
            if self.folder is not None:
                self.folder.mkdir(parents=True, exist_ok=True)
                torch.save(self.snapshots[-1], self.folder / f"snapshot-{len(self.snapshots)}.tmp")
                (self.folder / f"snapshot-{len(self.snapshots)}.tmp").replace(
                    self.folder / f"snapshot-{len(self.snapshots)}.pt")
        if cpu >= self.cpu_s and step < trainer.config.steps:
            trainer.config.steps = step  # the loop's condition: no more steps


def train(args) -> tuple[object, Budget, list[dict]]:
    from pixseq.data import load_data
    from pixseq.gans.train import build_gan, default_gan_train_config, fit_gan
    import dataclasses

    torch.set_num_threads(1)
    data = load_data("fashion-mnist:train")
    model, disc = build_gan(28, 1, "dcgan", width=args.width, disc_width=args.width, seed=0)
    tc = dataclasses.replace(default_gan_train_config(), steps=100_000, batch_size=64, ckpt_every=0, log_every=100,
                             ema_decay=0.999)
    budget = Budget(args.cpu_minutes * 60, args.points, Path(args.out) / "snapshots")
    model, history, monitor = fit_gan(model, disc, np.stack(data.images), data.labels, Path(args.out) / "model", tc,
                                      "cpu", loss="ns", callbacks=[budget], health=True)
    return model, budget, [f"step {s}: {m}" for s, _, m in (monitor.warnings if monitor else [])]


def saved_run(out: Path) -> tuple[object, Budget, list[str]]:
    """The final model, the snapshots and the warnings an earlier training run saved in ``out``."""
    from pixseq.checkpoint import load_model

    budget = Budget(0, 0)
    paths = sorted((out / "snapshots").glob("snapshot-*.pt"), key=lambda p: int(p.stem.split("-")[1]))
    budget.snapshots = [torch.load(p, weights_only=True) for p in paths]
    budget.cpu_s = budget.snapshots[-1]["cpu_s"]
    warnings = json.loads((out / "warnings.json").read_text()) if (out / "warnings.json").is_file() else []
    return load_model(out / "model"), budget, warnings


def evaluate(model, budget: Budget, args) -> dict:
    from pixseq.gans.evaluate import sample_uint8, set_scores
    from pixseq.data import load_data
    from pixseq.metrics.feature_cache import cached_features, inception_features
    from pixseq.metrics.fid import load_fid_inception

    torch.set_num_threads(args.eval_threads)
    inception = load_fid_inception()
    t0, c0 = time.perf_counter(), time.process_time()
    real, hit = cached_features(inception, load_data("fashion-mnist:test", limit=args.reference_limit).images)
    out = {"inception": inception.source, "reference_cached": hit, "reference_s": time.perf_counter() - t0,
           "curve": []}
    for snap in budget.snapshots:
        model.load_state_dict(snap["state"])
        model.eval()
        n = args.samples if snap is budget.snapshots[-1] else args.curve_samples
        t = time.perf_counter()
        fake = inception_features(inception, sample_uint8(model, n, seed=1))
        scores = set_scores(real, fake, None, kid_subsets=10)
        out["curve"].append({"step": snap["step"], "train_cpu_min": snap["cpu_s"] / 60,
                             "train_wall_min": snap["wall_s"] / 60, "samples": n, **scores,
                             "eval_s": time.perf_counter() - t})
        print(json.dumps(out["curve"][-1]), flush=True)
    out["eval_cpu_s"] = time.process_time() - c0
    return out


def plot(curve: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([c["train_cpu_min"] for c in curve], [c["fid"] for c in curve], "o-", label="vs training CPU minutes")
    ax.plot([c["train_wall_min"] for c in curve], [c["fid"] for c in curve], "s--", label="vs training wall minutes")
    ax.axhline(25, color="grey", lw=0.8)
    ax.set(xlabel="minutes", ylabel="FID (test set)", title="DCGAN on Fashion-MNIST")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/gan-target")
    ap.add_argument("--cpu-minutes", type=float, default=30.0)
    ap.add_argument("--points", type=int, default=4)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--curve-samples", type=int, default=1000)
    ap.add_argument("--eval-threads", type=int, default=2)
    ap.add_argument("--reference-limit", type=int, default=None, help="fewer test images (smoke runs only)")
    ap.add_argument("--eval-only", action="store_true", help="score the snapshots an earlier run saved in OUT")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.eval_only:
        model, budget, warnings = saved_run(out)
    else:
        model, budget, warnings = train(args)
        (out / "warnings.json").write_text(json.dumps(warnings))
    last = budget.snapshots[-1] if budget.snapshots else None
    print(f"trained {last['step'] if last else 0} steps in {budget.cpu_s / 60:.1f} CPU min; warnings: {warnings}",
          flush=True)
    result = {"settings": vars(args), "health_warnings": warnings, **evaluate(model, budget, args)}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    plot(result["curve"], out / "fid_curve.png")
    final = result["curve"][-1]
    print(f"FINAL: FID {final['fid']:.2f} ({final['samples']} samples vs 10000 test images) after "
          f"{final['train_cpu_min']:.1f} CPU min / {final['train_wall_min']:.1f} wall min of training "
          f"(target <= 25: {'met' if final['fid'] <= 25 else 'NOT met'})")


if __name__ == "__main__":
    main()
