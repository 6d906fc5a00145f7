"""Text to image on Fashion-MNIST, judged by an independent classifier.

For each of the ten class prompts ("a photo of a sneaker." ...), ``--seeds`` images are
generated with ``pixseq.guidance`` (a Fashion-MNIST VQGAN, the LiT guide trained with
``pixseq train clip``; by default the zoo's ``vqgan-fm`` and ``lit-fm``) and classified by a
classifier that never saw the guide: the ViT in ``--classifier`` (a model folder or a zoo
name; default the zoo's ``vit-fm``, ``pixseq train vit``, 83.7 % held out) when it exists,
else a small CNN trained here on the Fashion-MNIST training set (its test accuracy is
printed). The classifier sees each image as written (8-bit), as a user would. Prints the table of the
share of each prompt's images classified as the prompted class, writes a grid (one row per
prompt) and a JSON record.

    OMP_NUM_THREADS=1 python3 benchmarks/clip_fmnist.py --jobs 5 --out clip-fmnist
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pixseq.checkpoint import load_model
from pixseq.guidance.clip import load_guide
from pixseq.guidance.lit_train import FASHION_MNIST_NAMES
from pixseq.guidance.prompts import parse_prompts
from pixseq.guidance.text_to_image import generate_config
from pixseq.guidance.vqgan_clip import (
    LatentDecoder,
    embed_targets,
    encode_init,
    vqgan_clip,
)
from pixseq.io import save_image, to_uint8


def small_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 49, 128), nn.ReLU(), nn.Linear(128, 10))


def train_cnn(epochs: int = 2) -> tuple[nn.Module, float]:
    """A small CNN on the Fashion-MNIST training set (grey, [0, 1]); its test accuracy."""
    from pixseq.data import load_fashion_mnist

    def arrays(split):
        s = load_fashion_mnist(split)
        return torch.from_numpy(np.stack(s.images)[..., 0]).float().div(255)[:, None], torch.from_numpy(s.labels)

    (x, y), (xt, yt) = arrays("train"), arrays("test")
    torch.manual_seed(0)
    net = small_cnn()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        acc = float((torch.cat([net(xt[i:i + 1000]).argmax(1) for i in range(0, len(xt), 1000)]) == yt).float().mean())
    return net, acc


def classifier(path: str, epochs: int = 2):
    """(a function images (B, 3, 28, 28) -> class ids, its description)."""
    from pixseq.checkpoint import resolve_model_path

    if (resolve_model_path(path) / "config.json").is_file():
        from pixseq.classifiers.predict import predict

        vit = load_model(path, "vit")
        acc = getattr(vit, "pretrained_meta", {}).get("held_out_accuracy")
        return (lambda im: predict(vit, im).argmax(1)), f"ViT {path} (held-out accuracy {acc})"
    net, acc = train_cnn(epochs)
    return (lambda im: net(im.mean(1, keepdim=True)).argmax(1)), f"small CNN trained here (test accuracy {acc:.1%})"


def generate_class(job: tuple) -> tuple[int, torch.Tensor, float]:
    """``seeds`` images of one class prompt, 8-bit as written, ``(seeds, 3, 28, 28)`` in [0, 1],
    and this process's CPU seconds for them (a worker of ``--jobs``: one thread each)."""
    c, vqgan_src, clip_src, template, seeds, steps, cutn, recipe, init = job
    torch.set_num_threads(1)
    c0 = time.process_time()
    vqgan = load_model(vqgan_src, "vqgan")
    decoder, guide = LatentDecoder(vqgan), load_guide(clip_src)
    # "black": start from the latent of an all-black image (`pixseq generate --init-image
    # black.png`, no init weight), Fashion-MNIST's background; "random": random codes
    start = encode_init(vqgan, torch.zeros(1, 3, 28, 28)) if init == "black" else None
    targets = embed_targets(guide, parse_prompts(template.format(FASHION_MNIST_NAMES[c])))
    images = []
    for seed in range(seeds):
        cfg = generate_config(steps=steps, cutn=cutn, cut_batch=cutn, seed=seed, **recipe)
        images.append(to_uint8(vqgan_clip(decoder, guide, targets, (28, 28), cfg, start).image))
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(255)
    return c, batch, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vqgan", default="zoo:vqgan-fm")
    ap.add_argument("--clip", default="zoo:lit-fm")
    ap.add_argument("--classifier", default="zoo:vit-fm")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--cnn-epochs", type=int, default=2, help="epochs of the fallback CNN")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--cutn", type=int, default=16)
    ap.add_argument("--lr", type=float, default=None, help="default: pixseq generate's")
    ap.add_argument("--tv-weight", type=float, default=None, help="default: pixseq generate's")
    ap.add_argument("--cut-pow", type=float, default=None, help="default: pixseq generate's")
    ap.add_argument("--classes", default="", help="comma-separated class ids to run (default: all ten)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (one class each at a time, 1 thread)")
    ap.add_argument("--init", choices=("random", "black"), default="random",
                    help="start latent: random codes, or an all-black image's (the data's background)")
    ap.add_argument("--template", default="a photo of a {}.")
    ap.add_argument("--out", type=Path, default=Path("clip-fmnist"))
    ap.add_argument("--shots", type=Path, default=None, help="also copy the grid here")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    recipe = {k: v for k, v in (("lr", args.lr), ("tv_weight", args.tv_weight), ("cut_pow", args.cut_pow))
              if v is not None}
    cfg = generate_config(steps=args.steps, cutn=args.cutn, cut_batch=args.cutn, **recipe)
    classes = [int(c) for c in args.classes.split(",")] if args.classes else list(range(len(FASHION_MNIST_NAMES)))
    jobs = [(c, args.vqgan, args.clip, args.template, args.seeds, args.steps, args.cutn, recipe, args.init)
            for c in classes]
    classify, what = classifier(args.classifier, args.cnn_epochs)
    t0 = time.perf_counter()
    if args.jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(args.jobs) as pool:
            done = pool.map(generate_class, jobs, chunksize=1)
    else:
        done = [generate_class(j) for j in jobs]
    wall, cpu = time.perf_counter() - t0, sum(d[2] for d in done)
    rows, images = {}, []
    print(f"{'prompt':34s} hits   predicted by the classifier")
    for c, batch, _ in done:
        prompt = args.template.format(FASHION_MNIST_NAMES[c])
        with torch.no_grad():
            pred = classify(batch)
        rows[prompt] = {"hits": int((pred == c).sum()), "of": args.seeds,
                        "predicted": [FASHION_MNIST_NAMES[int(p)] for p in pred]}
        images.append(batch)
        print(f"{prompt:34s} {rows[prompt]['hits']}/{args.seeds}  ({', '.join(rows[prompt]['predicted'])})", flush=True)
    from torchvision.utils import make_grid

    grid = make_grid(torch.cat(images), nrow=args.seeds, padding=2, pad_value=1.0)
    save_image(to_uint8(F.interpolate(grid[None], scale_factor=3, mode="nearest")[0]), args.out / "grid.png")
    if args.shots is not None:
        args.shots.mkdir(parents=True, exist_ok=True)
        save_image(to_uint8(F.interpolate(grid[None], scale_factor=3, mode="nearest")[0]), args.shots / "grid.png")
    worst = min(r["hits"] / r["of"] for r in rows.values())
    print(f"classifier: {what}; {len(rows) * args.seeds} images, {args.steps} steps, {args.cutn} cut-outs, "
          f"lr {cfg.lr}, tv {cfg.tv_weight}, cut_pow {cfg.cutouts.cut_pow}, init {args.init}; {wall:.0f} s wall, "
          f"{cpu:.0f} CPU s in {min(args.jobs, len(jobs))} process(es) of 1 thread; "
          f"worst prompt {worst:.0%} (target >= 70 %), mean {np.mean([r['hits'] / r['of'] for r in rows.values()]):.0%}")
    (args.out / "results.json").write_text(json.dumps({"classifier": what, "steps": args.steps, "cutn": args.cutn,
                                                        "lr": cfg.lr, "tv_weight": cfg.tv_weight, "init": args.init,
                                                        "cutouts": vars(cfg.cutouts), "cpu_s": cpu,
                                                        "wall_s": wall, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
