"""A small ESRGAN trained on the CPU: held-out PSNR of the L1 stage and of the GAN stage
against bicubic interpolation of the same inputs, and what the run cost.

    python benchmarks/upscale_train.py --steps 400 --threads 2

The built-in photos are split (every fourth one held out, written to folders), an RRDBNet
(4 blocks, 32 channels) is trained with ``pixseq train esrgan``'s recipe on 64 px HR crops of
bicubic pairs: the first half of the steps L1 only (the PSNR model, ``out/psnr``), then
perceptual + relativistic average GAN loss. Both models are scored on the centre 64 px crops
of the held-out photos (PSNR against the HR crop) with bicubic upsampling beside them.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("upscale-train.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from PIL import Image

    from pixseq.checkpoint import load_model
    from pixseq.data import builtin_photos
    from pixseq.upscale.train import SRPairs, ESRGANTask, train_esrgan

    photos = builtin_photos()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, (name, im) in enumerate(zip(photos.names, photos.images)):
            folder = tmp / ("val" if i % 4 == 3 else "train")
            folder.mkdir(exist_ok=True)
            Image.fromarray(im).save(folder / f"{i:02d}.png")
        t0, c0 = time.perf_counter(), time.process_time()
        result = train_esrgan(str(tmp / "train"), tmp / "run", train={"steps": args.steps, "batch_size": 8,
                                                                      "ckpt_every": 0, "log_every": 0},
                              val_data=str(tmp / "val"), patch=64)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        held = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((tmp / "val").iterdir())]
        scores = {}
        for stage, folder in (("psnr (L1 stage)", tmp / "run" / "psnr"), ("gan (final)", tmp / "run")):
            task = ESRGANTask(load_model(folder, "rrdbnet"), torch.nn.Identity(), torch.nn.Identity())
            data = SRPairs(held, 64, 4, "bicubic", 1, train=False)
            batch = {k: torch.stack([data[i][k] for i in range(len(data))]) for k in ("lr", "hr")}
            scores[stage] = task.eval_step(batch)
    report = {"steps": args.steps, "threads": args.threads, "wall_s": wall, "cpu_s": cpu,
              "held_out_images": len(held), "perceptual": result.model.pretrained_meta.get("perceptual"),
              "scores": scores}
    args.out.write_text(json.dumps(report, indent=2))
    print(f"{args.steps} steps ({args.steps // 2} L1, then GAN), {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU-min; "
          f"perceptual: {report['perceptual']}")
    for stage, s in scores.items():
        print(f"  {stage:16s} held-out PSNR {s['psnr_db']:.2f} dB   bicubic {s['bicubic_psnr_db']:.2f} dB")


if __name__ == "__main__":
    main()
