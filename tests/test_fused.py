"""pixseq.fused: opt-in compiled kernels that fall back to eager code, loudly and once."""
from __future__ import annotations

import pytest
import torch

from pixseq import fused


@pytest.fixture
def clean_state(monkeypatch):
    monkeypatch.setattr(fused, "_broken", None)
    yield
    fused.set_enabled(None)


def test_off_by_default_and_env_switch(clean_state, monkeypatch):
    monkeypatch.delenv("PIXSEQ_COMPILE", raising=False)
    assert not fused.enabled()
    monkeypatch.setenv("PIXSEQ_COMPILE", "1")
    assert fused.enabled()
    fused.set_enabled(False)  # the explicit setting wins over the environment
    assert not fused.enabled()


def test_compile_failure_falls_back_once_with_a_notice(clean_state, monkeypatch, capsys):
    calls = []

    def eager(x: torch.Tensor) -> torch.Tensor:
        calls.append("eager")
        return x * 2

    @fused.fusable(eager=eager)
    def double(x: torch.Tensor) -> torch.Tensor:
        return x + x

    def broken_compile(fn, **kwargs):
        def run(*args, **kw):
            raise RuntimeError("no C++ compiler found\nlong details")
        return run

    monkeypatch.setattr(torch, "compile", broken_compile)
    x = torch.arange(3.0)
    assert double(x).tolist() == [0.0, 2.0, 4.0]  # off: the eager function
    fused.set_enabled(True)
    assert double(x).tolist() == [0.0, 2.0, 4.0]  # compile fails: eager result, one notice
    assert double(x).tolist() == [0.0, 2.0, 4.0]  # and eager from then on, silently
    err = capsys.readouterr().err
    assert err.count("fused kernels unavailable") == 1 and "no C++ compiler found" in err
    assert "long details" not in err  # one line, not a traceback
    assert not fused.available() and calls == ["eager"] * 3


def test_errors_from_bad_inputs_are_not_blamed_on_the_compiler(clean_state, monkeypatch, capsys):
    @fused.fusable()
    def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b

    monkeypatch.setattr(torch, "compile", lambda fn, **kw: fn)  # "compiled" = the function itself
    fused.set_enabled(True)
    with pytest.raises(RuntimeError, match="size"):
        add(torch.zeros(2), torch.zeros(3))
    assert fused.available() and "unavailable" not in capsys.readouterr().err
