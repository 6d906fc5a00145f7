"""``pixseq study IMAGES --generator DIR --out DIR``: the founding study's experiment with honest
bits -- GAN inversion at several bit depths vs JPEG / WebP / AVIF / pixseq's token codecs, every
output scored, a Table-3.3 summary, plots, galleries, JSON, CSV, HTML
(the work is :func:`pixseq.inversion.study.run_study`)."""
from __future__ import annotations

import argparse

HELP = ("the study's experiment: GAN inversion at 1/2/4/6/8 bits vs JPEG (q 100..1), WebP, AVIF and token "
        "codecs, every output scored; Table 3.3 + bpp, plots, galleries, JSON, CSV, HTML")


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.bench import _ints
    from pixseq.cli.common import add_force_argument, add_weights_arguments, path_arg

    parser.add_argument("images", help="a folder of images, 'fashion-mnist:test', 'photos', ...")
    parser.add_argument("--out", required=True, type=path_arg, help="report folder (written whole, or not at all)")
    add_force_argument(parser, "an earlier study's report in --out")
    parser.add_argument("--generator", required=True,
                        help="the generator inverted: a GAN or VQGAN model directory, or zoo:NAME (e.g. zoo:gan-fm)")
    parser.add_argument("--model", action="append", default=[],
                        help="a pixseq token-codec model directory to compare too (repeatable)")
    parser.add_argument("--bits", type=_ints, default=None, help="latent bit depths, 1..16 (default 1,2,4,6,8)")
    parser.add_argument("--quantizer", choices=("qsgd", "uniform"), default="qsgd",
                        help="qsgd: the study's stochastic QSGD levels; uniform: nearest of 2^bits levels")
    parser.add_argument("--qualities", type=_ints, default=None,
                        help="JPEG/WebP/AVIF qualities (default the study's 100,90,...,10,5,1)")
    parser.add_argument("--scales", type=_ints, default=None, help="token-codec downscale factors (default 2,4,8)")
    parser.add_argument("--recipe", choices=("pixseq", "study"), default="pixseq",
                        help="pixseq: Adam, 600 steps, 4 restarts; study: SGD lr 1, momentum 0.9, plateau, 30000 steps")
    parser.add_argument("--steps", type=int, default=None, help="inversion steps (default: the recipe's)")
    parser.add_argument("--restarts", type=int, default=None, help="starting points per image (and per class)")
    parser.add_argument("--lr", type=float, default=None, help="inversion learning rate (default: the recipe's)")
    parser.add_argument("--preset", choices=("standard", "thesis"), default="standard",
                        help="standard: Wang SSIM / fixed-range PSNR; thesis: the study's scikit-image settings")
    parser.add_argument("--backbone", default=None,
                        help="the ViT-Score classifier (default: the study's ViT, else EfficientNet-Lite0; "
                             "e.g. zoo:vit-fm for Fashion-MNIST)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images")
    parser.add_argument("--set-min", type=int, default=None,
                        help="fewest images for FID/KID/IS (default 10; fewer: n/a)")
    parser.add_argument("--batch", type=int, default=16, help="tiles coded at once by a token codec")
    parser.add_argument("--no-elias", action="store_true", help="leave out the rows of the study's own Elias code")
    add_weights_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from pixseq.inversion.study import SET_MIN_IMAGES, StudyOptions, run_study
    from pixseq.report.study import text_table

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(StudyOptions) if hasattr(args, f.name)}
    values["set_min"] = SET_MIN_IMAGES if args.set_min is None else args.set_min
    page, study = run_study(StudyOptions(**values), args.device, args.seed)
    print(text_table(study))
    print(f"wrote {page}")
    return 0
