"""The web UI server without a browser: ``pixseq ui`` in a subprocess, called through
``gradio_client`` (what a script, or the load benchmark, uses).

The server's work folder is on purpose neither in the system's temporary folder nor in the
current one (``TMPDIR`` and the working directory point elsewhere), as a ``--work`` folder
of a user's choosing is: the files it hands out must still be served.
"""
from __future__ import annotations

import io
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from _ui_server import running_ui

pytest.importorskip("gradio", reason="gradio is not installed")
client_mod = pytest.importorskip("gradio_client", reason="gradio_client is not installed (gradio brings it)")



@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``pixseq ui`` with a tiny RRDBNet; work folder, system temporary folder and working
    directory three separate folders. Stopped at the end: no traceback in its log."""
    import torch

    from pixseq.checkpoint import save_pretrained
    from pixseq.upscale.rrdb import RRDBNet, RRDBNetConfig

    root = tmp_path_factory.mktemp("ui-server")
    torch.manual_seed(0)
    save_pretrained(RRDBNet(RRDBNetConfig(scale=4, num_feat=8, num_block=1, num_grow_ch=4)), root / "models" / "tiny-rrdb")
    for d in ("work", "systmp", "cwd"):
        (root / d).mkdir()
    log = root / "server.log"
    with running_ui(["--models", str(root / "models"), "--no-zoo", "--work", str(root / "work")], log,
                    env={"TMPDIR": str(root / "systmp")}, cwd=root / "cwd") as (_proc, url):
        yield {"url": url, "root": root, "log": log,
               "client": client_mod.Client(url, verbose=False, download_files=False)}
    assert "Traceback" not in log.read_text(), log.read_text()


def _editor(path: Path) -> dict:
    f = client_mod.handle_file(str(path))
    return {"background": f, "layers": [], "composite": f, "id": None}


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.read()


def _image(url: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(_get(url))).convert("RGB"))


def test_an_output_file_is_served_from_a_work_folder_outside_the_temporary_folder(server):
    """The upscaled PNG to download lives in the work folder's requests/: served although that
    is neither the system's temporary folder nor the working directory."""
    from pixseq.checkpoint import load_model
    from pixseq.upscale import upscale_image

    image = np.random.default_rng(3).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    path = server["root"] / "small.png"
    Image.fromarray(image).save(path)
    pair, file, status = server["client"].predict(  # (slider, file, status): the job state stays on the server
        _editor(path), "tiny-rrdb", 0, api_name="/upscale")
    assert "10x12 -&gt; 40x48 with tiny-rrdb" in status, status  # the status box's HTML
    expect = upscale_image(load_model(server["root"] / "models" / "tiny-rrdb"), image)
    np.testing.assert_array_equal(_image(file["url"]), expect)
    np.testing.assert_array_equal(_image(pair[1]["url"]), expect)  # the slider's right side: the same pixels


def test_an_image_shown_again_is_whole_for_a_browser_reading_it(server):
    """Everyone picks the same example: the server hands out the same image again while
    browsers are still fetching it. Each fetch gets the whole image (Gradio's own cache
    rewrote such a file in place: a reader got a cut or an overlong file, and the server
    logged a Content-Length error)."""
    from skimage import data

    path = server["root"] / "retina.png"
    Image.fromarray(data.retina()).save(path)  # 1411x1411: a file of some MB, long to write and to read
    client = server["client"]
    first = client.predict(client_mod.handle_file(str(path)), api_name="/from_upload")[1]
    url = first["background"]["url"]
    whole = _get(url)
    bad, reads, stop = [], [0], threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                body = _get(url)
                if body != whole:
                    bad.append(f"{len(body)} bytes of {len(whole)}")
            except Exception as exc:  # noqa: BLE001 - a broken response is what is looked for
                bad.append(f"{type(exc).__name__}: {exc}")
            reads[0] += 1

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for _ in range(6):  # the same upload again: the same image handed out again
            again = client.predict(client_mod.handle_file(str(path)), api_name="/from_upload")[1]
            assert again["background"]["url"] == url  # the same content, the same address
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert reads[0] > 10 and not bad, f"{len(bad)} of {reads[0]} reads broken: {bad[:3]}"
