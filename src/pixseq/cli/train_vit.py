"""``pixseq train vit``: train a Vision Transformer classifier on labelled images, from scratch
or fine-tuned from a pretrained checkpoint (``--init``).

The work is :func:`pixseq.classifiers.vit_train.train_vit` (its module gives the layout of
``--out DIR``); ``pixseq classify IMAGES --model DIR`` and ``pixseq evaluate`` use the result.
"""
from __future__ import annotations

import argparse

from pixseq.cli.common import add_weights_arguments, path_arg

HELP = "train a ViT classifier (from scratch or --init a pretrained one) on labelled images"


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.classifiers.vit import VIT_PRESETS
    from pixseq.classifiers import vit_train
    from pixseq.cli.train_args import add_train_arguments, add_val_arguments

    d = vit_train.DEFAULTS
    parser.add_argument("--data", default=None, help="labelled data: fashion-mnist[:train|test] or a folder of "
                                                      "class sub-folders")
    parser.add_argument("--out", required=True, type=path_arg, help="model directory to write")
    parser.add_argument("--init", default=None, metavar="FILE|NAME",
                        help="fine-tune pretrained weights: a timm checkpoint file, a Hugging Face ViT folder, a "
                             "pixseq ViT directory, hf:<repo>, or a timm name such as "
                             "vit_tiny_patch16_224.augreg_in21k_ft_in1k (resolved by pixseq.weights); it sets "
                             "the architecture")
    parser.add_argument("--recipe", choices=list(vit_train.RECIPES), default=None,
                        help="a from-scratch recipe: its model, regularisation and training settings as defaults "
                             "(options given override them); " + "; ".join(f"{k}: {v}" for k, v in vit_train.RECIPE_NOTES.items()))
    arch = parser.add_argument_group("architecture", "from scratch (with --init the checkpoint's)")
    arch.add_argument("--size", choices=list(VIT_PRESETS), default=None, help=f"size preset (default {d['size']})")
    arch.add_argument("--image-size", type=int, default=None,
                      help="square side images are resized to (default: the data's own, with --init the checkpoint's)")
    arch.add_argument("--patch-size", type=int, default=None, help=f"patch side in pixels (default {d['patch_size']})")
    for flag in ("dim", "depth", "heads", "mlp-ratio"):
        arch.add_argument(f"--{flag}", type=int, default=None, help=f"override the preset's {flag.replace('-', ' ')}")
    arch.add_argument("--pool", choices=["cls", "mean"], default=None,
                      help=f"classify from the class token or the mean patch token (default {d['pool']})")
    arch.add_argument("--spt", action=argparse.BooleanOptionalAction, default=None,
                      help="shifted patch tokenisation (Lee et al. 2021; default off)")
    arch.add_argument("--lsa", action=argparse.BooleanOptionalAction, default=None,
                      help="locality self-attention (Lee et al. 2021; default off)")
    reg = parser.add_argument_group("regularisation and augmentation")
    reg.add_argument("--dropout", type=float, default=None, help=f"dropout (default {d['dropout']})")
    reg.add_argument("--drop-path", type=float, default=None,
                     help=f"stochastic depth rate of the last block (default {d['drop_path']})")
    reg.add_argument("--label-smoothing", type=float, default=None, help=f"default {d['label_smoothing']}")
    reg.add_argument("--crop-pad", type=int, default=None,
                     help=f"random crops of the image padded by N pixels (default {d['crop_pad']}; 0: off)")
    reg.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                     help="random horizontal flips (default on)")
    reg.add_argument("--randaugment", type=int, default=None, metavar="M",
                     help="RandAugment, 2 operations of magnitude M in 1..30 (default off)")
    reg.add_argument("--mixup", type=float, default=None, metavar="ALPHA", help="mixup alpha (default off)")
    reg.add_argument("--cutmix", type=float, default=None, metavar="ALPHA", help="CutMix alpha (default off)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    add_val_arguments(parser)
    add_weights_arguments(parser)
    parser.add_argument("--bf16", dest="train_precision", action="store_const", const="bf16",
                        default=argparse.SUPPRESS, help="bf16 autocast (same as --precision bf16)")
    add_train_arguments(parser, vit_train.default_train_config())


def run(args: argparse.Namespace) -> int:
    from pixseq.classifiers.vit import describe
    from pixseq.classifiers.vit_train import RUN_KEYS, train_vit
    from pixseq.cli.train_args import given, train_options
    from pixseq.runtime import plural
    from pixseq.train.distributed import is_main_process

    result = train_vit(**given(args, RUN_KEYS), out=args.out, train=train_options(args), device=args.device,
                       resume=args.resume, force=args.force, seed=args.seed, weights_dir=args.weights_dir,
                       offline=args.offline)
    if not is_main_process():
        return 0
    s, last, config = result.settings, result.last, result.train_config
    print(f"wrote {args.out}: {describe(result.model)}, {plural(config.steps, 'step')}, last training-batch loss "
          f"{last.get('loss', float('nan')):.3f}" + (", of the raw weights; the model holds their EMA"
                                                       if config.ema_decay > 0 else ""))
    if "eval/accuracy" in last:
        print(f"held-out accuracy {last['eval/accuracy']:.4f} on {plural(result.held_out, 'image')} of "
              f"{s['val_data']} (saved weights)")
    return 0
