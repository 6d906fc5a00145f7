"""Transformer pieces shared by every model: self-attention (causal with a KV cache for the
GPT priors, or bidirectional for the Vision Transformer), GELU MLP, pre-LN block.

References: Radford et al. 2019 (GPT-2: pre-LayerNorm residual blocks, GELU MLP of width
4C); Chen et al. 2020 (iGPT, the same decoder over pixel tokens); Dosovitskiy et al. 2021
(ViT: the same pre-LN block without the causal mask); Lee et al. 2021, "Vision Transformer
for Small-Size Datasets" (locality self-attention: a learned softmax temperature and no
attention of a token to itself); Huang et al. 2016, "Deep Networks with Stochastic Depth"
(residual branches dropped per sample while training). Attention goes through
``torch.nn.functional.scaled_dot_product_attention`` so PyTorch picks its fused kernel
(flash / memory-efficient on GPU, the fused CPU kernel otherwise) instead of materialising
the ``(T, T)`` score matrix; :meth:`SelfAttention.attention_probs` materialises it on
purpose, for attention maps.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("gelu", "gelu_tanh", "quick_gelu")
NORMS = ("layernorm", "rmsnorm")
QUICK_GELU = 1.702


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight``: no centring, no bias.

    This is the "layer norm" of the original iGPT release (and of Hugging Face's
    ``ImageGPTLayerNorm``), so converted checkpoints reproduce their logits exactly.
    """

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if hasattr(F, "rms_norm"):  # one fused op (torch >= 2.4); matters for per-token decoding
            return F.rms_norm(x, (x.size(-1),), self.weight, self.eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def make_norm(kind: str, dim: int, bias: bool = True, eps: float = 1e-5) -> nn.Module:
    """``"layernorm"`` (GPT-2) or ``"rmsnorm"`` (original iGPT)."""
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(dim, eps=eps)
    raise ValueError(f"unknown norm {kind!r} (known: {', '.join(NORMS)})")


def _activation(kind: str, x: torch.Tensor) -> torch.Tensor:
    if kind == "gelu":
        return F.gelu(x)
    if kind == "gelu_tanh":  # GPT-2's tanh approximation
        return F.gelu(x, approximate="tanh")
    if kind == "quick_gelu":  # iGPT's x * sigmoid(1.702 x)
        return x * torch.sigmoid(QUICK_GELU * x)
    if kind == "silu":  # only in decoding plans (see Block.decode_plan)
        return F.silu(x)
    raise ValueError(f"unknown activation {kind!r} (known: {', '.join(ACTIVATIONS)})")


class KVCache:
    """Pre-allocated keys/values of every layer: ``k``, ``v`` ``(n_layer, B, nh, max_len, hs)``.

    Pre-allocating (instead of ``torch.cat`` per step) keeps a decoding step at O(T) work
    with no re-allocation, and makes its memory use known up front: ``2 * n_layer * B *
    max_len * C`` numbers. Keys and values share one buffer, ``kv`` ``(n_layer, B, 2, nh,
    max_len, hs)``, laid out like the k|v halves of the fused qkv projection, so that a
    single-token step stores both with one copy (:func:`decode_blocks`).
    """

    def __init__(self, n_layer: int, batch_size: int, n_head: int, max_len: int, head_dim: int,
                 dtype: torch.dtype, device: torch.device | str) -> None:
        self.kv = torch.zeros(n_layer, batch_size, 2, n_head, max_len, head_dim, dtype=dtype, device=device)
        self.k, self.v = self.kv[:, :, 0], self.kv[:, :, 1]  # views: (n_layer, B, nh, max_len, hs)
        # per-layer views, made once: indexing costs microseconds, and a decoding step is
        # short enough for that to show
        self._kv = self.kv.unbind(0)  # n_layer x (B, 2, nh, max_len, hs)
        self._k, self._v = self.k.unbind(0), self.v.unbind(0)  # n_layer x (B, nh, max_len, hs)
        self.max_len = max_len
        self.pos = 0  # number of positions already filled (same for all layers)

    def _check_room(self, T: int) -> int:
        end = self.pos + T
        if end > self.max_len:
            raise ValueError(f"KV cache full: {end} > {self.max_len} positions")
        return end

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v`` ``(B, nh, T, hs)`` at ``[pos, pos+T)``; return all keys/values so far."""
        T, end = k.size(2), self._check_room(k.size(2))
        ck, cv = self._k[layer], self._v[layer]
        ck.narrow(2, self.pos, T).copy_(k)
        cv.narrow(2, self.pos, T).copy_(v)
        return ck.narrow(2, 0, end), cv.narrow(2, 0, end)  # (B, nh, end, hs)

    def advance(self, n: int) -> None:
        """Called once per model step, after every layer has appended ``n`` positions."""
        self.pos += n


class SelfAttention(nn.Module):
    """Multi-head self-attention: causal (a GPT prior; optionally reads/writes a :class:`KVCache`)
    or bidirectional (``causal=False``: a ViT encoder).

    ``locality=True`` is Lee et al.'s locality self-attention (LSA): the softmax temperature
    is learned (``log_scale``, initialised at the usual ``1/sqrt(head_dim)``) and each token's
    attention to itself is masked out, so attention cannot collapse onto the diagonal and
    has to look at other tokens. Bidirectional only.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True, causal: bool = True,
                 locality: bool = False) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        if causal and locality:
            raise ValueError("locality self-attention is for bidirectional attention (causal=False)")
        self.n_head, self.causal, self.locality = n_head, causal, locality
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        if locality:  # a scalar per layer, as in Lee et al.'s code
            self.log_scale = nn.Parameter(torch.tensor(math.log((n_embd // n_head) ** -0.5)))

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys, values ``(B, nh, T, hs)`` of ``x`` ``(B, T, C)``."""
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        return q, k, v

    def _locality(self, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
        """LSA's scaled queries, its mask (True: may attend; the diagonal may not) and the
        SDPA scale that goes with them (1: the learned scale is in the queries)."""
        T = q.size(2)
        mask = ~torch.eye(T, dtype=torch.bool, device=q.device)
        return q * self.log_scale.exp().to(q.dtype), mask, 1.0

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self._qkv(x)
        drop = self.dropout if self.training else 0.0
        if not self.causal:
            if cache is not None:
                raise ValueError("a KV cache is for causal attention")
            if self.locality:
                q, mask, scale = self._locality(q)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=drop, scale=scale)
            else:
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        elif cache is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
        else:
            past = cache.pos
            k, v = cache.append(layer, k, v)  # (B, nh, past+T, hs)
            if T == 1:  # one new query may see every cached position: no mask needed
                y = F.scaled_dot_product_attention(q, k, v)
            elif past == 0:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            else:  # a chunk after a non-empty cache: query i sees keys <= past + i
                mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, nh, T, hs) -> (B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def attention_probs(self, x: torch.Tensor) -> torch.Tensor:
        """The attention weights ``(B, nh, T, T)`` (rows sum to 1) this layer computes for
        ``x`` ``(B, T, C)`` (its normed input), without dropout: what SDPA uses and never
        returns, written out (for attention maps and rollout)."""
        q, k, _ = self._qkv(x)
        T, hs = q.size(2), q.size(3)
        if self.locality:
            q, mask, scale = self._locality(q)
        else:
            scale = hs ** -0.5
            mask = (torch.ones(T, T, dtype=torch.bool, device=x.device).tril() if self.causal else None)
        scores = (q @ k.transpose(-2, -1)) * scale  # (B, nh, T, T)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        return scores.float().softmax(-1)


#: The GPT priors' name for their attention (it is :class:`SelfAttention` with ``causal=True``).
CausalSelfAttention = SelfAttention


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): while training, zero a residual branch for a
    random share ``p`` of the samples and scale the others by ``1 / (1 - p)``, so the
    expected output is unchanged; the identity in eval mode."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.empty((x.size(0),) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device)
        return x * keep.bernoulli_(1.0 - self.p).div_(1.0 - self.p)  # one draw per sample: (B, 1, 1)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MLP(nn.Module):
    """Position-wise feed-forward: Linear(C, rC) -> GELU -> Linear(rC, C)."""

    def __init__(self, n_embd: int, ratio: int = 4, dropout: float = 0.0, bias: bool = True,
                 activation: str = "gelu") -> None:
        super().__init__()
        _activation(activation, torch.zeros(1))  # fail early on an unknown name
        self.activation = activation
        self.c_fc = nn.Linear(n_embd, ratio * n_embd, bias=bias)
        self.c_proj = nn.Linear(ratio * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(_activation(self.activation, self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``.

    ``causal=False`` makes it a ViT encoder block (``locality``: LSA, see
    :class:`SelfAttention`); ``drop_path > 0`` drops each residual branch per sample while
    training (stochastic depth). The defaults are the GPT priors' decoder block.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True,
                 norm: str = "layernorm", activation: str = "gelu", mlp_ratio: int = 4,
                 norm_eps: float = 1e-5, causal: bool = True, drop_path: float = 0.0,
                 locality: bool = False) -> None:
        super().__init__()
        self.ln_1 = make_norm(norm, n_embd, bias, norm_eps)
        self.attn = SelfAttention(n_embd, n_head, dropout, bias, causal, locality)
        self.ln_2 = make_norm(norm, n_embd, bias, norm_eps)
        self.mlp = MLP(n_embd, mlp_ratio, dropout, bias, activation)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.ln_1(x), cache, layer))
        return x + self.drop_path(self.mlp(self.ln_2(x)))

    def decode_plan(self) -> BlockPlan:
        """This block's tensors for :func:`decode_blocks` (see there)."""
        a, m = self.attn, self.mlp
        fc_w, fc_b, act, proj_w = m.c_fc.weight, m.c_fc.bias, m.activation, m.c_proj.weight
        if act == "quick_gelu":
            # x * sigmoid(1.702 x) = silu(1.702 x) / 1.702: with 1.702 folded into c_fc and
            # 1 / 1.702 into c_proj the activation is one op instead of three
            fc_w, proj_w, act = fc_w.detach() * QUICK_GELU, proj_w.detach() / QUICK_GELU, "silu"
            fc_b = None if fc_b is None else fc_b.detach() * QUICK_GELU
        return BlockPlan(norm_plan(self.ln_1), a.c_attn.weight, a.c_attn.bias, a.n_head, a.c_proj.weight,
                         a.c_proj.bias, norm_plan(self.ln_2), fc_w, fc_b, act, proj_w, m.c_proj.bias)


# ---------------------------------------------------------------- single-token decoding
# The hot loop of sampling and of the neural codec is one new token per sequence through
# every block. At batch 1 that is a few dozen tiny ops whose count (not FLOPs) sets the
# speed, so it runs on plain tuples of tensors collected once per decoder ("plans"): no
# Module.__call__, no module attribute lookups, no generic reshapes or mask logic. A plan
# is a snapshot for one decoder: derived tensors (an RMS norm's doubled weight, quick-GELU's
# rescaled MLP weights) are copies, so make a new plan after changing the weights.

class NormPlan(NamedTuple):
    weight: torch.Tensor
    bias: torch.Tensor | None
    eps: float
    rms: bool  # weight is then the norm's weight twice: see decode_norm


class BlockPlan(NamedTuple):
    ln_1: NormPlan
    attn_w: torch.Tensor
    attn_b: torch.Tensor | None
    n_head: int
    attn_proj_w: torch.Tensor
    attn_proj_b: torch.Tensor | None
    ln_2: NormPlan
    fc_w: torch.Tensor
    fc_b: torch.Tensor | None
    activation: str
    mlp_proj_w: torch.Tensor
    mlp_proj_b: torch.Tensor | None


def norm_plan(norm: nn.Module) -> NormPlan:
    """A :class:`NormPlan` of a LayerNorm or :class:`RMSNorm` (holds the weights by reference,
    except an RMS norm's doubled weight, which is a copy made now)."""
    if isinstance(norm, RMSNorm):
        return NormPlan(torch.cat([norm.weight, norm.weight]).detach(), None, norm.eps, True)
    return NormPlan(norm.weight, norm.bias, norm.eps, False)


def decode_norm(x: torch.Tensor, p: NormPlan) -> torch.Tensor:
    """The norm of :func:`norm_plan` applied to ``x`` ``(..., C)``, in as few ops as possible.

    An RMS norm is a LayerNorm of ``[x, -x]``: that vector's mean is 0 and its variance is
    ``mean(x^2)``, so its first half is ``x / sqrt(mean(x^2) + eps)``. On CPU ``F.rms_norm``
    is a chain of ~9 ops (pow, mean, add, rsqrt, muls, dtype casts) and cost 2-4x a whole
    ``layer_norm``; neg + cat + layer_norm is about half of it. Equal to float rounding.
    """
    C = x.size(-1)
    if p.rms:
        return F.layer_norm(torch.cat([x, x.neg()], -1), (2 * C,), p.weight, None, p.eps).narrow(-1, 0, C)
    return F.layer_norm(x, (C,), p.weight, p.bias, p.eps)


def decode_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear``, except that a single vector ``x`` ``(C,)`` goes through ``addmv``/``mv``:
    about 3 us less per call than ``linear`` on a ``(1, 1, C)`` input on CPU, and a batch-1
    decoding step makes 4 per layer + 1."""
    if x.dim() == 1:
        return torch.mv(weight, x) if bias is None else torch.addmv(bias, weight, x)
    return F.linear(x, weight, bias)


def decode_blocks(plans: Sequence[BlockPlan], x: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """:meth:`Block.forward` of every block for one new token per sequence, ``x`` ``(B, 1, C)``
    (returned in the same shape).

    For eval mode under ``torch.inference_mode``/``no_grad``. Keys and values go into
    ``cache`` at position ``cache.pos`` with one copy per layer (its k|v buffer is laid out
    like the k|v halves of the qkv projection); SDPA with a single query needs no mask, and
    its ``(B, nh, 1, hs)`` output is already ``(B, 1, C)`` in memory. The caller advances the
    cache. Same math as the full pass, so logits agree with it to float rounding.
    """
    B, _, C = x.shape
    pos = cache.pos
    end = cache._check_room(1)
    if B == 1:
        x = x.view(C)  # vectors: the linears become matrix-vector products (decode_linear)
    for kv, p in zip(cache._kv, plans):
        nh = p.n_head
        qkv = decode_linear(decode_norm(x, p.ln_1), p.attn_w, p.attn_b).view(B, 3, nh, 1, C // nh)  # q | k | v
        kv.narrow(3, pos, 1).copy_(qkv[:, 1:])
        k, v = kv.narrow(3, 0, end).unbind(1)  # (B, nh, end, hs) each
        y = F.scaled_dot_product_attention(qkv[:, 0], k, v)  # (B, nh, 1, hs)
        x = x + decode_linear(y.reshape(x.shape), p.attn_proj_w, p.attn_proj_b)
        h = _activation(p.activation, decode_linear(decode_norm(x, p.ln_2), p.fc_w, p.fc_b))
        x = x + decode_linear(h, p.mlp_proj_w, p.mlp_proj_b)
    return x.view(B, 1, C)


def init_gpt2_(module: nn.Module, n_layer: int, std: float = 0.02) -> None:
    """GPT-2 initialisation: N(0, 0.02) weights, zero biases, and residual projections
    (``c_proj``) scaled by ``1/sqrt(2 * n_layer)`` so the residual stream's variance does
    not grow with depth (Radford et al. 2019, section 2.3)."""
    for name, p in module.named_parameters():
        if name.endswith("c_proj.weight"):
            nn.init.normal_(p, 0.0, std / math.sqrt(2 * n_layer))
        elif p.dim() >= 2:
            nn.init.normal_(p, 0.0, std)
        elif name.endswith("bias"):
            nn.init.zeros_(p)
        # 1-d non-bias parameters (norm weights, learned vectors) keep their own init
