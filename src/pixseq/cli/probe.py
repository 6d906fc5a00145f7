"""``pixseq probe``: linear probes on every layer of an iGPT or a ViT (logistic regression,
held-out accuracy); several ``--model`` options probe each on the same images and split, in
one table.

The work is :func:`pixseq.probe.probe_model` (one model) or :func:`pixseq.probe.probe_models`."""
from __future__ import annotations

import argparse

HELP = "linear-probe every layer of igpt / vit models on labelled data; prints accuracy per layer"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, action="append",
                        help="igpt, taming or vit model directory; repeat it to compare models in one table")
    parser.add_argument("--data", required=True, help="labelled data: fashion-mnist[:train|test] or a folder of "
                                                      "class sub-folders")
    parser.add_argument("--limit", type=int, default=2000, help="use the first N images (default 2000)")
    parser.add_argument("--test-fraction", type=float, default=0.25, help="held-out share (default 0.25)")
    parser.add_argument("--batch-size", type=int, default=64, help="feature extraction batch (default 64)")


def run(args: argparse.Namespace) -> int:
    from pixseq.checkpoint import load_model
    from pixseq.device import resolve_device
    from pixseq.errors import PixseqError
    from pixseq.models.base import TOKEN_MODEL_KINDS
    from pixseq.probe import best_layer, format_joint_table, format_table, probe_model, probe_models
    from pixseq.runtime import seed_everything

    if args.limit is not None and args.limit < 8:  # before the model loads
        raise PixseqError(f"--limit must be >= 8, got {args.limit}")
    if args.batch_size < 1:
        raise PixseqError(f"--batch-size must be >= 1, got {args.batch_size}")
    device = resolve_device(args.device)
    seed_everything(args.seed)
    models = [(m, load_model(m, TOKEN_MODEL_KINDS + ("vit",), device)) for m in args.model]
    if len(models) > 1:
        probes, run = probe_models(models, args.data, args.limit, args.test_fraction, args.seed, args.batch_size)
        print(f"linear probes on {run.images} images of {args.data} ({run.num_classes} classes, "
              f"{args.test_fraction:.0%} held out, the same split for every model), each at its own size:")
        print(format_joint_table(probes))
        for p in probes:
            best = best_layer(p.rows)
            print(f"{p.name}: best layer {best.layer} ({best.test_accuracy:.3f})")
        print(f"chance (the commonest class's share): {run.chance:.3f}")
        return 0
    run = probe_model(models[0][1], args.data, args.limit, args.test_fraction, args.seed, args.batch_size)
    H, W = run.side
    print(f"linear probe on {run.images} images of {args.data} ({run.num_classes} classes, "
          f"{args.test_fraction:.0%} held out), {W}x{H}:")
    print(format_table(run.rows))
    best = best_layer(run.rows)
    print(f"best layer: {best.layer} ({best.test_accuracy:.3f}); raw pixels: {run.rows[0].test_accuracy:.3f}; "
          f"chance (the commonest class's share): {run.chance:.3f}")
    return 0
