"""Translate: image-to-image GANs. pix2pix / CycleGAN translators, any size in blended tiles
normalised as one image, as ``pixseq translate`` runs them
(:func:`pixseq.gans.translator.translate_image`; offline the zoo's ``cyclegan-vintage``,
modern -> vintage photos), and restoration models that denoise, inpaint, colorize or
super-resolve, as ``pixseq restore`` runs them (:func:`pixseq.gans.model.restore_images`;
"degrade first" takes a clean image, applies the model's own training degradation and
shows degraded | restored | original). Progress is counted in tiles; Stop ends a translation
after the current tile."""
from __future__ import annotations

TITLE = "Translate"
NEEDS = "pixseq.gans.model"
KEY = "translate"
USES = "translate"


def _fits(kind: str, cls: type, config: dict) -> bool:
    from pixseq.app.tabs import has

    return has(cls, "restore") or (has(cls, "generator") and hasattr(cls, "directions"))


ROLES = {USES: _fits}


def build(ctx) -> None:
    import gradio as gr

    from pixseq.app.common import image_input, model_picker, result_image, run_buttons, wire_image_input
    from pixseq.app.jobs import long_request, stop_button
    from pixseq.io import IMAGE_SUFFIXES

    gr.Markdown("Translate an image with an image-to-image GAN: a pix2pix / CycleGAN translator (either "
                "direction it was trained for) or a restoration model. Inpainting models need a mask: an "
                "image as large as the input, white where pixels are missing.")
    with gr.Row():
        with gr.Column(scale=1):
            inp = image_input(ctx, KEY)
            model, info = model_picker(ctx, KEY, USES)
            direction = gr.Radio(["AtoB"], value="AtoB", label="Direction (translators)", elem_id=f"{KEY}-direction")
            with gr.Accordion("Restoration models", open=False, elem_id=f"{KEY}-restore"):
                degrade = gr.Checkbox(False, label="the image is clean: degrade it as in training first",
                                      elem_id=f"{KEY}-degrade")
                mask = gr.File(label="mask (inpainting)", file_types=list(IMAGE_SUFFIXES), type="filepath",
                               elem_id=f"{KEY}-mask", height=100)
                seed = gr.Number(0, precision=0, minimum=0, label="Seed (of the degradation)", elem_id=f"{KEY}-seed")
            go, stop = run_buttons(KEY, "Translate", stop=True)
        with gr.Column(scale=1):
            out = result_image(KEY, "result")
            status = gr.HTML(elem_id=f"{KEY}-status")
    job = gr.State(None)
    wire_image_input(ctx, inp, status)
    choose = _on_model(ctx)
    model.change(choose, model, [info, direction, status])
    ctx.on_load(choose, model, [info, direction, status])
    go.click(long_request(ctx, outputs=1)(_work(ctx)), [inp.editor, model, direction, degrade, mask, seed],
             [job, out, status], api_name="translate", concurrency_id="models")
    stop_button(ctx, stop, job)


def _on_model(ctx):
    import gradio as gr

    from pixseq.app.common import request

    @request(ctx, outputs=2)
    def choose(name):
        from pixseq.errors import PixseqError

        if not name:
            raise PixseqError("no image-to-image model here: start the server with --models DIR "
                              "(pixseq train pix2pix / cyclegan / restore)")
        model = ctx.shelf.load(name, USES)  # a zoo translator is converted here, once
        if hasattr(model, "directions"):
            return model.describe(model.directions[0]), gr.update(choices=model.directions,
                                                                  value=model.directions[0]), f"model {name} ready"
        return f"{model.kind}: {model.task}", gr.update(choices=["AtoB"], value="AtoB"), f"model {name} ready"

    return choose


def _work(ctx):
    def translate(job, editor, name, direction, degrade, mask, seed):
        from pixseq.app.common import editor_image, load_upload

        image = editor_image(editor)
        model = ctx.shelf.load(name, USES)
        if hasattr(model, "directions"):
            return _translated(model, image, direction or "AtoB", name)
        mask_image = load_upload(mask, ctx.limits.max_pixels)[0] if mask else None
        return _restored(model, image, mask_image, bool(degrade), int(seed or 0), name)

    return translate


def _translated(model, image, direction: str, name: str):
    from pixseq.gans.translator import translate_image

    stats: dict = {}
    result = translate_image(model, image, direction, stats=stats)
    h, w = result.shape[:2]
    how = "whole" if stats["tiles"] == 1 else f"{stats['tiles']} tiles of {stats['tile']} px"
    return result, (f"{model.describe(direction)}: {w}x{h} ({how}, norm statistics: {stats['norm_stats']}, "
                    f"{stats['seconds']:.1f} s; {name})")


def _restored(model, image, mask, degrade: bool, seed: int, name: str):
    from pixseq.gans.model import restore_images
    from pixseq.report.grid import make_grid

    [(restored, degraded)] = restore_images(model, [image], mask, degrade, seed)
    if degraded is not None:
        return make_grid([degraded, restored, image], ncol=3), f"degraded | restored | original ({model.task})"
    h, w = restored.shape[:2]
    return restored, f"{model.task}: {w}x{h} ({name})"
