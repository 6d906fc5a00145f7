"""``pixseq train gan``: a generator from a latent (vanilla / DCGAN, optionally class-conditional).

The work is :func:`pixseq.gans.train.train_gan`; health warnings are printed as they come."""
from __future__ import annotations

import argparse

from pixseq.cli.common import path_arg

HELP = "train a GAN generator from a latent z (DCGAN or the lecture's vanilla GAN; --classes: conditional)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.train_args import add_train_arguments, add_val_arguments
    from pixseq.gans.losses import LOSSES
    from pixseq.gans.train import default_gan_train_config

    parser.add_argument("--data", default=None, help="data spec: a folder, fashion-mnist[:train|test] or photos")
    parser.add_argument("--out", required=True, type=path_arg, help="model directory to write (also holds the training state)")
    # defaults None ("not given"): --resume reuses the run's recorded value
    parser.add_argument("--classes", action="store_true", default=None,
                        help="class-conditional: the label is an extra channel in G and D (needs labelled data)")
    parser.add_argument("--arch", choices=["dcgan", "vanilla"], help="network (default dcgan)")
    parser.add_argument("--loss", choices=list(LOSSES), help="adversarial loss (default ns: non-saturating)")
    parser.add_argument("--latent-dim", type=int, help="size of z (default 100; vanilla 20)")
    parser.add_argument("--prior", choices=["normal", "uniform"], help="z's prior (default normal; vanilla uniform [-1,1])")
    parser.add_argument("--width", type=int, help="generator width (default 64)")
    parser.add_argument("--disc-width", type=int, help="discriminator width (default 64)")
    parser.add_argument("--image-size", type=int, choices=[28, 32, 64],
                        help="resize the images to this square size (default: their own, if 28, 32 or 64)")
    parser.add_argument("--spectral-norm", action="store_true", default=None, help="spectral norm in D (no batch norm)")
    parser.add_argument("--d-lr-ratio", type=float, help="D's learning rate over G's (default 1; TTUR: e.g. 4)")
    parser.add_argument("--r1", type=float, help="R1 penalty weight gamma on real images (default 0: off)")
    parser.add_argument("--health", action=argparse.BooleanOptionalAction, default=None,
                        help="automatic health warnings (default on)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--eval-samples", type=int, default=None,
                        help="samples scored against --val-data at each checkpoint (default: as many as held-out images)")
    add_val_arguments(parser)  # held-out FID / KID of samples of the saved (EMA) generator
    add_train_arguments(parser, default_gan_train_config())


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.train_args import given, train_options
    from pixseq.gans.train import GAN_RUN_DEFAULTS, train_gan
    from pixseq.runtime import plural
    from pixseq.train.distributed import is_main_process

    settings = given(args, [k for k in GAN_RUN_DEFAULTS if k != "data"])
    result = train_gan(args.data, args.out, train=train_options(args), device=args.device, resume=args.resume,
                       force=args.force, seed=args.seed, **settings)
    if not is_main_process():  # under torchrun rank 0 alone reports
        return 0
    s, last = result.settings, result.last
    kind = f"{'conditional ' if result.model.num_classes else ''}{s['arch']}"
    print(f"wrote {args.out}: {kind} GAN, {s['image_size']}x{s['image_size']}, z ~ {s['prior']}^{s['latent_dim']}, "
          f"loss {s['loss']}; last D loss {last.get('disc/d_loss', float('nan')):.3f}, "
          f"G loss {last.get('gen/g_adv', float('nan')):.3f}")
    if "eval/fid" in last:
        print(f"held-out ({plural(result.held_out, 'image')} of {s['val_data']}): FID {last['eval/fid']:.2f}, "
              f"KID {last['eval/kid']:.4f} with the saved weights")
    warnings = result.extra.get("health", [])
    print(f"health: {plural(len(warnings), 'warning')}" + (f" (see {args.out}/train/history.jsonl)" if warnings else ""))
    return 0
