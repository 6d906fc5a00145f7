"""``pixseq demo``'s text-to-image section, from the zoo: the LiT guide ``lit-fm`` steers the
VQGAN ``vqgan-fm`` (VQGAN-CLIP): one image per class prompt, judged by the guide, and the
guide's zero-shot accuracy on held-out images."""
from __future__ import annotations

import time

import numpy as np
import torch

#: The zoo's guide and tokenizer; demo-scale settings: about 40 s on 2 shared CPU cores.
LIT, VQGAN = "lit-fm", "vqgan-fm"
DEMO = dict(gen_steps=40, cutn=8, zero_shot_images=1000)


def demo_section(page, out_dir, device: str | torch.device = "cpu", quick: bool = False) -> dict:
    """Generate one image per class prompt with the zoo's LiT guide steering the zoo's VQGAN,
    show them with their CLIP scores and the guide's held-out zero-shot accuracy; returns the numbers."""
    from pixseq.data import load_data
    from pixseq.demo.common import zoo_model
    from pixseq.guidance.prompts import parse_prompts
    from pixseq.guidance.text_to_image import final_scores, generate_config
    from pixseq.guidance.vqgan_clip import embed_targets, vqgan_clip
    from pixseq.guidance.zero_shot import zero_shot_classify
    from pixseq.io import to_tensor

    d = DEMO
    t0 = time.perf_counter()
    vqgan = zoo_model(VQGAN, "vqgan", device)
    lit = zoo_model(LIT, "lit", device).frozen()
    concepts = list(lit.config.concepts)
    test = load_data("fashion-mnist:test", limit=64 if quick else d["zero_shot_images"])
    zs = zero_shot_classify(to_tensor(np.stack(test.images)).to(device), concepts, lit)
    accuracy = float((zs.probs.argmax(1).numpy() == test.labels).mean())
    t1 = time.perf_counter()
    images, scores = [], []
    cfg = generate_config(steps=2 if quick else d["gen_steps"], cutn=d["cutn"], cut_batch=d["cutn"], seed=0)
    for name in concepts[:2] if quick else concepts:
        prompts = parse_prompts(f"a photo of a {name}.")
        with torch.no_grad():
            text = lit.embed_text([prompts[0].text])
        result = vqgan_clip(vqgan, lit, embed_targets(lit, prompts), (28, 28), cfg)
        images.append(result.image)
        scores.append(final_scores(lit, result.image, [prompts[0].text], text)[prompts[0].text])
    stats = {"zero_shot_s": t1 - t0, "generate_s": time.perf_counter() - t1,
             "zero_shot_accuracy": accuracy, "mean_clip_score": float(np.mean(scores))}
    _page(page, images, scores, stats, concepts, cfg.steps, lit.scope_note, len(test.images))
    return stats


def _page(page, images, scores, stats, concepts, gen_steps, note, n_test) -> None:
    from pixseq.demo.common import card_number
    from pixseq.io import to_uint8

    prompts = [f"a photo of a {n}." for n in concepts[:len(images)]]
    page.section(f"Text to image from the zoo: VQGAN-CLIP with the LiT guide {LIT} and the VQGAN {VQGAN}")
    page.text(f"No CLIP weights ship anywhere offline, so pixseq trained its own guide: a small CNN image tower "
              f"aligned with the locked all-MiniLM-L6-v2 text encoder on Fashion-MNIST captions (LiT, Zhai et al. "
              f"2022; {card_number(LIT, 'training')}). It steers the zoo VQGAN's 7x7 codes: {gen_steps} "
              f"optimisation steps per prompt, random cut-outs, straight-through quantisation. With CLIP weights "
              f"(`pixseq generate --clip ViT-B-32`) the same code makes images of anything.")
    page.note(note)
    page.grid([to_uint8(im) for im in images], ncol=len(images), scale=4,
              caption="one image per prompt: " + "; ".join(f"'{p}'" for p in prompts))
    page.table(["measure", "value"], [
        [f"guide's zero-shot accuracy, {n_test} held-out test images (label text only)",
         f"{stats['zero_shot_accuracy']:.1%}"],
        ["mean CLIP score of the generated images (the guide's own judgement)", stats["mean_clip_score"]],
        ["zero-shot / generation time (s)", f"{stats['zero_shot_s']:.0f} / {stats['generate_s']:.0f}"],
    ], caption="text-to-image numbers")
    page.table(["prompt", "CLIP score"], [[p, s] for p, s in zip(prompts, scores)],
               caption="CLIP score (torchmetrics' definition: 100 x cosine, floored at 0) of each image for its "
                       "prompt, by the LiT guide")
