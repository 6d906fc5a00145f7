"""``pixseq demo``: the main job - every pixseq system on one HTML page (one small iGPT trained
live, the zoo's models for the rest)."""
from __future__ import annotations

import argparse

HELP = ("every pixseq system on one HTML page in about five CPU minutes: a small iGPT trained live, then the "
        "zoo's models (completion, VQGAN, GANs + FID, ViT, text to image, upscaling, translation, codec)")


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.cli.common import path_arg

    parser.add_argument("--out", default="pixseq-demo", type=path_arg, help="output folder (default ./pixseq-demo); "
                                                               "the page is OUT/index.html, the model OUT/model")
    parser.add_argument("--quick", action="store_true", help="a tiny version in well under a minute (tests, CI)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default 300; 25 with --quick)")
    parser.add_argument("--budget", type=float, default=None,
                        help="training time cap in seconds (default 150; 20 with --quick)")


def run(args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from pixseq.demo import FULL, QUICK, check_demo_data, run_demo
    from pixseq.device import resolve_device
    from pixseq.errors import PixseqError
    from pixseq.io import claim_output
    from pixseq.runtime import seed_everything

    settings = QUICK if args.quick else FULL
    if args.steps is not None:
        if args.steps < 1:
            raise PixseqError(f"--steps must be >= 1, got {args.steps}")
        # the demo's own warm-up must not outlast a short run (it would warn that it never ends)
        settings = dataclasses.replace(settings, steps=args.steps,
                                       warmup_steps=min(settings.warmup_steps, args.steps // 2))
    if args.budget is not None:
        if not args.budget > 0:  # NaN too: no clock passes it, so the cap was silently off ("nan s")
            raise PixseqError(f"--budget must be > 0 seconds, got {args.budget}")
        settings = dataclasses.replace(settings, time_budget_s=args.budget)
    out = claim_output(Path(args.out), "--out", folder=True)  # only its last level is created
    check_demo_data()
    device = resolve_device(args.device)
    seed_everything(args.seed)
    try:
        run_demo(out, device, quick=args.quick, seed=args.seed, settings=settings)
    except KeyboardInterrupt:
        # the page is saved after each part, so what it shows is whole; the live model trains
        # again from scratch in a couple of minutes, so "run it again" is the honest way on
        raise PixseqError(f"demo interrupted: {out / 'index.html'} shows the parts that finished; run the same "
                          f"command again to make the whole page (about five minutes)") from None
    return 0
