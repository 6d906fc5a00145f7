"""pix2pix target: on a built-in paired task, held-out LPIPS and FID better than the same U-Net
trained with L1 alone, at an equal CPU budget; L1, PSNR and SSIM beside them.

Task ``edges:fashion-mnist`` (Canny edges from scikit-image -> the 28 px garment; the 60 000
training images, held out: the first ``--held-out`` test images). Both arms train
``pixseq.gans.translate_train.train_pix2pix`` with the same U-Net (width ``--width``, 5
downsamplings, batch norm, dropout 0.5), Adam 2e-4 / beta1 0.5, batch ``--batch``, for
``--cpu-min`` minutes of their own process CPU time on ONE thread each (the two arms run
side by side as child processes; each stops when its own budget is spent, so the L1-only
arm, which has no D, takes more steps). The adversarial arm adds a conditional PatchGAN
(width ``--width``, 2 layers: 34x34 patches on a 28 px image) with the official vanilla
(non-saturating BCE) loss and L1 x 100. The rate stays constant (the run is cut by CPU
time, not a step count, so the official linear decay never starts).

Scores on the held-out translations against the true images: L1, PSNR, SSIM (Wang et al.),
a perceptual distance (LPIPS with AlexNet when its backbone is present, else the LPIPS-style
EfficientNet-Lite0 distance; the table says which) and FID (the TF Inception-v3 port, the
held-out translations against the same held-out real images; few images, so FID is
biased upwards, equally for both arms)::

    python benchmarks/translate_pix2pix.py --out /tmp/p2p-bench
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from _translate_common import CPUBudget, Scores, pixel_scores, run_arms, to_tensor, to_uint8, write_json

TASK = "edges:fashion-mnist"


def train_arm(args) -> None:
    from pixseq.gans.translate_train import train_pix2pix

    torch.set_num_threads(1)
    Path(args.arm_out).parent.mkdir(parents=True, exist_ok=True)  # the overwrite policy creates only the last level
    budget = CPUBudget(args.cpu_min * 60)
    result = train_pix2pix(TASK, args.arm_out, force=True, callbacks=[budget], seed=0,
                           train={"steps": 1_000_000, "batch_size": args.batch, "ckpt_every": 1_000_000,
                                  "log_every": 100},
                           width=args.width, disc_width=args.width, disc_layers=2,
                           adversarial=args.arm == "pix2pix", limit=args.limit)
    write_json(Path(args.arm_out) / "budget.json", {**budget.summary(), "health": result.extra["health"]})


def evaluate(args) -> dict:
    import pixseq
    from pixseq.gans.pairs import load_pairs, resize_pairs

    torch.set_num_threads(args.eval_threads)
    held = load_pairs(f"{TASK}:test", args.held_out)
    a, b = resize_pairs(held, 28)
    src, real = to_tensor(a), to_tensor(b)
    scores = Scores()
    c0 = time.process_time()
    real_feats = scores.features(b)
    rows = {}
    for arm in ("l1-only", "pix2pix"):
        folder = Path(args.out) / arm
        model = pixseq.load_model(str(folder))
        torch.manual_seed(0)  # test-time dropout, if the model keeps it, draws from here
        with torch.no_grad():
            fake = torch.cat([model.translate(src[i:i + 256]) for i in range(0, len(src), 256)]).clamp(0, 1)
        fake = to_tensor(to_uint8(fake))  # scored as the 8-bit images it would write
        with torch.no_grad():
            perceptual = float(torch.cat([scores.perceptual(fake[i:i + 100], real[i:i + 100])
                                          for i in range(0, len(fake), 100)]).mean())
        rows[arm] = {**pixel_scores(fake, real), "perceptual": perceptual,
                     "fid": scores.fid(real_feats, scores.features(to_uint8(fake))),
                     **__import__("json").loads((folder / "budget.json").read_text())}
    return {"task": held.task, "held_out": len(b), "perceptual_metric": scores.perceptual_name, "rows": rows,
            "eval_cpu_min": round((time.process_time() - c0) / 60, 2)}


def table(res: dict, args) -> str:
    lines = [(f"pix2pix vs the same U-Net with L1 alone: {res['task']}, {res['held_out']} held-out test images, "
              f"{args.cpu_min:g} CPU-min each on 1 thread (batch {args.batch}, width {args.width})"),
             f"perceptual: {res['perceptual_metric']}",
             f"{'arm':<9} {'steps':>6} {'cpu-min':>7} {'L1':>7} {'PSNR dB':>8} {'SSIM':>6} {'percept':>8} {'FID':>7}"]
    for arm, r in res["rows"].items():
        lines.append(f"{arm:<9} {r['steps']:>6} {r['train_cpu_min']:>7.2f} {r['l1']:>7.4f} {r['psnr_db']:>8.2f} "
                     f"{r['ssim']:>6.3f} {r['perceptual']:>8.4f} {r['fid']:>7.2f}")
    g, b = res["rows"]["pix2pix"], res["rows"]["l1-only"]
    ok = g["perceptual"] < b["perceptual"] and g["fid"] < b["fid"]
    lines.append(f"target (pix2pix better perceptual distance and FID than L1 alone): {'met' if ok else 'NOT met'}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/p2p-bench")
    ap.add_argument("--cpu-min", type=float, default=5.0)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--limit", type=int, default=None, help="training images (default all 60 000)")
    ap.add_argument("--held-out", type=int, default=400)
    ap.add_argument("--eval-threads", type=int, default=1)
    ap.add_argument("--arm", choices=["pix2pix", "l1-only"], help=argparse.SUPPRESS)
    ap.add_argument("--arm-out", help=argparse.SUPPRESS)
    ap.add_argument("--eval-only", action="store_true", help="score the arms already trained in --out")
    args = ap.parse_args()
    if args.arm:
        return train_arm(args)
    out = Path(args.out)
    if not args.eval_only:
        common = ["--cpu-min", str(args.cpu_min), "--batch", str(args.batch), "--width", str(args.width)]
        common += ["--limit", str(args.limit)] if args.limit else []
        run_arms(__file__, [["--arm", arm, "--arm-out", str(out / arm), *common] for arm in ("pix2pix", "l1-only")],
                 out / "logs")
    res = evaluate(args)
    write_json(out / "results.json", res)
    print(table(res, args))


if __name__ == "__main__":
    main()
