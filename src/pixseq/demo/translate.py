"""``pixseq demo``'s translation section, from the zoo: ``cyclegan-vintage`` (vintagify's
CycleGAN generator, converted once from its PyPI package) turns held-out modern photos into
vintage ones."""
from __future__ import annotations

import numpy as np
import torch

ZOO_NAME = "cyclegan-vintage"
#: Demo-scale settings: the photos and their side; about 15 s on 2 shared CPU cores.
DEMO = dict(photos=("astronaut", "coffee", "chelsea"), side=256)


def _square(image: np.ndarray, side: int) -> np.ndarray:
    """The centre square of ``image``, resized to ``side`` (bicubic)."""
    from PIL import Image

    h, w = image.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return np.asarray(Image.fromarray(image[y:y + s, x:x + s]).resize((side, side), Image.BICUBIC))


def demo_section(page, out_dir, device: str | torch.device = "cpu", quick: bool = False) -> dict:
    """Translate built-in photos modern -> vintage with ``cyclegan-vintage``; returns the timings."""
    from skimage import data

    from pixseq.demo.common import Clock, zoo_model
    from pixseq.gans.translator import translate_image

    clock = Clock()
    model = zoo_model(ZOO_NAME, ("cyclegan", "pix2pix"), device)
    side = 96 if quick else DEMO["side"]
    names = DEMO["photos"][:1] if quick else DEMO["photos"]
    photos = [_square(np.asarray(getattr(data, n)()), side) for n in names]
    outs = [translate_image(model, p, "AtoB", tile=0) for p in photos]
    stats = {"photos": len(photos), "side": side, "seconds": clock()}
    page.section(f"Image-to-image translation from the zoo: {ZOO_NAME} (CycleGAN)")
    page.text(f"A CycleGAN generator (ResNet, 9 residual blocks, 11.4 M parameters) trained without paired "
              f"examples to turn modern photos into vintage ones: vintagify's published weights, converted once "
              f"into a pixseq model on first use. `pixseq translate PHOTO --model zoo:{ZOO_NAME}` does the same "
              f"on photos of any size (blended tiles); `pixseq train cyclegan` / `train pix2pix` train your own.")
    tiles = [t for pair in zip(photos, outs) for t in pair]
    page.grid(tiles, ncol=2, scale=1, caption="left: a built-in photo (" + ", ".join(names) + f"), {side}x{side}; "
                                               f"right: translated to 'vintage' ({stats['seconds']:.0f} s in all)")
    return stats
