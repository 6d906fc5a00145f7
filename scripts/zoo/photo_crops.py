"""Training crops for the zoo's photo codec model (``vqgan-photo`` / ``taming-photo``).

The colour photos of Debian ``opencv-doc`` (Apache-2.0; ``apt-get install opencv-doc``), none
of which is among pixseq's built-in ``photos`` (scikit-image, scikit-learn, matplotlib), so the
built-in photos stay held out for the codec's measurements. Each photo is taken at four scales
(1, 1/1.5, 1/2, 1/3) and cut into random square crops; crops that are nearly flat (a
standard deviation under 4 grey levels) are dropped, they teach the codec nothing.

    python3 scripts/zoo/photo_crops.py OUT_DIR [--side 64] [--per-scale 40] [--seed 0]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

SOURCE = Path("/usr/share/doc/opencv-doc/examples/data")
#: natural colour photos of opencv-doc (calibration boards, logos, text and drawings left out)
PHOTOS = ("aero1.jpg", "aero3.jpg", "aloeL.jpg", "apple.jpg", "baboon.jpg", "basketball1.png", "board.jpg",
          "building.jpg", "butterfly.jpg", "fruits.jpg", "home.jpg", "leuvenA.jpg", "leuvenB.jpg", "messi5.jpg",
          "orange.jpg", "rubberwhale1.png", "smarties.png", "squirrel_cls.jpg", "starry_night.jpg", "stuff.jpg",
          "HappyFish.jpg", "lena.jpg", "graf1.png", "box_in_scene.png")


def crops(image: Image.Image, side: int, per_scale: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Random ``side``-square crops of ``image`` at four scales, flat ones dropped."""
    out = []
    for scale in (1.0, 1 / 1.5, 1 / 2, 1 / 3):
        w, h = round(image.width * scale), round(image.height * scale)
        if min(w, h) < side:
            continue
        arr = np.asarray(image.resize((w, h), Image.LANCZOS) if scale != 1.0 else image)
        for _ in range(per_scale):
            y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = arr[y:y + side, x:x + side]
            if crop.std() >= 4.0:
                out.append(crop)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--side", type=int, default=64)
    ap.add_argument("--per-scale", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=False)
    n = 0
    for name in PHOTOS:
        if not (SOURCE / name).is_file():
            continue
        image = Image.open(SOURCE / name).convert("RGB")
        for crop in crops(image, args.side, args.per_scale, rng):
            Image.fromarray(crop).save(args.out / f"{Path(name).stem}-{n:05d}.png")
            n += 1
    print(f"wrote {n} crops of {args.side}x{args.side} to {args.out}")


if __name__ == "__main__":
    main()
