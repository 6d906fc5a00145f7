"""The README's commands: two at the top, and no example reading an image file nobody has."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
IMAGE = re.compile(r"\.(png|jpe?g|tiff?|webp|gif|pxs)$", re.IGNORECASE)
OUTPUT_FLAGS = {"--out", "--video", "--html", "--json", "--csv"}


def _shell_blocks() -> list[list[str]]:
    """Each ```sh block as its commands (continuation lines joined, comments dropped)."""
    blocks = re.findall(r"```sh\n(.*?)```", README, re.DOTALL)
    return [[c for c in block.replace("\\\n", " ").splitlines() if c.strip()] for block in blocks]


def test_the_top_has_exactly_two_commands_after_saying_what_the_main_job_shows():
    top = README.split("```sh", 1)
    assert len(_shell_blocks()[0]) == 2
    intro = top[0].split("\n", 1)[1].strip()  # the text between the title and the commands
    assert "pixseq demo" in intro and intro.count(".") >= 1
    assert "python3 -m venv .venv && . .venv/bin/activate" in README
    assert "/pixseq-demo/" in (ROOT / ".gitignore").read_text().splitlines()


def test_example_image_files_are_the_built_in_photos_or_written_before():
    """`a.png`, `shirt.png` ...: files a new user does not have. Every image an example reads is
    a scikit-image photo ($IMG, as the README defines it) or the output of an earlier example."""
    from skimage import data

    assert "IMG=$(python3 -c 'import skimage.data; print(skimage.data.data_dir)')" in README
    written: set[str] = set()
    for block in _shell_blocks()[1:]:
        for command in block:
            words = shlex.split(command, comments=True)
            for before, word in zip([""] + words, words):
                path = word.split(":")[0] if word.startswith("$IMG/") else word  # an image prompt's :weight
                if before in OUTPUT_FLAGS:
                    written.add(path)
                elif IMAGE.search(path):
                    if path.startswith("$IMG/"):
                        assert (Path(data.data_dir) / path[5:]).is_file(), command
                    else:
                        assert path in written, f"{path} in: {command}"
