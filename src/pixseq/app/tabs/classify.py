"""Classify: an image's top classes with a trained classifier (a ViT: ``pixseq classify
--model``, :func:`pixseq.classifiers.predict.classify`) and its attention rollout, or zero-shot
among label texts with a guide (``pixseq classify --labels --clip``,
:func:`pixseq.guidance.zero_shot.zero_shot_classify`)."""
from __future__ import annotations

TITLE = "Classify"
NEEDS = "pixseq.classifiers.predict"
KEY = "classify"


def _classifier(kind: str, cls: type, config: dict) -> bool:
    from pixseq.app.tabs import has

    return has(cls, "predict") and hasattr(cls, "class_names")


def _guide(kind: str, cls: type, config: dict) -> bool:
    from pixseq.app.tabs import has

    return has(cls, "embed_text") and has(cls, "embed_images")


ROLES = {"classify": _classifier, "zero-shot": _guide}
TOP_K = 5


def build(ctx) -> None:
    import gradio as gr

    from pixseq.app.common import image_input, run_buttons, wire_image_input

    names = ctx.shelf.names("classify") + [n for n in ctx.shelf.names("zero-shot") if n not in ctx.shelf.names("classify")]
    gr.Markdown("A classifier's top classes (with its attention rollout), or, with a CLIP / LiT guide, "
                "zero-shot among the labels you type.")
    with gr.Row():
        with gr.Column(scale=1):
            inp = image_input(ctx, KEY)
            model = gr.Dropdown(names, value=names[0] if names else None, label="Classifier or guide",
                                elem_id=f"{KEY}-model")
            labels = gr.Textbox("", label="Labels for zero-shot (comma-separated; guides only)",
                                elem_id=f"{KEY}-labels")
            go, _ = run_buttons(KEY, "Classify")
        with gr.Column(scale=1):
            top = gr.Label(num_top_classes=TOP_K, label="top classes", elem_id=f"{KEY}-top")
            attention = gr.Image(label="attention rollout", format="png", interactive=False, height=300,
                                 elem_id=f"{KEY}-attention", elem_classes=["pixseq-result"])
            status = gr.HTML(elem_id=f"{KEY}-status")
    wire_image_input(ctx, inp, status)
    go.click(_on_classify(ctx), [inp.editor, model, labels], [top, attention, status], api_name="classify",
             concurrency_id="models")


def _on_classify(ctx):
    from pixseq.app.common import editor_image, request

    @request(ctx, outputs=2)
    def classify(editor, name, labels):
        from pixseq.errors import PixseqError

        image = editor_image(editor)
        entry = ctx.shelf.entry(name)
        if "classify" in entry.capabilities:
            if (labels or "").strip():
                raise PixseqError(f"{name} is a classifier with its own classes; labels are for zero-shot guides")
            return _with_classifier(ctx, name, image)
        if not (labels or "").strip():
            raise PixseqError(f"{name} is a guide: type the labels to choose among (e.g. 'a shoe, a bag, a shirt')")
        return _zero_shot(ctx, name, image, labels)

    return classify


def _with_classifier(ctx, name, image):
    from pixseq.classifiers.predict import as_batch, classify
    from pixseq.classifiers.rollout import attention_overlays

    model = ctx.shelf.load(name, "classify")
    pred = classify(model, [image], top_k=TOP_K)[0]
    x, _ = as_batch(model, [image])
    overlay = attention_overlays(model, x)[0]
    return dict(pred.top), overlay, f"{pred.label} ({pred.probability:.1%}) by {name}"


def _zero_shot(ctx, name, image, labels):
    from pixseq.guidance.zero_shot import zero_shot_classify
    from pixseq.io import to_tensor
    from pixseq.runtime import notice

    guide = ctx.shelf.load(name, "zero-shot")
    device = next(guide.parameters()).device
    result = zero_shot_classify(to_tensor(image)[None].to(device), labels, guide)
    if getattr(guide, "scope_note", ""):
        notice(guide.scope_note)
    probs = dict(zip(result.labels, result.probs[0].tolist()))
    best = result.top()[0]
    return probs, None, f"{best} ({probs[best]:.1%}) of {len(result.labels)} labels, zero-shot by {name}"
