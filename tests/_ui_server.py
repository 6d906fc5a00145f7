"""``pixseq ui`` in a subprocess for the web UI tests: started on a free port, waited for,
and stopped at the end with exit code 0 (the browser test and the gradio_client test share it)."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
#: generous: two shared CPU cores, several jobs at once
START_S = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_ui(args: list[str], log: Path, env: dict[str, str] | None = None,
               cwd: Path | None = None) -> Iterator[tuple[subprocess.Popen, str]]:
    """``pixseq ui ARGS --port FREE`` logging to ``log`` (a file, not a pipe: a full pipe would
    block the server); yields the process and its URL once it says "serving on", fails the
    test if it never does; terminated on exit, when it must end with code 0."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "PIXSEQ_OFFLINE": "1",
           "PIXSEQ_COMPILE": "0", **(env or {})}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pixseq", "ui", *args, "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    deadline = time.monotonic() + START_S
    while "serving on" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if "serving on" not in log.read_text():
        proc.kill()
        pytest.fail(f"pixseq ui did not start:\n{log.read_text()}")
    yield proc, f"http://127.0.0.1:{port}/"
    proc.terminate()
    proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()
