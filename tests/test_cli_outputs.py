"""The one shared output check (cli.common.check_output / check_image_output) in every verb
that writes a file: a folder or a parent that is a file is named as such, before any work."""
from __future__ import annotations

import pytest

from pixseq.cli import main

#: verb -> argv before --out; the model directory does not exist: the output is checked first
VERBS = {
    "sample": ["sample", "--model", "no-model"],
    "complete": ["complete", "in.png", "--model", "no-model"],
    "reconstruct": ["reconstruct", "in.png", "--model", "no-model"],
    "compress": ["compress", "in.png", "--model", "no-model"],
    "decompress": ["decompress", "in.pxs", "--model", "no-model"],
}


def _only_line(capsys, code: int) -> str:
    """Exit code 2 and exactly one line on stderr, a pixseq error."""
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("pixseq: error:"), err
    return err


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_out_is_a_folder(verb, tmp_path, monkeypatch, capsys):
    # sample / complete said "unknown image format" for a folder without an image suffix
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    err = _only_line(capsys, main(VERBS[verb] + ["--out", "folder"]))
    assert "folder: is a folder; give a file name" in err


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_out_below_a_file(verb, tmp_path, monkeypatch, capsys):
    # said "cannot write or read a file (File exists): afile/x.png" (sample, after sampling)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    name = "afile/x.pxs" if verb == "compress" else "afile/x.png"
    err = _only_line(capsys, main(VERBS[verb] + ["--out", name]))
    assert f"{name}: afile is a file, not a folder" in err
    assert (tmp_path / "afile").read_text() == ""


@pytest.mark.parametrize("verb", ["sample", "complete", "reconstruct", "decompress"])
def test_out_with_an_unknown_image_format(verb, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    err = _only_line(capsys, main(VERBS[verb] + ["--out", "x.notanimage"]))
    assert "unknown image format" in err and "x.notanimage" in err


@pytest.mark.parametrize("verb", ["sample", "complete", "reconstruct", "decompress"])
def test_out_in_a_format_pillow_only_reads(verb, tmp_path, monkeypatch, capsys):
    # .psd passed the suffix check, then `sample` ended in a KeyError traceback after sampling
    monkeypatch.chdir(tmp_path)
    err = _only_line(capsys, main(VERBS[verb] + ["--out", "x.psd"]))
    assert "can read PSD images but not write them" in err


@pytest.mark.parametrize("verb", ["complete", "reconstruct", "compress"])
def test_input_that_is_a_symlink_loop(verb, tmp_path, monkeypatch, capsys):
    """An input image that is a symbolic-link loop ended in Path.resolve's RuntimeError
    traceback (the check that --out is not the input); it is the loader's one line now."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.png").symlink_to("loop.png")
    (tmp_path / "loop.png").symlink_to("in.png")
    out = "o.pxs" if verb == "compress" else "o.png"
    err = _only_line(capsys, main(VERBS[verb] + ["--out", out]))
    assert "in.png" in err or "no-model" in err
    assert not (tmp_path / out).exists()
