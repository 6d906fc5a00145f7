"""``pixseq ui``: the web UI (Gradio), bound to this machine unless ``--host`` says otherwise.

The work is :func:`pixseq.app.server.serve`; the page's tabs are :mod:`pixseq.app.tabs`.
"""
from __future__ import annotations

import argparse

HELP = ("serve the web UI: complete, sample, text to image, upscale, translate, classify, compress & assess, "
        "models (Gradio, localhost by default)")

#: no --seed: each request carries its own (the page's Seed fields)
SEEDED = False


def add_parser(parser: argparse.ArgumentParser) -> None:
    from pixseq.app.work import Limits
    from pixseq.cli.common import add_weights_arguments, path_arg

    d = Limits()
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 serves "
                             "every network the machine is on)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--models", nargs="+", default=[], metavar="DIR",
                        help="model directories or folders of them (e.g. runs/), offered before the "
                             "pretrained models that ship with pixseq")
    parser.add_argument("--no-zoo", action="store_true", help="offer only the --models, not the shipped models")
    parser.add_argument("--work", type=path_arg, default=None,
                        help="folder for uploads and outputs, cleaned when the server stops (default: a new "
                             "temporary folder, removed when the server stops)")
    parser.add_argument("--concurrency", type=int, default=d.concurrency,
                        help=f"requests computed at once; the others wait in the queue (default {d.concurrency})")
    parser.add_argument("--queue-size", type=int, default=d.queue_size,
                        help=f"requests waiting at most (default {d.queue_size})")
    parser.add_argument("--max-upload-mb", type=int, default=d.max_upload_mb,
                        help=f"largest upload in MB (default {d.max_upload_mb})")
    parser.add_argument("--max-images", type=int, default=d.max_images,
                        help=f"samples or completions per request (default {d.max_images})")
    parser.add_argument("--max-codec-tokens", type=int, default=d.max_codec_tokens,
                        help=f"tokens the pixseq codec codes per image and request (default {d.max_codec_tokens})")
    add_weights_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from pixseq.app.server import serve
    from pixseq.app.work import Limits
    from pixseq.errors import PixseqError

    if not 1 <= args.port <= 65535:  # 0 ("any free port") would leave the printed address wrong
        raise PixseqError(f"--port must be in 1..65535, got {args.port}")
    limits = Limits(max_upload_mb=args.max_upload_mb, concurrency=args.concurrency, queue_size=args.queue_size,
                    max_images=args.max_images, max_codec_tokens=args.max_codec_tokens)
    try:
        serve(args.models, args.host, args.port, args.device, limits, args.work, args.weights_dir, args.offline,
              not args.no_zoo, ready=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print("stopped; the work folder's files are removed", flush=True)
    return 0
