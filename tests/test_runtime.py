"""The runtime layer: notices go to stderr or to the capturing caller of this thread only."""
from __future__ import annotations

import threading

from pixseq.runtime import capture_notices, notice, plural, progress


def test_notices_go_to_stderr_from_rank_0_only(capsys, monkeypatch):
    notice("hello")
    assert capsys.readouterr().err == "pixseq: hello\n"
    monkeypatch.setenv("RANK", "1")
    notice("from rank 1")
    assert capsys.readouterr().err == ""


def test_captured_notices_stay_with_their_thread(capsys):
    """A server handles requests in threads: each request's notices are its own."""
    got: dict[str, list[str]] = {}
    barrier = threading.Barrier(2)

    def request(name: str) -> None:
        with capture_notices() as notes:
            barrier.wait()  # both threads capture at the same time
            notice(f"{name} resized")
            barrier.wait()
        got[name] = notes

    threads = [threading.Thread(target=request, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {"a": ["a resized"], "b": ["b resized"]}
    assert capsys.readouterr().err == ""  # captured notices are not printed too
    notice("after")  # and the capture ends with its block
    assert capsys.readouterr().err == "pixseq: after\n"


def test_nested_capture_and_sink():
    seen = []
    with capture_notices() as outer:
        with capture_notices(sink=seen.append) as inner:
            notice("inner")
        notice("outer")
    assert inner == ["inner"] and seen == ["inner"] and outer == ["outer"]


def test_progress_is_off_while_captured_and_plural():
    with capture_notices():
        assert progress(range(3)).disable
    assert list(progress(range(3))) == [0, 1, 2]
    assert plural(1, "step") == "1 step" and plural(2, "step") == "2 steps"
