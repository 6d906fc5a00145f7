"""ViT training and inference images/s: pixseq's ViT against timm's VisionTransformer, same configuration.

Two settings: ``micro`` at 28 px, patch 4, 10 classes, batch 128 (``pixseq train vit``'s
defaults: dim 64, depth 6, 2 heads, MLP ratio 2) and ``tiny`` at 224 px, patch 16, 1000
classes, a small batch (dim 192, depth 12, 3 heads, MLP ratio 4). timm's model is built with
the same dim / depth / heads / MLP ratio / patch / image size / classes, class-token
pooling, no dropout or drop path; its weights are converted into pixseq's ViT
(:func:`pixseq.classifiers.convert.timm_vit_state`), so both hold the same parameters (their
counts are printed and must be equal) and give the same logits (the largest difference is
printed). fp32, one batch of random images: pixseq's model takes them in [0, 1] and
normalises them itself (mean = std = 0.5), timm's is given them normalised.

A training step is ``zero_grad``, forward, cross-entropy, backward and a fused AdamW step
(the Trainer's optimizer), the same for both; inference is a forward in eval mode under
``torch.inference_mode``. Each round times one call of every contender in turn (so a noisy
stretch of the shared machine hits all of them; the order reverses every other round); the median over rounds is reported, with
the fastest call, and ratios pixseq / timm in images/s (> 1: pixseq is faster).

The clock (``--clock``, default ``auto``): on one thread the process's CPU time
(``time.process_time``), which a busy shared machine does not inflate by the time the
process waits for a core (with a load of 6 on 2 cores wall-clock calls varied 2x and the
fastest-call ratios swung from 0.5 to 1.2); with more threads the wall clock, as CPU time
would add the threads up::

    python benchmarks/vit_throughput.py [--settings micro,tiny] [--rounds 9] [--threads 1] [--clock auto|cpu|wall]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

#: name -> (preset, image size, patch, classes, default batch)
SETTINGS = {"micro": ("micro", 28, 4, 10, 128), "tiny": ("tiny", 224, 16, 1000, 8)}


def build_pair(preset: str, image_size: int, patch: int, classes: int):
    """timm's VisionTransformer and pixseq's ViT holding the same (timm-initialised) weights."""
    from timm.models.vision_transformer import VisionTransformer

    from pixseq.classifiers.convert import timm_vit_state
    from pixseq.classifiers.vit import VIT_PRESETS, ViT

    p = VIT_PRESETS[preset]
    torch.manual_seed(0)
    theirs = VisionTransformer(img_size=image_size, patch_size=patch, num_classes=classes, global_pool="token",
                               embed_dim=p["dim"], depth=p["depth"], num_heads=p["heads"],
                               mlp_ratio=p["mlp_ratio"], class_token=True)
    converted = timm_vit_state(theirs.state_dict(), "timm", heads=p["heads"])
    ours = ViT(converted.config)
    ours.load_state_dict(converted.state, strict=True)
    cfg = ours.config
    same = (cfg.dim, cfg.depth, cfg.heads, cfg.mlp_ratio, cfg.patch_size, cfg.image_size, cfg.num_classes, cfg.pool)
    if same != (p["dim"], p["depth"], p["heads"], p["mlp_ratio"], patch, image_size, classes, "cls"):
        sys.exit(f"error: the converted configuration differs from the {preset} preset: {same}")
    return ours, theirs


def train_step(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return run


def infer(model: torch.nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.inference_mode():
            model(x)
    return run


def contenders(name: str, batch: int) -> dict[str, Callable[[], None]]:
    """The four timed calls of one setting (training / inference x pixseq / timm)."""
    preset, size, patch, classes, _ = SETTINGS[name]
    ours, theirs = build_pair(preset, size, patch, classes)
    n_ours, n_theirs = (sum(p.numel() for p in m.parameters()) for m in (ours, theirs))
    g = torch.Generator().manual_seed(1)
    images = torch.rand(batch, 3, size, size, generator=g)
    normed = (images - 0.5) / 0.5
    labels = torch.randint(0, classes, (batch,), generator=g)
    ours.eval(), theirs.eval()
    with torch.inference_mode():
        diff = float((ours(images) - theirs(normed)).abs().max())
    print(f"{name}: {size} px, patch {patch}, dim {ours.config.dim}, depth {ours.config.depth}, "
          f"{ours.config.heads} heads, MLP ratio {ours.config.mlp_ratio}, {classes} classes, batch {batch}: "
          f"parameters pixseq {n_ours:,} / timm {n_theirs:,}; largest logit difference {diff:.1e}")
    if n_ours != n_theirs:
        sys.exit(f"error: {name}: the parameter counts differ ({n_ours} vs {n_theirs})")
    fns: dict[str, Callable[[], None]] = {}
    for who, model, x in (("pixseq", ours, images), ("timm", theirs, normed)):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=True)
        fns[f"{name} train {who}"] = _in_mode(model, True, train_step(model, opt, x, labels))
        fns[f"{name} infer {who}"] = _in_mode(model, False, infer(model, x))
    return fns


def _in_mode(model: torch.nn.Module, training: bool, fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        model.train(training)
        fn()
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", default="micro,tiny", help="comma-separated: micro, tiny")
    ap.add_argument("--micro-batch", type=int, default=SETTINGS["micro"][4])
    ap.add_argument("--tiny-batch", type=int, default=SETTINGS["tiny"][4])
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=["auto", "cpu", "wall"], default="auto",
                    help="auto: process CPU time on one thread, wall-clock time otherwise")
    args = ap.parse_args()
    names = [s.strip() for s in args.settings.split(",") if s.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown or not names or args.rounds < 1 or args.threads < 1 or min(args.micro_batch, args.tiny_batch) < 1:
        print(f"error: --settings must name {' and/or '.join(SETTINGS)}, --rounds, --threads and batches must be "
              f">= 1 (got {args.settings!r})", file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(args.threads)
    clock_name = args.clock if args.clock != "auto" else "cpu" if args.threads == 1 else "wall"
    clock = time.process_time if clock_name == "cpu" else time.perf_counter
    batches = {"micro": args.micro_batch, "tiny": args.tiny_batch}
    fns: dict[str, Callable[[], None]] = {}
    for name in names:
        fns.update(contenders(name, batches[name]))
    for fn in fns.values():  # warm-up: allocations, kernel choices, optimizer state
        fn(), fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    order = list(fns)
    for r in range(args.rounds):
        for k in order if r % 2 == 0 else order[::-1]:  # who follows whom alternates too
            fn = fns[k]
            t0 = clock()
            fn()
            times[k].append(clock() - t0)
    print(f"\n{'setting':8s} {'pass':6s} {'pixseq img/s':>13s} {'timm img/s':>11s} {'ratio (median)':>15s} "
          f"{'ratio (fastest)':>16s}   (fp32, {args.threads} thread(s), {clock_name} clock, median of {args.rounds} "
          f"interleaved rounds)")
    for name in names:
        for kind in ("train", "infer"):
            a, b = times[f"{name} {kind} pixseq"], times[f"{name} {kind} timm"]
            batch = batches[name]
            med_a, med_b = statistics.median(a), statistics.median(b)
            print(f"{name:8s} {kind:6s} {batch / med_a:13.1f} {batch / med_b:11.1f} {med_b / med_a:15.3f} "
                  f"{min(b) / min(a):16.3f}")


if __name__ == "__main__":
    main()
