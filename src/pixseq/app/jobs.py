"""Long requests (text to image, upscaling, translation): the work runs in a thread of its
own while the page shows its progress and latest frame, and stops when the user says so.

The work is an ordinary library call. Its :func:`pixseq.runtime.progress` bars report to the
job (:func:`pixseq.runtime.capture_progress`), which is how the page learns "step 40 of 300";
a stop request makes the next report raise ``KeyboardInterrupt`` in the work's thread, which
the library takes as it takes Ctrl-C (a VQGAN-CLIP run keeps the image of its last step).
Stopping is therefore as quick as the library's steps are short, and never kills a thread
mid-write. The request keeps its place in the queue's concurrency limit until the work has
really ended.
"""
from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from pixseq.errors import PixseqError, first_line

#: seconds between two progress frames sent to the page
POLL_S = 0.5


class Job:
    """One long request: ``fn(job, *args) -> (*values, summary)`` in a worker thread."""

    def __init__(self, fn: Callable, args: tuple) -> None:
        self.id = uuid.uuid4().hex
        self.stop = threading.Event()
        self.done = threading.Event()
        self.progress: tuple[str, float, int | None] | None = None
        self.frame: Any = None
        self.frames = 0  # frames shown so far (the page gets each new one once)
        self.notes: list[str] = []
        self.values: list[Any] = []
        self.summary = ""
        self.error: str | None = None
        self.started = time.perf_counter()
        self.watched: Path | None = None
        self._newest = ""
        self._thread = threading.Thread(target=self._run, args=(fn, args), name=f"pixseq-job-{self.id[:8]}",
                                        daemon=True)

    def start(self) -> "Job":
        self._thread.start()
        return self

    def show(self, image: Any) -> None:
        """Publish an intermediate image (the work calls this as it goes)."""
        self.frame = image
        self.frames += 1

    def watch(self, folder: Path) -> None:
        """Show the newest image the work writes into ``folder`` (frames written as it goes:
        atomically, so a file found there is whole)."""
        self.watched = Path(folder)

    def look(self) -> None:
        """Pick up a new frame from the watched folder (called between progress frames)."""
        if self.watched is None or not self.watched.is_dir():
            return
        names = sorted(p.name for p in self.watched.iterdir() if p.suffix == ".png")
        if names and names[-1] != self._newest:
            from pixseq.io import load_image

            self._newest = names[-1]
            self.show(load_image(self.watched / names[-1]))

    def _report(self, desc: str, done: float, total: int | None) -> None:
        self.progress = (desc, done, total)
        if self.stop.is_set():
            raise KeyboardInterrupt  # taken by the library as Ctrl-C: it stops after this step

    def _run(self, fn: Callable, args: tuple) -> None:
        from pixseq.app.common import log
        from pixseq.runtime import capture_notices, capture_progress

        with capture_notices() as notes:
            self.notes = notes
            with capture_progress(self._report):
                try:
                    *self.values, self.summary = fn(self, *args)
                except PixseqError as exc:
                    self.error = str(exc)
                except KeyboardInterrupt:
                    self.error = "stopped before there was anything to show"
                except Exception as exc:  # noqa: BLE001 - a bug: logged, the server goes on
                    log.exception("long request failed")
                    self.error = f"internal error ({type(exc).__name__}: {first_line(exc)}); the server log has details"
        self.done.set()

    def line(self) -> str:
        """Where the work is, in a few words: ``generate: 40 of 300 steps (13 %), 12 s``."""
        seconds = time.perf_counter() - self.started
        if self.stop.is_set() and not self.done.is_set():
            return f"stopping after the current step ({seconds:.0f} s)"
        if self.progress is None:
            return f"working ({seconds:.0f} s)"
        desc, done, total = self.progress
        what = f"{desc}: " if desc else ""
        if total:
            return f"{what}{done:g} of {total} ({100 * done / total:.0f} %), {seconds:.0f} s"
        return f"{what}{done:g}, {seconds:.0f} s"


class JobBoard:
    """The server's running jobs by id, so that a Stop button can reach its page's job."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, fn: Callable, args: tuple) -> Job:
        job = Job(fn, args)
        with self._lock:
            self._jobs[job.id] = job
        return job.start()

    def stop(self, job_id: str | None) -> bool:
        """Ask job ``job_id`` to stop; False when there is no such job (it ended already)."""
        with self._lock:
            job = self._jobs.get(job_id or "")
        if job is not None:
            job.stop.set()
        return job is not None

    def forget(self, job_id: str) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)

    def running(self) -> int:
        with self._lock:
            return sum(not j.done.is_set() for j in self._jobs.values())


def long_request(ctx, outputs: int, frame_at: int | None = None, watch: bool = False) -> Callable:
    """Decorate ``fn(job, *inputs) -> (*values, summary)`` as a streaming handler whose
    outputs are ``[job state, *outputs, status]``: the job's id first (for the Stop button),
    then progress frames every :data:`POLL_S` (the latest image in output ``frame_at``; with
    ``watch``, also the newest frame in the folder the work named with :meth:`Job.watch`),
    then the result or the error, all with the request's notices; images go to the page
    through :func:`pixseq.app.common.for_page`."""
    import gradio as gr

    from pixseq.app.common import for_page, status_html

    def wrap(fn: Callable) -> Callable:
        def handler(*args: Any):
            job = ctx.jobs.start(fn, args)
            sent = 0
            try:
                yield (job.id, *[gr.skip()] * outputs, status_html(done=job.line()))
                while not job.done.wait(POLL_S):
                    if watch:
                        job.look()
                    shown = [gr.skip()] * outputs
                    if frame_at is not None and job.frames > sent:
                        shown[frame_at], sent = for_page(ctx, job.frame), job.frames
                    yield (job.id, *shown, status_html(job.notes, done=job.line()))
                if job.error is not None:
                    last = [gr.skip()] * outputs
                    if frame_at is not None and job.frames > sent:
                        last[frame_at] = for_page(ctx, job.frame)
                    yield (None, *last, status_html(job.notes, error=job.error))
                else:
                    yield (None, *[for_page(ctx, v) for v in job.values], status_html(job.notes, done=job.summary))
            finally:
                job.stop.set()  # the page went away or the event was cancelled: the work stops too
                job.done.wait()  # the request holds its concurrency slot until the work has ended
                ctx.jobs.forget(job.id)

        handler.__name__ = getattr(fn, "__name__", "long_request")
        return handler

    return wrap


def stop_button(ctx, button, state) -> None:
    """Wire ``button`` to stop the job whose id ``state`` holds (it says so in the status at the
    job's next frame)."""
    button.click(lambda job_id: ctx.jobs.stop(job_id) and None, state, None, queue=False)
