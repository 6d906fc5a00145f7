"""4x super-resolution quality on held-out photos: pixseq's converted x4plus, bicubic, and the
ncnn runtime on the same files.

    python benchmarks/upscale_quality.py --crop 192

Each of the built-in photos (scikit-image, scikit-learn, matplotlib: none was used to make
the weights) gives its centre ``--crop`` x ``--crop`` as the reference, bicubic-downsampled 4x
(Pillow's antialiased bicubic, as MATLAB's imresize) as the input. Upscaled back by bicubic
interpolation, by pixseq (realesrgan-x4plus, whole image) and by the ncnn runtime (PyPI
``ncnn``, fp32, same .param/.bin), each output is scored against the reference: PSNR (RGB,
peak 255), SSIM (Wang et al.: 11x11 Gaussian, sigma 1.5), and LPIPS when its backbone
weights are on disk (they do not ship offline: the line says so, and the EfficientNet-Lite0
feature distance pixseq trains with stands in, labelled as such).

Real-ESRGAN is trained for real-world degradations (blur, noise, JPEG) and for perceptual
quality, not for PSNR on clean bicubic inputs: expect its PSNR near or below bicubic's and its
perceptual distance below bicubic's; pixseq and ncnn should agree to the last digit.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def perceptual():
    """(name, distance(a, b) on (1, 3, H, W) floats in [0, 1])."""
    from pixseq.errors import PixseqError

    try:
        from pixseq.metrics.lpips import load_lpips, lpips

        net = load_lpips("alex")
        return "LPIPS (AlexNet)", lambda a, b: float(lpips(a, b, net).mean())
    except (PixseqError, OSError) as exc:
        from pixseq.tokenizers.losses import EffNetFeatures, load_effnet_weights

        why = str(exc)[:90]
        feats = EffNetFeatures(load_effnet_weights())
        name = f"EfficientNet-Lite0 feature distance (LPIPS unavailable: {why})"
        return name, lambda a, b: float(feats(a * 2 - 1, b * 2 - 1).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("upscale-quality.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from pixseq.data import builtin_photos
    from pixseq.metrics.pixel import psnr
    from pixseq.metrics.ssim import ssim
    from pixseq.upscale import load_upscaler, upscale_image
    from pixseq.upscale.named import package_files
    from pixseq.upscale.ncnn import run_ncnn_runtime

    model = load_upscaler("realesrgan-x4plus")
    param, bin_path = package_files("realesrgan-x4plus")
    pname, pdist = perceptual()
    photos = builtin_photos()
    c = args.crop
    scores: dict[str, dict[str, list[float]]] = {m: {"psnr": [], "ssim": [], "perceptual": []}
                                                 for m in ("bicubic", "pixseq", "ncnn")}
    used = []
    for name, im in zip(photos.names, photos.images):
        if min(im.shape[:2]) < c:
            continue
        y, x = (im.shape[0] - c) // 2, (im.shape[1] - c) // 2
        hr = np.ascontiguousarray(im[y:y + c, x:x + c])
        lr = np.asarray(Image.fromarray(hr).resize((c // 4, c // 4), Image.BICUBIC))
        outs = {"bicubic": np.asarray(Image.fromarray(lr).resize((c, c), Image.BICUBIC)),
                "pixseq": upscale_image(model, lr, tile=0),
                "ncnn": np.clip(np.round(run_ncnn_runtime(param, bin_path, lr.astype(np.float32) / 255,
                                                          args.threads) * 255), 0, 255).astype(np.uint8)}
        ref = torch.from_numpy(hr).permute(2, 0, 1)[None].float() / 255
        for method, out in outs.items():
            t = torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)[None].float() / 255
            scores[method]["psnr"].append(float(psnr(t, ref)))
            scores[method]["ssim"].append(float(ssim(t, ref)))
            with torch.no_grad():
                scores[method]["perceptual"].append(pdist(t, ref))
        used.append(name)
        print(f"{name:24s} " + "  ".join(f"{m} {scores[m]['psnr'][-1]:.2f} dB" for m in scores), flush=True)
    print(f"\n{len(used)} photos, centre {c}x{c}, 4x bicubic-downsampled; perceptual: {pname}")
    print(f"{'method':10s} {'PSNR dB':>9s} {'SSIM':>7s} {'perceptual':>11s}")
    summary = {}
    for method, s in scores.items():
        summary[method] = {k: float(np.mean(v)) for k, v in s.items()}
        print(f"{method:10s} {summary[method]['psnr']:9.3f} {summary[method]['ssim']:7.4f} "
              f"{summary[method]['perceptual']:11.4f}")
    gap = max(abs(a - b) for a, b in zip(scores["pixseq"]["psnr"], scores["ncnn"]["psnr"]))
    print(f"largest per-photo PSNR gap pixseq vs ncnn: {gap:.4f} dB")
    args.out.write_text(json.dumps({"photos": used, "crop": c, "perceptual": pname, "mean": summary,
                                    "per_photo": scores, "pixseq_ncnn_psnr_gap": gap}, indent=2))


if __name__ == "__main__":
    main()
