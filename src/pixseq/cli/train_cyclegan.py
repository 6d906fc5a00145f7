"""``pixseq train cyclegan``: unpaired image-to-image translation (two generators, cycle loss).

The work is :func:`pixseq.gans.translate_train.train_cyclegan`."""
from __future__ import annotations

import argparse

from pixseq.cli.common import path_arg

HELP = "train a CycleGAN on unpaired data (two data specs, e.g. fashion-mnist:Sneaker and 'fashion-mnist:Ankle boot')"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.train_args import add_train_arguments
    from pixseq.cli.train_translate_args import add_translator_arguments
    from pixseq.gans.translate_train import default_translate_train_config
    from pixseq.train.runs import DEFAULT_VAL_LIMIT

    parser.add_argument("--data", "--data-a", dest="data", default=None,
                        help="domain A: a data spec (a folder, fashion-mnist:CLASS, photos ...) or, without "
                             "--data-b, one folder with trainA/ and trainB/")
    parser.add_argument("--data-b", help="domain B: a data spec")
    parser.add_argument("--out", required=True, type=path_arg, help="model directory to write (also holds the training state)")
    parser.add_argument("--lambda-cycle", type=float, help="weight of the cycle losses (default 10)")
    parser.add_argument("--lambda-identity", type=float, help="identity losses, times --lambda-cycle (default 0.5; 0: off)")
    parser.add_argument("--pool-size", type=int, help="history of generated images shown to D (default 50; 0: none)")
    add_translator_arguments(parser, "cyclegan")
    parser.add_argument("--val-data", "--val-data-a", dest="val_data", metavar="SPEC",
                        help="held-out A (or one folder with testA/ and testB/): the cycle reconstruction error "
                             "at every checkpoint, watched by the health monitor")
    parser.add_argument("--val-data-b", metavar="SPEC", help="held-out B")
    parser.add_argument("--val-limit", type=int, metavar="N",
                        help=f"evaluate the first N held-out images per domain (default {DEFAULT_VAL_LIMIT})")
    add_train_arguments(parser, default_translate_train_config())


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.train_args import train_options
    from pixseq.cli.train_translate_args import translator_settings
    from pixseq.gans.translate_train import CYCLEGAN_RUN_DEFAULTS, train_cyclegan
    from pixseq.runtime import plural

    settings = translator_settings(args, [k for k in CYCLEGAN_RUN_DEFAULTS if k != "data"])
    result = train_cyclegan(args.data, args.out, train=train_options(args), device=args.device, resume=args.resume,
                            force=args.force, seed=args.seed, **settings)
    s, last = result.settings, result.last
    print(f"wrote {args.out}: CycleGAN {result.model.config.generator.describe}, {s['image_size']}x{s['image_size']}, "
          f"{result.extra['task']}; last cycle L1 A {last.get('gen/cycle_a', float('nan')):.4f}, "
          f"B {last.get('gen/cycle_b', float('nan')):.4f}")
    if "eval/cycle_a" in last:
        print(f"held-out ({plural(result.held_out, 'pair')} of images): cycle reconstruction L1 A "
              f"{last['eval/cycle_a']:.4f}, B {last['eval/cycle_b']:.4f}")
    warnings = result.extra.get("health", [])
    print(f"health: {plural(len(warnings), 'warning')}" + (f" (see {args.out}/train/history.jsonl)" if warnings else ""))
    return 0
