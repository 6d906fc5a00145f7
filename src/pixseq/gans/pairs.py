"""Data for image-to-image translation: paired sets (pix2pix) and unpaired pairs of sets (CycleGAN).

Paired specs (:func:`load_pairs`):

* a folder with ``A/`` and ``B/`` sub-folders whose images are matched by file name (path
  below ``A/`` / ``B/`` without the suffix, so ``A/x.jpg`` pairs with ``B/x.png``); names
  without a partner are an error listing them; a pair of different sizes is an error;
* a folder of pix2pix's side-by-side images: each is ``A`` on the left half, ``B`` on the right
  (the layout of the official ``facades``, ``edges2shoes`` ... sets);
* a built-in task ``TASK:DATA`` that makes ``A`` from any data spec's images ``B``, so
  everything trains offline: ``edges`` (Canny edges from scikit-image, black on white ->
  image), ``colorize`` (BT.601 luma -> colour), ``superres`` (area-downsampled by 4 and
  bicubic-upsampled back -> the original). E.g. ``edges:fashion-mnist``, ``colorize:photos``,
  ``superres:fashion-mnist:test``.

Unpaired (:func:`load_unpaired`): two data specs (``fashion-mnist:Sneaker`` and
``fashion-mnist:Ankle boot`` select classes; see :func:`pixseq.data.load_data`), or one folder
with ``trainA/`` and ``trainB/`` (the official layout; ``A/`` and ``B/`` too).

Training sets (:class:`PairedCrops`, :class:`UnpairedCrops`) follow the official
preprocessing: each image is resized once so its short side is ``load_size`` (286 for 256,
the same ratio for other sizes), then every item is a random ``image_size`` crop, flipped
left-right half the time, the same crop for both images of a pair. Randomness comes from the
global torch RNG, which the Trainer checkpoints: a resumed run draws the same crops. Held-out
sets (:func:`centre_crops`) take the centre crop after resizing the short side to
``image_size``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from pixseq.errors import PixseqError

#: Built-in paired tasks: name -> what A is (B is the image).
TASKS = {"edges": "Canny edges", "colorize": "grey (BT.601 luma)", "superres": "4x lower resolution"}
#: The official load size over the crop size (286 / 256): the jitter of pix2pix and CycleGAN.
JITTER = 286 / 256
SUPERRES_FACTOR = 4


@dataclass
class PairedSet:
    """Aligned images: ``a[i]`` translates to ``b[i]`` (uint8 ``(H, W, 3)``, sizes may differ
    between pairs, never within one); ``task`` says what the pairs are."""

    a: list[np.ndarray]
    b: list[np.ndarray]
    names: list[str]
    spec: str
    task: str
    domain_a: str = "A"
    domain_b: str = "B"
    #: the built-in task that makes A from B (``a`` is empty until :func:`resize_pairs`), or ""
    builtin: str = ""

    def __len__(self) -> int:
        return len(self.b)


# ---------------------------------------------------------------------------- built-in tasks
def canny_edges(image: np.ndarray, sigma: float | None = None) -> np.ndarray:
    """Canny edges of an RGB uint8 image (scikit-image, on its luma) as black lines on white,
    RGB uint8. ``sigma`` defaults to 1 for images up to 64 px, else 2 (the smoothing before
    the gradient: more for larger images, as in edges2shoes-style sets)."""
    from skimage.color import rgb2gray
    from skimage.feature import canny

    s = sigma if sigma is not None else (1.0 if min(image.shape[:2]) <= 64 else 2.0)
    edges = canny(rgb2gray(image), sigma=s)
    grey = np.where(edges, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def make_source(task: str, image: np.ndarray) -> np.ndarray:
    """The ``A`` image of built-in ``task`` for the image ``B`` (uint8 RGB, same size)."""
    if task == "edges":
        return canny_edges(image)
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W)
    if task == "colorize":
        from pixseq.gans.degrade import luma

        y = luma(x).expand(-1, 3, -1, -1)
    elif task == "superres":
        from pixseq.gans.degrade import upsample

        H, W = image.shape[:2]
        f = SUPERRES_FACTOR
        small = torch.nn.functional.interpolate(x, size=(max(1, H // f), max(1, W // f)), mode="area")
        y = upsample(small, (H, W))
    else:
        raise PixseqError(f"unknown built-in task {task!r} (known: {', '.join(TASKS)})")
    return np.ascontiguousarray((y[0].permute(1, 2, 0) * 255).round().clamp(0, 255).byte().numpy())


def _is_grey(images: Sequence[np.ndarray]) -> bool:
    return all(bool((im[..., 0] == im[..., 1]).all() and (im[..., 1] == im[..., 2]).all()) for im in images)


def builtin_pairs(task: str, data: str, limit: int | None = None) -> PairedSet:
    """The built-in paired task ``task`` on the data spec ``data`` (its images are ``B``).
    ``A`` is made later, after resizing (:func:`resize_pairs`), so that edges are drawn at the
    training resolution; here it is left empty."""
    from pixseq.data import load_data

    if task not in TASKS:
        raise PixseqError(f"unknown built-in task {task!r} (known: {', '.join(TASKS)})")
    images = load_data(data, limit=limit)
    if task == "colorize" and _is_grey(images.images):
        raise PixseqError(f"colorize needs colour images; {data!r} is grey")
    name = {"edges": "edges -> image", "colorize": "grey -> colour", "superres": "low-res (1/4) -> high-res"}[task]
    return PairedSet([], list(images.images), list(images.names), f"{task}:{data}", f"{name} on {images.spec}",
                     TASKS[task], "image", builtin=task)


# ---------------------------------------------------------------------------- folders
def _stem(rel: Path) -> str:
    return str(rel.with_suffix(""))


def _listing(folder: Path) -> dict[str, Path]:
    from pixseq.io import list_images

    out: dict[str, Path] = {}
    for f in list_images(folder):
        key = _stem(f.relative_to(folder))
        if key in out:
            raise PixseqError(f"{out[key]} and {f} have the same name in {folder}: pairs are matched by name")
        out[key] = f
    return out


def folder_pairs(folder: Path, limit: int | None = None) -> PairedSet:
    """Pairs from ``folder/A`` and ``folder/B`` matched by name (see the module doc)."""
    from pixseq.io import load_image

    a, b = _listing(folder / "A"), _listing(folder / "B")
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        def show(names: list[str]) -> str:
            return ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else "")

        parts = ([f"{len(only_a)} in A/ only: {show(only_a)}"] if only_a else []) + \
                ([f"{len(only_b)} in B/ only: {show(only_b)}"] if only_b else [])
        raise PixseqError(f"{folder}: the pair folders' names do not match ({'; '.join(parts)})")
    if not a:
        raise PixseqError(f"no images in {folder / 'A'} and {folder / 'B'}")
    names = sorted(a)[:limit]
    pa, pb = [], []
    for n in names:
        ia, ib = load_image(a[n]), load_image(b[n])
        if ia.shape != ib.shape:
            raise PixseqError(f"pair {n!r} has different sizes: {a[n]} is {ia.shape[1]}x{ia.shape[0]}, {b[n]} is "
                              f"{ib.shape[1]}x{ib.shape[0]}; the two images of a pair must be the same size")
        pa.append(ia)
        pb.append(ib)
    return PairedSet(pa, pb, names, str(folder), f"paired folders {folder}/A -> {folder}/B")


def side_by_side_pairs(folder: Path, limit: int | None = None) -> PairedSet:
    """Pairs from pix2pix's ``AB`` images: ``A`` the left half, ``B`` the right."""
    from pixseq.io import list_images, load_image

    files = list_images(folder)[:limit]
    if not files:
        raise PixseqError(f"no images found in folder {folder}")
    pa, pb = [], []
    for f in files:
        im = load_image(f)
        w = im.shape[1]
        if w % 2:
            raise PixseqError(f"{f} is {w}x{im.shape[0]}: a side-by-side pair (A left, B right) needs an even "
                              f"width; or give a folder with A/ and B/ sub-folders")
        pa.append(np.ascontiguousarray(im[:, : w // 2]))
        pb.append(np.ascontiguousarray(im[:, w // 2:]))
    return PairedSet(pa, pb, [str(f.relative_to(folder).with_suffix("")) for f in files], str(folder),
                     f"side-by-side pairs (A | B) in {folder}")


def load_pairs(spec: str, limit: int | None = None) -> PairedSet:
    """A paired set by spec (see the module doc)."""
    task, sep, rest = spec.partition(":")
    if sep and task in TASKS:
        return builtin_pairs(task, rest, limit)
    path = Path(spec)
    if path.is_dir():
        if (path / "A").is_dir() or (path / "B").is_dir():
            if not ((path / "A").is_dir() and (path / "B").is_dir()):
                raise PixseqError(f"{path} has {'A' if (path / 'A').is_dir() else 'B'}/ but not "
                                  f"{'B' if (path / 'A').is_dir() else 'A'}/: paired folders need both")
            return folder_pairs(path, limit)
        return side_by_side_pairs(path, limit)
    if path.exists():
        raise PixseqError(f"paired data {spec!r} is a file; give a folder")
    raise PixseqError(f"unknown paired data {spec!r}: give a folder with A/ and B/ (matched by name), a folder of "
                      f"side-by-side A|B images, or a built-in task {', '.join(t + ':DATA' for t in TASKS)} "
                      f"(e.g. edges:fashion-mnist)")


def load_unpaired(spec_a: str, spec_b: str | None = None, limit: int | None = None, split: str = "train"):
    """``(A images, B images)`` as :class:`pixseq.data.ImageSet` s: two data specs, or
    (``spec_b`` None) one folder with ``trainA/`` + ``trainB/`` (``split`` picks ``test``
    instead) or ``A/`` + ``B/``."""
    from pixseq.data import load_data

    if spec_b is not None:
        return load_data(spec_a, limit=limit), load_data(spec_b, limit=limit)
    root = Path(spec_a)
    for a, b in ((f"{split}A", f"{split}B"), ("A", "B")):
        if (root / a).is_dir() and (root / b).is_dir():
            return load_data(str(root / a), limit=limit), load_data(str(root / b), limit=limit)
    raise PixseqError(f"{spec_a}: unpaired data is two data specs (--data-a, --data-b) or one folder with "
                      f"{split}A/ and {split}B/ (or A/ and B/) sub-folders")


# ---------------------------------------------------------------------------- sizes and crops
def resize_short(image: np.ndarray, short: int) -> np.ndarray:
    """Bicubic resize so the shorter side is ``short`` (aspect kept)."""
    from PIL import Image

    h, w = image.shape[:2]
    if min(h, w) == short:
        return image
    f = short / min(h, w)
    size = (max(short, round(w * f)), max(short, round(h * f)))
    return np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))


def load_size(image_size: int, jitter: bool) -> int:
    """The short side images are resized to before cropping ``image_size`` (the jitter)."""
    return round(image_size * JITTER) if jitter else image_size


def resize_pairs(pairs: PairedSet, short: int) -> tuple[list, list]:
    """Both sides of every pair resized to the short side ``short``; a built-in task's ``A``
    is made from the resized ``B`` (edges drawn at the training resolution)."""
    b = [resize_short(im, short) for im in pairs.b]
    a = [make_source(pairs.builtin, im) for im in b] if pairs.builtin else [resize_short(im, short) for im in pairs.a]
    return a, b


def _crop_box(shape: tuple[int, ...], size: int, rng: bool) -> tuple[int, int]:
    h, w = shape[:2]
    if rng:
        return int(torch.randint(0, h - size + 1, ())), int(torch.randint(0, w - size + 1, ()))
    return (h - size) // 2, (w - size) // 2


def _as_tensor(im: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(im)).permute(2, 0, 1).float() / 255.0  # (3, S, S)


class PairedCrops(torch.utils.data.Dataset):
    """``{"source": A, "image": B, "index"}`` items: the same random ``size`` crop (and flip)
    of both images of pair ``i`` (``random=False``: the centre crop, no flip)."""

    def __init__(self, a: list[np.ndarray], b: list[np.ndarray], size: int, random: bool = True,
                 flip: bool = True) -> None:
        small = [i for i, im in enumerate(b) if min(im.shape[:2]) < size]
        if small:
            raise PixseqError(f"{len(small)} image(s) are smaller than the training size {size}")
        self.a, self.b, self.size, self.random, self.flip = a, b, size, random, flip and random

    def __len__(self) -> int:
        return len(self.b)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self._item(i, self.random)

    def centre(self, i: int) -> dict[str, torch.Tensor]:
        """Item ``i``'s centre crop, unflipped (no RNG)."""
        return self._item(i, False)

    def _item(self, i: int, random: bool) -> dict[str, torch.Tensor]:
        y, x = _crop_box(self.b[i].shape, self.size, random)
        s = self.size
        a, b = self.a[i][y:y + s, x:x + s], self.b[i][y:y + s, x:x + s]
        if random and self.flip and bool(torch.rand(()) < 0.5):
            a, b = a[:, ::-1], b[:, ::-1]
        return {"source": _as_tensor(a), "image": _as_tensor(b), "index": torch.tensor(i)}


class UnpairedCrops(torch.utils.data.Dataset):
    """``{"source": A[i % nA], "image": B[j], "index": i}`` with ``j`` drawn at random for every
    item (the official unaligned set); each a random crop + flip. ``random=False``: pairs A[i]
    with B[i] (the first ``min(nA, nB)`` of each), centre crops, for held-out scores."""

    def __init__(self, a: list[np.ndarray], b: list[np.ndarray], size: int, random: bool = True,
                 flip: bool = True) -> None:
        for name, images in (("A", a), ("B", b)):
            if not images:
                raise PixseqError(f"domain {name} has no images")
            if any(min(im.shape[:2]) < size for im in images):
                raise PixseqError(f"domain {name} has images smaller than the training size {size}")
        self.a, self.b, self.size, self.random, self.flip = a, b, size, random, flip and random

    def __len__(self) -> int:
        return max(len(self.a), len(self.b)) if self.random else min(len(self.a), len(self.b))

    def _crop(self, im: np.ndarray, random: bool) -> torch.Tensor:
        y, x = _crop_box(im.shape, self.size, random)
        c = im[y:y + self.size, x:x + self.size]
        if random and self.flip and bool(torch.rand(()) < 0.5):
            c = c[:, ::-1]
        return _as_tensor(c)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        j = int(torch.randint(0, len(self.b), ())) if self.random else i
        return {"source": self._crop(self.a[i % len(self.a)], self.random),
                "image": self._crop(self.b[j], self.random), "index": torch.tensor(i)}

    def centre(self, i: int) -> dict[str, torch.Tensor]:
        """Centre crops of ``A[i]`` and ``B[i]`` (modulo their counts), unflipped (no RNG)."""
        return {"source": self._crop(self.a[i % len(self.a)], False), "image": self._crop(self.b[i % len(self.b)], False),
                "index": torch.tensor(i)}
