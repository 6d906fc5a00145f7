"""Sample: draw images from any generative model on the server (iGPT, Taming, GAN
generators: whatever has ``generate``), with a class picker, temperature, top-k, top-p and
seed; the grid is ``pixseq sample``'s (:func:`pixseq.models.generate.sample_grid`)."""
from __future__ import annotations

TITLE = "Sample"
NEEDS = "pixseq.models.generate"
KEY = "sample"
USES = "sample"


def _fits(kind: str, cls: type, config: dict) -> bool:
    from pixseq.app.tabs import has, image_conditioned

    return has(cls, "generate") and not image_conditioned(config)


#: the models it offers (see pixseq.app.shelf.capabilities)
ROLES = {USES: _fits}
ALL_CLASSES = "one column per class"


def build(ctx) -> None:
    import gradio as gr

    from pixseq.app.common import model_picker, result_image, run_buttons, sampling_controls

    gr.Markdown("Draw new images from a model. A class-conditional model without a class draws one "
                "column per class. A Taming model with sliding-window sampling also draws larger images "
                "than it was trained on (Size).")
    with gr.Row():
        with gr.Column(scale=1):
            model, info = model_picker(ctx, KEY, USES)
            num = gr.Slider(1, ctx.limits.max_images, value=16, step=1, label="Images", elem_id=f"{KEY}-num")
            cls = gr.Dropdown([(ALL_CLASSES, "")], value="", label="Class", elem_id=f"{KEY}-class")
            size = gr.Textbox("", label="Size WxH (empty: the trained size)", elem_id=f"{KEY}-size")
            sampling = sampling_controls(KEY)
            go, _ = run_buttons(KEY, "Sample")
        with gr.Column(scale=1):
            grid = result_image(KEY, "samples", "grid")
            status = gr.HTML(elem_id=f"{KEY}-status")
    choose = _on_model(ctx)
    model.change(choose, model, [info, cls, status])
    ctx.on_load(choose, model, [info, cls, status])
    go.click(_on_sample(ctx), [model, num, cls, size, *sampling], [grid, status], api_name="sample",
             concurrency_id="models")


def _on_model(ctx):
    import gradio as gr

    from pixseq.app.common import class_update, describe_model, request

    @request(ctx, outputs=2)
    def choose(name):
        if not name:
            return gr.skip(), gr.skip(), "no model here can sample: start the server with --models DIR"
        model = ctx.shelf.load(name, USES)
        return describe_model(ctx.shelf.entry(name), model), class_update(model, ALL_CLASSES), f"model {name} ready"

    return choose


def _on_sample(ctx):
    from pixseq.app.common import check_count, request, sampling_from

    @request(ctx, outputs=1)
    def sample(name, num, cls, size, temperature, top_k, top_p, seed):
        from pixseq.models.generate import describe_classes, parse_class, parse_size, sample_grid
        from pixseq.runtime import plural

        num = check_count(ctx, num, "images")
        sampling = sampling_from(ctx, temperature, top_k, top_p, seed)
        hw = parse_size(size.strip() or None)
        model = ctx.shelf.load(name, USES)
        _check_size(model, hw)
        label = parse_class(model, cls or None, what="class")
        grid, tiles = sample_grid(model, num, label, hw, **sampling)
        h, w = tiles[0].shape[:2]
        return grid, f"{plural(num, 'sample')} ({describe_classes(model, num, label)}), {w}x{h} each ({name})"

    return sample


#: Largest sampled side, in multiples of the trained side (a server's bound on one request's work).
MAX_SIZE_FACTOR = 4


def _check_size(model, hw) -> None:
    from pixseq.errors import PixseqError

    if hw is None:
        return
    th, tw = (int(v) for v in model.image_size)
    if hw[0] > MAX_SIZE_FACTOR * th or hw[1] > MAX_SIZE_FACTOR * tw:
        raise PixseqError(f"size {hw[1]}x{hw[0]}: this server samples up to {MAX_SIZE_FACTOR} times the trained size "
                          f"{tw}x{th} ({MAX_SIZE_FACTOR * tw}x{MAX_SIZE_FACTOR * th}); use pixseq sample --size "
                          "for more")
