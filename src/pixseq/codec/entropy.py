"""Entropy coding of token sequences with a prior's probabilities (range coding via ``constriction``).

pixseq does not implement an arithmetic coder: it uses the range coder of
`constriction <https://bamler-lab.github.io/constriction/>`_ (Bamler 2022, "Understanding
Entropy Coding With Asymmetric Numeral Systems (ANS): a Statistician's Perspective"),
``constriction.stream.queue.RangeEncoder`` / ``RangeDecoder``. A range coder is a queue:
symbols come out in the order they went in, which is what an autoregressive prior needs
(the decoder learns token ``t`` before it can compute the distribution of token ``t+1``).

How probabilities become integers (the part encoder and decoder must agree on exactly):

1. The prior's float32 logits for one step ``(B, V)`` go through a float64 softmax
   (:func:`probabilities`), on the device the prior runs on, then to NumPy.
2. ``constriction.stream.model.Categorical(perfect=False)`` quantises each row to
   **24-bit fixed point** (the Python bindings' default preset: 32-bit words, 64-bit coder
   state, ``u32`` probabilities with ``PRECISION = 24``): every symbol gets an integer
   weight out of ``2**24``, at least 1 — so the **minimum probability is 2**-24** and no
   token is ever un-encodable, whatever the model says (an "impossible" token costs ~24 bits).
   The rounding is a deterministic function of the float input, so identical floats give
   identical integer tables in encoder and decoder.
3. Cost of the quantisation: with ``V`` symbols at most ``V * 2**-24`` of the mass is
   re-assigned (3e-5 for V = 512), and the range coder's termination adds at most two
   32-bit words per stream. :class:`TokenEncoder` tracks the model's ideal cross-entropy
   ``-log2 p(token)`` beside the real bit count, so the overhead is measured, not assumed.
"""
from __future__ import annotations

import numpy as np
import torch

from pixseq.errors import PixseqError

#: Fixed-point precision of constriction's default Categorical model (bits).
PRECISION = 24
#: Smallest probability any token can get after quantisation.
MIN_PROBABILITY = 2.0 ** -PRECISION


def _constriction():
    try:
        import constriction
    except ImportError:  # pragma: no cover - declared dependency
        raise PixseqError("the codec needs the 'constriction' package: pip install constriction") from None
    return constriction


def probabilities(logits: torch.Tensor) -> np.ndarray:
    """``(B, V)`` logits -> ``(B, V)`` float64 probabilities (a deterministic function).

    Raises PixseqError when they are not finite (NaN / inf logits: a model whose weights
    diverged in training); constriction's ValueError about it was a traceback.
    """
    probs = torch.softmax(logits.detach().double(), dim=-1).cpu().numpy()
    if not np.isfinite(probs).all():
        raise PixseqError("the prior gives NaN or infinite probabilities: the model's weights are broken "
                          "(e.g. a training run that diverged)")
    return probs


class TokenEncoder:
    """Appends symbols to one range-coded stream, one step of ``B`` symbols at a time."""

    def __init__(self) -> None:
        c = _constriction()
        self._enc = c.stream.queue.RangeEncoder()
        self._model = c.stream.model.Categorical(perfect=False)
        self.num_symbols = 0
        self.ideal_bits = 0.0  # sum of -log2 p(symbol) under the float model

    def encode(self, symbols: torch.Tensor | np.ndarray, probs: np.ndarray) -> None:
        """Encode ``symbols (B,)`` where row ``b`` of ``probs (B, V)`` is symbol ``b``'s distribution."""
        sym = np.ascontiguousarray(np.asarray(symbols.cpu() if isinstance(symbols, torch.Tensor) else symbols),
                                   dtype=np.int32)
        if sym.ndim != 1 or probs.shape != (sym.size, probs.shape[-1]):
            raise ValueError(f"symbols {sym.shape} do not match probabilities {probs.shape}")
        p = probs[np.arange(sym.size), sym]
        self.ideal_bits += float(-np.log2(np.maximum(p, np.finfo(np.float64).tiny)).sum())
        self._enc.encode(sym, self._model, probs)
        self.num_symbols += sym.size

    def finish(self) -> bytes:
        """The compressed stream as bytes (little-endian 32-bit words)."""
        return self._enc.get_compressed().astype("<u4").tobytes()

    @property
    def num_bits(self) -> int:
        """Bits the stream occupies so far (whole words, as written)."""
        return 32 * len(self._enc.get_compressed())


class TokenDecoder:
    """Reads symbols back from a stream written by :class:`TokenEncoder`, with the same probabilities."""

    def __init__(self, data: bytes) -> None:
        c = _constriction()
        if len(data) % 4:
            raise PixseqError("corrupt .pxs payload: not a whole number of 32-bit words")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        self._dec = c.stream.queue.RangeDecoder(words)
        self._model = c.stream.model.Categorical(perfect=False)

    def decode(self, probs: np.ndarray) -> np.ndarray:
        """Decode one symbol per row of ``probs (B, V)``; returns ``(B,)`` int64."""
        try:
            return np.asarray(self._dec.decode(self._model, probs), dtype=np.int64)
        except BaseException as exc:  # constriction signals invalid data with AssertionError/ValueError
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise PixseqError("corrupt .pxs payload: the range decoder hit invalid data") from None

