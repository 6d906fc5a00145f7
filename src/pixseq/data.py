"""Datasets by spec, accepted wherever pixseq reads data.

Specs:

* a folder of images (recursive; a first-level sub-folder name is the class label when
  every image sits in one, as in ImageNet-style layouts),
* ``fashion-mnist`` / ``fashion-mnist:train`` / ``fashion-mnist:test`` — the IDX files of
  Debian's ``dataset-fashion-mnist`` package (or ``$PIXSEQ_FASHION_MNIST``),
* ``photos`` — the built-in natural photos that ship with scikit-image / scikit-learn /
  matplotlib (see ASSETS.md), with their names;
* any labelled spec followed by ``:CLASS`` — only the images of that class (a name or an
  index): ``fashion-mnist:Sneaker``, ``fashion-mnist:test:Ankle boot``, ``folder:cats``.

A :class:`ImageSet` holds uint8 ``(H, W, 3)`` images (a list: sizes may differ), optional
integer labels and class names.
"""
from __future__ import annotations

import gzip
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from pixseq.errors import PixseqError
from pixseq.io import list_images, load_image

FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",)
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
#: skimage.data images that ship inside the wheel (others download and fail offline).
SKIMAGE_RGB = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
               "retina", "colorwheel", "logo")
SKIMAGE_GREY = ("camera", "moon", "brick", "grass", "gravel", "coins", "cell", "clock", "page", "text")


@dataclass
class ImageSet:
    """Images (uint8 ``(H, W, 3)``), optional labels and names, and where they came from."""

    images: list[np.ndarray]
    labels: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    names: list[str] = field(default_factory=list)
    spec: str = ""
    #: why a set has no labels, in a few words (for the error of a verb that needs them)
    unlabelled_because: str = ""

    def __len__(self) -> int:
        return len(self.images)

    def require_labels(self, what: str) -> np.ndarray:
        """The labels, or a PixseqError saying that ``what`` needs them and why there are none."""
        if self.labels is None:
            why = f": {self.unlabelled_because}" if self.unlabelled_because else ""
            raise PixseqError(f"{what} needs labelled data; {self.spec!r} has no labels{why}")
        return self.labels

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def labels_for(self, class_names: Sequence[str], known_as: str) -> np.ndarray | None:
        """This set's labels renumbered to ``class_names`` (a model's or another set's classes),
        matched by name: a held-out folder may hold a subset of them, in another order. A
        folder whose images all sit in one sub-folder counts as that one class (the loader
        gives no labels for a single class). None when there are no labels; a class of the
        images kept (not of the whole listing) missing from ``class_names`` is a PixseqError
        naming it and ``known_as``."""
        names = self.class_names if self.labels is not None else _single_sub_folder(self.names)
        if not names:
            return None
        labels = np.zeros(len(self.images), np.int64) if self.labels is None else np.asarray(self.labels)
        used = sorted({names[i] for i in np.unique(labels)})  # a --limit may leave some classes out
        unknown = [name for name in used if name not in class_names]
        if unknown:
            raise PixseqError(f"classes of {self.spec!r} not in {known_as}: {', '.join(unknown)}")
        index = {name: i for i, name in enumerate(class_names)}
        return np.array([index.get(name, -1) for name in names], dtype=np.int64)[labels]

    def stacked(self) -> np.ndarray:
        """All images as one ``(N, H, W, 3)`` array (they must share a size)."""
        shapes = {im.shape for im in self.images}
        if len(shapes) != 1:
            raise PixseqError(f"data {self.spec!r}: images have different sizes {sorted(shapes)[:3]}; resize them first")
        return np.stack(self.images)


def _read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) IDX file (the MNIST format) as a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise PixseqError(f"cannot read {path}: {exc}") from None
    if len(data) < 4 or len(data) < 4 + 4 * data[3]:  # the magic number, then one uint32 per dimension
        raise PixseqError(f"{path} is not an IDX file (header too short)")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise PixseqError(f"{path} is not a uint8 IDX file")
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise PixseqError(f"{path} is truncated ({body.size} of {int(np.prod(dims))} values)")
    return body.reshape(dims)


def fashion_mnist_dir() -> Path:
    """Where the Fashion-MNIST IDX files are, or a PixseqError saying how to get them."""
    candidates = [os.environ.get("PIXSEQ_FASHION_MNIST", "")] + list(FASHION_MNIST_DIRS)
    for c in candidates:
        if c and (Path(c) / "train-images-idx3-ubyte.gz").is_file():
            return Path(c)
    raise PixseqError(
        "Fashion-MNIST not found: install it with `apt-get install dataset-fashion-mnist` "
        "(Debian/Ubuntu) or point $PIXSEQ_FASHION_MNIST at a folder holding the four IDX .gz files"
    )


def load_fashion_mnist(split: str = "train", limit: int | None = None) -> ImageSet:
    """Fashion-MNIST as 28x28 RGB images (grey replicated) with labels 0..9."""
    if split not in ("train", "test"):
        raise PixseqError(f"fashion-mnist split must be 'train' or 'test', got {split!r}")
    root = fashion_mnist_dir()
    prefix = "train" if split == "train" else "t10k"
    x = _read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
    y = _read_idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    if limit is not None:
        x, y = x[:limit], y[:limit]
    rgb = np.repeat(x[..., None], 3, axis=-1)
    return ImageSet(list(rgb), y, FASHION_MNIST_CLASSES, [f"{split}-{i}" for i in range(len(y))],
                    f"fashion-mnist:{split}")


def builtin_photos() -> ImageSet:
    """The natural photos that ship with installed packages (no network)."""
    from skimage import data as skdata

    images, names = [], []
    for name in SKIMAGE_RGB + SKIMAGE_GREY:
        arr = np.asarray(getattr(skdata, name)())
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=-1)
        if arr.shape[-1] == 4:  # logo is RGBA: composite on white like load_image does
            a = arr[..., 3:4].astype(np.float64) / 255.0
            arr = np.round(arr[..., :3] * a + 255.0 * (1 - a)).astype(np.uint8)
        images.append(np.ascontiguousarray(arr.astype(np.uint8)))
        names.append(name)
    try:
        from sklearn.datasets import load_sample_images

        sk = load_sample_images()
        for fname, img in zip(sk.filenames, sk.images):
            images.append(np.ascontiguousarray(img))
            names.append(Path(fname).stem)
    except Exception:  # noqa: BLE001 - optional extra photos; absence is fine
        pass
    try:
        from matplotlib import cbook

        with cbook.get_sample_data("grace_hopper.jpg") as fh:
            from PIL import Image

            images.append(np.asarray(Image.open(fh).convert("RGB")))
            names.append("grace_hopper")
    except Exception:  # noqa: BLE001
        pass
    return ImageSet(images, None, (), names, "photos", "the built-in photos have no classes")


def _single_sub_folder(names: Sequence[str]) -> tuple[str, ...]:
    """``(sub-folder,)`` when every relative image path starts with the same sub-folder."""
    tops = {Path(n).parts[0] if len(Path(n).parts) >= 2 else None for n in names}
    return (tops.pop(),) if len(tops) == 1 and None not in tops else ()


def load_folder(folder: str | os.PathLike, limit: int | None = None) -> ImageSet:
    """Every image below ``folder`` (the first ``limit`` in sorted order); labels from
    first-level sub-folders when all images have one. The classes come from the whole
    listing, but only the images kept are read (a large folder with ``--limit 10`` reads 10)."""
    folder = Path(folder)
    files = list_images(folder)
    if not files:
        raise PixseqError(f"no images found in folder {folder}")
    rel = [f.relative_to(folder) for f in files]
    kept = slice(None) if limit is None else slice(0, limit)
    images = [load_image(f) for f in files[kept]]
    labels, classes, why = None, (), ""
    top = sum(len(r.parts) == 1 for r in rel)
    if top == 0:
        classes = tuple(sorted({r.parts[0] for r in rel}))
        if len(classes) > 1:
            index = {c: i for i, c in enumerate(classes)}
            labels = np.array([index[r.parts[0]] for r in rel[kept]], dtype=np.int64)
        else:
            why = f"all its images are in one sub-folder ({classes[0]!r}); classes need two or more"
            classes = ()
    elif top < len(rel):
        why = f"{top} of its {len(rel)} images sit directly in it, not in a class sub-folder"
    else:
        why = "its images are not in class sub-folders (one sub-folder per class)"
    return ImageSet(images, labels, classes, [str(r) for r in rel[kept]], str(folder), why)


def load_data(spec: str, limit: int | None = None) -> ImageSet:
    """Resolve a data spec (folder, ``fashion-mnist[:train|test]``, ``photos``)."""
    if not spec.strip():  # Path("") is the current folder, which was then read as the data
        raise PixseqError("empty data spec: use a folder of images, 'fashion-mnist[:train|test]' or 'photos'")
    # the name exactly, or with a split: a bare prefix match read 'fashion-mnist-test' (or a
    # folder named fashion-mnist-...) as the training split
    if spec == "fashion-mnist" or spec.startswith("fashion-mnist:"):
        _, _, rest = spec.partition(":")
        split, _, cls = rest.partition(":")
        if split not in ("", "train", "test"):  # fashion-mnist:Sneaker (a class of the training split)
            if not (rest in FASHION_MNIST_CLASSES or (rest.isdigit() and int(rest) < len(FASHION_MNIST_CLASSES))):
                raise PixseqError(f"fashion-mnist:{rest}: {rest!r} is neither a split (train, test) nor a class "
                                  f"({', '.join(FASHION_MNIST_CLASSES)})")
            split, cls = "train", rest
        if cls:
            return select_class(load_fashion_mnist(split or "train"), cls, limit)
        return load_fashion_mnist(split or "train", limit)
    if spec == "photos":
        photos = builtin_photos()
        if limit is not None:
            photos.images, photos.names = photos.images[:limit], photos.names[:limit]
        return photos
    if Path(spec).is_dir():
        return load_folder(spec, limit)
    base, colon, cls = spec.rpartition(":")
    if colon and base and cls and Path(base).is_dir():  # folder:CLASS
        return select_class(load_folder(base), cls, limit)
    if Path(spec).exists():
        raise PixseqError(f"data {spec!r} is a file; give the folder that holds the images")
    if "/" in spec or os.sep in spec:  # meant as a folder: saying "unknown data spec" hid the typo
        raise PixseqError(f"data folder not found: {spec}")
    raise PixseqError(
        f"unknown data spec {spec!r}: use a folder of images, 'fashion-mnist[:train|test]' or 'photos'"
    )


def select_class(images: ImageSet, name: str, limit: int | None = None) -> ImageSet:
    """The first ``limit`` images of class ``name`` (a class name, or its index) of a labelled
    set; an unknown class is a PixseqError listing the set's classes."""
    labels = images.require_labels(f"selecting class {name!r}")
    names = images.class_names
    if name in names:
        index = names.index(name)
    elif name.isdigit() and int(name) < len(names):
        index = int(name)
    else:
        raise PixseqError(f"{images.spec!r} has no class {name!r} (classes: {', '.join(names)})")
    keep = np.flatnonzero(labels == index)[:limit]
    return ImageSet([images.images[i] for i in keep], labels[keep], names,
                    [images.names[i] for i in keep] if images.names else [], f"{images.spec}:{names[index]}")


def resize_square(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """Resize (bicubic, no crop) every image to ``size x size``; returns ``(N, size, size, 3)``."""
    from PIL import Image

    out = []
    for im in images:
        if im.shape[0] == size and im.shape[1] == size:
            out.append(im)
        else:
            out.append(np.asarray(Image.fromarray(im).resize((size, size), Image.BICUBIC)))
    return np.stack(out)
