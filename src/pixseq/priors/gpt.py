"""GPT prior: a GPT-2 style decoder over a flattened token grid, optionally conditioned.

The sequence the transformer sees is::

    [c_0 .. c_{Tc-1}] [SOS] [x_0 .. x_{T-2}]      (Tc conditioning tokens, T targets)

so the hidden state at the SOS position predicts ``x_0`` and the one at ``x_{t-1}``
predicts ``x_t``: ``forward(x)[:, t]`` is the distribution of ``x[:, t]`` given ``x[:, :t]``
and the conditioning. The shift happens inside the model (a learned SOS vector), which is
what the :class:`pixseq.models.base.Prior` contract asks for. Conditioning tokens (a class
id, or another tokenizer's codes) have their own embedding table and their own positions.

References: Radford et al. 2019 (GPT-2); Chen et al. 2020, "Generative Pretraining from
Pixels" (iGPT: the same decoder over 9-bit palette tokens, learned positions, pre-norm,
linear probes on middle-layer features); Esser et al. 2021 (Taming Transformers:
conditioning by prepending tokens). The file layout follows Karpathy's nanoGPT.

Size presets (CPU-sized, iGPT's S/M/L in spirit; iGPT itself is 76M / 455M / 1.4B),
parameter counts for ``vocab_size=512, block_size=1024`` (32x32 images), unconditional::

    preset  n_layer n_head n_embd   parameters
    s          4      4     128       1.06 M
    m          8      8     256       6.84 M
    l         12      8     512      38.9 M
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from pixseq.nn.transformer import (ACTIVATIONS, NORMS, Block, BlockPlan, KVCache, NormPlan, decode_blocks,
                                   decode_linear, decode_norm, init_gpt2_, make_norm, norm_plan)


@dataclass
class GPTConfig:
    """Hyper-parameters of :class:`GPT`.

    Attributes:
        vocab_size: number of target token values (palette colours or codebook entries).
        block_size: maximum number of target tokens (e.g. 1024 for a 32x32 grid).
        n_layer, n_head, n_embd: depth, heads, width.
        cond_vocab_size: vocabulary of the conditioning tokens (0: unconditional).
        cond_len: number of conditioning tokens prepended (0: unconditional).
        dropout: dropout on embeddings, attention and residual branches (training only).
        bias: biases in linear layers and LayerNorms (GPT-2: True).
        norm: ``"layernorm"`` (GPT-2) or ``"rmsnorm"`` (original iGPT release).
        activation: ``"gelu"``, ``"gelu_tanh"`` (GPT-2) or ``"quick_gelu"`` (iGPT release).
        mlp_ratio: MLP width as a multiple of ``n_embd``.
        norm_eps: epsilon of the normalisation layers.
        tie_weights: share the token embedding with the output projection.
    """

    vocab_size: int = 512
    block_size: int = 1024
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    cond_vocab_size: int = 0
    cond_len: int = 0
    dropout: float = 0.0
    bias: bool = True
    norm: str = "layernorm"
    activation: str = "gelu"
    mlp_ratio: int = 4
    norm_eps: float = 1e-5
    tie_weights: bool = False

    def __post_init__(self) -> None:
        if min(self.vocab_size, self.block_size, self.n_layer, self.n_head, self.n_embd, self.mlp_ratio) < 1:
            raise ValueError("vocab_size, block_size, n_layer, n_head, n_embd and mlp_ratio must be >= 1")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if (self.cond_len > 0) != (self.cond_vocab_size > 0):
            raise ValueError("cond_len and cond_vocab_size must both be 0 or both be > 0")
        if self.norm not in NORMS or self.activation not in ACTIVATIONS:
            raise ValueError(f"norm must be one of {NORMS}, activation one of {ACTIVATIONS}")
        # `not (a <= x < b)` also catches NaN; nn.Dropout would only object deep in GPT(...),
        # and a negative eps would build a model whose norms divide by ~0 (NaN logits)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not 0.0 < self.norm_eps < 1.0:
            raise ValueError(f"norm_eps must be in (0, 1), got {self.norm_eps}")
        if min(self.cond_len, self.cond_vocab_size) < 0:
            raise ValueError("cond_len and cond_vocab_size must be >= 0")


class DecodePlan(NamedTuple):
    """A :class:`GPT`'s tensors for :meth:`GPT.decode_step`."""

    wte: torch.Tensor
    wpe: torch.Tensor
    blocks: list[BlockPlan]
    ln_f: NormPlan
    lm_head: torch.Tensor


GPT_PRESETS: dict[str, dict[str, int]] = {
    "s": dict(n_layer=4, n_head=4, n_embd=128),
    "m": dict(n_layer=8, n_head=8, n_embd=256),
    "l": dict(n_layer=12, n_head=8, n_embd=512),
}


def gpt_config(preset: str, **overrides) -> GPTConfig:
    """A :class:`GPTConfig` from a size preset (``"s"``, ``"m"``, ``"l"``) plus overrides."""
    if preset not in GPT_PRESETS:
        raise ValueError(f"unknown GPT preset {preset!r} (known: {', '.join(GPT_PRESETS)})")
    return GPTConfig(**{**GPT_PRESETS[preset], **overrides})


def _check_ids(ids: torch.Tensor, vocab: int, what: str) -> None:
    """ValueError for ids outside ``0..vocab-1`` on CPU (the embedding lookup would raise a
    bare IndexError). Skipped on accelerators, where reading the range back would cost a
    host sync per training step, and while compiling (no data-dependent branches)."""
    if ids.device.type != "cpu" or ids.numel() == 0 or torch.compiler.is_compiling():
        return
    lo, hi = torch.aminmax(ids)
    if lo < 0 or hi >= vocab:
        raise ValueError(f"{what} hold ids {int(lo)}..{int(hi)}, outside this prior's 0..{vocab - 1}")


class GPT(nn.Module):
    """Decoder-only transformer prior; see the module docstring for the sequence layout."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)
        # positions cover cond tokens + SOS + T-1 targets = cond_len + block_size
        self.wpe = nn.Embedding(config.cond_len + config.block_size, C)
        self.sos = nn.Parameter(torch.zeros(C))
        self.cond_emb = nn.Embedding(config.cond_vocab_size, C) if config.cond_len else None
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(
            Block(C, config.n_head, config.dropout, config.bias, config.norm, config.activation, config.mlp_ratio,
                  config.norm_eps)
            for _ in range(config.n_layer)
        )
        self.ln_f = make_norm(config.norm, C, config.bias, config.norm_eps)
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        init_gpt2_(self, config.n_layer)
        nn.init.normal_(self.sos, 0.0, 0.02)
        if config.tie_weights:
            self.lm_head.weight = self.wte.weight

    # ---------------------------------------------------------------- inputs
    def check_inputs(self, tokens: torch.Tensor, cond: torch.Tensor | None) -> None:
        """Raise ValueError unless tokens are (B, T<=block_size) and cond matches the config."""
        cfg = self.config
        if tokens.dim() != 2 or tokens.size(1) > cfg.block_size:
            raise ValueError(f"tokens must be (B, T<={cfg.block_size}), got {tuple(tokens.shape)}")
        if cfg.cond_len:
            if cond is None or cond.shape != (tokens.size(0), cfg.cond_len):
                got = None if cond is None else tuple(cond.shape)
                raise ValueError(f"this prior needs cond of shape (B, {cfg.cond_len}), got {got}")
        elif cond is not None:
            raise ValueError("this prior is unconditional; cond must be None")
        _check_ids(tokens, cfg.vocab_size, "tokens")
        if cond is not None:
            _check_ids(cond, cfg.cond_vocab_size, "cond")

    def embed_prefix(self, cond: torch.Tensor | None, batch_size: int) -> torch.Tensor:
        """Embeddings of ``[cond..., SOS]`` with positions: ``(B, cond_len + 1, C)``."""
        x = self.sos.expand(batch_size, 1, -1)  # (B, 1, C)
        if cond is not None:
            x = torch.cat([self.cond_emb(cond), x], dim=1)  # (B, Tc+1, C)
        pos = torch.arange(x.size(1), device=x.device)
        return x + self.wpe(pos)

    def embed_tokens(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """Embeddings of target tokens placed at sequence positions ``start, start+1, ...``."""
        # a slice of the position table equals an embedding lookup of arange(start, start+T),
        # minus two ops per decoding step
        return self.wte(tokens) + self.wpe.weight[start:start + tokens.size(1)]  # (B, T, C)

    def _input(self, tokens: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """The shifted input sequence ``[cond, SOS, x_0..x_{T-2}]``: ``(B, Tc + T, C)``."""
        self.check_inputs(tokens, cond)
        prefix = self.embed_prefix(cond, tokens.size(0))
        body = self.embed_tokens(tokens[:, :-1], prefix.size(1))
        return self.drop(torch.cat([prefix, body], dim=1))

    # ---------------------------------------------------------------- passes
    def hidden(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Run embedded inputs ``(B, T, C)`` through the blocks and the final norm."""
        for i, block in enumerate(self.h):
            x = block(x, cache, i)
        if cache is not None:
            cache.advance(x.size(1))
        return self.ln_f(x)

    def decode_plan(self) -> DecodePlan:
        """The tensors :meth:`decode_step` reads, gathered once per decoder.

        A snapshot for one decoder: some tensors are derived copies (see
        :func:`~pixseq.nn.transformer.decode_blocks`), so make a new plan after changing
        the weights."""
        return DecodePlan(self.wte.weight, self.wpe.weight, [b.decode_plan() for b in self.h],
                          norm_plan(self.ln_f), self.lm_head.weight)

    def decode_step(self, plan: DecodePlan, tokens: torch.Tensor, pos: int, cache: KVCache) -> torch.Tensor:
        """Logits ``(B, V)`` after one new target token per sequence, ``tokens`` ``(B, 1)``,
        at sequence position ``pos`` (= ``cache.pos``), in eval mode without autograd:
        ``forward`` for the single-token step of KV-cached decoding
        (:func:`~pixseq.nn.transformer.decode_blocks`)."""
        B = tokens.size(0)
        x = F.embedding(tokens, plan.wte) + plan.wpe[pos]  # (B, 1, C)
        x = decode_blocks(plan.blocks, x, cache)
        cache.advance(1)
        x = x.view(-1) if B == 1 else x.view(B, -1)  # (B, C); a vector at batch 1 (decode_linear)
        return decode_linear(decode_norm(x, plan.ln_f), plan.lm_head).view(B, -1)  # (B, V)

    def forward(self, tokens: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, T)`` tokens (+ ``(B, Tc)`` cond) -> ``(B, T, vocab_size)`` logits;
        ``logits[:, t]`` predicts ``tokens[:, t]`` from ``tokens[:, :t]``."""
        h = self.hidden(self._input(tokens, cond))
        return self.lm_head(h[:, self.config.cond_len:])  # drop cond positions: (B, T, V)

    def loss(self, tokens: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Mean cross-entropy (nats per token) over the target tokens only."""
        logits = self(tokens, cond)
        return F.cross_entropy(logits.float().flatten(0, 1), tokens.flatten())

    def features(self, tokens: torch.Tensor, cond: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Hidden states at the target positions for linear probes: a list of ``n_layer + 1``
        tensors ``(B, T, C)`` — the output of each block, then the final-normed output."""
        x = self._input(tokens, cond)
        outs = []
        for block in self.h:
            x = block(x)
            outs.append(x[:, self.config.cond_len:])
        outs.append(self.ln_f(x)[:, self.config.cond_len:])
        return outs

    def new_cache(self, batch_size: int, dtype: torch.dtype | None = None) -> KVCache:
        """An empty KV cache for ``batch_size`` sequences of full length."""
        cfg = self.config
        p = self.lm_head.weight
        return KVCache(cfg.n_layer, batch_size, cfg.n_head, cfg.cond_len + cfg.block_size,
                       cfg.n_embd // cfg.n_head, dtype or p.dtype, p.device)

    def num_params(self, non_embedding: bool = False) -> int:
        """Number of parameters (tied weights counted once); optionally without embeddings."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.wpe.weight.numel() + self.wte.weight.numel()
        return n

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Training FLOPs per token, forward + backward (= 3x forward), as in PaLM appendix B:
        ``6 N + 6 n_layer T C``, N = weights of the matmuls (blocks + lm_head). The attention
        term is PaLM's ``12 L T C`` halved because causal attention does half the work."""
        cfg = self.config
        T = seq_len or (cfg.cond_len + cfg.block_size)
        N = sum(p.numel() for n, p in self.h.named_parameters() if p.dim() == 2) + self.lm_head.weight.numel()
        return 6.0 * N + 6.0 * cfg.n_layer * T * cfg.n_embd


def flops_per_batch(prior: GPT, tokens: torch.Tensor) -> float:
    """Training FLOPs of one ``(B, T)`` batch of target tokens: every one of the
    ``cond_len + T`` positions costs :meth:`GPT.flops_per_token` at that length."""
    length = prior.config.cond_len + tokens.size(1)
    return prior.flops_per_token(length) * tokens.size(0) * length
