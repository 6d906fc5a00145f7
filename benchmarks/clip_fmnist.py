"""Text to image on Fashion-MNIST, judged by an independent classifier.

For each of the ten class prompts ("a photo of a sneaker." ...), ``--seeds`` images are
generated with ``pixseq.guidance`` (a Fashion-MNIST VQGAN, the LiT guide trained with
``pixseq train clip``) and classified by a classifier that never saw the guide: the ViT in
``--classifier`` when that folder exists (``pixseq train vit``), else a small CNN trained here
on the Fashion-MNIST training set (its test accuracy is printed). Prints the table of the
share of each prompt's images classified as the prompted class, writes a grid (one row per
prompt) and a JSON record.

    flock /tmp/pixseq-heavy.lock python3 benchmarks/clip_fmnist.py --vqgan runs/vqgan-fm \
        --clip runs/lit-fm --out clip-fmnist
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
from pixseq.guidance.vqgan_clip import LatentDecoder, embed_targets, vqgan_clip


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


def classifier(path: Path, epochs: int = 2):
    """(a function images (B, 3, 28, 28) -> class ids, its description)."""
    if (path / "config.json").is_file():
        from pixseq.classifiers.predict import predict

        vit = load_model(path, "vit")
        acc = getattr(vit, "pretrained_meta", {}).get("held_out_accuracy")
        return (lambda im: predict(vit, im).argmax(1)), f"ViT {path} (held-out accuracy {acc})"
    net, acc = train_cnn(epochs)
    return (lambda im: net(im.mean(1, keepdim=True)).argmax(1)), f"small CNN trained here (test accuracy {acc:.1%})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vqgan", type=Path, required=True)
    ap.add_argument("--clip", type=Path, required=True)
    ap.add_argument("--classifier", type=Path, default=Path("/work/models/vit-fmnist"))
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--cnn-epochs", type=int, default=2, help="epochs of the fallback CNN")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--cutn", type=int, default=16)
    ap.add_argument("--template", default="a photo of a {}.")
    ap.add_argument("--out", type=Path, default=Path("clip-fmnist"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    vqgan, guide = load_model(args.vqgan, "vqgan"), load_guide(args.clip)
    decoder = LatentDecoder(vqgan)
    classify, what = classifier(args.classifier, args.cnn_epochs)
    rows, images, t0 = {}, [], time.perf_counter()
    for c, name in enumerate(FASHION_MNIST_NAMES):
        prompt = args.template.format(name)
        targets = embed_targets(guide, parse_prompts(prompt))
        batch = []
        for seed in range(args.seeds):
            cfg = generate_config(steps=args.steps, cutn=args.cutn, cut_batch=args.cutn, seed=seed)
            batch.append(vqgan_clip(decoder, guide, targets, (28, 28), cfg).image)
        batch = torch.stack(batch)
        with torch.no_grad():
            pred = classify(batch)
        rows[prompt] = {"hits": int((pred == c).sum()), "of": args.seeds,
                        "predicted": [FASHION_MNIST_NAMES[int(p)] for p in pred]}
        images.append(batch)
        print(f"{prompt:34s} {rows[prompt]['hits']}/{args.seeds}  ({', '.join(rows[prompt]['predicted'])})", flush=True)
    wall = time.perf_counter() - t0
    from torchvision.utils import make_grid

    from pixseq.io import save_image, to_uint8

    grid = make_grid(torch.cat(images), nrow=args.seeds, padding=2, pad_value=1.0)
    save_image(to_uint8(F.interpolate(grid[None], scale_factor=3, mode="nearest")[0]), args.out / "grid.png")
    worst = min(r["hits"] / r["of"] for r in rows.values())
    print(f"classifier: {what}; {len(rows) * args.seeds} images in {wall:.0f} s; "
          f"worst prompt {worst:.0%} (target >= 70 %), mean {np.mean([r['hits'] / r['of'] for r in rows.values()]):.0%}")
    (args.out / "results.json").write_text(json.dumps({"classifier": what, "steps": args.steps, "cutn": args.cutn,
                                                        "wall_s": wall, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
