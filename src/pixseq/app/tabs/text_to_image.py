"""Text to image: VQGAN-CLIP, as ``pixseq generate`` runs it
(:func:`pixseq.guidance.text_to_image.text_to_image`, the same call): a prompt
(``a castle|pencil sketch:0.5|blurry:-1``), a VQGAN and a guide (a CLIP or LiT model folder),
size, steps, cut-outs and seed. The frames it writes every few steps are shown as they come;
Stop ends the optimisation after the current step and keeps the image of that step."""
from __future__ import annotations

TITLE = "Text to image"
NEEDS = "pixseq.guidance.text_to_image"
KEY = "text"


def _vqgan(kind: str, cls: type, config: dict) -> bool:
    return kind in ("vqgan", "taming")  # a VQGAN, or the tokenizer of a Taming model (load_vqgan)


def _guide(kind: str, cls: type, config: dict) -> bool:
    from pixseq.app.tabs import has

    return has(cls, "embed_text") and has(cls, "embed_images")


ROLES = {"text-vqgan": _vqgan, "text-guide": _guide}
#: a frame every this many steps is shown while the image forms
FRAME_EVERY = 5
#: the most optimisation steps of one request here (each is a guide pass over all cut-outs)
MAX_STEPS = 1000


def build(ctx) -> None:
    import gradio as gr

    from pixseq.app.common import result_image, run_buttons
    from pixseq.app.jobs import long_request, stop_button

    vqgans, guides = ctx.shelf.names("text-vqgan"), ctx.shelf.names("text-guide")
    gr.Markdown("Optimise a VQGAN's latent until the guide finds the image close to the prompt. Weights after "
                "a colon, `|` between prompts, negative weights push away: `a red shoe|blurry:-0.5`.")
    with gr.Row():
        with gr.Column(scale=1):
            prompt = gr.Textbox("", label="Prompt", elem_id=f"{KEY}-prompt")
            vqgan = gr.Dropdown(vqgans, value=vqgans[0] if vqgans else None, label="VQGAN", elem_id=f"{KEY}-vqgan")
            guide = gr.Dropdown(guides, value=guides[0] if guides else None, label="Guide (CLIP / LiT)",
                                elem_id=f"{KEY}-guide")
            size = gr.Textbox("64x64", label="Size WIDTHxHEIGHT (rounded to the VQGAN's factor)", elem_id=f"{KEY}-size")
            steps = gr.Slider(1, MAX_STEPS, value=100, step=1, label="Steps", elem_id=f"{KEY}-steps")
            cutn = gr.Slider(1, 64, value=16, step=1, label="Cut-outs per step", elem_id=f"{KEY}-cutn")
            seed = gr.Number(0, precision=0, minimum=0, label="Seed", elem_id=f"{KEY}-seed")
            go, stop = run_buttons(KEY, "Generate", stop=True)
        with gr.Column(scale=1):
            image = result_image(KEY, "image (frames as it forms)")
            status = gr.HTML(elem_id=f"{KEY}-status")
    job = gr.State(None)
    go.click(long_request(ctx, outputs=1, frame_at=0, watch=True)(_work(ctx)),
             [prompt, vqgan, guide, size, steps, cutn, seed], [job, image, status], api_name="text_to_image",
             concurrency_id="models")
    stop_button(ctx, stop, job)


def _work(ctx):
    def generate(job, prompt, vqgan, guide, size, steps, cutn, seed):
        from pixseq.errors import PixseqError
        from pixseq.guidance.text_to_image import generate_config, parse_size, text_to_image
        from pixseq.io import load_image

        if not (prompt or "").strip():
            raise PixseqError("type a prompt first")
        if not 1 <= int(steps) <= MAX_STEPS:
            raise PixseqError(f"steps must be from 1 to {MAX_STEPS} here, got {steps}")
        cfg = generate_config(steps=int(steps), cutn=int(cutn), seed=int(seed or 0),
                              frame_every=min(FRAME_EVERY, int(steps)))
        hw = parse_size((size or "").strip() or "64x64")
        out = ctx.work.request_dir()
        job.watch(out / "frames")
        try:
            result = text_to_image(prompt, ctx.shelf.folder(vqgan, "text-vqgan"), ctx.shelf.folder(guide, "text-guide"),
                                   out / "image.png", hw, cfg, frames_dir=out / "frames", weights_dir=ctx.weights_dir,
                                   offline=ctx.offline, device=ctx.shelf.device)
        except PixseqError:
            if job.stop.is_set() and (out / "image.png").is_file():  # stopped: the last step's image was kept
                return load_image(out / "image.png"), f"stopped; the image of the last finished step (of {steps})"
            raise
        scores = ", ".join(f"{t!r} {s:.3f}" for t, s in result.clip_scores.items())
        h, w = result.size
        return (load_image(result.out),
                f"{w}x{h}, {result.generation.steps_done} steps, final loss {result.generation.loss:.4f}; "
                f"CLIP score {scores or 'n/a (no positive text prompt)'}")

    return generate
