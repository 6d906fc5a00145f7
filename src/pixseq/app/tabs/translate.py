"""Translate: image-to-image GANs (pix2pix-style, paired L1 + adversarial): restoration models
that denoise, inpaint, colorize or super-resolve, as ``pixseq restore`` runs them
(:func:`pixseq.gans.model.restore_images`, the same call). "Degrade first" takes a clean
image, applies the model's own training degradation and shows degraded | restored | original."""
from __future__ import annotations

TITLE = "Translate"
NEEDS = "pixseq.gans.model"
KEY = "translate"
USES = "translate"


def _fits(kind: str, cls: type, config: dict) -> bool:
    from pixseq.app.tabs import has

    return has(cls, "restore")


ROLES = {USES: _fits}


def build(ctx) -> None:
    import gradio as gr

    from pixseq.app.common import image_input, model_picker, result_image, run_buttons, wire_image_input
    from pixseq.io import IMAGE_SUFFIXES

    gr.Markdown("Restore an image with an image-to-image GAN. Inpainting models need a mask: an image as "
                "large as the input, white where pixels are missing.")
    with gr.Row():
        with gr.Column(scale=1):
            inp = image_input(ctx, KEY)
            model, info = model_picker(ctx, KEY, USES)
            degrade = gr.Checkbox(False, label="the image is clean: degrade it as in training first",
                                  elem_id=f"{KEY}-degrade")
            mask = gr.File(label="mask (inpainting)", file_types=list(IMAGE_SUFFIXES), type="filepath",
                           elem_id=f"{KEY}-mask", height=100)
            seed = gr.Number(0, precision=0, minimum=0, label="Seed (of the degradation)", elem_id=f"{KEY}-seed")
            go, _ = run_buttons(KEY, "Translate")
        with gr.Column(scale=1):
            out = result_image(KEY, "result")
            status = gr.HTML(elem_id=f"{KEY}-status")
    wire_image_input(ctx, inp, status)
    choose = _on_model(ctx)
    model.change(choose, model, [info, status])
    ctx.on_load(choose, model, [info, status])
    go.click(_on_translate(ctx), [inp.editor, model, degrade, mask, seed], [out, status], api_name="translate",
             concurrency_id="models")


def _on_model(ctx):
    from pixseq.app.common import request

    @request(outputs=1)
    def choose(name):
        from pixseq.errors import PixseqError

        if not name:
            raise PixseqError("no image-to-image model here: start the server with --models DIR "
                              "(pixseq train restore)")
        model = ctx.shelf.load(name, USES)
        return f"{model.kind}: {model.task}", f"model {name} ready"

    return choose


def _on_translate(ctx):
    from pixseq.app.common import editor_image, load_upload, request

    @request(outputs=1)
    def translate(editor, name, degrade, mask, seed):
        from pixseq.gans.model import restore_images
        from pixseq.report.grid import make_grid

        image = editor_image(editor)
        mask_image = load_upload(mask, ctx.limits.max_pixels)[0] if mask else None
        model = ctx.shelf.load(name, USES)
        [(restored, degraded)] = restore_images(model, [image], mask_image, bool(degrade), int(seed or 0))
        if degraded is not None:
            return make_grid([degraded, restored, image], ncol=3), f"degraded | restored | original ({model.task})"
        h, w = restored.shape[:2]
        return restored, f"{model.task}: {w}x{h} ({name})"

    return translate
