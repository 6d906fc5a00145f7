"""Models: what this server offers and, for each model, its card: kind and settings, how it
was trained (the command or the recorded run settings, the data), and its measured quality
as its ``config.json`` meta records it (held-out loss / bits per pixel, steps, time)."""
from __future__ import annotations

import html
import json

TITLE = "Models"
NEEDS = "pixseq.checkpoint"
KEY = "models"
#: Card files a model folder may hold beside its config (shown as they are)
CARD_FILES = ("README.md", "CARD.md", "card.md")


def build(ctx) -> None:
    import gradio as gr

    names = ctx.shelf.names()
    gr.Markdown("Every model this server offers, and the tabs that use it. Pick one for its card.")
    listing = gr.HTML(model_list(ctx), elem_id=f"{KEY}-list")
    with gr.Row():
        model = gr.Dropdown(names, value=names[0] if names else None, label="Model", elem_id=f"{KEY}-model")
        refresh = gr.Button("Refresh", elem_id=f"{KEY}-refresh", scale=0)
    card = gr.HTML(elem_id=f"{KEY}-card")
    show = _on_show(ctx)
    model.change(show, model, [listing, card])
    refresh.click(show, model, [listing, card])
    ctx.on_load(show, model, [listing, card])
    # opened again: what is loaded now (requests load models after the page opened)
    ctx.tab.select(show, model, [listing, card])


def _on_show(ctx):
    def show(name):
        if not name:
            return model_list(ctx), "<p>No models: start the server with --models DIR (a model directory or a " \
                                    "folder of them).</p>"
        return model_list(ctx), model_card(ctx.shelf.entry(name), ctx.shelf.is_loaded(name))

    return show


def model_list(ctx) -> str:
    """A table of the server's models: name, kind, tabs, loaded or not."""
    from pixseq.app.tabs import capability_tabs

    rows = ["<table class='pixseq-models'><tr><th>model</th><th>kind</th><th>used in</th><th>state</th></tr>"]
    for name, e in ctx.shelf.entries.items():
        tabs = ", ".join(capability_tabs(e.capabilities)) or "(no tab)"
        state = "loaded" if ctx.shelf.is_loaded(name) else "loads on first use"
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(e.kind)}</td><td>{html.escape(tabs)}</td>"
                    f"<td>{state}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)) and len(v) > 12:
        return html.escape(", ".join(map(str, v[:12]))) + f" ... ({len(v)} in all)"
    if isinstance(v, (list, tuple)):
        return html.escape(", ".join(map(str, v)))
    if isinstance(v, dict):
        return f"<code>{html.escape(json.dumps(v, sort_keys=True))}</code>"
    return html.escape(str(v))


def _kv_table(items: dict, cls: str) -> str:
    body = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_value(v)}</td></tr>" for k, v in items.items())
    return f"<table class='{cls}'>{body}</table>"


def model_card(entry, loaded: bool) -> str:
    """The card of one model as HTML: the card file when the folder has one, the training
    command or run settings, the meta's numbers, the model's settings."""
    parts = [f"<h3>{html.escape(entry.name)}</h3>",
             f"<p>kind <b>{html.escape(entry.kind)}</b>, folder <code>{html.escape(str(entry.folder))}</code>, "
             f"pixseq {html.escape(str(entry.doc.get('pixseq_version', '?')))}, "
             f"{'loaded' if loaded else 'not loaded yet'}</p>"]
    for name in CARD_FILES:
        path = entry.folder / name
        if path.is_file():
            parts.append(f"<h4>{name}</h4><pre class='pixseq-card'>{html.escape(path.read_text('utf-8', 'replace'))}</pre>")
            break
    meta = entry.meta
    command = meta.pop("command", None)
    if command:
        parts.append(f"<h4>Trained with</h4><pre>{html.escape(str(command))}</pre>")
    run = _run_settings(entry)
    if run:
        parts.append("<h4>Run settings (train/run.json)</h4>" + _kv_table(run, "pixseq-run"))
    if meta:
        parts.append("<h4>Data and measured quality (meta)</h4>" + _kv_table(meta, "pixseq-meta"))
    parts.append("<h4>Model settings (config)</h4>" + _kv_table(entry.doc.get("config") or {}, "pixseq-config"))
    return "\n".join(parts)


def _run_settings(entry) -> dict:
    """The settings a ``train`` run recorded beside the model (``train/run.json``), if any."""
    path = entry.folder / "train" / "run.json"
    try:
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
