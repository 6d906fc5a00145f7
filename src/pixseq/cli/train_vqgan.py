"""``pixseq train vqgan``: train a VQGAN tokenizer (Taming Transformers, stage 1)."""
from __future__ import annotations

import argparse

HELP = "train a VQGAN tokenizer (CNN encoder/decoder + codebook, perceptual and patch-GAN losses)"


def _defaults():
    from pixseq.train.config import TrainConfig

    return TrainConfig(steps=2000, batch_size=16, lr=2e-4, warmup_steps=100, ckpt_every=500)


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import path_arg

    from pixseq.train.args import add_train_arguments, add_val_arguments

    parser.add_argument("--data", required=True, help="data spec: a folder, fashion-mnist[:train|test] or photos")
    parser.add_argument("--out", required=True, type=path_arg, help="model directory to write (also holds the training state)")
    # defaults are None ("not given"): --resume then reuses the run's recorded value (RUN_DEFAULTS)
    parser.add_argument("--factor", type=int, choices=[4, 8, 16], help="downsampling factor f (default 8)")
    parser.add_argument("--codes", type=int, help="codebook size K (default 1024)")
    parser.add_argument("--dim", type=int, help="code dimension (default 64)")
    parser.add_argument("--ch", type=int, help="base channels of encoder/decoder (default 64)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="training size (default: the data's size when fixed, else 64-pixel random crops)")
    parser.add_argument("--disc-start", type=int, default=None, help="step at which the discriminator starts "
                        "(default: half of --steps)")
    parser.add_argument("--perceptual", choices=["auto", "lpips", "effnet", "none"],
                        help="perceptual loss (auto: LPIPS when its weights are available, else EfficientNet-Lite0)")
    parser.add_argument("--dead-restart", action=argparse.BooleanOptionalAction,
                        help="re-seed codes unused for a while from recent encoder outputs (default on)")
    parser.add_argument("--ema", action="store_true", default=None,
                        help="EMA codebook updates instead of the codebook loss")
    parser.add_argument("--l2-norm", action="store_true", default=None,
                        help="compare codes on the unit sphere (cosine)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    add_val_arguments(parser)  # held-out reconstruction PSNR / L1 of centre crops
    add_train_arguments(parser, _defaults())


#: Model/data settings recorded in --out/run.json (--resume refuses to change them) and their
#: defaults; image_size and disc_start depend on the data and --steps when not given.
RUN_DEFAULTS = {"data": None, "limit": None, "factor": 8, "codes": 1024, "dim": 64, "ch": 64, "image_size": None,
                "disc_start": None, "perceptual": "auto", "dead_restart": True, "ema": False, "l2_norm": False,
                "val_data": None, "val_limit": None}

#: The PatchGAN discriminator (3 stride-2 and 2 stride-1 4x4 convolutions) needs 24 px.
MIN_IMAGE_SIZE = 24


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.common import notice, plural, resolve_device
    from pixseq.data import load_data
    from pixseq.errors import PixseqError
    from pixseq.models.taming_train import centre_crops, fit_vqgan
    from pixseq.tokenizers.losses import VQGANLossConfig
    from pixseq.tokenizers.vqgan import vqgan_config
    from pixseq.train.args import RunRecorder, check_out_dir, config_from_args, load_val_data, run_settings
    from pixseq.train.batches import batches_per_epoch
    from pixseq.train.distributed import launched_world_size

    check_out_dir(args.out, args.out, args.resume, args.force)
    s = run_settings(args, RUN_DEFAULTS, args.out)
    if s["codes"] < 2 or s["dim"] < 1 or s["ch"] < 1:
        raise PixseqError("--codes must be >= 2, --dim and --ch >= 1")
    if s["limit"] is not None and s["limit"] < 1:  # 0 crashed on no images; -1 silently dropped the last one
        raise PixseqError(f"--limit must be >= 1, got {s['limit']}")
    train = config_from_args(args, _defaults(), args.out)
    data = load_data(s["data"], limit=s["limit"])
    shapes = {im.shape[:2] for im in data.images}
    (h, w) = next(iter(shapes))
    size = s["image_size"] if s["image_size"] is not None else (h if len(shapes) == 1 and h == w else 64)
    if size < MIN_IMAGE_SIZE:  # checked before anything is written
        raise PixseqError(f"--image-size must be at least {MIN_IMAGE_SIZE} (the smallest input of the "
                          f"PatchGAN discriminator's 4x4 convolutions), got {size}")
    fixed = shapes == {(size, size)}  # else: random crops of size x size
    if fixed:  # random crops make 4096 items per epoch; whole images must fill one batch per process
        batches_per_epoch(len(data.images), train.batch_size, launched_world_size())
    smallest = min(shapes, key=min)
    if s["image_size"] is None and not fixed and min(smallest) < size:  # the default, not the user, was too big
        raise PixseqError(f"the images have mixed sizes, so training cuts random {size}x{size} crops (the default "
                          f"--image-size), but some are smaller (e.g. {smallest[0]}x{smallest[1]}); give "
                          f"--image-size {max(min(smallest), MIN_IMAGE_SIZE)} or less")
    # (after the checks of the training images: reading the held-out set takes a while)
    val = load_val_data({**s, "classes": False}, data)
    if val is not None:
        centre_crops(val[0], size)  # too small: refused before anything is written
    cfg = vqgan_config(s["factor"], s["codes"], s["dim"], s["ch"], dead_restart=s["dead_restart"],
                       ema=s["ema"], l2_norm=s["l2_norm"])
    # resolved once and recorded: a resume that extends --steps must not move the GAN's start
    s.update(image_size=size, disc_start=s["disc_start"] if s["disc_start"] is not None else train.steps // 2)
    loss_cfg = VQGANLossConfig(perceptual=s["perceptual"], disc_start=s["disc_start"])
    if s["disc_start"] >= train.steps:  # after every check: a mistake stays the only line
        notice(f"the discriminator starts at step {s['disc_start']} but the run has {plural(train.steps, 'step')}: "
               f"no adversarial loss in this run (lower --disc-start)")
    recorder = RunRecorder(args.out, s, args.resume)
    model, history = fit_vqgan(data.images, args.out, cfg, loss_cfg, train, size, resolve_device(args.device),
                               resume=args.resume, labels=data.labels,
                               crops_per_epoch=None if fixed else 4096,
                               meta={"data": s["data"]}, callbacks=[recorder],
                               held_out=val[0] if val is not None else None,
                               # record what "auto" resolved to: a resume must not switch losses
                               on_perceptual=lambda kind: recorder.settings.update(perceptual=kind))
    last = history[-1] if history else {}
    print(f"wrote {args.out}: f={s['factor']}, K={s['codes']}, image size {size}; "
          f"rec {last.get('gen/rec', float('nan')):.4f}, codebook usage {model.quantizer.usage():.1%}")
    if "eval/psnr_db" in last:
        print(f"held-out ({plural(len(val[0]), 'image')} of {s['val_data']}, centre {size}x{size} crops): PSNR "
              f"{last['eval/psnr_db']:.2f} dB, L1 {last['eval/l1']:.4f} with the saved weights")
    return 0
