"""``pixseq assess REF DIST``: score regenerated images against their references.

The work is :func:`pixseq.assess.assess` (its module says how pairs are matched and which
metrics are computed); :mod:`pixseq.report.assess` writes the outputs.
"""
from __future__ import annotations

import argparse

from pixseq.assess import PAIR_METRICS, SET_METRICS
from pixseq.cli.common import add_force_argument, add_weights_arguments, path_arg

HELP = "score regenerated images against references (ViT-Score, SSIM, MSE, PSNR, LPIPS, BRISQUE, FID/KID/IS, CLIP score)"


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("ref", help="reference image or folder")
    p.add_argument("dist", nargs="?", default=None,
                   help="regenerated / distorted image or folder (matched by relative file name); leave it out to "
                        "score REF alone with the no-reference metrics (brisque, clip_score)")
    p.add_argument("--metrics", default="all",
                   help=f"'all' or a comma list of {', '.join(PAIR_METRICS + SET_METRICS)}")
    p.add_argument("--backbone", default=None,
                   help="classifier for ViT-Score: vit_b16_study (default when its weights exist), "
                        "efficientnet_lite0, a timm model name, hf:<repo>, or your own pixseq classifier "
                        "directory (its labels and preprocessing; reported as a label-overlap score)")
    p.add_argument("-k", "--top-k", dest="k", type=int, default=None,
                   help="K of the top-K label overlap (default 100; with a pixseq classifier a tenth of its labels)")
    p.add_argument("--variant", default="overlap", choices=("overlap", "weighted", "rbo", "cosine"),
                   help="ViT-Score variant (overlap = the original definition)")
    p.add_argument("--lpips-net", default="alex", choices=("alex", "vgg"), help="LPIPS backbone")
    p.add_argument("--preset", default="standard", choices=("standard", "thesis"),
                   help="standard: Wang SSIM / fixed-range PSNR; thesis: the study's scikit-image defaults")
    p.add_argument("--resize", action="store_true", help="resize each DIST image to its REF's size")
    p.add_argument("--json", type=path_arg,
                   help="write all results as strict JSON (a non-finite score, e.g. the PSNR of identical "
                        "images, is the string \"inf\" / \"-inf\" / \"nan\")")
    p.add_argument("--csv", type=path_arg, help="write the per-image table as CSV")
    p.add_argument("--html", type=path_arg, help="write an HTML report into this folder")
    add_force_argument(p, "--json / --csv / --html")
    p.add_argument("--prompt", default=None, help="the text of clip_score (CLIP score as torchmetrics defines it)")
    p.add_argument("--clip", default="ViT-B-32",
                   help="guide of clip_score: an open_clip architecture[:tag], random:ARCH, or a model folder "
                        "(pixseq train clip); default ViT-B-32 (OpenAI weights, resolved like every weight file)")
    p.add_argument("--clip-weights", type=path_arg, default=None, help="an explicit CLIP weight file for --clip ARCH")
    add_weights_arguments(p)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="fused CPU kernels for PSNR / MSE / SSIM / MS-SSIM / BRISQUE (the default; several times "
                        "faster): pixseq's C kernels, built once per machine with the system C compiler. "
                        "--no-compile uses eager PyTorch, as PIXSEQ_COMPILE=0 does")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from pixseq import fused
    from pixseq.assess import AssessOptions, assess
    from pixseq.device import resolve_device
    from pixseq.report.assess import fmt, format_table, write_outputs
    from pixseq.runtime import seed_everything

    seed_everything(args.seed)
    if args.compile is not None:
        fused.set_enabled(args.compile)
    opts = AssessOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(AssessOptions)})
    result = assess(opts, resolve_device(args.device))
    print(format_table(result.rows, result.columns))
    for s in result.sets.values():
        extra = f" ± {fmt(s['std'])}" if "std" in s else ""
        print(f"{s['label']}: {fmt(s['value'])}{extra}")
    write_outputs(opts, result.rows, result.columns, result.sets, result.pairs, result.notes)
    return 0
