"""``pixseq train prior``: train the latent GPT over a VQGAN's codes (Taming Transformers, stage 2)."""
from __future__ import annotations

import argparse

HELP = "train a GPT prior over a VQGAN tokenizer's codes (unconditional, per class, or image-conditional)"


def _defaults():
    from pixseq.train.config import TrainConfig

    return TrainConfig(steps=2000, batch_size=32, lr=5e-4, warmup_steps=100, ckpt_every=500)


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import path_arg

    from pixseq.train.args import add_train_arguments, add_val_arguments

    parser.add_argument("--tokenizer", required=True, help="VQGAN model directory (pixseq train vqgan / convert taming)")
    parser.add_argument("--data", required=True, help="data spec: a folder, fashion-mnist[:train|test] or photos")
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
    add_train_arguments(parser, _defaults())


#: Model/data settings recorded in --out/run.json (--resume refuses to change them) and their
#: defaults (image_size: the tokenizer's training size). The tokenizer has its own record.
RUN_DEFAULTS = {"data": None, "limit": None, "classes": False, "condition": None, "size": "s", "image_size": None,
                "val_data": None, "val_limit": None}


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pixseq.cli.common import plural, resolve_device
    from pixseq.data import load_data
    from pixseq.errors import PixseqError
    from pixseq.models.taming import taming_config
    from pixseq.models.taming_train import fit_prior, load_tokenizer
    from pixseq.train.args import RunRecorder, check_out_dir, config_from_args, load_val_data, run_settings
    from pixseq.train.batches import batches_per_epoch
    from pixseq.train.distributed import launched_world_size

    check_out_dir(args.out, args.out, args.resume, args.force)
    s = run_settings(args, RUN_DEFAULTS, args.out)
    for name in ("limit", "image_size"):  # 0 crashed or fell back to a default; negatives crashed or sliced
        if s[name] is not None and s[name] < 1:
            raise PixseqError(f"--{name.replace('_', '-')} must be >= 1, got {s[name]}")
    train_config = config_from_args(args, _defaults(), args.out)  # option errors before any loading
    tokenizer = load_tokenizer(args.tokenizer)
    cond_tok = load_tokenizer(args.cond_tokenizer) if args.cond_tokenizer else None
    if cond_tok is not None and not s["condition"]:
        raise PixseqError("--cond-tokenizer needs --condition lowres|edges")
    data = load_data(s["data"], limit=s["limit"])
    if s["classes"]:
        data.require_labels("--classes")
    # before anything is written (fit_prior records the tokenizer first)
    batches_per_epoch(len(data.images), train_config.batch_size, launched_world_size())
    val = load_val_data(s, data)
    size = s["image_size"] or getattr(tokenizer, "pretrained_meta", {}).get("image_size")
    if not size:
        raise PixseqError(f"give --image-size: tokenizer {args.tokenizer} does not record its training size")
    cfg = taming_config(tokenizer.config, (size, size), data.num_classes if s["classes"] else 0,
                        s["condition"] or "", s["size"], cond_tok.config if cond_tok is not None else None)
    model, history = fit_prior(args.tokenizer, data.images, data.labels, args.out, cfg,
                               train_config, resolve_device(args.device),
                               resume=args.resume, cond_tokenizer_dir=args.cond_tokenizer,
                               callbacks=[RunRecorder(args.out, {**s, "image_size": size}, args.resume)],
                               meta={"class_names": list(data.class_names) if s["classes"] else [],
                                     "data": s["data"]}, held_out=val)
    last = history[-1] if history else {}
    bits = last.get("model/bits_per_code", float("nan"))
    print(f"wrote {Path(args.out)}: prior over {model.grid[0]}x{model.grid[1]} codes, "
          f"{model.prior.num_params() / 1e6:.2f} M params, {bits:.3f} bits/code (last training batch)")
    if "eval/bits_per_code" in last:
        print(f"held-out ({plural(len(val[0]), 'image')} of {s['val_data']}): {last['eval/bits_per_code']:.3f} bits/code "
              f"with the saved weights")
    return 0
