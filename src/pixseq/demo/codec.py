"""``pixseq demo``'s codec and assessment section, from the zoo: the photo model
``taming-photo`` codes held-out photos at a budget of bits per pixel beside JPEG, WebP and
AVIF at the same budget; every decoded image is assessed (PSNR, SSIM, MS-SSIM, the
label-overlap score, BRISQUE)."""
from __future__ import annotations

import numpy as np
import torch

ZOO_NAME = "taming-photo"
#: Demo-scale settings: photos (none of them among the model's training images), their side
#: and the budget; about 40 s on 2 shared CPU cores.
DEMO = dict(photos=("astronaut", "coffee", "chelsea"), side=256, bpp=0.25)


def demo_section(page, out_dir, device: str | torch.device = "cpu", quick: bool = False) -> dict:
    """Code each photo with the zoo model and the classic codecs at ``DEMO['bpp']``, assess the
    decoded images; returns the mean of each measure per codec."""
    from skimage import data

    from pixseq.codec.compare import Measurer, classic_codecs
    from pixseq.codec.target import classic_at_bpp, pixseq_at_bpp
    from pixseq.demo.common import Clock, card_number, zoo_model
    from pixseq.demo.translate import _square
    from pixseq.runtime import notice

    clock = Clock()
    model = zoo_model(ZOO_NAME, "taming", device)
    side = 128 if quick else DEMO["side"]
    names = DEMO["photos"][:1] if quick else DEMO["photos"]
    photos = [_square(np.asarray(getattr(data, n)()), side) for n in names]
    measure = Measurer(label_overlap=True, log=lambda line: None)
    rows, shown, per_codec = [], [], {}
    for name, photo in zip(names, photos):
        coded = [pixseq_at_bpp(photo, model, DEMO["bpp"], f"zoo:{ZOO_NAME}", name="pixseq")]
        coded += [classic_at_bpp(photo, c, DEMO["bpp"]) for c in classic_codecs()]
        shown.append([photo] + [c.decoded for c in coded])
        for c in coded:
            scores = measure(photo, c.decoded)
            per_codec.setdefault(c.codec, []).append({"bpp": c.bpp, **scores})
            rows.append([name, c.codec, c.setting, c.bpp] + [scores.get(k) for k in ("psnr", "ssim", "ms_ssim",
                                                                                   "label_overlap", "brisque")]
                        + ["" if c.within else "over budget"])
    means = {codec: {k: float(np.mean([r[k] for r in rs if k in r])) for k in rs[0]} for codec, rs in per_codec.items()}
    codecs = list(per_codec)
    page.section(f"Neural compression from the zoo: {ZOO_NAME} against JPEG, WebP and AVIF at "
                 f"{DEMO['bpp']} bits per pixel")
    page.text(f"The codec turns a photo into VQGAN codes (8x8 pixels per code) and range-codes them with the "
              f"probabilities of the GPT prior: a `.pxs` file, decoded bit-exactly on the same machine. "
              f"{ZOO_NAME} was trained here on crops of the opencv-doc photos ({card_number(ZOO_NAME, 'training')}); "
              f"the photos below are scikit-image's, which it never saw. Each codec gets its best setting within "
              f"{DEMO['bpp']} bits per pixel (the web UI's 'Compress & assess' tab does the same for any photo).")
    page.grid([t for row in shown for t in row], ncol=len(codecs) + 1, scale=1,
              caption="each row: the original | " + " | ".join(codecs) + f", all at most {DEMO['bpp']} bpp")
    score = measure.score_name or "label overlap"
    page.table(["photo", "codec", "setting", "bpp", "PSNR (dB)", "SSIM", "MS-SSIM", score, "BRISQUE", ""], rows,
               caption=f"the assessment of every decoded image (`pixseq assess`): full-reference PSNR, SSIM, MS-SSIM "
                       f"and {score} (higher is better), no-reference BRISQUE (lower is better)")
    page.table(["codec", "mean bpp", "mean PSNR (dB)", "mean MS-SSIM", f"mean {score}"],
               [[c, m["bpp"], m.get("psnr"), m.get("ms_ssim"), m.get("label_overlap")] for c, m in means.items()],
               caption="means over the photos")
    for line in measure.notes:
        notice(line)
    return {"means": means, "seconds": clock()}
