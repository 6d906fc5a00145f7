"""pixseq demo: option checks that need no training (the demo itself: test_cli_igpt.py)."""
from __future__ import annotations

import pytest

from pixseq.cli import main


@pytest.mark.parametrize("argv, message", [
    (["--budget", "nan"], "--budget must be > 0"),  # was accepted: the time cap was off, logged as 'nan s'
    (["--budget", "0"], "--budget must be > 0"),
    (["--steps", "0"], "--steps must be >= 1"),
])
def test_demo_refuses_bad_options_before_any_work(tmp_path, capsys, argv, message):
    out = tmp_path / "d"
    assert main(["demo", "--quick", "--out", str(out)] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
