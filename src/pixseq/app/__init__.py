"""The pixseq web UI (``pixseq ui``): a Gradio page whose tabs call the same library functions
as the CLI.

* :mod:`pixseq.app.server` — the context, the page, the server (:func:`~pixseq.app.server.serve`);
* :mod:`pixseq.app.shelf` — the models offered, loaded once and shared by requests;
* :mod:`pixseq.app.work` — the work folder (the only place the server writes) and the limits;
* :mod:`pixseq.app.common` — the request wrapper (notices and errors into the page), the image input;
* :mod:`pixseq.app.tabs` — one module per tab, shown when its system's library is importable.
"""
