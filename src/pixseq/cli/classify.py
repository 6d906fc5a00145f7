"""``pixseq classify IMAGES --model DIR``: the top-k classes of each image, with their names.

The work is :func:`pixseq.classifiers.predict.classify`; ``--attention DIR`` also writes an
attention-rollout overlay per image (:func:`pixseq.classifiers.rollout.attention_overlays`).
"""
from __future__ import annotations

import argparse

from pixseq.cli.common import add_force_argument, path_arg

HELP = "classify images with a trained classifier (top-k classes with names; attention-rollout overlays)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", help="image files or folders of images")
    parser.add_argument("--model", default=None, help="classifier model directory (pixseq train vit / convert)")
    parser.add_argument("--labels", default=None,
                        help="zero-shot instead: comma-separated label texts, judged by --clip (no classifier)")
    parser.add_argument("--clip", default=None,
                        help="the guide for --labels: an open_clip architecture[:tag] or a model folder "
                             "(pixseq train clip)")
    parser.add_argument("--template", action="append", default=None, metavar="TEXT",
                        help="prompt template(s) for --labels, '{}' for the label (default 'a photo of a {}.')")
    parser.add_argument("-k", "--top-k", type=int, default=5, help="classes shown per image (default 5)")
    parser.add_argument("--batch-size", type=int, default=256, help="images per forward pass (default 256)")
    parser.add_argument("--json", type=path_arg, default=None, metavar="FILE", help="also write the predictions as JSON")
    parser.add_argument("--attention", type=path_arg, default=None, metavar="DIR",
                        help="write an attention-rollout overlay per image into this folder")
    add_force_argument(parser, "--json / the overlays in --attention")


def run(args: argparse.Namespace) -> int:
    import json

    from pixseq.checkpoint import load_model, model_files
    from pixseq.classifiers.predict import classify, format_predictions, image_files
    from pixseq.classifiers.rollout import check_overlay_folder, save_overlays
    from pixseq.device import resolve_device
    from pixseq.errors import PixseqError
    from pixseq.io import atomic_write, claim_output
    from pixseq.runtime import seed_everything

    if args.top_k < 1 or args.batch_size < 1:
        raise PixseqError(f"--top-k and --batch-size must be >= 1, got {args.top_k} and {args.batch_size}")
    if args.labels is not None or args.clip is not None:
        return _zero_shot(args)
    if args.model is None:
        raise PixseqError("give --model DIR (a classifier), or --labels 'a,b,...' with --clip (zero-shot)")
    files = image_files(args.images)
    if args.json is not None:
        claim_output(args.json, "--json", force=args.force, inputs=[*files, *model_files(args.model)])
    if args.attention is not None:
        check_overlay_folder(args.attention, files, args.force)
    seed_everything(args.seed)
    model = load_model(args.model, "vit", resolve_device(args.device))
    preds = classify(model, files, args.top_k, args.batch_size)
    print(format_predictions(preds))
    if args.json is not None:
        with atomic_write(args.json, "w") as fh:
            json.dump({"model": str(args.model), "predictions": [
                {"image": p.name, "top": [{"class": n, "probability": v} for n, v in p.top]} for p in preds]},
                fh, indent=2)
    if args.attention is not None:
        written = save_overlays(model, files, args.attention)
        print(f"wrote {len(written)} attention-rollout overlays to {args.attention}")
    return 0


def _zero_shot(args: argparse.Namespace) -> int:
    """``classify --labels ... --clip ...``: zero-shot classification from label text."""
    from pixseq.classifiers.predict import image_files
    from pixseq.device import resolve_device
    from pixseq.errors import PixseqError
    from pixseq.guidance.clip import load_guide
    from pixseq.guidance.zero_shot import DEFAULT_TEMPLATES, parse_labels, zero_shot_files
    from pixseq.io import claim_output

    if args.model is not None or args.attention is not None:
        raise PixseqError("--labels / --clip classify zero-shot: they do not go with --model or --attention")
    if args.labels is None or args.clip is None:
        raise PixseqError("zero-shot classification needs both --labels 'a,b,...' and --clip NAME|DIR")
    labels = parse_labels(args.labels)
    files = image_files(args.images)
    if args.json is not None:  # before the guide loads (zero_shot_files checks it again)
        claim_output(args.json, "--json", force=args.force, inputs=files)
    guide = load_guide(args.clip, device=resolve_device(args.device))
    result = zero_shot_files(guide, files, labels, args.template or DEFAULT_TEMPLATES, args.json, force=args.force)
    k = min(args.top_k, len(labels))
    for name, row in zip(result.names, result.probs):
        top = row.topk(k)
        print(f"{name}: " + ", ".join(f"{labels[i]} {p:.1%}" for p, i in zip(top.values.tolist(), top.indices.tolist())))
    if getattr(guide, "scope_note", ""):
        print(guide.scope_note)
    return 0
