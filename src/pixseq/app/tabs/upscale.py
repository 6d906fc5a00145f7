"""Upscale: super-resolution with an ESRGAN / Real-ESRGAN net in seam-free blended tiles, as
``pixseq upscale`` does (:func:`pixseq.upscale.upscale_image`, the same call); the result
beside a bicubic enlargement on a before/after slider, and the full-size PNG to download.
Progress is counted in tiles; Stop ends the run after the current tile.

The page works in 8-bit RGB (what the image editor holds); ``pixseq upscale`` keeps grey,
alpha and 16-bit images as they are.
"""
from __future__ import annotations

TITLE = "Upscale"
NEEDS = "pixseq.upscale"
KEY = "upscale"
USES = "upscale"


def _fits(kind: str, cls: type, config: dict) -> bool:
    from pixseq.upscale.rrdb import SR_KINDS

    return kind in SR_KINDS


ROLES = {USES: _fits}


def build(ctx) -> None:
    import gradio as gr

    from pixseq.app.common import image_input, model_picker, run_buttons, wire_image_input
    from pixseq.app.jobs import long_request, stop_button

    gr.Markdown("Enlarge an image with a super-resolution net (Real-ESRGAN x4plus is converted once from its "
                "PyPI package on first use). Left of the slider: bicubic; right: the net.")
    with gr.Row():
        with gr.Column(scale=1):
            inp = image_input(ctx, KEY)
            model, info = model_picker(ctx, KEY, USES)
            outscale = gr.Number(0, minimum=0, label="Output scale (0: the net's own; other values "
                                                        "resize its output with Lanczos)", elem_id=f"{KEY}-outscale")
            go, stop = run_buttons(KEY, "Upscale", stop=True)
        with gr.Column(scale=1):
            slider = gr.ImageSlider(label="bicubic | upscaled", format="png", interactive=False,
                                    elem_id=f"{KEY}-slider", max_height=520)
            file = gr.File(label="the upscaled image (PNG)", interactive=False, elem_id=f"{KEY}-file")
            status = gr.HTML(elem_id=f"{KEY}-status")
    job = gr.State(None)
    wire_image_input(ctx, inp, status)
    choose = _on_model(ctx)
    model.change(choose, model, [info, status])
    ctx.on_load(choose, model, [info, status])
    go.click(long_request(ctx, outputs=2)(_work(ctx)), [inp.editor, model, outscale], [job, slider, file, status],
             api_name="upscale", concurrency_id="models")
    stop_button(ctx, stop, job)


def _on_model(ctx):
    from pixseq.app.common import request

    @request(ctx, outputs=1)
    def choose(name):
        entry = ctx.shelf.entry(name)
        scale = (entry.doc.get("config") or {}).get("scale") or (entry.doc.get("config") or {}).get("upscale")
        return f"{entry.kind}{f', {scale}x' if scale else ''}", f"model {name}"

    return choose


def _work(ctx):
    def upscale(job, editor, name, outscale):
        import numpy as np
        from PIL import Image

        from pixseq.app.common import editor_image
        from pixseq.io import save_image
        from pixseq.runtime import plural
        from pixseq.upscale import upscale_image

        image = editor_image(editor)
        outscale = float(outscale) if outscale else None
        model = ctx.shelf.load(name, USES)
        stats: dict = {}
        big = upscale_image(model, image, outscale=outscale, stats=stats)
        h, w = image.shape[:2]
        oh, ow = big.shape[:2]
        bicubic = np.asarray(Image.fromarray(image).resize((ow, oh), Image.BICUBIC))
        path = save_image(big, ctx.work.request_dir() / "upscaled.png")
        return ((bicubic, big), str(path),
                f"{w}x{h} -> {ow}x{oh} with {name} ({plural(stats['tiles'], 'tile')} of {stats['tile']} px, "
                f"{stats['seconds']:.1f} s)")

    return upscale
