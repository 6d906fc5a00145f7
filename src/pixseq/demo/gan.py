"""``pixseq demo``'s GAN section, from the zoo: the DCGAN ``gan-fm`` (samples, a latent walk,
FID / KID of fresh samples with the real Inception features) and the class-conditional
``cgan-fm`` (a column per class, checked by the zoo's ViT classifier)."""
from __future__ import annotations

import torch

GAN, CGAN, JUDGE = "gan-fm", "cgan-fm", "vit-fm"
#: Demo-scale settings: about 40 s on 2 shared CPU cores (Inception-v3 on 2 x 100 images dominates).
DEMO = dict(fid_samples=100, per_class=6, judged=500)


def demo_section(page, out_dir, device: str | torch.device = "cpu", quick: bool = False) -> dict:
    """Samples, interpolation and FID/KID of ``gan-fm``; class samples of ``cgan-fm`` with the
    share the ViT classifies as the class asked for; returns the numbers shown."""
    from pixseq.classifiers.predict import predict
    from pixseq.data import load_data
    from pixseq.demo.common import Clock, card_number, zoo_model
    from pixseq.gans.evaluate import evaluate_generator, sample_uint8
    from pixseq.gans.interpolate import interpolation_grid
    from pixseq.io import to_uint8

    clock = Clock()
    gan = zoo_model(GAN, "gan", device)
    g = torch.Generator(gan.device).manual_seed(0)
    samples = gan.generate(30 if not quick else 10, generator=g)
    walk = interpolation_grid(gan, 2 if quick else 4, 8, generator=g)
    n = 20 if quick else DEMO["fid_samples"]
    test = load_data("fashion-mnist:test", limit=n)
    scores = evaluate_generator(gan, test.images, num_samples=n, kid_subsets=10)
    t_gan = clock()
    cgan = zoo_model(CGAN, "gan", device)
    judge = zoo_model(JUDGE, "vit", device)
    per = 2 if quick else DEMO["per_class"]
    labels = torch.arange(10).repeat(per)
    grid = cgan.generate(len(labels), labels, generator=g)
    m = 50 if quick else DEMO["judged"]
    asked = torch.arange(m) % 10  # sample_uint8's classes: sample i is of class i mod 10
    preds = predict(judge, sample_uint8(cgan, m, seed=1)).argmax(-1)
    agree = float((preds == asked).float().mean())
    stats = {"fid": scores["fid"], "kid": scores["kid"], "kid_std": scores["kid_std"], "samples": n,
             "class_agreement": agree, "judged": len(asked), "gan_s": t_gan, "cgan_s": clock() - t_gan}
    names = list(test.class_names)
    page.section(f"GANs from the zoo: the DCGAN {GAN} and the conditional {CGAN}")
    page.text(f"A DCGAN generator (z of 100 numbers -> 28x28) trained here with the non-saturating loss and an "
              f"EMA of its weights ({card_number(GAN, 'training')}); its card gives FID "
              f"{card_number(GAN, 'FID')}. Below, fresh samples and a walk between latents (slerp).")
    page.grid([to_uint8(im) for im in samples.cpu()], ncol=10, scale=3, caption=f"{GAN}: random samples")
    page.grid([to_uint8(im) for im in walk.cpu()], ncol=8, scale=3,
              caption="latent interpolation: each row walks between two random latents")
    page.table(["measure", "value"], [
        [f"FID of {n} samples vs {n} held-out test images", stats["fid"]],
        ["KID x 1000 (± std over subsets), same images", f"{1000 * stats['kid']:.1f} ± {1000 * stats['kid_std']:.1f}"],
    ], caption=f"{GAN} measured now with the real Inception-v3 features ({scores['inception']}). FID is biased "
               f"upward at few samples (the card's number uses more); KID is unbiased, so it is the one to compare")
    page.text("The conditional GAN gets the class as one extra input channel in both G and D (an embedding "
              "reshaped to a 1xHxW plane), so it draws the garment it is asked for.")
    page.grid([to_uint8(im) for im in grid.cpu()], ncol=10, scale=3,
              caption=f"{CGAN}: one column per class asked for: " + ", ".join(names))
    page.table(["measure", "value"], [
        [f"share of {len(asked)} samples the zoo's ViT ({JUDGE}) classifies as the class asked for", f"{agree:.1%}"],
        ["the ViT's own accuracy on real test images (its card)", card_number(JUDGE, "test accuracy")],
    ], caption="class consistency of the conditional GAN")
    return stats

