"""What every tab shares: the request wrapper (notices and errors into the page), the image
input (upload or pick, then crop) and the controls every sampling tab has.

A request's user errors (:class:`~pixseq.errors.PixseqError`: a broken upload, an option
out of range) are the CLI's one-line messages, shown in the tab's status box; the server
logs nothing for them and keeps serving. Anything else is a bug: its traceback goes to the
server's log and the page says that an internal error happened. Notices the library gives
while working (a resize, a guessed class, a substituted backbone) are collected per request
with :func:`pixseq.runtime.capture_notices` and shown beside the result.
"""
from __future__ import annotations

import functools
import html
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from pixseq.errors import PixseqError, first_line

log = logging.getLogger("pixseq.app")


# ---------------------------------------------------------------- status box and the request wrapper
def status_html(notes: Sequence[str] = (), error: str | None = None, done: str = "") -> str:
    """The status box's HTML: an error line, a summary line, then each notice (all escaped:
    messages quote file names, which Markdown would read as emphasis)."""
    lines = []
    if error is not None:
        lines.append(f'<p class="pixseq-error"><b>Error:</b> {html.escape(error)}</p>')
    if done:
        lines.append(f'<p class="pixseq-done">{html.escape(done)}</p>')
    lines += [f'<p class="pixseq-note">note: {html.escape(n)}</p>' for n in notes]
    return "\n".join(lines)


def for_page(ctx, value: Any) -> Any:
    """``value`` with each image in it (a uint8 array, alone or in a tuple or list: a
    gallery's (image, caption) pairs, a slider's pair) as a file of
    :meth:`~pixseq.app.work.WorkFolder.page_image`, which the page can read while the same
    image is handed out again."""
    if isinstance(value, np.ndarray) and value.dtype == np.uint8 and value.ndim in (2, 3):
        return ctx.work.page_image(value)
    if isinstance(value, (tuple, list)):
        return type(value)(for_page(ctx, v) for v in value)
    return value


def request(ctx, outputs: int) -> Callable:
    """Decorate a handler returning ``(*outputs, summary)``: the page gets the outputs (images
    through :func:`for_page`) and a status text (summary + the request's notices), or, on an
    error, unchanged outputs and the error. ``outputs`` is the number of output components
    before the status box."""
    import gradio as gr

    from pixseq.runtime import capture_notices

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def handler(*args: Any):
            with capture_notices() as notes:
                try:
                    *values, summary = fn(*args)
                    values = [for_page(ctx, v) for v in values]
                except PixseqError as exc:
                    return (*[gr.skip()] * outputs, status_html(notes, error=str(exc)))
                except Exception as exc:  # noqa: BLE001 - a bug: logged with its traceback, the server goes on
                    log.exception("request failed in %s", fn.__name__)
                    message = f"internal error ({type(exc).__name__}: {first_line(exc)}); the server log has details"
                    return (*[gr.skip()] * outputs, status_html(notes, error=message))
            return (*values, status_html(notes, done=summary))

        return handler

    return wrap


# ---------------------------------------------------------------- images in
def load_upload(path: str | None, max_pixels: int) -> tuple[np.ndarray, str]:
    """An uploaded file through :func:`pixseq.io.load_image` (the CLI's checks and messages),
    its temporary path in any message replaced by the file's own name."""
    from pixseq.io import load_image

    if not path:
        raise PixseqError("no file uploaded")
    name = Path(path).name
    try:
        return load_image(path, max_pixels=max_pixels), name
    except PixseqError as exc:
        raise PixseqError(str(exc).replace(str(path), name)) from None


def editor_image(value: Any) -> np.ndarray:
    """The (cropped) image of an image editor's value, as uint8 ``(H, W, 3)``."""
    if isinstance(value, dict):
        value = value.get("composite") if value.get("composite") is not None else value.get("background")
    if value is None:
        raise PixseqError("upload or pick an image first")
    image = np.asarray(value)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or min(image.shape[:2]) < 1:
        raise PixseqError(f"the image has an unexpected shape {image.shape}")
    return np.ascontiguousarray(image[..., :3].astype(np.uint8))


class Examples:
    """Images to pick instead of uploading: Fashion-MNIST test images (one per class, when the
    data set is installed) and the photos that ship with scikit-image and friends."""

    def __init__(self) -> None:
        self._images: dict[str, np.ndarray] | None = None
        self._lock = threading.Lock()

    def _load(self) -> dict[str, np.ndarray]:
        from pixseq.data import builtin_photos, load_fashion_mnist

        images: dict[str, np.ndarray] = {}
        try:
            fm = load_fashion_mnist("test", limit=200)
            for cls, name in enumerate(fm.class_names):
                first = int(np.flatnonzero(fm.labels == cls)[0])
                images[f"fashion-mnist: {name} (test #{first})"] = fm.images[first]
        except PixseqError:
            pass  # no data set installed: the photos remain
        photos = builtin_photos()
        for name, image in zip(photos.names, photos.images):
            images[f"photo: {name}"] = image
        return images

    def warm(self) -> None:
        """Read the images in a background thread (the first page then finds them ready)."""
        threading.Thread(target=self.images, name="pixseq-examples", daemon=True).start()

    def images(self) -> dict[str, np.ndarray]:
        with self._lock:
            if self._images is None:
                self._images = self._load()
            return self._images

    def names(self) -> list[str]:
        return list(self.images())

    def get(self, name: str) -> np.ndarray:
        if name not in self.images():
            raise PixseqError(f"unknown example image {name!r}")
        return self.images()[name]


@dataclass
class ImageInput:
    """An upload box, an example picker and the crop editor they fill."""

    upload: Any
    pick: Any
    editor: Any


def image_input(ctx, key: str) -> ImageInput:
    """The image input of tab ``key``: upload or pick; the editor shows it for cropping."""
    import gradio as gr

    from pixseq.io import IMAGE_SUFFIXES

    with gr.Row():
        upload = gr.File(label="Upload an image", file_types=list(IMAGE_SUFFIXES), type="filepath",
                         elem_id=f"{key}-upload", height=120)
        # the choices arrive when a page opens: reading the photos is no part of the start-up
        pick = gr.Dropdown([], value=None, label="or pick one", elem_id=f"{key}-pick")
    ctx.on_load(lambda: gr.update(choices=ctx.examples.names()), None, pick)
    editor = gr.ImageEditor(label="Image (crop it with the crop tool)", sources=(), transforms=("crop",),
                            layers=False, brush=False, eraser=False, format="png", type="numpy",
                            image_mode="RGB", elem_id=f"{key}-editor", height=360)
    return ImageInput(upload, pick, editor)


def wire_image_input(ctx, inp: ImageInput, status) -> None:
    """Fill the editor from an upload or a pick; a bad upload clears it and says why."""
    import gradio as gr

    from pixseq.runtime import capture_notices

    # the upload box empties again once its file is read (the editor holds the image): ready
    # for the next file, and a bad one leaves nothing behind that looks loaded; the example
    # picker empties too (it named an image no longer in the editor)
    def from_upload(path):
        with capture_notices() as notes:
            try:
                image, name = load_upload(path, ctx.limits.max_pixels)
            except PixseqError as exc:
                return None, None, None, status_html(notes, error=str(exc))
        h, w = image.shape[:2]
        return None, ctx.work.page_image(image), None, status_html(notes, done=f"loaded {name}: {w}x{h} pixels")

    def from_pick(name):
        if not name:
            return gr.skip(), gr.skip()
        image = ctx.examples.get(name)
        return ctx.work.page_image(image), status_html(done=f"picked {name}: {image.shape[1]}x{image.shape[0]} pixels")

    # queued too (decoding a large upload is work), apart from the model requests
    inp.upload.upload(from_upload, inp.upload, [inp.upload, inp.editor, inp.pick, status], concurrency_id="images",
                      concurrency_limit=ctx.limits.concurrency)
    inp.pick.input(from_pick, inp.pick, [inp.editor, status], concurrency_id="images",
                   concurrency_limit=ctx.limits.concurrency)


# ---------------------------------------------------------------- model and sampling controls
def model_picker(ctx, key: str, capability: str):
    """The model dropdown of tab ``key`` (the server's models with ``capability``) and the
    line that describes the chosen one."""
    import gradio as gr

    names = ctx.shelf.names(capability)
    model = gr.Dropdown(names, value=names[0] if names else None, label="Model", elem_id=f"{key}-model")
    return model, gr.Markdown(elem_id=f"{key}-model-info")


def class_update(model, default: str):
    """The class picker for ``model``: ``default`` (the value ``""``), then each class by index
    and stored name; a fixed "unconditional" for a model without classes."""
    import gradio as gr

    from pixseq.models.base import class_names

    if not getattr(model, "num_classes", 0):
        return gr.update(choices=[("none: the model is unconditional", "")], value="", interactive=False)
    names = class_names(model)
    choices = [(f"{i}: {names[i]}" if i < len(names) else str(i), str(i)) for i in range(model.num_classes)]
    return gr.update(choices=[(default, ""), *choices], value="", interactive=True)


def describe_model(entry, model) -> str:
    """One line about a loaded model: kind, size, classes, parameters."""
    h, w = (int(v) for v in model.image_size)
    params = sum(p.numel() for p in model.parameters())
    classes = f"{model.num_classes} classes" if getattr(model, "num_classes", 0) else "unconditional"
    return f"{entry.kind}: {w}x{h} pixels, {classes}, {params / 1e6:.2f} M parameters"


def run_buttons(key: str, label: str, stop: bool = False):
    """The tab's run button (``#KEY-run``) and, for long runs, a Stop button (``#KEY-stop``)."""
    import gradio as gr

    with gr.Row():
        go = gr.Button(label, variant="primary", elem_id=f"{key}-run")
        halt = gr.Button("Stop", variant="stop", elem_id=f"{key}-stop") if stop else None
    return go, halt


def result_image(key: str, label: str, name: str = "image"):
    """A tab's output image (``#KEY-NAME``): PNG (lossless), downloadable, full-screen."""
    import gradio as gr

    return gr.Image(label=label, format="png", interactive=False, height=440, elem_id=f"{key}-{name}",
                    buttons=["download", "fullscreen"], elem_classes=["pixseq-result"])


def sampling_controls(key: str):
    """Temperature, top-k, top-p and seed sliders (top-k 0 and top-p 1 mean off)."""
    import gradio as gr

    with gr.Accordion("Sampling", open=False, elem_id=f"{key}-sampling"):
        temperature = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label="Temperature", elem_id=f"{key}-temperature")
        top_k = gr.Slider(0, 512, value=0, step=1, label="Top-k (0: off)", elem_id=f"{key}-top-k")
        top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label="Top-p (1: off)", elem_id=f"{key}-top-p")
        seed = gr.Number(0, precision=0, minimum=0, label="Seed", elem_id=f"{key}-seed")
    return temperature, top_k, top_p, seed


def sampling_from(ctx, temperature, top_k, top_p, seed) -> dict:
    """The controls' values as :func:`pixseq.models.generate.sampling_options`."""
    from pixseq.models.generate import sampling_options

    seed = int(seed if seed is not None else 0)
    if not 0 <= seed < 2**63:
        raise PixseqError(f"seed {seed} out of range: expected 0 to 2^63 - 1")
    return sampling_options(float(temperature), int(top_k) or None,
                            None if float(top_p) >= 1 else float(top_p), seed, ctx.shelf.device)


def check_count(ctx, num, what: str) -> int:
    """A number of images drawn in one request: 1..the server's limit."""
    num = int(num or 0)
    if not 1 <= num <= ctx.limits.max_images:
        raise PixseqError(f"{what} must be from 1 to {ctx.limits.max_images} here, got {num}")
    return num
