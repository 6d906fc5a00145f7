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


def test_without_a_terminal_progress_is_a_plain_line_now_and_then(capsys, monkeypatch):
    """Where stderr is a file or a pipe (capsys: not a terminal) a bar's carriage returns are
    noise and tqdm draws nothing at all: a long loop writes one plain line per interval and
    one at the end; a loop shorter than the interval stays quiet."""
    from pixseq import runtime

    bar = progress(total=4, desc="train", unit="step")
    for _ in range(4):
        bar.update(1)
    bar.close()
    assert capsys.readouterr().err == ""  # shorter than 30 s
    monkeypatch.setattr(runtime, "PLAIN_EVERY_S", 0.0)  # every step is "30 s later"
    bar = progress(total=4, desc="train", unit="step", initial=2)
    for _ in range(2):
        bar.update(1)
        bar.set_postfix_str("loss 0.5", refresh=False)
    bar.close()
    bar.close()  # a second close adds nothing
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3 and lines[0].startswith("pixseq: train 3/4 (75%), 00:00 elapsed, ~00:00 left")
    assert lines[1].endswith(", loss 0.5") and lines[2].startswith("pixseq: train 4/4 (100%)")
    assert "left" not in lines[2]
    assert list(progress(range(2), desc="encode")) == [0, 1]  # iterating counts too
    assert capsys.readouterr().err.splitlines()[-1].startswith("pixseq: encode 2/2 (100%)")
    monkeypatch.setenv("RANK", "1")  # other ranks say nothing
    list(progress(range(2), desc="encode"))
    assert capsys.readouterr().err == ""


def test_on_a_terminal_progress_is_a_tqdm_bar(monkeypatch):
    from pixseq import runtime

    monkeypatch.setattr(runtime, "_is_terminal", lambda stream: True)
    bar = progress(total=3, desc="train")
    assert not bar.disable and type(bar).__name__ != "Plain"
    bar.close()


def test_plain_progress_lines_read_well():
    from pixseq.runtime import plain_progress_line

    assert plain_progress_line("train", 120, 2000, 125.0, postfix="loss 3.21") == \
        "train 120/2000 (6%), 02:05 elapsed, ~32:38 left, loss 3.21"  # 1880 steps at 0.96/s
    assert plain_progress_line("train", 1500, 2000, 100.0, start=1000) == \
        "train 1500/2000 (75%), 01:40 elapsed, ~01:40 left"  # the rate since a resumed run's start
    assert plain_progress_line("download", 1536, 3072, 2.0, unit="B", scale=1024) == \
        "download 1.50kB/3.00kB (50%), 00:02 elapsed, ~00:02 left"
    assert plain_progress_line("encode", 12, None, 40.0) == "encode 12 so far, 00:40 elapsed"
