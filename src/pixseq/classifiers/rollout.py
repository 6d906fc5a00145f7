"""Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers").

Each layer's attention ``A_l`` (``(T, T)``, rows summing to 1, heads fused by their mean,
or ``max`` / ``min``) is mixed with the identity for the residual connection, ``0.5 A_l +
0.5 I``, renormalised per row, and the layers are multiplied from the first to the last:
``R = Ã_L ... Ã_1``. Row ``i`` of ``R`` says how much each input token flows into output
token ``i``. For a class-token model the class token's row over the patch tokens is the map;
for an average-pooled model, the mean of the patch tokens' rows (the pooled output is their
mean). ``discard`` drops that share of the lowest attention weights of each layer before
rolling out (a sharper map, as in the common implementation of Gildenblat's
``vit-explain``; 0 keeps the method as published).

:func:`overlay` colours a map (upsampled to the image) over the image for viewing.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pixseq.errors import PixseqError

FUSIONS = ("mean", "max", "min")


def rollout(attentions: list[torch.Tensor], fusion: str = "mean", discard: float = 0.0) -> torch.Tensor:
    """The rolled-out attention ``(B, T, T)`` of per-layer weights ``(B, heads, T, T)``."""
    if fusion not in FUSIONS:
        raise PixseqError(f"unknown head fusion {fusion!r} (known: {', '.join(FUSIONS)})")
    if not 0.0 <= discard < 1.0:
        raise PixseqError(f"--discard must be in [0, 1), got {discard}")
    result = None
    for att in attentions:
        a = att.double()
        a = a.mean(1) if fusion == "mean" else a.amax(1) if fusion == "max" else a.amin(1)  # (B, T, T)
        if discard > 0:
            a = _discard_lowest(a, discard)
        eye = torch.eye(a.size(-1), dtype=a.dtype, device=a.device)
        a = 0.5 * a + 0.5 * eye
        a = a / a.sum(-1, keepdim=True)
        result = a if result is None else a @ result  # later layers act on the earlier layers' mix
    if result is None:
        raise PixseqError("attention rollout needs at least one layer")
    return result


def _discard_lowest(a: torch.Tensor, share: float) -> torch.Tensor:
    """``a`` with the lowest ``share`` of each map's weights set to 0 (row 0 / column 0, the
    class token's own flow, always kept)."""
    B, T, _ = a.shape
    flat = a.reshape(B, -1).clone()
    k = int(flat.size(1) * share)
    if k:
        idx = flat.topk(k, dim=-1, largest=False).indices
        flat.scatter_(1, idx, 0.0)
    out = flat.view(B, T, T)
    out[:, 0, 0] = a[:, 0, 0]
    return out


def rollout_maps(model, images: torch.Tensor, fusion: str = "mean", discard: float = 0.0) -> torch.Tensor:
    """Per-image relevance of each patch ``(B, h, w)`` (summing to 1) for ``model``'s output,
    by attention rollout; ``images`` ``(B, 3, H, W)`` in [0, 1] at a size the model takes."""
    maps = model.attention_maps(images)
    R = rollout(maps, fusion, discard)  # (B, T, T)
    p = model.config.patch_size
    h, w = images.size(-2) // p, images.size(-1) // p
    if model.config.pool == "cls":
        rel = R[:, 0, 1:]  # the class token's flow from each patch
    else:
        rel = R.mean(1)  # the pooled output is the patch tokens' mean
    rel = rel / rel.sum(-1, keepdim=True).clamp_min(1e-12)
    return rel.view(-1, h, w).float()


def overlay(image: np.ndarray, relevance: np.ndarray, alpha: float = 0.5, scale: int = 1,
            colormap: str = "inferno") -> np.ndarray:
    """``image`` uint8 ``(H, W, 3)`` with ``relevance`` ``(h, w)`` upsampled (bilinear) over it
    as a heat map (normalised to its own range), enlarged ``scale`` times: uint8 ``(sH, sW, 3)``."""
    from matplotlib import colormaps

    H, W = image.shape[:2]
    rel = torch.as_tensor(np.asarray(relevance, dtype=np.float32))[None, None]
    rel = F.interpolate(rel, size=(H * scale, W * scale), mode="bilinear", align_corners=False)[0, 0].numpy()
    lo, hi = float(rel.min()), float(rel.max())
    rel = (rel - lo) / (hi - lo) if hi > lo else np.zeros_like(rel)
    heat = colormaps[colormap](rel)[..., :3]  # (sH, sW, 3) in [0, 1]
    big = np.asarray(image, dtype=np.float64).repeat(scale, 0).repeat(scale, 1) / 255.0
    return np.clip(np.round(255.0 * ((1 - alpha) * big + alpha * heat)), 0, 255).astype(np.uint8)


def attention_overlays(model, images: torch.Tensor, fusion: str = "mean", discard: float = 0.0,
                       min_side: int = 112) -> list[np.ndarray]:
    """For ``images`` ``(B, 3, H, W)`` in [0, 1] at the model's size: uint8 pictures of each
    image beside its rollout overlay, enlarged (nearest) to at least ``min_side`` pixels high."""
    from pixseq.io import to_uint8
    from pixseq.report.grid import legible_scale, make_grid

    rel = rollout_maps(model, images.to(model.device), fusion, discard).cpu().numpy()
    scale = legible_scale(images.size(-2), min_side)
    out = []
    for im, r in zip(images.cpu(), rel):
        pixels = to_uint8(im)
        big = pixels.repeat(scale, 0).repeat(scale, 1)
        out.append(make_grid([big, overlay(pixels, r, scale=scale)], ncol=2, pad=2))
    return out


def overlay_names(files) -> list[str]:
    """``<stem>.attention.png`` per input file; a stem met twice gets its position in front."""
    from pathlib import Path

    stems = [Path(f).stem for f in files]
    return [f"{i:04d}-{s}.attention.png" if stems.count(s) > 1 else f"{s}.attention.png" for i, s in enumerate(stems)]


def check_overlay_folder(folder, files, force: bool = False) -> None:
    """``--attention DIR`` may be written, holds none of the inputs and none of the overlays
    it would write unless ``force`` (:func:`pixseq.io.claim_output`; checked before any work)."""
    from pathlib import Path

    from pixseq.io import claim_file_in, claim_output, real_path

    claim_output(folder, "--attention", folder=True)
    where = real_path(folder)
    for f in files:
        if real_path(Path(f)).parent == where:
            raise PixseqError(f"--attention {folder} holds the input image {f}: its overlays would be read as "
                              f"inputs next time; choose another folder")
    for name in overlay_names(files):
        claim_file_in(folder, Path(folder) / name, "overlay", force=force)


def save_overlays(model, files, folder, fusion: str = "mean", discard: float = 0.0, batch_size: int = 64) -> list:
    """Write :func:`attention_overlays` of the image ``files`` into ``folder`` (each atomically);
    images of another size than the model's are resized to it first. Returns the paths."""
    from pathlib import Path

    from pixseq.classifiers.predict import as_batch
    from pixseq.io import save_image
    from pixseq.runtime import capture_notices

    folder = Path(folder)
    written = []
    names = overlay_names(files)
    for i in range(0, len(files), batch_size):
        with capture_notices():  # classify already said which images were resized
            x, _ = as_batch(model, files[i:i + batch_size])
        for name, picture in zip(names[i:i + batch_size], attention_overlays(model, x, fusion, discard)):
            written.append(save_image(picture, folder / name))
    return written
