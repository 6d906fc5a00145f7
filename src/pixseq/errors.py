"""The one user-facing error type.

Anything a user can cause (a missing file, a bad option, a model directory that is
not a model) raises :class:`PixseqError` with a one-line message. The CLI prints
``pixseq: error: <message>`` on stderr and exits with code 2; library users catch it
like any other exception. Programming errors stay ordinary exceptions.
"""
from __future__ import annotations


class PixseqError(Exception):
    """A problem with the user's input, files or environment, stated in one line."""

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        # Keep the message on one line: the CLI contract is "one clear line".
        super().__init__(" ".join(str(message).split()))


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of ``exc``'s message (its type name when it has none), at most
    ``limit`` characters: for one-line errors that quote another library's error, whose
    messages (torch's above all) can run to paragraphs."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]
