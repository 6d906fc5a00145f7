"""Compress & assess: one image through each chosen codec at a target bits per pixel, the
decoded images side by side, each scored against the original as ``pixseq assess`` scores a
pair (ViT-Score or its named fallback, SSIM, PSNR, LPIPS, BRISQUE), and the ``.pxs`` files
to download.

The rate search is :mod:`pixseq.codec.target` (real bytes, headers included); the scores are
:func:`pixseq.assess.pair_scores` with the networks :func:`pixseq.assess.prepare_scoring` loads,
once per server, with ``pixseq assess``'s rules: a network whose weights are missing is
skipped (LPIPS's ImageNet backbone offline) or replaced by a named fallback (the study's ViT
by EfficientNet-Lite0), and the page says so.
"""
from __future__ import annotations

import math
import threading

TITLE = "Compress & assess"
NEEDS = "pixseq.codec.target"
KEY = "compress"
USES = "codec"


def _fits(kind: str, cls: type, config: dict) -> bool:
    from pixseq.app.tabs import image_conditioned
    from pixseq.codec import CODEC_MODEL_KINDS

    return kind in CODEC_MODEL_KINDS and not image_conditioned(config)


#: the models it offers (see pixseq.app.shelf.capabilities)
ROLES = {USES: _fits}
#: The assessment's per-pair metrics (``pixseq assess`` names)
METRICS = ["vit_score", "ssim", "psnr", "lpips", "brisque"]
MODEL_PREFIX = "pixseq: "


def codec_choices(ctx) -> list[str]:
    """The classic codecs this Pillow writes, then every codec-capable model as ``pixseq: NAME``."""
    from pixseq.codec.compare import classic_codecs

    return [c.upper() for c in classic_codecs()] + [MODEL_PREFIX + n for n in ctx.shelf.names("codec")]


class Scorer:
    """The assessment networks, loaded on first use and shared by the server's requests."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._loaded = None

    def _models(self):
        from pathlib import Path

        from pixseq.assess import AssessOptions, prepare_scoring

        with self._lock:
            if self._loaded is None:
                # ref/dist are not read here: the pairs come from memory, one at a time
                opts = AssessOptions(ref=Path(), dist=Path(), weights_dir=self.ctx.weights_dir,
                                     offline=self.ctx.offline)
                self._loaded = prepare_scoring(METRICS, False, opts, self.ctx.shelf.device)
            return self._loaded

    def __call__(self, ref, decoded: list) -> tuple[dict[str, str], list[dict[str, float]]]:
        """Column labels and one row of scores per decoded uint8 image against ``ref``."""
        import torch

        from pixseq.assess import pair_scores
        from pixseq.io import to_tensor
        from pixseq.runtime import notice

        opts, models, columns = self._models()
        for note in models.notes:  # every answer says what was skipped or substituted
            notice(note)
        a = to_tensor(ref)[None].to(self.ctx.shelf.device)
        rows = []
        with torch.no_grad():
            for image in decoded:
                b = to_tensor(image)[None].to(self.ctx.shelf.device)
                rows.append(pair_scores(a, b, columns, models, opts))
        return columns, rows


def build(ctx) -> None:
    import gradio as gr

    from pixseq.app.common import image_input, run_buttons, wire_image_input

    choices = codec_choices(ctx)
    gr.Markdown("Code one image with each codec at the best setting that fits the bit budget (whole files, "
                "headers included), decode it again, and score the decoded image against the original.")
    with gr.Row():
        with gr.Column(scale=1):
            inp = image_input(ctx, KEY)
            codecs = gr.CheckboxGroup(choices, value=choices, label="Codecs", elem_id=f"{KEY}-codecs")
            target = gr.Number(0.5, minimum=0.001, label="Target bits per pixel", elem_id=f"{KEY}-bpp")
            go, _ = run_buttons(KEY, "Compress & assess")
        with gr.Column(scale=2):
            gallery = gr.Gallery(label="decoded, side by side", columns=3, format="png", elem_id=f"{KEY}-gallery",
                                 object_fit="contain", height=420)
            table = gr.HTML(elem_id=f"{KEY}-table")
            files = gr.File(label=".pxs files", file_count="multiple", interactive=False, elem_id=f"{KEY}-files")
            status = gr.HTML(elem_id=f"{KEY}-status")
    wire_image_input(ctx, inp, status)
    go.click(_on_compress(ctx, Scorer(ctx)), [inp.editor, codecs, target], [gallery, table, files, status],
             api_name="compress", concurrency_id="models")


def _on_compress(ctx, scorer: Scorer):
    from pixseq.app.common import editor_image, request

    @request(ctx, outputs=3)
    def compress(editor, codecs, target):
        from pixseq.codec.target import check_target
        from pixseq.errors import PixseqError
        from pixseq.runtime import notice

        image = editor_image(editor)
        target = check_target(float(target if target is not None else math.nan))
        if not codecs:
            raise PixseqError("choose at least one codec")
        out = ctx.work.request_dir()
        results, files = [], []
        for codec in codecs:
            result, file = _code(ctx, image, codec, target, out)
            results.append(result)
            files += [file] if file else []
            for note in result.notes:
                notice(note)
        columns, scores = scorer(image, [r.decoded for r in results])
        h, w = image.shape[:2]
        gallery = [(image, f"original {w}x{h}, 24 bpp")]
        gallery += [(r.decoded, f"{r.codec} {r.setting}: {r.bpp:.3f} bpp") for r in results]
        met = sum(r.within for r in results)
        return (gallery, score_table(results, columns, scores), files or None,
                f"{met} of {len(results)} codecs within {target:g} bpp on {w}x{h} pixels")

    return compress


def _code(ctx, image, codec: str, target: float, out):
    """One codec at the target: its :class:`~pixseq.codec.target.AtRate` and the file to download."""
    from pixseq.codec.target import classic_at_bpp, pixseq_at_bpp
    from pixseq.io import atomic_write

    if not codec.startswith(MODEL_PREFIX):
        return classic_at_bpp(image, codec.lower(), target), None
    name = codec[len(MODEL_PREFIX):]
    model = ctx.shelf.load(name, "codec")
    entry = ctx.shelf.entry(name)
    result = pixseq_at_bpp(image, model, target, str(entry.folder.resolve()), name=name,
                           max_tokens=ctx.limits.max_codec_tokens)
    file = out / f"{_safe(name)}-{result.setting}.pxs"
    with atomic_write(file) as fh:
        fh.write(result.data)
    return result, str(file)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def score_table(results, columns: dict[str, str], scores: list[dict[str, float]]) -> str:
    """The scores as an HTML table: a row per codec, the columns' full labels as headers."""
    import html

    shown = [c for c in columns if c != "brisque_ref"]
    head = "".join(f"<th>{html.escape(columns[c])}</th>" for c in shown)
    lines = [f"<table class='pixseq-scores'><tr><th>codec</th><th>setting</th><th>bpp</th>{head}</tr>"]
    for r, row in zip(results, scores):
        cells = "".join(f"<td>{_fmt(row.get(c))}</td>" for c in shown)
        flag = "" if r.within else " (over the target)"
        lines.append(f"<tr><td>{html.escape(r.codec)}</td><td>{html.escape(r.setting)}</td>"
                     f"<td>{r.bpp:.4f}{flag}</td>{cells}</tr>")
    lines.append("</table>")
    if scores and "brisque_ref" in columns:
        lines.append(f"<p>BRISQUE of the original: {_fmt(scores[0]['brisque_ref'])} (lower is more natural-"
                     "looking); SSIM, PSNR and the label overlap: higher is closer to the original; LPIPS: lower.</p>")
    return "\n".join(lines)


def _fmt(value) -> str:
    if value is None:
        return "n/a"
    return "inf" if math.isinf(value) else f"{value:.4f}"
