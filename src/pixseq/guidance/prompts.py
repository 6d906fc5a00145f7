"""Weighted prompts: ``"a castle|pencil sketch:0.5|blurry:-1"``.

The syntax of the VQGAN-CLIP notebooks (Crowson 2021) and nerdyrodent/VQGAN-CLIP: prompts
separated by ``|``, each ``TEXT[:WEIGHT[:STOP]]``. A negative weight pushes the image *away*
from that text; ``STOP`` stops a prompt's pull once its (signed) distance falls below it.
The part after the last colon is the weight (and the two last parts weight and stop when
both are numbers); colons before it stay in the text (``"note: a cat:0.5"``). A weight that is
not a number is refused with the prompt in the message: a silent fall-back would read
``"cat:O.5"`` as a prompt about the letter O.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from pixseq.errors import PixseqError


@dataclass(frozen=True)
class Prompt:
    """One weighted target: a text (or an image path, for image prompts)."""

    text: str
    weight: float = 1.0
    stop: float = float("-inf")


def _number(text: str, what: str, prompt: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise PixseqError(f"{what} {text.strip()!r} in prompt {prompt!r} is not a number "
                          f"(write TEXT:WEIGHT, e.g. 'a castle:0.5')") from None
    if not math.isfinite(value) and not (what == "stop" and value == float("-inf")):
        raise PixseqError(f"{what} {text.strip()!r} in prompt {prompt!r} must be a finite number")
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def parse_prompt(part: str, what: str = "prompt") -> Prompt:
    """``TEXT[:WEIGHT[:STOP]]`` -> :class:`Prompt`; the text must not be empty, the weight
    must be a non-zero number."""
    pieces = part.split(":")
    weight, stop = "1", "-inf"
    if len(pieces) >= 3 and _is_number(pieces[-2]) and _is_number(pieces[-1]):
        text, weight, stop = ":".join(pieces[:-2]), pieces[-2], pieces[-1]
    elif len(pieces) >= 2:
        text, weight = ":".join(pieces[:-1]), pieces[-1]
    else:
        text = part
    text = text.strip()
    if not text:
        raise PixseqError(f"empty {what} in {part!r}: give the text before any ':WEIGHT'")
    w = _number(weight, "weight", part)
    if w == 0:
        raise PixseqError(f"weight 0 in {what} {part!r} does nothing; drop the prompt or give it a weight")
    return Prompt(text, w, _number(stop, "stop", part))


def parse_prompts(spec: str | Sequence[str] | None, what: str = "prompt") -> list[Prompt]:
    """All prompts of ``"a|b:0.5|c:-1"`` (or of several such strings); an empty string or
    an empty part between ``|`` is an error (never silently dropped)."""
    if spec is None:
        return []
    specs = [spec] if isinstance(spec, str) else list(spec)
    out = []
    for s in specs:
        if not s.strip():
            raise PixseqError(f"empty {what}: give the text to generate (e.g. 'a sneaker')")
        out += [parse_prompt(part, what) for part in s.split("|")]
    return out
