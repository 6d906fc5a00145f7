"""``pixseq demo``'s Taming section, from the zoo's ``taming-fm``: its VQGAN's reconstructions
of held-out images, class samples from its prior, and samples larger than the training size
with the sliding attention window."""
from __future__ import annotations

import math

import numpy as np
import torch

ZOO_NAME = "taming-fm"
#: Demo-scale settings: about 20 s on 2 shared CPU cores.
DEMO = dict(reconstructions=10, per_class=4, big=(56, 56), big_classes=(0, 1, 7, 8))


def demo_section(page, out_dir, device: str | torch.device = "cpu", quick: bool = False) -> dict:
    """Reconstructions (PSNR), class samples and sliding-window samples of the zoo's
    ``taming-fm``; returns the numbers shown."""
    from pixseq.data import load_data
    from pixseq.demo.common import Clock, card_number, zoo_model
    from pixseq.io import to_tensor, to_uint8
    from pixseq.metrics.pixel import psnr

    clock = Clock()
    model = zoo_model(ZOO_NAME, "taming", device)
    vq = model.tokenizer
    test = load_data("fashion-mnist:test", limit=64 if quick else 500)
    x = to_tensor(np.stack(test.images)).to(model.device)
    with torch.no_grad():
        rec = torch.cat([vq.reconstruct(x[i:i + 100]) for i in range(0, len(x), 100)])
        used = torch.unique(torch.cat([vq.encode(x[i:i + 100]).flatten() for i in range(0, len(x), 100)])).numel()
    n = DEMO["reconstructions"]
    g = torch.Generator(model.device).manual_seed(0)
    per = 1 if quick else DEMO["per_class"]
    classes = 3 if quick else 10
    samples = model.generate(classes * per, torch.arange(classes).repeat(per), generator=g)
    big_classes = DEMO["big_classes"][:1 if quick else None]
    big = model.generate(len(big_classes), torch.tensor(big_classes), size=DEMO["big"], generator=g)
    h, w = model.grid
    K = vq.vocab_size
    stats = {"psnr_db": float(psnr(rec.cpu().float(), x.cpu().float(), reduction="mean")), "images": len(x),
             "codes_used": used, "codebook": K, "raw_bpp": h * w * math.log2(K) / (28 * 28), "seconds": clock()}
    names = list(test.class_names)
    page.section(f"Taming Transformers from the zoo: {ZOO_NAME} (VQGAN tokenizer + class-conditional GPT)")
    page.text(f"A VQGAN turns each 28x28 garment into a {h}x{w} grid of codes from a codebook of {K}; a GPT "
              f"learned the order of those codes for each class. Both were trained here with `pixseq train vqgan` "
              f"and `pixseq train prior --classes` (the prior: {card_number(ZOO_NAME, 'training')}; held out: "
              f"{card_number(ZOO_NAME, 'held-out at the end')}).")
    page.grid([to_uint8(im) for im in torch.cat([x[:n], rec[:n]]).cpu()], ncol=n, scale=3,
              caption="top: held-out test images; bottom: the VQGAN's reconstructions from their codes")
    page.table(["measure", "value"], [
        [f"reconstruction PSNR, {len(x)} held-out images (dB)", stats["psnr_db"]],
        ["codes used by those images", f"{used} of {K}"],
        ["bits per pixel of the raw codes (before the prior's entropy coding)", stats["raw_bpp"]],
    ], caption=f"{ZOO_NAME}'s tokenizer on held-out data")
    page.grid([to_uint8(im) for im in samples.cpu()], ncol=classes, scale=3,
              caption="class samples from the prior, one column per class: " + ", ".join(names[:classes]))
    page.grid([to_uint8(im) for im in big.cpu()], ncol=len(big_classes), scale=2,
              caption=f"{DEMO['big'][1]}x{DEMO['big'][0]} samples, twice the training size each way, with the "
                      f"sliding attention window, asked for class " + ", ".join(names[c] for c in big_classes)
                      + ". The prior only ever saw single 28x28 garments, so a larger canvas shows garment-like "
                        "strokes and textures continued across it, not one larger garment")
    return stats
