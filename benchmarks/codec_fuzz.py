"""Fuzz the .pxs decoder with >= 10 000 damaged files: only PixseqError, no crash, no hang.

Damage kinds (seeded NumPy RNG): flips/overwrites of 1-4 bytes, truncation, insertion,
random garbage with a valid magic — each both raw (checksums then catch it) and re-sealed
(CRCs recomputed, so the field checks, the model check and the range decoder are reached).
Prints a markdown table of outcomes; any other exception type or a case slower than
--slow seconds is a failure (exit code 1).

    python benchmarks/codec_fuzz.py [--cases 10000] [--seed 0]
"""
from __future__ import annotations

import argparse
import collections
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _codec_models import sample_image, tiny_igpt  # noqa: E402
from test_codec_fuzz import reseal  # noqa: E402  (the same CRC re-sealing as the test suite)

from pixseq.codec import compress, decompress  # noqa: E402
from pixseq.errors import PixseqError  # noqa: E402


def damage(valid: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    kind = rng.choice(["flip", "overwrite", "truncate", "insert", "garbage"])
    d = bytearray(valid)
    if kind == "flip":
        for _ in range(rng.integers(1, 5)):
            d[rng.integers(len(d))] ^= 1 << int(rng.integers(8))
    elif kind == "overwrite":
        for _ in range(rng.integers(1, 5)):
            d[rng.integers(len(d))] = int(rng.integers(256))
    elif kind == "truncate":
        d = d[: rng.integers(len(d))]
    elif kind == "insert":
        pos = int(rng.integers(len(d) + 1))
        d = d[:pos] + rng.bytes(int(rng.integers(1, 17))) + d[pos:]
    else:
        d = bytearray(b"PXSQ\x01" + rng.bytes(int(rng.integers(0, 200))))
    return kind, bytes(d)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slow", type=float, default=5.0, help="seconds after which a case counts as a hang")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = tiny_igpt(size=4)
    valid = compress(sample_image(7, 5), model, "m", batch=2)
    rng = np.random.default_rng(args.seed)
    outcomes: collections.Counter = collections.Counter()
    bad, slowest, t_all = [], 0.0, time.perf_counter()
    for i in range(args.cases):
        kind, data = damage(valid, rng)
        sealed = bool(rng.integers(2))
        if sealed:
            data = reseal(data)
        t0 = time.perf_counter()
        try:
            decompress(data, model)
            outcome = "decoded (damage left a valid file)"
        except PixseqError as exc:
            msg = str(exc)
            outcome = "PixseqError: " + re.sub(r"\d+", "N", msg.split(":")[0])[:60]
            if "\n" in msg:
                bad.append((i, kind, "multi-line message"))
        except Exception as exc:  # noqa: BLE001 - exactly what the fuzzer hunts for
            outcome = f"OTHER {type(exc).__name__}"
            bad.append((i, kind, repr(exc)[:200]))
        dt = time.perf_counter() - t0
        slowest = max(slowest, dt)
        if dt > args.slow:
            bad.append((i, kind, f"slow: {dt:.1f}s"))
        outcomes[(("sealed " if sealed else "raw ") + kind, outcome)] += 1
    total = time.perf_counter() - t_all
    print("| damage | outcome | cases |\n|---|---|---|")
    for (k, o), n in sorted(outcomes.items()):
        print(f"| {k} | {o} | {n} |")
    print(f"\n{args.cases} cases in {total:.1f}s ({1000 * total / args.cases:.2f} ms/case, slowest {slowest * 1000:.0f} ms); "
          f"failures (non-PixseqError, multi-line, slow): {len(bad)}")
    for b in bad[:10]:
        print("FAIL", b)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
