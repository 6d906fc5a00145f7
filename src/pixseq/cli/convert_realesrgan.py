"""``pixseq convert realesrgan SRC DIR``: a Real-ESRGAN ``.pth`` or ncnn ``.param`` / ``.bin``
-> a pixseq ``rrdbnet`` / ``srvgg`` model directory. The work is
:func:`pixseq.upscale.convert.convert_realesrgan`."""
from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("convert a Real-ESRGAN / ESRGAN .pth (params_ema / params) or an ncnn .param/.bin pair into a pixseq "
        "'rrdbnet' / 'srvgg' model directory")


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import path_arg

    parser.add_argument("src", type=path_arg, help="RealESRGAN_x4plus.pth, realesr-animevideov3.pth ... or an ncnn .param")
    parser.add_argument("out", type=path_arg, help="model directory to write")
    parser.add_argument("--bin", type=path_arg, default=None, help="the ncnn .bin (default: beside the .param)")
    parser.add_argument("--scale", type=int, choices=[1, 2, 4], default=None,
                        help="an RRDBNet .pth's scale when its input channels leave it open (default: inferred)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing model directory")


def run(args: argparse.Namespace) -> int:
    from pixseq.checkpoint import refuse_existing_model, save_pretrained
    from pixseq.upscale.convert import convert_realesrgan

    refuse_existing_model(args.out, args.force, inputs=[args.src])
    model = convert_realesrgan(args.src, args.bin, args.scale)
    meta = {"converted_from": "ncnn" if Path(args.src).suffix == ".param" else "Real-ESRGAN .pth",
            "source": Path(args.src).name, **getattr(model, "ncnn_source", {})}
    save_pretrained(model, args.out, meta=meta)
    params = sum(p.numel() for p in model.parameters())
    print(f"wrote {args.out}: {model.kind} x{model.scale}, {params / 1e6:.2f} M parameters ({model.config})")
    return 0
