"""Codec throughput and coder overhead on the built-in photos with a small trained iGPT.

For each photo (held-out ones first): encode and decode tokens/s with the KV cache
(IncrementalDecoder, one token per tile per step), the decode/encode time ratio, the
model's cross-entropy -log2 p(tokens) and the range coder's overhead over it (payload only,
header excluded) — side by side with what a user could do without the prior: the raw
8-bit tokens, the tokens through lzma, and the palette image as PNG. Then a 1000x1000
photo is coded to show that memory stays bounded (peak RSS growth vs the image size).

    python benchmarks/codec_throughput.py [--scale 4] [--limit 6]
"""
from __future__ import annotations

import argparse
import io
import lzma
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _codec_model import HELD_OUT, photo_igpt  # noqa: E402

from pixseq.checkpoint import from_pretrained  # noqa: E402
from pixseq.codec import compress_with_stats, decompress, reconstruct  # noqa: E402
from pixseq.codec.codec import _coded_image, plan  # noqa: E402
from pixseq.data import builtin_photos  # noqa: E402
from pixseq.io import to_tensor  # noqa: E402


def baselines(image: np.ndarray, model, scale: int) -> dict[str, int]:
    """Bytes of the same tokens stored without the prior."""
    header = plan(model, image.shape[0], image.shape[1], scale)
    coded = _coded_image(image, header)
    tokens = model.tokenizer.encode(to_tensor(coded)[None])[0].numpy()  # (h, w) palette indices
    raw = tokens.astype(np.uint8 if model.tokenizer.vocab_size <= 256 else np.uint16)
    buf = io.BytesIO()
    pal = (model.tokenizer.palette.numpy() * 255).round().astype(np.uint8)
    im = Image.fromarray(raw.astype(np.uint8), mode="P")
    im.putpalette(pal[:256].reshape(-1).tolist())
    im.save(buf, format="PNG", optimize=True)
    return {"raw": raw.nbytes, "lzma": len(lzma.compress(raw.tobytes(), preset=9)), "png": len(buf.getvalue())}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(side: int, scale: int, batch: int) -> None:
    """In a fresh process: code a side x side photo; print peak RSS before and after (MB)."""
    torch.set_num_threads(1)
    model = from_pretrained(photo_igpt())
    photos = builtin_photos()
    img = np.asarray(Image.fromarray(photos.images[photos.names.index("retina")]).resize((side, side)))
    compress_with_stats(np.ascontiguousarray(img[:16, :16]), model, scale=1, batch=batch)  # warm-up
    before = rss_mb()
    data, st = compress_with_stats(img, model, scale=scale, batch=batch)
    out = decompress(data, model)
    assert out.shape == img.shape
    print(f"{before:.1f} {rss_mb():.1f} {st.tokens} {st.bpp:.4f}")


def memory_check(scale: int, batch: int) -> None:
    """Peak memory of coding a 250x250 and a 1000x1000 photo, each in a fresh process."""
    import subprocess

    print("\n| photo side (retina, resized) | tokens | bpp | peak RSS before coding MB | peak RSS after MB | growth MB |")
    print("|---|---|---|---|---|---|")
    for side in (250, 1000):
        res = subprocess.run([sys.executable, __file__, "--child", str(side), "--big-scale", str(scale),
                              "--batch", str(batch)], capture_output=True, text=True, check=True)
        before, after, tokens, bpp = res.stdout.split()[-4:]
        print(f"| {side}x{side} at 1/{scale} | {tokens} | {bpp} | {before} | {after} | "
              f"{float(after) - float(before):.1f} |")
    print("(16x more pixels and tokens, about the same peak memory: it is bounded by one batch of tiles)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=4, help="downscale factor the photos are coded at")
    ap.add_argument("--limit", type=int, default=6, help="photos to measure (held-out first)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--big-scale", type=int, default=4, help="scale for the 1000x1000 memory check (0: skip)")
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.big_scale, args.batch)
        return 0
    torch.set_num_threads(1)  # coding is single-threaded anyway; keeps the baselines comparable
    model_dir = photo_igpt()
    model = from_pretrained(model_dir)
    photos = builtin_photos()
    order = sorted(range(len(photos)), key=lambda i: (photos.names[i] not in HELD_OUT, i))[: args.limit]
    print(f"model: {model_dir} (tile {model.image_size}, palette {model.tokenizer.vocab_size}), "
          f"coded at 1/{args.scale} scale, batch {args.batch}, torch threads {torch.get_num_threads()} "
          f"(coding runs single-threaded)\n")
    print("| photo | tokens | enc tok/s | dec tok/s | dec/enc time | xent bits/tok | coder overhead | "
          "pixseq bytes | raw tokens | lzma tokens | PNG palette | pixseq vs lzma |")
    print("|" + "---|" * 12)
    tot = {"ideal": 0.0, "payload": 0, "enc": 0.0, "dec": 0.0, "tokens": 0}
    for i in order:
        name, img = photos.names[i], photos.images[i]
        data, st = compress_with_stats(img, model, scale=args.scale, batch=args.batch)
        t0 = time.perf_counter()
        out = decompress(data, model)
        dec_s = time.perf_counter() - t0
        assert np.array_equal(out, reconstruct(img, model, scale=args.scale, batch=args.batch))
        b = baselines(img, model, args.scale)
        tot["ideal"] += st.ideal_bits
        tot["payload"] += st.payload_bits
        tot["enc"] += st.seconds
        tot["dec"] += dec_s
        tot["tokens"] += st.tokens
        tag = " (held out)" if name in HELD_OUT else ""
        print(f"| {name}{tag} | {st.tokens} | {st.tokens_per_second:.0f} | {st.tokens / dec_s:.0f} | "
              f"{dec_s / st.seconds:.2f} | {st.ideal_bits / st.tokens:.3f} | {100 * st.overhead:+.3f}% | "
              f"{len(data)} | {b['raw']} | {b['lzma']} | {b['png']} | {len(data) / b['lzma']:.2f}x |")
    print(f"\nall photos: coder overhead {100 * (tot['payload'] / tot['ideal'] - 1):+.4f}% over the model "
          f"cross-entropy (header excluded; target <= 0.5%); encode {tot['tokens'] / tot['enc']:.0f} tok/s, "
          f"decode {tot['tokens'] / tot['dec']:.0f} tok/s, decode/encode time {tot['dec'] / tot['enc']:.2f}")
    if args.big_scale:
        memory_check(args.big_scale, args.batch)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
