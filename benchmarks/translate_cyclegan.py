"""CycleGAN target on a Fashion-MNIST class pair: >= 80 % of translated held-out images classified
as the target class, and FID(translated A, real B) well below FID(A, B).

Trains ``pixseq.gans.translate_train.train_cyclegan`` on the training split's
``fashion-mnist:Sneaker`` (A) and ``fashion-mnist:Ankle boot`` (B), 6 000 images each, 28 px,
ResNet generators (width ``--width``, ``--blocks`` blocks, instance norm), PatchGAN Ds (width
32, 2 layers), LSGAN, cycle x 10, identity x 0.5, 50-image pools, Adam 2e-4 / beta1 0.5,
batch ``--batch``, for ``--cpu-min`` minutes of process CPU time on ONE thread (constant rate:
the run is cut by CPU time). Held out: the first ``--held-out`` test images of each class.
The zoo's ``vit-fm`` (Fashion-MNIST ViT, 83.7 % test accuracy) classifies the translations;
its rate on the real images of each class is printed beside it as the ceiling. FID uses the
TF Inception-v3 port (few images: biased upwards, the same for every row)::

    python benchmarks/translate_cyclegan.py --out /tmp/cyclegan-bench
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from _translate_common import CPUBudget, Scores, run_arms, to_tensor, to_uint8, write_json

A, B = "Sneaker", "Ankle boot"


def train_arm(args) -> None:
    from pixseq.gans.translate_train import train_cyclegan

    torch.set_num_threads(1)
    Path(args.arm_out).parent.mkdir(parents=True, exist_ok=True)  # the overwrite policy creates only the last level
    budget = CPUBudget(args.cpu_min * 60)
    result = train_cyclegan(f"fashion-mnist:{A}", args.arm_out, data_b=f"fashion-mnist:{B}", force=True,
                            callbacks=[budget], seed=0,
                            train={"steps": 1_000_000, "batch_size": args.batch, "ckpt_every": 1_000_000,
                                   "log_every": 100},
                            width=args.width, blocks=args.blocks, disc_width=32, disc_layers=2)
    write_json(Path(args.arm_out) / "budget.json", {**budget.summary(), "health": result.extra["health"]})


def _rate(vit, images: torch.Tensor, name: str) -> float:
    probs = vit.predict(images)
    return float((probs.argmax(1) == vit.class_names.index(name)).float().mean())


def evaluate(args) -> dict:
    import pixseq
    from pixseq.data import load_data

    torch.set_num_threads(args.eval_threads)
    folder = Path(args.out) / "cyclegan"
    model = pixseq.load_model(str(folder))
    vit = pixseq.load_model("zoo:vit-fm")
    ia = load_data(f"fashion-mnist:test:{A}", limit=args.held_out).images
    ib = load_data(f"fashion-mnist:test:{B}", limit=args.held_out).images
    a, b = to_tensor(ia), to_tensor(ib)
    with torch.no_grad():
        fake_b, fake_a = model.translate(a, "AtoB"), model.translate(b, "BtoA")
        rec_a, rec_b = model.translate(fake_b, "BtoA"), model.translate(fake_a, "AtoB")
    fake_b, fake_a = to_tensor(to_uint8(fake_b)), to_tensor(to_uint8(fake_a))  # the 8-bit images it would write
    scores = Scores()
    c0 = time.process_time()
    fa, fb, ffake = scores.features(ia), scores.features(ib), scores.features(to_uint8(fake_b))
    return {"held_out": len(ia),
            "vit_real_a_as_a": _rate(vit, a, A), "vit_real_b_as_b": _rate(vit, b, B),
            "vit_real_a_as_b": _rate(vit, a, B),
            "vit_fake_b_as_b": _rate(vit, fake_b, B), "vit_fake_a_as_a": _rate(vit, fake_a, A),
            "fid_a_b": scores.fid(fb, fa), "fid_fake_b_b": scores.fid(fb, ffake),
            "cycle_a_mae": float((rec_a - a).abs().mean()), "cycle_b_mae": float((rec_b - b).abs().mean()),
            "change_a_mae": float((fake_b - a).abs().mean()),
            "eval_cpu_min": round((time.process_time() - c0) / 60, 2),
            **json.loads((folder / "budget.json").read_text())}


def grid(out: Path, args) -> None:
    """A PNG: first row held-out Sneakers, second their translations (for the eye)."""
    import pixseq
    from PIL import Image

    from pixseq.data import load_data

    model = pixseq.load_model(str(out / "cyclegan"))
    a = to_tensor(load_data(f"fashion-mnist:test:{A}", limit=16).images)
    rows = torch.cat([a, model.translate(a, "AtoB")])
    im = np.concatenate([np.concatenate(list(r), axis=1) for r in np.split(np.stack(to_uint8(rows)), 2)], axis=0)
    Image.fromarray(im).resize((im.shape[1] * 2, im.shape[0] * 2), Image.NEAREST).save(out / "sneaker_to_boot.png")


def table(r: dict, args) -> str:
    ok_cls, ok_fid = r["vit_fake_b_as_b"] >= 0.8, r["fid_fake_b_b"] < 0.5 * r["fid_a_b"]
    lines = [(f"CycleGAN fashion-mnist {A} (A) <-> {B} (B), 28 px, ResNet-{args.blocks} width {args.width}, batch "
              f"{args.batch}: {r['steps']} steps in {r['train_cpu_min']:.2f} CPU-min on 1 thread "
              f"({r['train_wall_min']:.1f} wall-min); {r['held_out']} held-out test images per class"),
             (f"vit-fm: real A as {A} {r['vit_real_a_as_a']:.1%}, real B as {B} {r['vit_real_b_as_b']:.1%}, "
              f"real A as {B} {r['vit_real_a_as_b']:.1%}"),
             f"vit-fm: G(A) as {B} {r['vit_fake_b_as_b']:.1%}   F(B) as {A} {r['vit_fake_a_as_a']:.1%}",
             f"FID(A, B) {r['fid_a_b']:.1f}   FID(G(A), B) {r['fid_fake_b_b']:.1f}",
             (f"held-out cycle MAE |F(G(a)) - a| {r['cycle_a_mae']:.4f}, |G(F(b)) - b| {r['cycle_b_mae']:.4f}; "
              f"|G(a) - a| {r['change_a_mae']:.4f}; health warnings: {len(r['health'])}"),
             (f"target >= 80 % as {B}: {'met' if ok_cls else 'NOT met'}; FID(G(A), B) below half FID(A, B): "
              f"{'met' if ok_fid else 'NOT met'}")]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/cyclegan-bench")
    ap.add_argument("--cpu-min", type=float, default=8.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--held-out", type=int, default=300)
    ap.add_argument("--eval-threads", type=int, default=1)
    ap.add_argument("--arm", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--arm-out", help=argparse.SUPPRESS)
    ap.add_argument("--eval-only", action="store_true")
    args = ap.parse_args()
    if args.arm:
        return train_arm(args)
    out = Path(args.out)
    if not args.eval_only:
        run_arms(__file__, [["--arm", "--arm-out", str(out / "cyclegan"), "--cpu-min", str(args.cpu_min),
                             "--batch", str(args.batch), "--width", str(args.width), "--blocks", str(args.blocks)]],
                 out / "logs")
    res = evaluate(args)
    write_json(out / "results.json", res)
    grid(out, args)
    print(table(res, args))


if __name__ == "__main__":
    main()
