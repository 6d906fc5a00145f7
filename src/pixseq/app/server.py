"""Building and serving the web UI: the context every tab gets, the page, the server.

:func:`serve` is all of ``pixseq ui``: it makes the work folder and points Gradio's files
into it (before Gradio is imported: Gradio reads ``GRADIO_TEMP_DIR`` once, at import), finds
the models, builds the page from the available tabs, serves it on ``host:port`` behind a
queue with a concurrency limit, and on Ctrl-C closes the server and removes what it wrote.
"""
from __future__ import annotations

import errno
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from pixseq.app.jobs import JobBoard
from pixseq.app.work import Limits, WorkFolder
from pixseq.errors import PixseqError

CSS = """
.pixseq-error { color: #b00020; }
.pixseq-note { color: #555; font-size: 0.92em; margin: 0.15em 0; }
table.pixseq-scores td, table.pixseq-scores th, table.pixseq-models td, table.pixseq-models th { padding: 2px 8px; }
/* a result fills its box: Gradio only scales images down, and a 28x28 garment or a 32x24
   text-to-image result stood as a speck in a 440-px box; pixelated, the pixels stay visible */
.pixseq-result .image-frame { width: 100%; }
.pixseq-result .image-frame img { object-fit: contain; image-rendering: pixelated; }
"""


@dataclass
class AppContext:
    """What a tab's ``build`` needs: the models, the work folder, the limits, the examples."""

    shelf: Any
    work: WorkFolder
    limits: Limits
    examples: Any
    weights_dir: Path | None = None
    offline: bool | None = None
    jobs: JobBoard = field(default_factory=JobBoard)
    loads: list[tuple[Callable, Any, Any]] = field(default_factory=list)
    #: the tab being built (its ``select`` event: the tab was opened)
    tab: Any = None

    def on_load(self, fn: Callable, inputs, outputs) -> None:
        """Run ``fn`` when a page opens (e.g. fill a model's details into the form)."""
        self.loads.append((fn, inputs, outputs))


def build_app(ctx: AppContext):
    """The page: a header with the limits, then one tab per available tab module."""
    import gradio as gr

    from pixseq.app.tabs import available_tabs
    from pixseq.version import __version__

    with gr.Blocks(title="pixseq", analytics_enabled=False,
                   delete_cache=(max(60, ctx.limits.keep_files_s // 6), ctx.limits.keep_files_s)) as demo:
        gr.Markdown(f"## pixseq {__version__}: images as sequences of tokens\n{ctx.limits.describe()}",
                    elem_id="pixseq-header")
        with gr.Tabs():
            for tab in available_tabs():
                with gr.Tab(tab.TITLE, id=tab.KEY, elem_id=f"tab-{tab.KEY}") as ctx.tab:
                    tab.build(ctx)
            ctx.tab = None
        for fn, inputs, outputs in ctx.loads:
            demo.load(fn, inputs, outputs)
    demo.queue(default_concurrency_limit=ctx.limits.concurrency, max_size=ctx.limits.queue_size)
    return demo


def prepare_work(work: str | os.PathLike | None, keep_s: int) -> WorkFolder:
    """The work folder, with Gradio's files pointed into it (refused once Gradio is imported
    elsewhere: its files would then go to the system's temporary folder)."""
    folder = WorkFolder(work, keep_s)
    if "gradio" in sys.modules and os.environ.get("GRADIO_TEMP_DIR") != str(folder.gradio):
        raise PixseqError("gradio was imported before the work folder was set; start the UI in a fresh process "
                          "(pixseq ui) or set GRADIO_TEMP_DIR yourself first")
    os.environ["GRADIO_TEMP_DIR"] = str(folder.gradio)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves this machine
    os.environ.setdefault("MPLCONFIGDIR", str(folder.cache / "matplotlib"))
    return folder


def serve(models: Sequence[str] = (), host: str = "127.0.0.1", port: int = 7860, device: str = "auto",
          limits: Limits | None = None, work: str | os.PathLike | None = None,
          weights_dir: Path | None = None, offline: bool | None = None, zoo: bool = True,
          ready: Callable[[str], None] = print) -> None:
    """``pixseq ui`` as one call: serve until interrupted, then clean up. ``models``: model
    directories or folders of them, offered before the shipped models (none with ``zoo=False``)."""
    from pixseq.app.common import Examples
    from pixseq.app.shelf import ModelShelf
    from pixseq.app.tabs import roles
    from pixseq.device import resolve_device

    limits = limits or Limits()
    limits.check()
    started = time.perf_counter()
    check_address(host, port)  # a busy port or a bad host: said in a second, before Gradio's import
    shelf = ModelShelf(models, resolve_device(device), roles(), zoo)  # bad --models: before anything is written
    folder = prepare_work(work, limits.keep_files_s)
    demo = None
    try:
        ctx = AppContext(shelf, folder, limits, Examples(), weights_dir, offline)
        demo = build_app(ctx)
        url = _launch(demo, host, port, limits, folder)
        ctx.examples.warm()
        _stop_on_sigterm()
        ready(f"serving on {url} ({len(shelf.entries)} models, work folder {folder.root}, "
              f"ready in {time.perf_counter() - started:.1f} s); Ctrl-C stops")
        demo.block_thread()
    finally:
        if demo is not None:
            demo.close()
        folder.cleanup()


def check_address(host: str, port: int) -> None:
    """Refuse, in one line, an address the server could not listen on: a host name that does
    not resolve, an address not of this machine, a port in use or not allowed. The socket is
    bound as uvicorn binds it (``SO_REUSEADDR``: a port still in TIME_WAIT is free for it)."""
    import socket

    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise PixseqError(f"--host {host}: not a known host name or address ({exc.strerror})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(addr)
        except OSError as exc:
            hint = "pass another --port" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "check --host"
            raise PixseqError(f"cannot serve on {host}:{port}: {exc.strerror or exc}; {hint}") from None


def _stop_on_sigterm() -> None:
    """SIGTERM (a service manager, a test's terminate()) stops the server as Ctrl-C does, so
    that the work folder is cleaned up too."""
    import signal
    import threading

    def stop(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def _launch(demo, host: str, port: int, limits: Limits, folder: WorkFolder) -> str:
    # Gradio serves files from its own folder, the working directory and the system's temporary
    # folder; the requests' outputs (.pxs files, upscaled PNGs) are in the work folder, which
    # --work may put anywhere
    try:
        demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, quiet=True, inbrowser=False,
                    share=False, show_error=False, max_file_size=f"{limits.max_upload_mb}mb", ssr_mode=False,
                    pwa=False, mcp_server=False, enable_monitoring=False, css=CSS,
                    allowed_paths=[str(folder.requests)])
    except OSError as exc:  # Gradio: "Cannot find empty port in range: 7860-7860"
        raise PixseqError(f"cannot serve on {host}:{port}: {exc}; pass another --port") from None
    return f"http://{host}:{port}/"
