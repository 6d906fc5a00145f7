"""``pixseq demo``'s zoo iGPT section: the shipped Fashion-MNIST iGPT at the full 28x28
(``igpt-fm28``) completing the same kind of held-out images as the live model, and its class
samples, beside its card's numbers."""
from __future__ import annotations

import torch

ZOO_NAME = "igpt-fm28"
#: Demo-scale settings: about 30 s on 2 shared CPU cores.
DEMO = dict(completions=3, per_class=4, temperature=1.0, held_out=200)


def demo_section(page, out_dir, device: str | torch.device = "cpu", quick: bool = False) -> dict:
    """Completions and class samples of the zoo's iGPT, and its held-out bits per pixel on
    ``DEMO['held_out']`` test images; returns the numbers shown."""
    from pixseq.data import load_data
    from pixseq.demo.common import Clock, card_number, one_per_class, zoo_model
    from pixseq.io import to_tensor, to_uint8
    from pixseq.models.evaluation import evaluate_model
    from pixseq.models.generate import MASK_COLOUR

    clock = Clock()
    model = zoo_model(ZOO_NAME, "igpt", device)
    H, _ = model.image_size
    images, labels = one_per_class()
    n_classes = 3 if quick else 10
    images, labels = images[:n_classes], labels[:n_classes]
    keep = H // 2
    x = torch.stack([to_tensor(im) for im in images])
    g = torch.Generator(model.device).manual_seed(0)
    k = 1 if quick else DEMO["completions"]
    out = model.complete(x, keep, num=k, labels=torch.as_tensor(labels), generator=g,
                         temperature=DEMO["temperature"])
    t_complete = clock()
    per = 1 if quick else DEMO["per_class"]
    samples = model.generate(n_classes * per, torch.arange(n_classes).repeat_interleave(per), generator=g,
                             temperature=DEMO["temperature"])
    t_samples = clock()
    held = evaluate_model(model, "fashion-mnist:test", limit=16 if quick else DEMO["held_out"], device=model.device)
    names = list(load_data("fashion-mnist:test", limit=1).class_names)
    tiles = []
    for i, im in enumerate(images):
        half = im.copy()
        half[keep:] = MASK_COLOUR
        tiles += [im, half] + [to_uint8(t) for t in out[i * k:(i + 1) * k].cpu()]
    stats = {"bits_per_pixel": held.means["bits_per_pixel"], "held_out": held.images,
             "complete_s": t_complete, "samples_s": t_samples - t_complete}
    page.section(f"iGPT from the zoo: {ZOO_NAME}, Fashion-MNIST at the full 28x28")
    page.text(f"The model above was trained live for a couple of minutes at 16x16. pixseq also ships one trained "
              f"here for longer with the same recipe (`pixseq train igpt`) at the full 28x28 with 16 colours and "
              f"a class token: `--model zoo:{ZOO_NAME}` works in every verb. Its card: "
              f"{card_number(ZOO_NAME, 'training')}; held out: {card_number(ZOO_NAME, 'held-out at the end')}.")
    page.grid(tiles, ncol=k + 2, scale=3, caption="Each row: a held-out test image | its top half (blue: hidden) | "
                                                   f"{k} completions given its class")
    page.grid([to_uint8(t) for t in samples.cpu()], ncol=per, scale=3,
              caption="Class samples, one row per class: " + ", ".join(names[:n_classes]))
    page.table(["measure", "value"], [
        [f"held-out bits/pixel, first {held.images} test images (28x28; not comparable with 16x16 bits)",
         stats["bits_per_pixel"]],
        ["completions / samples (s)", f"{stats['complete_s']:.0f} / {stats['samples_s']:.0f}"],
    ], caption=f"{ZOO_NAME} on this machine")
    return stats
