"""Generation from a :class:`~pixseq.priors.gpt.GPT` prior: KV-cached decoding and sampling.

:class:`IncrementalDecoder` is the one place that steps a prior token by token. It keeps
a pre-allocated KV cache, so step ``t`` costs O(t) attention + O(1) matmuls instead of a
full O(t^2) recompute. It is deterministic — the same pushes give bit-identical logits in
the same process on the same machine — because the neural codec drives it on both the
encoding and the decoding side and the entropy coder needs identical probabilities.
(Pushing tokens one at a time or several at once gives equal logits only up to float
rounding: encode and decode must use the same pattern.)

:func:`sample` draws sequences with temperature, top-k (Fan et al. 2018) and nucleus /
top-p (Holtzman et al. 2020) filtering; a prefix of given tokens is kept (image completion).
:func:`sample_full_recompute` does the same without a cache, for tests and benchmarks.
"""
from __future__ import annotations

import math
import numbers

import torch

from pixseq.errors import PixseqError
from pixseq.models.base import check_token_ids
from pixseq.priors.gpt import GPT


class IncrementalDecoder:
    """Step a prior one (or a few) tokens at a time with a KV cache.

    Usage::

        dec = IncrementalDecoder(prior, batch_size=B, cond=cond)
        for t in range(T):
            logits = dec.next_logits()      # (B, V) float32: distribution of token t
            dec.push(choose(logits))        # (B,) long

    Work is lazy: ``push`` only queues tokens and ``next_logits`` runs the transformer over
    whatever is queued (the conditioning + SOS prefix at first). Pushing the final token of
    a full-length sequence therefore costs nothing.
    """

    @torch.no_grad()
    def __init__(self, prior: GPT, batch_size: int, cond: torch.Tensor | None = None) -> None:
        self.prior = prior
        self.batch_size = batch_size
        self.cache = prior.new_cache(batch_size)
        self.length = 0  # target tokens pushed so far
        self._pending: list[torch.Tensor] = []
        self._logits: torch.Tensor | None = None
        device = prior.lm_head.weight.device
        if cond is not None:
            cond = cond.to(device)
            if cond.dim() == 1:
                cond = cond[:, None]  # (B,) class ids -> (B, 1)
        prior.check_inputs(torch.zeros(batch_size, 0, dtype=torch.long, device=device), cond)
        self._prefix = prior.embed_prefix(cond, batch_size)  # (B, Tc+1, C), run on first call
        self._plan = prior.decode_plan()  # for single-token steps
        self._start = self._prefix.size(1)  # sequence position of target token 0's input slot

    def push(self, tokens: torch.Tensor) -> None:
        """Append the next target token of every sequence: ``(B,)`` long (or ``(B, P)``)."""
        tokens = tokens.reshape(self.batch_size, -1)
        if self.length + tokens.size(1) > self.prior.config.block_size:
            raise ValueError(f"more than block_size={self.prior.config.block_size} tokens pushed")
        self._pending.append(tokens)
        self.length += tokens.size(1)
        self._logits = None

    # inference mode (not just no_grad) skips autograd's dispatch bookkeeping on every op,
    # a visible share of a decoding step made of dozens of tiny ops
    @torch.inference_mode()
    def next_logits(self) -> torch.Tensor:
        """``(B, V)`` float32 logits for the next target token."""
        if self._logits is None:
            self._logits = self._run()
        return self._logits

    def _run(self) -> torch.Tensor:
        if self.length >= self.prior.config.block_size:
            raise ValueError("the sequence is complete; there is no next token")
        device = self.cache.kv.device
        pending = self._pending
        if self._prefix is None and len(pending) == 1 and pending[0].size(1) == 1:
            # the hot loop: one new token per sequence; token i fills input slot start + i (SOS shift)
            self._pending = []
            pos = self._start + self.length - 1
            return self.prior.decode_step(self._plan, pending[0].to(device), pos, self.cache).float()
        parts = []
        if self._prefix is not None:
            parts.append(self._prefix)
            self._prefix = None
        if pending:
            tokens = pending[0] if len(pending) == 1 else torch.cat(pending, dim=1)  # (B, P)
            tokens = tokens.to(device)
            # token i sits one position after its own slot (SOS shift): start + index
            first = self.length - tokens.size(1)
            parts.append(self.prior.embed_tokens(tokens, self._start + first))
            self._pending = []
        x = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)  # (B, n_new, C)
        h = self.prior.hidden(x, self.cache)  # (B, n_new, C)
        return self.prior.lm_head.forward(h[:, -1]).float()  # (B, V); .float() is free for fp32


def filter_logits(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """Apply temperature, top-k and top-p to ``(B, V)`` logits; removed entries become -inf."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0 (use greedy=True for argmax decoding)")
    logits = logits.float() if temperature == 1.0 else logits.float() / temperature
    if top_k is not None and top_k < logits.size(-1):
        if top_k < 1:
            raise ValueError("top_k must be >= 1")
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        if top_p <= 0:
            raise ValueError("top_p must be in (0, 1]")
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        # drop a token when the mass *before* it already reaches top_p (the top one always stays)
        drop_sorted = (cum - sorted_logits.softmax(-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def choose(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, generator: torch.Generator | None = None,
           greedy: bool = False) -> torch.Tensor:
    """Pick one token per row of ``(B, V)`` logits: argmax when ``greedy``, else a draw."""
    if greedy:
        # max propagates NaN: a row without a finite maximum gets V, one past the
        # vocabulary, like a failed draw below (sample() reports it), not a made-up token
        best, index = logits.max(-1)
        return index.masked_fill(~best.isfinite(), logits.size(-1))
    probs = filter_logits(logits, temperature, top_k, top_p).softmax(-1)
    # Inverse-CDF draw: a handful of cheap ops, where torch.multinomial costs ~40 us per call
    # on CPU (a few % of a batch-1 decoding step). target lies in (0, total], so the first
    # index with cdf >= target always exists and is never a zero-probability token (those
    # repeat the cdf value before them, which matches first).
    cdf = probs.cumsum(-1)  # (B, V)
    u = torch.rand(cdf.size(0), 1, generator=generator, device=cdf.device, dtype=cdf.dtype)  # [0, 1)
    target = (1.0 - u) * cdf[:, -1:]  # (B, 1), in (0, total]
    # A row without a distribution (NaN logits) finds no such index and gets V, one past the
    # vocabulary: :func:`sample` turns that into an error instead of a token.
    index = torch.searchsorted(cdf, target).squeeze(1)  # (B,)
    # only a filter makes zero-probability tokens that must never come out (a bare softmax's
    # underflows are its own draws); a CPU cumsum runs in order, so its cdf is exactly monotone
    if cdf.device.type != "cpu" and (top_k is not None or top_p is not None):
        index = _never_filtered(index, probs)
    return index


def _never_filtered(index: torch.Tensor, probs: torch.Tensor) -> torch.Tensor:
    """``index`` with any pick of a zero-probability token replaced by the row's most likely one.

    A GPU cumsum is a parallel scan: its partial sums are rounded in another grouping at each
    position, so a filtered token's cdf entry may come out one ulp above the one before it,
    and a draw landing in that ulp would pick a token top-k / top-p removed (about 1e-7 per
    draw, but a rule broken). Device-side only: no host sync. Index V (a NaN row) stays."""
    V = probs.size(-1)
    picked = probs.gather(1, index.clamp(max=V - 1)[:, None]).squeeze(1)
    return torch.where((picked > 0) | (index == V), index, probs.argmax(-1))


# ------------------------------------------------------------------ argument checks
# sample() and sliding_sample() check what the caller gave them before any work: a bad
# value otherwise surfaces as an IndexError from an embedding lookup many steps in, or
# (NaN temperature, top_p > 1) as samples that quietly ignore the option.

def check_options(temperature: float, top_k: int | None, top_p: float | None, greedy: bool) -> None:
    """PixseqError unless temperature / top_k / top_p are usable (temperature is unused when greedy)."""
    if not greedy and not (isinstance(temperature, numbers.Real) and 0 < temperature < math.inf):
        raise PixseqError(f"temperature must be a finite number > 0 (greedy=True for argmax), got {temperature!r}")
    # top_k > vocab_size is allowed: it keeps every token, like top_k=None
    if top_k is not None and (not isinstance(top_k, numbers.Integral) or isinstance(top_k, bool) or top_k < 1):
        raise PixseqError(f"top_k must be an integer >= 1 (or None), got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, numbers.Real) and 0 < top_p <= 1):
        raise PixseqError(f"top_p must be in (0, 1] (or None), got {top_p!r}")


def check_num(num: int) -> None:
    """PixseqError unless ``num`` (sequences to draw) is an integer >= 1."""
    if not isinstance(num, numbers.Integral) or isinstance(num, bool) or num < 1:
        raise PixseqError(f"num must be an integer >= 1, got {num!r}")


def check_generator(generator: torch.Generator | None, device: torch.device) -> None:
    """PixseqError unless ``generator`` draws on the prior's device (torch.rand refuses others)."""
    if generator is None:
        return
    gen, device = torch.device(generator.device), torch.device(device)
    # the index too: a cuda:0 generator for a prior on cuda:1 was torch's own error mid-sampling
    other_gpu = gen.index is not None and device.index is not None and gen.index != device.index
    if gen.type != device.type or other_gpu:
        raise PixseqError(f"the generator is on {gen}, the prior on {device}: use torch.Generator(device="
                          f"{str(device) if other_gpu else device.type!r})")


def as_tokens(tokens, name: str, vocab_size: int, device: torch.device) -> torch.Tensor:
    """``tokens`` (tensor, array or nested list of ints) as a long tensor on ``device``, each in
    ``0..vocab_size-1``; anything else is a PixseqError naming ``name``."""
    t = torch.as_tensor(tokens)
    check_token_ids(t, vocab_size, name)
    return t.to(device=device, dtype=torch.long)


def check_cond(prior: GPT, num: int, cond) -> torch.Tensor | None:
    """``cond`` as ``(num, cond_len)`` long ids in range, on the prior's device (None stays None)."""
    cfg = prior.config
    if cond is None:
        if cfg.cond_len:
            raise PixseqError(f"this prior is conditional: give cond of shape (num, {cfg.cond_len})")
        return None
    if not cfg.cond_len:
        raise PixseqError("this prior is unconditional; cond must be None")
    cond = as_tokens(cond, "cond", cfg.cond_vocab_size, prior.lm_head.weight.device)
    if cond.dim() == 1:
        cond = cond[:, None]  # (B,) class ids -> (B, 1)
    if cond.shape != (num, cfg.cond_len):
        raise PixseqError(f"cond must be (num={num}, {cfg.cond_len}) or ({num},), got {tuple(cond.shape)}")
    return cond


def no_token_drawn() -> PixseqError:
    """The error for a draw that found no token (non-finite logits: :func:`choose` gave V)."""
    return PixseqError("the prior gave non-finite logits, so no token could be drawn "
                       "(are its weights NaN?)")


def _prepare(prior: GPT, num: int, length: int, cond, prefix, temperature: float, top_k: int | None,
             top_p: float | None, generator: torch.Generator | None,
             greedy: bool) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """Check every argument, allocate the output ``(num, length)`` and copy the prefix in;
    return it, the prefix length and ``cond`` as ``(num, Tc)`` long."""
    check_num(num)
    if not isinstance(length, numbers.Integral) or not 0 < length <= prior.config.block_size:
        raise PixseqError(f"length must be in 1..{prior.config.block_size}, got {length!r}")
    check_options(temperature, top_k, top_p, greedy)
    device = prior.lm_head.weight.device
    check_generator(generator, device)
    cond = check_cond(prior, num, cond)
    out = torch.zeros(num, length, dtype=torch.long, device=device)
    P = 0
    if prefix is not None:
        prefix = as_tokens(prefix, "prefix", prior.config.vocab_size, device)
        if prefix.dim() != 2 or prefix.size(0) != num or prefix.size(1) > length:
            raise PixseqError(f"prefix must be (num={num}, P<={length}), got {tuple(prefix.shape)}")
        P = prefix.size(1)
        out[:, :P] = prefix
    return out, P, cond


@torch.no_grad()
def sample(prior: GPT, num: int, length: int, cond: torch.Tensor | None = None,
           prefix: torch.Tensor | None = None, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, generator: torch.Generator | None = None,
           greedy: bool = False) -> torch.Tensor:
    """Draw ``num`` sequences of ``length`` tokens with the KV cache: ``(num, length)`` long.

    ``prefix`` ``(num, P)``: tokens to keep at the start (image completion); ``cond``
    ``(num, Tc)`` or ``(num,)``: conditioning tokens; ``generator``: the random source
    (on the prior's device) so that samples are reproducible. Bad arguments (ids outside
    the vocabularies, top_p outside (0, 1], ...) raise PixseqError before any work.
    """
    out, P, cond = _prepare(prior, num, length, cond, prefix, temperature, top_k, top_p, generator, greedy)
    dec = IncrementalDecoder(prior, num, cond)
    if P:
        dec.push(out[:, :P])  # one parallel prefill pass over the kept part
    last = prior.config.vocab_size - 1
    for t in range(P, length):
        out[:, t] = choose(dec.next_logits(), temperature, top_k, top_p, generator, greedy)
        # a failed draw (V, see choose) must not reach the embedding lookup; reported below
        dec.push(out[:, t].clamp(max=last))
    if P < length and int(out[:, P:].max()) > last:  # one check per call, not one sync per step
        raise no_token_drawn()
    return out


@torch.no_grad()
def sample_full_recompute(prior: GPT, num: int, length: int, cond: torch.Tensor | None = None,
                          prefix: torch.Tensor | None = None, temperature: float = 1.0,
                          top_k: int | None = None, top_p: float | None = None,
                          generator: torch.Generator | None = None, greedy: bool = False) -> torch.Tensor:
    """:func:`sample` without a cache: each step re-runs the whole prefix (O(T^2) per step).
    Only for tests and benchmarks."""
    out, P, cond = _prepare(prior, num, length, cond, prefix, temperature, top_k, top_p, generator, greedy)
    last = prior.config.vocab_size - 1
    for t in range(P, length):
        # out[:, t] is still 0 here; logits[:, t] depends only on tokens < t
        logits = prior(out[:, : t + 1], cond)[:, t].float()
        out[:, t] = choose(logits, temperature, top_k, top_p, generator, greedy)
        if int(out[:, t].max()) > last:  # next step's embedding lookup would fail on it
            raise no_token_drawn()
    return out
