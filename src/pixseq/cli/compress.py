"""``pixseq compress IMAGE --model DIR --out FILE.pxs``: an image -> a .pxs file.

``--method tokens`` (default): tokens entropy-coded by the prior
(:func:`pixseq.codec.files.compress_file`). ``--method invert``: GAN inversion of a generator,
its latent quantised to ``--bits`` and entropy-coded (:func:`pixseq.codec.files.compress_invert_file`)."""
from __future__ import annotations

import argparse

HELP = "compress an image to a .pxs file: tokens coded by a prior, or a generator's latent (--method invert)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import add_force_argument, path_arg

    parser.add_argument("image", help="image file to compress")
    parser.add_argument("--model", required=True,
                        help="model directory: iGPT or VQGAN + latent GPT (tokens); GAN or VQGAN (invert)")
    parser.add_argument("--out", required=True, type=path_arg, help="output .pxs file")
    add_force_argument(parser, "--out (and --log)")
    parser.add_argument("--scale", type=int, default=1,
                        help="code the image downscaled by this integer factor (lower rate; default 1)")
    parser.add_argument("--batch", type=int, default=16, help="tiles coded at once (memory vs speed; default 16)")
    parser.add_argument("--label", type=int, default=None, help="class label for a class-conditional prior")
    parser.add_argument("--no-path", action="store_true",
                        help="do not record the model directory in the file (saves its bytes)")
    inv = parser.add_argument_group("GAN inversion (--method invert)")
    inv.add_argument("--method", choices=("tokens", "invert"), default="tokens",
                     help="tokens: a tokenizer + prior; invert: optimise a generator's latent z (default tokens)")
    inv.add_argument("--bits", type=int, default=None, help="bits per latent coordinate, 1..16 (default 4)")
    inv.add_argument("--quantizer", choices=("qsgd", "uniform"), default="qsgd",
                     help="qsgd: stochastic QSGD levels (the study's); uniform: nearest of 2^bits levels")
    inv.add_argument("--recipe", choices=("pixseq", "study"), default="pixseq",
                     help="pixseq: Adam, 600 steps, 4 restarts; study: SGD lr 1, momentum 0.9, plateau, 30000 steps")
    inv.add_argument("--steps", type=int, default=None, help="optimisation steps (default: the recipe's)")
    inv.add_argument("--restarts", type=int, default=None, help="starting points per image (and per class)")
    inv.add_argument("--lr", type=float, default=None, help="learning rate (default: the recipe's)")
    inv.add_argument("--loss", choices=("mse", "mse+lpips"), default="mse", help="what inversion minimises")
    inv.add_argument("--class", dest="cls", default=None,
                     help="class index or name for a conditional generator (default: the best of all classes)")
    inv.add_argument("--log", type=path_arg, default=None,
                     help="write the quality-against-steps log here (JSON lines)")


def run(args: argparse.Namespace) -> int:
    if args.method == "invert":
        return _run_invert(args)
    from pixseq.errors import PixseqError

    given = [f for f, v in (("--bits", args.bits), ("--steps", args.steps), ("--restarts", args.restarts),
                            ("--lr", args.lr), ("--class", args.cls), ("--log", args.log)) if v is not None]
    if given:
        raise PixseqError(f"{given[0]} applies to --method invert only")
    from pixseq.checkpoint import load_model
    from pixseq.codec import CODEC_MODEL_KINDS
    from pixseq.codec.files import check_pxs_output, compress_file
    from pixseq.device import resolve_device
    from pixseq.io import load_image
    from pixseq.runtime import seed_everything

    out = check_pxs_output(args.out, args.image, args.force)
    seed_everything(args.seed)
    image = load_image(args.image)
    model = load_model(args.model, device=resolve_device(args.device))
    if model.kind not in CODEC_MODEL_KINDS:
        hint = "; a generator compresses with --method invert" if model.kind in ("gan", "vqgan") else ""
        raise PixseqError(f"{args.model} holds a model of kind {model.kind!r}, expected "
                          f"{' or '.join(CODEC_MODEL_KINDS)}{hint}")
    stats = compress_file(image, model, out, None if args.no_path else args.model, scale=args.scale,
                          batch=args.batch, label=args.label)
    h, w = image.shape[:2]
    print(f"wrote {out}: {stats.file_bytes} bytes for {w}x{h} pixels = {stats.bpp:.4f} bpp (header "
          f"{stats.header_bytes} bytes included); {stats.tokens} tokens, model cross-entropy "
          f"{stats.ideal_bits / stats.tokens:.3f} bits/token, coder overhead {100 * stats.overhead:+.3f}% "
          f"(payload vs cross-entropy); {stats.tokens_per_second:.0f} tokens/s")
    return 0


def _run_invert(args: argparse.Namespace) -> int:
    from pixseq.checkpoint import load_model
    from pixseq.codec.files import check_pxs_output, compress_invert_file
    from pixseq.device import resolve_device
    from pixseq.errors import PixseqError
    from pixseq.inversion import as_generator, recipe
    from pixseq.inversion.optimize import check_log_output, write_history
    from pixseq.inversion.quantize import check_bits
    from pixseq.io import load_image
    from pixseq.models.generate import parse_class
    from pixseq.runtime import seed_everything

    bits = check_bits(4 if args.bits is None else args.bits, args.quantizer)
    for flag, given in (("--scale", args.scale != 1), ("--label", args.label is not None)):
        if given:
            raise PixseqError(f"{flag} applies to --method tokens (a conditional generator takes --class)")
    config = recipe(args.recipe, steps=args.steps, restarts=args.restarts, lr=args.lr, loss=args.loss,
                    seed=args.seed)
    out = check_pxs_output(args.out, args.image, args.force)
    check_log_output(args.log, out, args.image, force=args.force)
    seed_everything(args.seed)
    image = load_image(args.image)
    model = load_model(args.model, device=resolve_device(args.device))
    as_generator(model)  # an iGPT or a classifier: one line, before any work
    label = parse_class(model, args.cls) if args.cls is not None else None
    lpips_model = _lpips() if args.loss == "mse+lpips" else None
    stats, result = compress_invert_file(image, model, out, None if args.no_path else args.model, bits=bits,
                                         quantizer=args.quantizer, config=config, label=label, seed=args.seed,
                                         lpips_model=lpips_model)
    if args.log is not None:
        write_history(result.history, args.log)
    h, w = image.shape[:2]
    cls = f", class {stats.label}" if stats.label >= 0 else ""
    print(f"wrote {out}: {stats.file_bytes} bytes for {w}x{h} pixels = {stats.bpp:.4f} bpp (header "
          f"{stats.header_bytes} bytes included; z alone {stats.payload_bpp:.4f} bpp); {stats.latent_dims} latent "
          f"coordinates at {stats.bits} bits ({stats.quantizer}){cls}; PSNR {stats.psnr_float:.2f} dB before "
          f"quantisation, {stats.psnr_quantized:.2f} dB after; {config.steps} steps x {result.chains} chains in "
          f"{stats.invert_seconds:.1f} s")
    return 0


def _lpips():
    from pixseq.metrics.lpips import load_lpips

    return load_lpips("alex")
