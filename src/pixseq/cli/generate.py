"""``pixseq generate "PROMPT" --vqgan DIR --clip NAME|DIR``: text to image with VQGAN-CLIP.

The work is :func:`pixseq.guidance.text_to_image.text_to_image`."""
from __future__ import annotations

import argparse

from pixseq.cli.common import add_force_argument, add_weights_arguments, path_arg

HELP = "text to image: optimise a VQGAN's codes until CLIP (or a LiT model) judges them close to a prompt"


def add_parser(p: argparse.ArgumentParser) -> None:
    p.add_argument("prompt", nargs="?", default=None,
                   help="prompts 'a castle|pencil sketch:0.5|blurry:-1' (TEXT:WEIGHT; negative pushes away)")
    p.add_argument("--vqgan", required=True, help="VQGAN model directory (pixseq train vqgan / convert taming)")
    p.add_argument("--clip", required=True,
                   help="guide: an open_clip architecture[:tag] (ViT-B-32, ViT-B-32:laion2b_s34b_b79k), "
                        "random:ARCH (random weights), or a model folder (pixseq train clip, or an open_clip hub folder)")
    p.add_argument("--clip-weights", type=path_arg, default=None, help="an explicit CLIP weight file for --clip ARCH")
    p.add_argument("--out", required=True, type=path_arg, help="output image, e.g. out.png")
    add_force_argument(p, "--out / --video / --frames / the upscaled image")
    p.add_argument("--size", default="256x256", help="WIDTHxHEIGHT, rounded to the VQGAN's factor (default 256x256)")
    p.add_argument("--steps", type=int, default=300, help="optimisation steps (default 300)")
    p.add_argument("--lr", type=float, default=0.1, help="Adam step size on the latent (default 0.1)")
    p.add_argument("--cutn", type=int, default=32, help="random cut-outs per step (default 32)")
    p.add_argument("--cut-pow", type=float, default=1.0, help="cut-out size exponent: >1 smaller, <1 larger (1.0)")
    p.add_argument("--cut-batch", type=int, default=8, help="cut-outs the guide sees at once: bounds memory (8)")
    p.add_argument("--image-prompt", action="append", default=[], metavar="PATH[:WEIGHT]",
                   help="an image to aim at (repeatable)")
    p.add_argument("--init-image", type=path_arg, default=None, help="start from this image's codes")
    p.add_argument("--init-weight", type=float, default=0.0,
                   help="pull toward the init image's latent (MSE), decaying over --init-decay steps (default 0)")
    p.add_argument("--init-decay", type=float, default=50.0, help="steps after which the init pull is halved (50)")
    p.add_argument("--tv-weight", type=float, default=0.0, help="total-variation smoothness weight (default 0)")
    p.add_argument("--frame-every", type=int, default=0, help="keep a frame every N steps (for --frames / --video)")
    p.add_argument("--frames", type=path_arg, default=None, help="write the frames into this folder")
    p.add_argument("--video", type=path_arg, default=None, help="write the frames as an animated .gif / .webp")
    p.add_argument("--recompute", choices=("auto", "on", "off"), default="auto",
                   help="recompute decoder activations in the backward pass to save memory (auto: from 384x384)")
    p.add_argument("--upscale", type=float, default=None, metavar="S",
                   help="also write the image super-resolved S times (e.g. 4) as OUT-xS.png (pixseq upscale's nets)")
    p.add_argument("--upscale-model", default="realesrgan-x4plus",
                   help="the super-resolution model for --upscale (default realesrgan-x4plus)")
    add_weights_arguments(p)


def run(args: argparse.Namespace) -> int:
    from pixseq.device import resolve_device
    from pixseq.guidance.text_to_image import generate_config, parse_size, text_to_image, upscaled_path

    cfg = generate_config(args.steps, args.lr, args.cutn, args.cut_pow, args.cut_batch, args.tv_weight,
                          args.init_weight, args.init_decay, args.frame_every, args.recompute, args.seed)
    result = text_to_image(args.prompt, args.vqgan, args.clip, args.out, parse_size(args.size), cfg,
                           args.image_prompt, args.init_image, args.video, args.frames, args.clip_weights,
                           args.weights_dir, args.offline, resolve_device(args.device), args.upscale,
                           args.upscale_model, force=args.force)
    h, w = result.size
    print(f"wrote {args.out}: {w}x{h}, {result.generation.steps_done} steps, loss {result.generation.loss:.4f}")
    for text, score in result.clip_scores.items():
        print(f"CLIP score {score:.2f} for {text!r} (torchmetrics' definition: max(100 cos, 0))")
    if args.upscale is not None:
        print(f"wrote {upscaled_path(result.out, args.upscale)}: {args.upscale:g}x ({args.upscale_model})")
    if result.guide_note:
        print(result.guide_note)
    if args.video is not None:
        print(f"wrote {args.video}: the frames of every {args.frame_every} steps, animated")
    return 0
