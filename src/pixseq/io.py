"""Image input/output and atomic file writing: the one place pixseq touches image files.

Every image that enters pixseq goes through :func:`load_image`, which returns an
``(H, W, 3)`` RGB ``uint8`` array whatever the file held: EXIF orientation is applied;
grayscale, palette, LA/RGBA (composited on white), CMYK and 16-bit images become RGB
uint8; a pixel-count limit guards against decompression bombs. Every user-caused
failure is a one-line :class:`~pixseq.errors.PixseqError`.

Every file pixseq writes goes through :func:`atomic_write` (temp file in the same
folder, then ``os.replace``) so an interrupted run never leaves a half-written output.
"""
from __future__ import annotations

import contextlib
import math
import os
import tempfile
import warnings
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pixseq.errors import PixseqError

#: Default limit on decoded pixels (about 8k x 8k). Pillow's own bomb check is a
#: warning at 89 M pixels; pixseq makes it an error and keeps it configurable.
MAX_PIXELS = 64_000_000

#: Pillow's warnings that :func:`load_image` has passed on (a folder of images with the same
#: damaged EXIF block would repeat one for every image).
_PILLOW_WARNINGS_SHOWN: set[tuple] = set()

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".jfif", ".jpe", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                  ".pbm", ".pnm", ".tga", ".avif")


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success rename it over ``path``.

    Text modes write UTF-8. On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # the name is cut to 40 characters (160 bytes at most): a long but legal name (up to
        # 255 bytes) plus mkstemp's additions was over the file system's limit, failing the write
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the file the user asked for, not our temporary one
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        # mkstemp creates 0600 files; give the output the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        # Text is UTF-8 whatever the locale (JSON must be; pages declare it). A file name that
        # is not valid UTF-8 (lone surrogates in Python) is written as \udcXX, which JSON
        # reads back as the same name, instead of failing the write.
        text = {} if "b" in mode else {"encoding": "utf-8", "errors": "backslashreplace"}
        with os.fdopen(fd, mode, **text) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _to_rgb(img: Image.Image, source_format: str | None = None) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB (alpha composited on white).

    ``source_format`` is the file's format (``Image.format``, which a transposed copy no
    longer carries): it tells 16-bit data in mode ``"I"`` from 32-bit data.
    """
    # A single transparent colour (PNG tRNS on a grey or RGB image) is transparency just as
    # an alpha channel is; palette images keep theirs in the palette and are handled below.
    key = img.info.get("transparency") if img.mode != "P" else None
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16/32-bit integer grey: scale the full range to 8 bits rather than clipping.
        raw = np.asarray(img)
        arr = raw.astype(np.float64)
        # Pillow opens 16-bit PGM/PPM (any maxval, rescaled to 0..65535) and, in older versions,
        # 16-bit PNG as "I": their range is 16 bits even when this image is dark (max <= 255),
        # which the max() test alone read as 8-bit data, 257 times too bright.
        sixteen = img.mode.startswith("I;16") or source_format in ("PNG", "PPM") or arr.max() > 255
        top = 65535.0 if sixteen else 255.0
        grey = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        if isinstance(key, int):  # the key is a 16-bit value: compare before scaling down
            img = Image.fromarray(np.dstack([grey, np.where(raw == key, 0, 255).astype(np.uint8)]), mode="LA")
        else:
            img = Image.fromarray(grey, mode="L")
    elif img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else 255.0
        img = Image.fromarray(np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8), mode="L")
    if img.mode in ("L", "RGB") and key is not None:
        img = img.convert("RGBA")  # Pillow makes the key colour's pixels transparent
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "RGBA", "PA", "La", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Load an image file as an ``(H, W, 3)`` RGB ``uint8`` array.

    Raises:
        PixseqError: missing, empty, truncated, non-image or oversized files.
    """
    rgb = _decode(path, max_pixels, lambda img, fmt, p, orientation: _to_rgb(img, fmt))
    return np.array(rgb, dtype=np.uint8)  # a writable copy (np.asarray of a PIL image is read-only)


def _decode(path: str | os.PathLike, max_pixels: int, convert) -> Any:
    """Open ``path`` with every check of :func:`load_image` and return ``convert(image,
    source_format, path, orientation)`` of the loaded, EXIF-oriented Pillow image (the
    EXIF orientation it had, 1 when none, for a reader that decodes the file again)."""
    path = Path(path)
    if not path.exists():
        raise PixseqError(f"image not found: {path}")
    if path.is_dir():
        raise PixseqError(f"expected an image file, got a folder: {path}")
    if path.stat().st_size == 0:
        raise PixseqError(f"image file is empty: {path}")
    try:
        # Pillow's warnings (corrupt EXIF, short reads) are held back: when the load fails the
        # one-line error says it all (they came first, with a line of Pillow's source each)
        with warnings.catch_warnings(record=True) as caught:
            # (Pillow's bomb warning, at 89 M pixels, is only recorded: the limit below is pixseq's
            # and its message names the size; past twice that Pillow refuses to open the file)
            warnings.simplefilter("always")
            # Pillow is given an open file, not the path: from a path it memory-maps
            # uncompressed single-channel TIFFs (L, I;16, P) and then scrambles them when it
            # applies an EXIF orientation of 5-8 (a transposing one) while loading.
            with open(path, "rb") as fh, Image.open(fh) as img:
                w, h = img.size
                source_format = img.format
                if w * h > max_pixels:
                    raise PixseqError(
                        f"image too large: {path} has {w}x{h} = {w * h} pixels, limit is {max_pixels}"
                    )
                img.load()
                orientation = int(img.getexif().get(0x0112, 1) or 1)
                img = ImageOps.exif_transpose(img)
                result = convert(img, source_format, path, orientation)
    except PixseqError:
        raise
    except UnidentifiedImageError:
        raise PixseqError(f"not an image file (format not recognised): {path}") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PixseqError(f"image too large (decompression bomb guard): {path}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise PixseqError(f"cannot read image {path}: {exc}") from None
    for w in caught:  # the image loaded: pass on what Pillow noticed, each message once
        key = (str(w.message), w.category, w.filename, w.lineno)
        if key not in _PILLOW_WARNINGS_SHOWN:
            _PILLOW_WARNINGS_SHOWN.add(key)
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def output_format(path: str | os.PathLike, what: str = "output file") -> str:
    """The Pillow format an image written to ``path`` gets, from its suffix; PixseqError for
    an unknown suffix or a format Pillow reads but cannot write (.psd, .fli: a KeyError
    from ``Image.save`` otherwise, after all the work)."""
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())  # (also loads Pillow's plugins)
    if fmt is None:
        raise PixseqError(f"unknown image format for {what} {path} (use e.g. .png)")
    if fmt not in Image.SAVE:
        raise PixseqError(f"{what} {path}: Pillow can read {fmt} images but not write them (use e.g. .png)")
    return fmt


def real_path(path: str | os.PathLike) -> Path:
    """``path`` with links followed, as far as they go: ``Path.resolve`` raises RuntimeError on
    a symbolic-link loop (a traceback where the loop should reach the loader's one-line error)."""
    return Path(os.path.realpath(path))


def check_output(path: str | os.PathLike, what: str, folder: bool = False) -> None:
    """Fail before any work is done when ``path`` cannot become the output file (or folder,
    ``folder=True``): it is a folder (a file), or its nearest existing ancestor is a file or
    not writable. Missing folders on the way are not looked at here: :func:`claim_output`,
    the policy every verb applies, refuses them."""
    path = Path(path)
    if folder and path.exists() and not path.is_dir():
        raise PixseqError(f"{what} {path}: exists and is not a folder")
    if not folder and path.is_dir():
        raise PixseqError(f"{what} {path}: is a folder; give a file name")
    probe = path if folder else path.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise PixseqError(f"{what} {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK):
        raise PixseqError(f"{what} {path}: no permission to write in {probe}")


def claim_output(path: str | os.PathLike, what: str = "--out", *, force: bool = False,
                 inputs: Iterable[str | os.PathLike | None] = (), folder: bool = False) -> Path:
    """The one overwrite policy of every verb that writes, checked before any work:

    * ``path`` can become the output (:func:`check_output`);
    * the folder it goes in exists (for an output folder, ``folder=True``: the folder above
      it): a verb creates at most the last level of an output folder, so a mistyped folder
      is an error naming it, never a new tree of folders;
    * it is none of ``inputs`` (the files and folders the verb reads; ``None`` and paths that
      do not exist are skipped) -- refused even with ``force``: the verb would destroy what
      it reads;
    * an existing output file is refused unless ``force``. An existing output *folder* is
      fine: what is written into it is claimed file by file.

    Every output is then written atomically (:func:`atomic_write`). Returns ``path``."""
    path = Path(path)
    check_output(path, what, folder)
    parent = path.parent if not folder or path.exists() else path.absolute().parent
    if not parent.is_dir():
        raise PixseqError(f"{what} {path}: the folder {parent} does not exist; create it first "
                          f"(a mistyped folder is not created)")
    where = real_path(path)
    for item in inputs:
        if item is not None and Path(item).exists() and where == real_path(item):
            kind = "folder" if folder else "file"
            raise PixseqError(f"{what} {path} is also an input ({item}); choose another {kind} "
                              f"(--force never overwrites an input)")
    if not folder and path.exists():
        refuse_existing(path, what, force)
    return path


def claim_file_in(folder_output: str | os.PathLike, path: str | os.PathLike, what: str = "output file", *,
                  force: bool = False, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """:func:`claim_output` for a file written into ``folder_output``, an output folder that
    was claimed itself (``folder=True``): while that folder is yet to be made (its last level),
    the file can neither exist nor be an input, so there is nothing more to check."""
    path = Path(path)
    if Path(folder_output).is_dir():
        claim_output(path, what, force=force, inputs=inputs)
    return path


def refuse_existing(path: str | os.PathLike, what: str, force: bool, holds: str = "") -> None:
    """The refusal of :func:`claim_output` for an output that exists (``holds``: what it holds,
    for an output folder whose files would be replaced), unless ``force``."""
    if not force:
        held = f" (it holds {holds})" if holds else ""
        raise PixseqError(f"{what} {path} already exists{held}; use --force to overwrite it")


def check_image_output(path: str | os.PathLike, what: str = "--out", *, force: bool = False,
                       inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """:func:`claim_output` for an image file, then: its suffix names an image format.

    The folder checks come first: ``--out some/folder`` is a folder, not an unknown format.
    """
    path = Path(path)
    check_output(path, what)
    output_format(path, what)
    return claim_output(path, what, force=force, inputs=inputs)


def refuse_overwriting_input(out: str | os.PathLike, image: str | os.PathLike, what: str = "--out") -> None:
    """An output that is the input image would destroy it: refuse before any work."""
    if real_path(out) == real_path(image):
        raise PixseqError(f"{what} {out} is also an input ({image}); choose another file "
                          f"(--force never overwrites an input)")


def save_image(image: np.ndarray | Image.Image, path: str | os.PathLike, **save_kwargs) -> Path:
    """Write an RGB/L ``uint8`` array (or a Pillow image) atomically; format from the suffix."""
    path = Path(path)
    fmt = output_format(path)
    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image, dtype=np.uint8))
    with atomic_write(path) as fh:
        img.save(fh, format=fmt, **save_kwargs)
    return path


def strict_json(value: Any) -> Any:
    """A JSON-ready copy of ``value``: non-finite floats become the strings "inf" / "-inf" /
    "nan" (NaN / Infinity literals are not JSON, and an infinite PSNR is a real result), in
    every verb that writes JSON results (assess, bench, evaluate)."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else str(float(value))
    return value


def list_images(folder: str | os.PathLike) -> list[Path]:
    """All image files below ``folder`` (recursive), sorted by relative path.

    Hidden files and folders (names starting with a dot) are skipped: macOS leaves
    ``._photo.jpg`` resource forks next to copied images, which are not images, and a
    ``.ipynb_checkpoints`` or ``.git`` folder is no data (nor, at the top, a class).
    Symbolic links to folders are followed, as a class folder is often such a link; one
    that leads back to a folder above it is not (a cycle). A folder that cannot be listed
    (permissions) is a PixseqError, not a class or a share of the data silently left out.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise PixseqError(f"not a folder: {folder}")
    found: list[Path] = []
    ancestors = {str(folder): (os.path.realpath(folder),)}  # real paths of each folder's chain
    for root, dirs, files in os.walk(folder, onerror=_unlistable, followlinks=True):
        chain = ancestors.pop(root)
        kept = []
        for name in sorted(dirs):
            real = os.path.realpath(os.path.join(root, name))
            if not name.startswith(".") and real not in chain:
                kept.append(name)
                ancestors[os.path.join(root, name)] = chain + (real,)
        dirs[:] = kept  # os.walk descends only into these
        found += [Path(root, name) for name in files if not name.startswith(".")
                  and Path(name).suffix.lower() in IMAGE_SUFFIXES and os.path.isfile(os.path.join(root, name))]
    return sorted(found)


def _unlistable(exc: OSError) -> None:
    raise PixseqError(f"cannot list folder {exc.filename}: {exc.strerror or exc}")


def to_tensor(images: np.ndarray):
    """uint8 ``(H, W, 3)`` -> float ``(3, H, W)``, or ``(N, H, W, 3)`` -> ``(N, 3, H, W)``, in [0, 1]."""
    import torch

    arr = np.ascontiguousarray(images, dtype=np.uint8)
    if not arr.flags.writeable:  # arrays from PIL (np.asarray) are read-only, which torch warns about
        arr = arr.copy()
    if arr.ndim not in (3, 4) or arr.shape[-1] != 3:
        raise ValueError(f"to_tensor expects (H, W, 3) or (N, H, W, 3) uint8 images, got shape {arr.shape}")
    t = torch.from_numpy(arr)
    t = t.permute(2, 0, 1) if arr.ndim == 3 else t.permute(0, 3, 1, 2)  # channels first
    return t.float().div_(255.0)


def to_uint8(tensor) -> np.ndarray:
    """``(3, H, W)`` float tensor in [0, 1] -> ``(H, W, 3)`` uint8 array (rounded, clipped)."""
    arr = tensor.detach().float().clamp(0, 1).mul(255.0).round().byte().permute(1, 2, 0).cpu().numpy()
    return np.ascontiguousarray(arr)


# ---------------------------------------------------------------- images as they are (grey, alpha, 16 bits)
#: channel count -> mode of an image array kept as the file holds it (:func:`load_image_native`)
NATIVE_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
#: suffixes that can hold 16-bit samples (:func:`save_image_native`)
SIXTEEN_BIT_SUFFIXES = (".png", ".tif", ".tiff")


def load_image_native(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Load an image as the file holds it: an ``(H, W, C)`` array, ``C`` = 1 (grey), 2 (grey +
    alpha), 3 (RGB) or 4 (RGBA), ``uint8``, or ``uint16`` for 16-bit files.

    Unlike :func:`load_image` nothing is composited or reduced to 8 bits: alpha stays a
    channel (palette and PNG ``tRNS`` transparency become one), 16-bit grey / RGB / RGBA
    PNG and TIFF keep their 16 bits (Pillow reads 16-bit colour as 8-bit, so those are read
    with pypng / tifffile), 32-bit integer and float grey become 16-bit grey, CMYK and other
    colour spaces RGB. EXIF orientation is applied; the same checks and one-line errors as
    :func:`load_image`.
    """
    tiff = _read_sixteen_bit_tiff(Path(path), max_pixels)  # (Pillow cannot open some: 16-bit grey + alpha)
    return tiff if tiff is not None else _decode(path, max_pixels, _to_native)


class ImageHeader(NamedTuple):
    """What :func:`load_image_native` will give for a file, read from its header only."""

    height: int
    width: int
    channels: int
    bits: int


def peek_image(path: str | os.PathLike) -> ImageHeader | None:
    """Size (EXIF orientation applied), channels and bits that :func:`load_image_native` will
    give for ``path``, from the header only (to check outputs before the work); ``None``
    when the header does not tell (the load then says what is wrong with the file)."""
    path = Path(path)
    tiff = _tiff_header(path)
    if tiff is not None:
        return tiff
    try:
        with Image.open(path) as img:
            mode, fmt, transparent = img.mode, img.format, "transparency" in img.info
            (w, h), turned = img.size, img.getexif().get(0x0112, 1) in (5, 6, 7, 8)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    h, w = (w, h) if turned else (h, w)
    if fmt == "PNG":  # Pillow shows 16-bit grey + alpha as RGBA: the header says what it is
        depth, colour = _png_header(path)
        channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour, 3) + (1 if transparent and colour in (0, 2, 3) else 0)
        return ImageHeader(h, w, channels, 16 if depth == 16 else 8)
    channels = {"L": 1, "1": 1, "I": 1, "F": 1, "LA": 2, "La": 2, "PA": 4, "RGBA": 4, "RGBa": 4}.get(mode, 3)
    channels = 1 if mode.startswith("I;16") else channels
    if transparent and channels in (1, 3):
        channels += 1
    return ImageHeader(h, w, channels, 16 if mode.startswith("I") or mode == "F" else 8)


def checked_header(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> ImageHeader | None:
    """:func:`peek_image`, for verbs that plan every output before writing one: where the
    header does not tell, the file is loaded now, so that a file that is not an image fails
    with the loader's error before any output exists (not after the files before it)."""
    head = peek_image(path)
    if head is None:
        load_image(path, max_pixels=max_pixels)
    return head


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) in (b"II*\x00", b"MM\x00*")


def _tiff_orientation(page) -> int:
    tag = page.tags.get(274)  # EXIF / TIFF orientation
    return int(tag.value) if tag is not None else 1


def _tiff_header(path: Path) -> ImageHeader | None:
    try:
        if not _is_tiff(path):
            return None
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            h, w = page.imagelength, page.imagewidth
            h, w = (w, h) if _tiff_orientation(page) in (5, 6, 7, 8) else (h, w)
            return ImageHeader(h, w, min(max(page.samplesperpixel, 1), 4), 16 if page.bitspersample > 8 else 8)
    except Exception:  # not a TIFF tifffile reads
        return None


def _png_header(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG's IHDR (at fixed offsets 24 and 25)."""
    with open(path, "rb") as fh:
        head = fh.read(26)
    return (head[24], head[25]) if len(head) == 26 and head[12:16] == b"IHDR" else (0, 0)


def _orient(arr: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an (H, W, C) array, as ImageOps.exif_transpose does."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: a.transpose(1, 0, 2)[:, ::-1],
           7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1], 8: lambda a: a.transpose(1, 0, 2)[::-1]}
    return np.ascontiguousarray(ops[orientation](arr)) if orientation in ops else arr


def _read_sixteen_bit_png(path: Path, orientation: int) -> np.ndarray | None:
    """A 16-bit colour (or grey + alpha) PNG as (H, W, C) uint16; None for any other PNG."""
    depth, colour = _png_header(path)
    if depth != 16 or colour not in (2, 4, 6):  # RGB, grey + alpha, RGBA (16-bit grey: Pillow keeps it)
        return None
    import png  # pypng

    width, height, rows, info = png.Reader(filename=str(path)).asDirect()  # tRNS becomes alpha here
    arr = np.vstack([np.asarray(row, dtype=np.uint16) for row in rows]).reshape(height, width, info["planes"])
    return _orient(arr, orientation)  # exif_transpose turned Pillow's copy, not this one


def _read_sixteen_bit_tiff(path: Path, max_pixels: int) -> np.ndarray | None:
    """A 16-bit TIFF of 2-4 samples per pixel as (H, W, C) uint16; None for any other file
    (which :func:`_decode` then opens, or reports)."""
    try:
        if not _is_tiff(path):
            return None
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if page.bitspersample != 16 or not 2 <= page.samplesperpixel <= 4:
                return None
            h, w = page.imagelength, page.imagewidth
            if h * w > max_pixels:
                raise PixseqError(f"image too large: {path} has {w}x{h} = {w * h} pixels, limit is {max_pixels}")
            arr = page.asarray()
            if page.planarconfig == tifffile.PLANARCONFIG.SEPARATE:  # (C, H, W) planes
                arr = np.moveaxis(arr, 0, -1)
            orientation = _tiff_orientation(page)
    except PixseqError:
        raise
    except Exception:  # not a TIFF tifffile reads: let Pillow try, and report in load_image's words
        return None
    return _orient(np.ascontiguousarray(arr.astype(np.uint16)), orientation)


def _to_native(img: Image.Image, source_format: str | None, path: Path, orientation: int) -> np.ndarray:
    """A loaded Pillow image as :func:`load_image_native` describes."""
    sixteen = _read_sixteen_bit_png(path, orientation) if source_format == "PNG" else None
    if sixteen is not None:
        return sixteen
    key = img.info.get("transparency") if img.mode != "P" else None
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        raw = np.asarray(img)
        arr = raw.astype(np.float64)
        if img.mode == "F":
            top = 1.0 if arr.max() <= 1.0 else 255.0
        else:  # as _to_rgb: PNG / PPM 'I' images carry 16-bit values even when dark
            sixteen_bit = img.mode.startswith("I;16") or source_format in ("PNG", "PPM") or arr.max() > 255
            top = 65535.0 if sixteen_bit or arr.max() <= 65535 else float(2**32 - 1)
        grey = np.clip(np.round(arr / top * 65535.0), 0, 65535).astype(np.uint16)
        if isinstance(key, int):
            return np.dstack([grey, np.where(raw == key, 0, 65535).astype(np.uint16)])
        return grey[:, :, None]
    if img.mode in ("L", "RGB") and key is not None:
        img = img.convert("LA" if img.mode == "L" else "RGBA")
    elif img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode == "1":
        img = img.convert("L")
    elif img.mode in ("La", "PA"):
        img = img.convert("LA" if img.mode == "La" else "RGBA")
    elif img.mode == "RGBa":
        img = img.convert("RGBA")
    elif img.mode not in ("L", "LA", "RGB", "RGBA"):  # CMYK, YCbCr, LAB, HSV
        img = img.convert("RGB")
    arr = np.array(img, dtype=np.uint8)
    return arr[:, :, None] if arr.ndim == 2 else arr


def save_image_native(image: np.ndarray, path: str | os.PathLike, **save_kwargs) -> Path:
    """Write an ``(H, W, C)`` (or ``(H, W)``) ``uint8`` / ``uint16`` array as the file type of
    ``path``'s suffix, atomically, keeping its channels (grey, grey + alpha, RGB, RGBA) and,
    for ``uint16``, its 16 bits (PNG through pypng, TIFF through tifffile).

    Raises:
        PixseqError: a channel count or bit depth the format cannot hold (say which would).
    """
    path = Path(path)
    arr = np.asarray(image)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    if arr.ndim != 3 or arr.shape[2] not in NATIVE_MODES or arr.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"save_image_native expects (H, W, 1-4) uint8/uint16 arrays, got {arr.shape} {arr.dtype}")
    fmt = output_format(path)
    channels = arr.shape[2]
    if channels in (2, 4) and fmt in ("JPEG", "BMP", "PPM", "PCX"):
        raise PixseqError(f"{path}: {fmt} has no alpha channel; write the {NATIVE_MODES[channels]} image as .png")
    if arr.dtype == np.uint8:
        mode = NATIVE_MODES[channels]
        img = Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode=mode)
        with atomic_write(path) as fh:
            img.save(fh, format=fmt, **save_kwargs)
        return path
    if path.suffix.lower() not in SIXTEEN_BIT_SUFFIXES:
        raise PixseqError(f"{path}: 16-bit images can be written as .png or .tif only")
    with atomic_write(path) as fh:
        if fmt == "PNG":
            import png  # pypng

            writer = png.Writer(arr.shape[1], arr.shape[0], bitdepth=16, greyscale=channels <= 2,
                                alpha=channels in (2, 4), compression=save_kwargs.get("compress_level", 6))
            writer.write(fh, arr.reshape(arr.shape[0], -1))
        else:
            import io as _io

            import tifffile

            buffer = _io.BytesIO()  # tifffile wants a named file or a seekable buffer, not our fd
            tifffile.imwrite(buffer, arr if channels > 1 else arr[:, :, 0],
                             photometric="minisblack" if channels <= 2 else "rgb",
                             extrasamples=["unassalpha"] if channels in (2, 4) else None)
            fh.write(buffer.getbuffer())
    return path
