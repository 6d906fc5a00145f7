"""Where a web UI server may write, and the limits it serves under.

Everything the server writes goes below one work folder: Gradio's uploads and the images
it hands to browsers (``GRADIO_TEMP_DIR``, set before Gradio is imported), and each
request's own outputs (``.pxs`` files to download) in a folder of their own. Files older
than :attr:`Limits.keep_files_s` are removed while the server runs (Gradio's
``delete_cache`` for its files, :meth:`WorkFolder.sweep` for the requests'), and all of
them when it stops; a work folder the server made itself (the default, in the system's
temporary folder) is removed entirely.
"""
from __future__ import annotations

import hashlib
import io
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixseq.errors import PixseqError
from pixseq.io import MAX_PIXELS, claim_output


@dataclass(frozen=True)
class Limits:
    """What one server accepts and how much work it takes on at once."""

    #: largest upload Gradio accepts (MB); refused in the browser before it is sent
    max_upload_mb: int = 50
    #: largest decoded image (pixels): :data:`pixseq.io.MAX_PIXELS`, the CLI's limit
    max_pixels: int = MAX_PIXELS
    #: requests computed at once; the others wait in the queue
    concurrency: int = 2
    #: requests waiting at most; more are turned away with a message
    queue_size: int = 64
    #: samples or completions in one request
    max_images: int = 64
    #: tokens the pixseq codec codes per image and request (the work of one compression)
    max_codec_tokens: int = 16384
    #: how long outputs stay downloadable (seconds)
    keep_files_s: int = 1800

    def check(self) -> None:
        for name in ("max_upload_mb", "max_pixels", "concurrency", "queue_size", "max_images",
                     "max_codec_tokens", "keep_files_s"):
            if getattr(self, name) < 1:
                raise PixseqError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")

    def describe(self) -> str:
        """The limits in one line, as the page states them."""
        return (f"Uploads up to {self.max_upload_mb} MB and {self.max_pixels:,} pixels; up to "
                f"{self.max_images} samples or completions per request; the pixseq codec codes up to "
                f"{self.max_codec_tokens:,} tokens per image. {self.concurrency} requests run at once, up to "
                f"{self.queue_size} wait in the queue. Outputs stay downloadable for "
                f"{self.keep_files_s // 60} minutes, then are deleted.")


class WorkFolder:
    """The one folder a server writes in: ``gradio/`` (Gradio's files), ``requests/`` (the
    requests' outputs) and ``cache/`` (what libraries cache while serving, e.g. matplotlib's fonts)."""

    def __init__(self, root: str | os.PathLike | None = None, keep_s: int = 1800) -> None:
        if root is None:
            self.root, self.owned = Path(tempfile.mkdtemp(prefix="pixseq-ui-")), True
        else:
            claim_output(root, "--work", folder=True)  # only its last level is created
            self.root, self.owned = Path(root).resolve(), False
        self.keep_s = keep_s
        self.gradio = self.root / "gradio"
        self.requests = self.root / "requests"
        self.cache = self.root / "cache"
        for d in (self.gradio, self.requests, self.cache):
            d.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def request_dir(self) -> Path:
        """A fresh folder for one request's outputs (older requests' folders are swept first)."""
        self.sweep()
        return Path(tempfile.mkdtemp(prefix="req-", dir=self.requests))

    def page_image(self, image: np.ndarray) -> str:
        """``image`` (uint8) as a PNG file for the page to show, in Gradio's folder.

        Gradio names an image it is handed by its content and writes the file in place each
        time: the same image handed out again (everyone picks the same example; the editor's
        background and composite) rewrote a file browsers were still reading, and they got a
        cut image. Here the same content gets the same name too, but each write is a new
        file renamed over the old one: a reader keeps the whole file it opened. No fsync: the
        file lives as long as the server, and the write is on every request's path.
        """
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
        data = buf.getvalue()
        folder = self.gradio / f"pixseq-{hashlib.sha256(data).hexdigest()}"
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".image.", suffix=".tmp", dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, folder / "image.png")
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return str(folder / "image.png")

    def sweep(self, older_than: float | None = None) -> None:
        """Remove request folders older than ``older_than`` seconds (default: the keep time)."""
        age = self.keep_s if older_than is None else older_than
        now = time.time()
        with self._lock:
            for d in self.requests.iterdir():
                try:
                    if now - d.stat().st_mtime > age:
                        shutil.rmtree(d, ignore_errors=True)
                except FileNotFoundError:
                    continue

    def cleanup(self) -> None:
        """Remove everything the server wrote (the whole folder when the server made it)."""
        for d in (self.gradio, self.requests, self.cache):
            shutil.rmtree(d, ignore_errors=True)
        if self.owned:
            shutil.rmtree(self.root, ignore_errors=True)
