"""``pixseq evaluate``: a trained model's numbers on a data spec, without training.

The work is :func:`pixseq.models.evaluation.evaluate_model` (its module says what each
model kind is measured by)."""
from __future__ import annotations

import argparse

from pixseq.cli.common import add_force_argument, path_arg

HELP = ("measure a model on data: bits per pixel (igpt, taming prior), reconstruction PSNR (vqgan, restore), "
        "FID / KID / IS of samples (gan) or accuracy, per-class accuracy and confusion matrix (vit classifier)")


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model directory (igpt, taming, vqgan, vit, gan or restore)")
    parser.add_argument("--data", required=True, help="data spec: fashion-mnist[:train|test], a folder, photos")
    parser.add_argument("--limit", type=int, default=1000, metavar="N", help="the first N images (default 1000)")
    parser.add_argument("--batch-size", type=int, default=32, metavar="B", help="images per batch (default 32)")
    parser.add_argument("--image-size", type=int, default=None, metavar="N",
                        help="vqgan: side of the centre crops (default: the size it was trained at)")
    parser.add_argument("--samples", type=int, default=None, metavar="N",
                        help="gan: samples scored against the images (default: as many as the images)")
    parser.add_argument("--json", type=path_arg, default=None, metavar="FILE", help="also write the numbers as JSON")
    parser.add_argument("--html", type=path_arg, default=None, metavar="DIR",
                        help="classifiers: also write an HTML page (per-class accuracy, confusion matrix, mistakes)")
    add_force_argument(parser, "--json / --html")


def run(args: argparse.Namespace) -> int:
    from pixseq.checkpoint import load_model
    from pixseq.device import resolve_device
    from pixseq.checkpoint import model_files
    from pixseq.io import claim_output
    from pixseq.errors import PixseqError
    from pixseq.models.evaluation import (EVAL_KINDS, check_eval_options, check_json_target, evaluate_model, write_html,
                                          write_json)
    from pixseq.runtime import plural

    check_eval_options(None, args.limit, args.batch_size, args.image_size)
    if args.samples is not None and args.samples < 2:
        raise PixseqError(f"--samples must be >= 2, got {args.samples}")
    if args.json is not None:
        check_json_target(args.json, args.model, args.data)  # a file of the model / data: even with --force
        claim_output(args.json, "--json", force=args.force, inputs=model_files(args.model))
    if args.html is not None:
        from pixseq.report.html import claim_page_folder

        claim_page_folder(args.html, "--html", args.force, inputs=[args.model, args.data])
    device = resolve_device(args.device)
    model = load_model(args.model, EVAL_KINDS, device)
    if args.html is not None and model.kind != "vit":
        raise PixseqError(f"--html is for classifiers; a {model.kind} model's numbers are printed (and --json)")
    if args.samples is not None and model.kind != "gan":
        raise PixseqError(f"--samples is for gan models; a {model.kind} model is measured on the images themselves")
    result = evaluate_model(model, args.data, args.limit, args.batch_size, args.image_size, device, args.samples)
    print(f"{args.model} ({model.kind}) on {plural(result.images, 'image')} of {args.data} ({result.how}):")
    for line in result.lines():
        print(f"  {line}")
    if args.json is not None:
        write_json(result, args.json, args.model)
    if args.html is not None:
        print(f"wrote {write_html(result, args.html, args.model)}")
    return 0
