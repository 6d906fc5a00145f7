"""``pixseq probe``: linear probes on every layer of an iGPT (logistic regression, held-out accuracy)."""
from __future__ import annotations

import argparse

HELP = "linear-probe every layer of an igpt model on labelled data; prints accuracy per layer"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="igpt model directory")
    parser.add_argument("--data", required=True, help="labelled data: fashion-mnist[:train|test] or a folder of "
                                                      "class sub-folders")
    parser.add_argument("--limit", type=int, default=2000, help="use the first N images (default 2000)")
    parser.add_argument("--test-fraction", type=float, default=0.25, help="held-out share (default 0.25)")
    parser.add_argument("--batch-size", type=int, default=64, help="feature extraction batch (default 64)")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from pixseq.cli.common import resolve_device, seed_everything
    from pixseq.cli.sample import load_token_model
    from pixseq.data import load_data, resize_square
    from pixseq.errors import PixseqError
    from pixseq.probe import best_layer, chance_accuracy, format_table, linear_probe

    if args.limit is not None and args.limit < 8:
        raise PixseqError(f"--limit must be >= 8, got {args.limit}")
    if args.batch_size < 1:
        raise PixseqError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = resolve_device(args.device)
    seed_everything(args.seed)
    model = load_token_model(args.model, device)
    data = load_data(args.data, limit=args.limit)
    data.require_labels("a probe")
    H, W = model.image_size
    if H != W:
        raise PixseqError(f"probe supports square models, this one is {H}x{W}")
    images = resize_square(data.images, H)
    rows = linear_probe(model, images, data.labels, args.test_fraction, args.seed, args.batch_size)
    # the classes among the images probed: a --limit on a folder sorted by class keeps only the
    # first few, and 1 / (all the data's classes) understated the accuracy of always guessing
    # the commonest class
    num_classes = len(np.unique(data.labels))
    print(f"linear probe on {len(images)} images of {args.data} ({num_classes} classes, "
          f"{args.test_fraction:.0%} held out), {H}x{W}:")
    print(format_table(rows))
    best = best_layer(rows)
    print(f"best layer: {best.layer} ({best.test_accuracy:.3f}); raw pixels: {rows[0].test_accuracy:.3f}; "
          f"chance (the commonest class's share): {chance_accuracy(data.labels):.3f}")
    return 0
