"""Complete: the iGPT founding document's one-form GUI. Upload or pick an image, crop it,
choose the model, how many rows to keep and how many completions; the grid shows original |
kept rows | completions, as ``pixseq complete`` writes it
(:func:`pixseq.models.generate.completion_grid`, the same call)."""
from __future__ import annotations

TITLE = "Complete"
#: the library module this tab calls: the tab appears when it is importable
NEEDS = "pixseq.models.generate"
KEY = "complete"
USES = "complete"


def _fits(kind: str, cls: type, config: dict) -> bool:
    from pixseq.app.tabs import has

    return has(cls, "complete")


#: the models it offers (see pixseq.app.shelf.capabilities)
ROLES = {USES: _fits}
GUESS = "the likeliest given the kept rows"


def build(ctx) -> None:
    import gradio as gr

    from pixseq.app.common import (image_input, model_picker, result_image, run_buttons, sampling_controls,
                                   wire_image_input)

    gr.Markdown("Keep the top rows of an image and let the model draw the rest. The image is resized to "
                "the model's size (with a note); the grid shows original | kept rows (the rest blue) | "
                "completions.")
    with gr.Row():
        with gr.Column(scale=1):
            inp = image_input(ctx, KEY)
            model, info = model_picker(ctx, KEY, USES)
            rows = gr.Slider(1, 31, value=16, step=1, label="Rows to keep (of the model's image height)",
                             elem_id=f"{KEY}-rows")
            num = gr.Slider(1, ctx.limits.max_images, value=4, step=1, label="Completions", elem_id=f"{KEY}-num")
            cls = gr.Dropdown([(GUESS, "")], value="", label="Class", elem_id=f"{KEY}-class")
            sampling = sampling_controls(KEY)
            go, _ = run_buttons(KEY, "Complete")
        with gr.Column(scale=1):
            grid = result_image(KEY, "original | kept | completions", "grid")
            status = gr.HTML(elem_id=f"{KEY}-status")
    wire_image_input(ctx, inp, status)
    choose = _on_model(ctx)
    model.change(choose, model, [info, rows, cls, status])
    ctx.on_load(choose, model, [info, rows, cls, status])
    go.click(_on_complete(ctx), [inp.editor, model, rows, num, cls, *sampling], [grid, status],
             api_name="complete", concurrency_id="models")


def _on_model(ctx):
    import gradio as gr

    from pixseq.app.common import class_update, describe_model, request

    @request(ctx, outputs=3)
    def choose(name):
        if not name:
            return gr.skip(), gr.skip(), gr.skip(), "no model here can complete images: start the server with " \
                                                    "--models DIR (an igpt or taming model)"
        entry = ctx.shelf.entry(name)
        model = ctx.shelf.load(name, USES)
        h = int(model.image_size[0])
        rows = gr.update(minimum=1, maximum=max(1, h - 1), value=max(1, h // 2))
        return describe_model(entry, model), rows, class_update(model, GUESS), f"model {name} ready"

    return choose


def _on_complete(ctx):
    from pixseq.app.common import check_count, editor_image, request, sampling_from

    @request(ctx, outputs=1)
    def complete(editor, name, rows, num, cls, temperature, top_k, top_p, seed):
        from pixseq.models.generate import completion_grid, parse_class
        from pixseq.runtime import plural
        from pixseq.errors import PixseqError

        image = editor_image(editor)
        num = check_count(ctx, num, "completions")
        sampling = sampling_from(ctx, temperature, top_k, top_p, seed)
        model = ctx.shelf.load(name, USES)
        height = int(model.image_size[0])
        rows = int(rows)
        if not 1 <= rows < height:
            raise PixseqError(f"rows to keep must be from 1 to {height - 1} (the model's images are {height} "
                              f"rows high), got {rows}")
        label = parse_class(model, cls or None, what="class")
        # rows / height is the CLI's --keep fraction; keep_rows_for rounds it back to exactly ``rows``
        grid, kept = completion_grid(model, [("the image", image)], rows / height, num, label, **sampling)
        return grid, f"original | top {kept} of {height} rows kept | {plural(num, 'completion')} ({name})"

    return complete
