"""``pixseq train prior``: train the latent GPT over a VQGAN's codes (Taming Transformers, stage 2).

The work is :func:`pixseq.models.taming_train.train_prior`."""
from __future__ import annotations

import argparse

from pixseq.cli.common import path_arg

HELP = "train a GPT prior over a VQGAN tokenizer's codes (unconditional, per class, or image-conditional)"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.train_args import add_train_arguments, add_val_arguments
    from pixseq.models.taming_train import default_prior_train_config

    parser.add_argument("--tokenizer", default=None,
                        help="VQGAN model directory (pixseq train vqgan / convert taming); --resume: the run's own")
    parser.add_argument("--data", default=None, help="data spec: a folder, fashion-mnist[:train|test] or photos")
    parser.add_argument("--out", required=True, type=path_arg, help="model directory to write (kind 'taming')")
    parser.add_argument("--classes", action="store_true", default=None, help="class-conditional (one class token; needs labels)")
    parser.add_argument("--condition", choices=["lowres", "edges"], default=None,
                        help="image-conditional: codes of a half-size copy or an edge map are prepended")
    parser.add_argument("--cond-tokenizer", default=None,
                        help="VQGAN that encodes the conditioning image (default: --tokenizer)")
    parser.add_argument("--size", choices=["s", "m", "l"], help="GPT size preset (default s)")
    parser.add_argument("--image-size", type=int, default=None,
                        help="image side the prior models (default: the tokenizer's training size)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    add_val_arguments(parser)
    add_train_arguments(parser, default_prior_train_config())


def run(args: argparse.Namespace) -> int:
    from pixseq.cli.train_args import given, train_options
    from pixseq.models.taming_train import PRIOR_RUN_DEFAULTS, train_prior
    from pixseq.runtime import plural

    settings = given(args, [k for k in PRIOR_RUN_DEFAULTS if k != "data"])
    result = train_prior(args.tokenizer, args.data, args.out, cond_tokenizer=args.cond_tokenizer,
                         train=train_options(args), device=args.device, resume=args.resume, force=args.force,
                         seed=args.seed, **settings)
    model, last = result.model, result.last
    bits = last.get("model/bits_per_code", float("nan"))
    print(f"wrote {args.out}: prior over {model.grid[1]}x{model.grid[0]} codes, "
          f"{model.prior.num_params() / 1e6:.2f} M params, {bits:.3f} bits/code (last training batch)")
    if "eval/bits_per_code" in last:
        print(f"held-out ({plural(result.held_out, 'image')} of {result.settings['val_data']}): "
              f"{last['eval/bits_per_code']:.3f} bits/code with the saved weights")
    return 0
