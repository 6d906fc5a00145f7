"""``pixseq train vqgan``: train a VQGAN tokenizer (Taming Transformers, stage 1)."""
from __future__ import annotations

import argparse

HELP = "train a VQGAN tokenizer (CNN encoder/decoder + codebook, perceptual and patch-GAN losses)"


def _defaults():
    from pixseq.train.config import TrainConfig

    return TrainConfig(steps=2000, batch_size=16, lr=2e-4, warmup_steps=100, ckpt_every=500)


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import path_arg

    from pixseq.train.args import add_train_arguments

    parser.add_argument("--data", required=True, help="data spec: a folder, fashion-mnist[:train|test] or photos")
    parser.add_argument("--out", required=True, type=path_arg, help="model directory to write (also holds the training state)")
    parser.add_argument("--factor", type=int, default=8, choices=[4, 8, 16], help="downsampling factor f (default 8)")
    parser.add_argument("--codes", type=int, default=1024, help="codebook size K (default 1024)")
    parser.add_argument("--dim", type=int, default=64, help="code dimension (default 64)")
    parser.add_argument("--ch", type=int, default=64, help="base channels of encoder/decoder (default 64)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="training size (default: the data's size when fixed, else 64-pixel random crops)")
    parser.add_argument("--disc-start", type=int, default=None, help="step at which the discriminator starts "
                        "(default: half of --steps)")
    parser.add_argument("--perceptual", default="auto", choices=["auto", "lpips", "effnet", "none"],
                        help="perceptual loss (auto: LPIPS when its weights are available, else EfficientNet-Lite0)")
    parser.add_argument("--dead-restart", action=argparse.BooleanOptionalAction, default=True,
                        help="re-seed codes unused for a while from recent encoder outputs (default on)")
    parser.add_argument("--ema", action="store_true", help="EMA codebook updates instead of the codebook loss")
    parser.add_argument("--l2-norm", action="store_true", help="compare codes on the unit sphere (cosine)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    add_train_arguments(parser, _defaults())


#: The PatchGAN discriminator (3 stride-2 and 2 stride-1 4x4 convolutions) needs 24 px.
MIN_IMAGE_SIZE = 24


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.common import resolve_device
    from pixseq.data import load_data
    from pixseq.errors import PixseqError
    from pixseq.models.taming_train import fit_vqgan
    from pixseq.tokenizers.losses import VQGANLossConfig
    from pixseq.tokenizers.vqgan import vqgan_config
    from pixseq.train.args import check_out_dir, config_from_args

    if args.codes < 2 or args.dim < 1 or args.ch < 1:
        raise PixseqError("--codes must be >= 2, --dim and --ch >= 1")
    check_out_dir(args.out, args.out, args.resume, args.force)
    train = config_from_args(args, _defaults(), args.out)
    data = load_data(args.data, limit=args.limit)
    shapes = {im.shape[:2] for im in data.images}
    (h, w) = next(iter(shapes))
    size = args.image_size if args.image_size is not None else (h if len(shapes) == 1 and h == w else 64)
    if size < MIN_IMAGE_SIZE:  # checked before anything is written
        raise PixseqError(f"--image-size must be at least {MIN_IMAGE_SIZE} (the smallest input of the "
                          f"PatchGAN discriminator's 4x4 convolutions), got {size}")
    fixed = shapes == {(size, size)}  # else: random crops of size x size
    cfg = vqgan_config(args.factor, args.codes, args.dim, args.ch, dead_restart=args.dead_restart,
                       ema=args.ema, l2_norm=args.l2_norm)
    disc_start = args.disc_start if args.disc_start is not None else train.steps // 2
    loss_cfg = VQGANLossConfig(perceptual=args.perceptual, disc_start=disc_start)
    model, history = fit_vqgan(data.images, args.out, cfg, loss_cfg, train, size, resolve_device(args.device),
                               resume=args.resume, labels=data.labels,
                               crops_per_epoch=None if fixed else 4096,
                               meta={"data": args.data})
    last = history[-1] if history else {}
    print(f"wrote {args.out}: f={args.factor}, K={args.codes}, image size {size}; "
          f"rec {last.get('gen/rec', float('nan')):.4f}, codebook usage {model.quantizer.usage():.1%}")
    return 0
