"""Resolve external weight files: explicit path > local cache > download > clear error.

Every pretrained file pixseq uses but does not train itself (Inception-v3 for FID, LPIPS
backbones, ViT / timm classifiers ...) is found by :func:`resolve_weights`, in this order:

1. an explicit path given by the user (must exist),
2. the local cache: ``--weights-dir DIR`` / ``weights_dir=``, else ``$PIXSEQ_WEIGHTS_DIR``,
   else ``~/.cache/pixseq`` (a file is looked up by its file name),
3. a download into that cache when allowed (not ``offline=True`` / ``--offline`` /
   ``$PIXSEQ_OFFLINE``), with a tqdm progress bar, a SHA-256 check where the hash is known,
   written atomically (a temp file renamed into place only after the check passed),
4. otherwise a one-line :class:`~pixseq.errors.PixseqError` naming the file, where to get it
   and the ``--weights-dir`` option.

Known files are listed in :data:`KNOWN`; any other file can be resolved by passing a
:class:`WeightFile` of your own.
"""
from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pixseq.errors import PixseqError
from pixseq.io import atomic_write

_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightFile:
    """One external weight file: its cache file name, a download URL and what it is.

    ``sha256`` may be a full hex digest or a prefix (torch.hub file names carry the first
    8+ hex digits of the SHA-256 of the file, e.g. ``alexnet-owt-7be5be79.pth``).
    """

    filename: str
    url: str = ""
    sha256: str = ""
    description: str = ""


#: Files pixseq knows how to fetch. Hash prefixes are those embedded in the official names.
KNOWN: dict[str, WeightFile] = {
    "pt_inception": WeightFile(
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
        "6726825d", "Inception-v3 FID weights (TF 2015-12-05 graph, ported by pytorch-fid)"),
    "alexnet": WeightFile(
        "alexnet-owt-7be5be79.pth", "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
        "7be5be79", "torchvision AlexNet ImageNet weights (LPIPS alex backbone)"),
    "vgg16": WeightFile(
        "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
        "397923af", "torchvision VGG16 ImageNet weights (LPIPS vgg backbone)"),
    "vit_b16_imagenet1k": WeightFile(
        "B_16_imagenet1k.pth",
        "https://github.com/lukemelas/PyTorch-Pretrained-ViT/releases/download/0.0.2/B_16_imagenet1k.pth",
        "", "ViT-B/16 ImageNet-21k -> 1k at 384 px (PyTorch-Pretrained-ViT), the original ViT-Score backbone"),
}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no", "off")


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` when given, else ``$PIXSEQ_OFFLINE`` (any value but ''/0/false/no/off)."""
    return bool(offline) if offline is not None else _truthy(os.environ.get("PIXSEQ_OFFLINE"))


def check_weights_dir(path: str | os.PathLike | None) -> None:
    """A weights folder (``--weights-dir``) that is a file is refused before any work (a
    missing one is made when a download lands in it)."""
    if path is not None and Path(path).exists() and not Path(path).is_dir():
        raise PixseqError(f"--weights-dir {path}: is a file, not a folder")


def cache_dir(weights_dir: str | os.PathLike | None = None) -> Path:
    """The weights cache folder: ``weights_dir`` > ``$PIXSEQ_WEIGHTS_DIR`` > ``~/.cache/pixseq``."""
    if weights_dir:
        return Path(weights_dir).expanduser()
    env = os.environ.get("PIXSEQ_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "pixseq"


def timm_weight_file(hf_hub_id: str) -> WeightFile:
    """The ``model.safetensors`` of a timm model hosted on the Hugging Face hub."""
    return WeightFile(
        f"{hf_hub_id.replace('/', '--')}.safetensors",
        f"https://huggingface.co/{hf_hub_id}/resolve/main/model.safetensors",
        "", f"timm weights {hf_hub_id}")


def hf_weight_file(repo: str, filename: str) -> WeightFile:
    """One file of a Hugging Face hub repository (cached as ``hf--<owner>--<name>/<filename>``,
    so the files of one repository sit in one folder, as transformers expects)."""
    return WeightFile(f"hf--{repo.replace('/', '--')}/{filename}",
                      f"https://huggingface.co/{repo}/resolve/main/{filename}", "", f"Hugging Face {repo}")


def _check_hash(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    got = digest.hexdigest()
    if not got.startswith(expected.lower()):
        raise PixseqError(f"checksum mismatch for {path.name}: expected sha256 {expected}..., got {got[:16]}...")


def download(spec: WeightFile, dest: Path, timeout: float = 30.0) -> Path:
    """Download ``spec.url`` to ``dest`` with a progress bar; atomic; checked when a hash is known."""
    from pixseq.runtime import progress

    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(spec.url, timeout=timeout) as resp:  # noqa: S310 - http(s)/file URLs
            total = int(resp.headers.get("Content-Length") or 0) or None
            with atomic_write(dest) as fh, progress(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                                    desc=f"downloading {spec.filename}", leave=False) as bar:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    fh.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
                # Checking before the rename means a corrupt download never lands in the cache.
                if spec.sha256 and not digest.hexdigest().startswith(spec.sha256.lower()):
                    raise PixseqError(f"checksum mismatch downloading {spec.filename} from {spec.url}: "
                                      f"expected sha256 {spec.sha256}..., got {digest.hexdigest()[:16]}...")
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PixseqError(f"cannot download {spec.filename} from {spec.url} ({reason}); download it by hand "
                          f"and put it in {dest.parent} or pass --weights-dir DIR") from None
    return dest


def _missing_message(spec: WeightFile, folder: Path, offline: bool) -> str:
    why = "offline mode forbids downloads" if offline else "no download URL is known"
    where = f"get it from {spec.url}" if spec.url else "obtain it from the model's publisher"
    what = f" ({spec.description})" if spec.description else ""
    return (f"weights file {spec.filename}{what} not found in {folder} and {why}: {where} "
            f"and put it in {folder}, or pass --weights-dir DIR (or set $PIXSEQ_WEIGHTS_DIR) pointing at its folder")


def resolve_weights(spec: WeightFile | str, path: str | os.PathLike | None = None,
                    weights_dir: str | os.PathLike | None = None, offline: bool | None = None,
                    check: bool = True) -> Path:
    """Find (or fetch) one weight file and return its local path.

    Args:
        spec: a :class:`WeightFile` or a key of :data:`KNOWN`.
        path: an explicit file given by the user; used as is (it must exist).
        weights_dir: the cache folder to look in / download into (``--weights-dir``).
        offline: forbid downloads (default: ``$PIXSEQ_OFFLINE``).
        check: verify the SHA-256 (prefix) of a cached file when the hash is known.

    Raises:
        PixseqError: the file is not available, with a message saying how to get it.
    """
    if isinstance(spec, str):
        if spec not in KNOWN:
            raise PixseqError(f"unknown weights {spec!r} (known: {', '.join(sorted(KNOWN))})")
        spec = KNOWN[spec]
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise PixseqError(f"weights file not found: {p} (expected {spec.filename})")
        return p
    folder = cache_dir(weights_dir)
    cached = folder / spec.filename
    if cached.is_file():
        if check and spec.sha256:
            _check_hash(cached, spec.sha256)
        return cached
    offline = is_offline(offline)
    if offline or not spec.url:
        raise PixseqError(_missing_message(spec, folder, offline))
    return download(spec, cached)
