"""``pixseq convert timm-vit SRC DIR`` / ``pixseq convert hf-vit SRC DIR``: a pretrained ViT
classifier (a timm checkpoint file or name, a Hugging Face folder or ``hf:<repo>``) -> a
pixseq ``vit`` model directory. The work is :mod:`pixseq.classifiers.convert` (explicit key
maps, strict shapes)."""
from __future__ import annotations

import argparse

HELP = "convert a timm / Hugging Face ViT classifier into a pixseq vit model (explicit key map, strict shapes)"


def _floats(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers (R,G,B), got {text!r}")
    return values  # type: ignore[return-value]


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import add_weights_arguments, path_arg

    parser.add_argument("src", help="timm-vit: a .safetensors / .pth file or a timm model name with pretrained "
                                    "weights; hf-vit: a Hugging Face folder (config.json + weights) or hf:<repo>")
    parser.add_argument("out", type=path_arg, help="pixseq model directory to write")
    parser.add_argument("--heads", type=int, default=None,
                        help="timm file: attention heads (not stored in the weights; default width / 64)")
    parser.add_argument("--mean", type=_floats, default=None, metavar="R,G,B",
                        help="per-channel input mean the weights expect (default: the source's, else 0.5,0.5,0.5)")
    parser.add_argument("--std", type=_floats, default=None, metavar="R,G,B", help="per-channel input std (as --mean)")
    add_weights_arguments(parser)
    parser.add_argument("--force", action="store_true", help="overwrite an existing model directory")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from pixseq.checkpoint import refuse_existing_model, save_pretrained
    from pixseq.classifiers.convert import load_hf_folder, load_hf_name, load_timm_file, load_timm_name
    from pixseq.classifiers.vit import describe
    from pixseq.errors import PixseqError

    if args.heads is not None and args.heads < 1:
        raise PixseqError(f"--heads must be >= 1, got {args.heads}")
    refuse_existing_model(args.out, args.force, inputs=[args.src])
    norm = {k: v for k, v in (("mean", args.mean), ("std", args.std)) if v is not None}
    src = Path(args.src)
    if args.format == "hf-vit":
        if args.heads is not None:
            raise PixseqError("--heads is for timm files; a Hugging Face config.json names its heads")
        converted = (load_hf_name(args.src[3:], args.weights_dir, args.offline) if args.src.startswith("hf:")
                     else load_hf_folder(src) if src.is_dir() else None)
        if converted is None:
            raise PixseqError(f"{args.src}: expected a Hugging Face model folder or hf:<repo>")
    elif src.is_file():
        converted = load_timm_file(src, args.heads)
    elif src.exists():
        raise PixseqError(f"{args.src} is a folder; timm-vit takes a checkpoint file or a timm name "
                          f"(a Hugging Face folder converts with hf-vit)")
    else:
        converted = load_timm_name(args.src, args.weights_dir, args.offline, args.heads)
    if norm:  # the statistics the user says the weights expect win over the source's
        converted.config = dataclasses.replace(converted.config, **norm)
    model = converted.model()
    save_pretrained(model, args.out, meta={"converted_from": args.format, "source": str(args.src)})
    print(f"wrote {args.out}: {describe(model)}")
    return 0
