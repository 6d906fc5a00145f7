"""GPT-2 style transformer pieces: causal self-attention with a KV cache, GELU MLP, pre-LN block.

References: Radford et al. 2019 (GPT-2: pre-LayerNorm residual blocks, GELU MLP of width
4C); Chen et al. 2020 (iGPT, the same decoder over pixel tokens). Attention goes through
``torch.nn.functional.scaled_dot_product_attention`` so PyTorch picks its fused kernel
(flash / memory-efficient on GPU, the fused CPU kernel otherwise) instead of materialising
the ``(T, T)`` score matrix.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = ("gelu", "gelu_tanh", "quick_gelu")
NORMS = ("layernorm", "rmsnorm")


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
        return x * torch.sigmoid(1.702 * x)
    raise ValueError(f"unknown activation {kind!r} (known: {', '.join(ACTIVATIONS)})")


class KVCache:
    """Pre-allocated keys/values of every layer: ``k``, ``v`` ``(n_layer, B, nh, max_len, hs)``.

    Pre-allocating (instead of ``torch.cat`` per step) keeps a decoding step at O(T) work
    with no re-allocation, and makes its memory use known up front: ``2 * n_layer * B *
    max_len * C`` numbers. Keys and values share one buffer, ``kv`` ``(n_layer, B, 2, nh,
    max_len, hs)``, laid out like the k|v halves of the fused qkv projection, so that a
    single-token step stores both with one copy (:meth:`append_kv`).
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

    def append_kv(self, layer: int, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`append` for keys and values stacked as ``(B, 2, nh, T, hs)``: one copy."""
        end = self._check_room(kv.size(3))
        ckv = self._kv[layer]
        ckv.narrow(3, self.pos, kv.size(3)).copy_(kv)
        k, v = ckv.narrow(3, 0, end).unbind(1)  # 2 x (B, nh, end, hs)
        return k, v

    def advance(self, n: int) -> None:
        """Called once per model step, after every layer has appended ``n`` positions."""
        self.pos += n


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention; optionally reads/writes a :class:`KVCache`."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        # (B, T, C) -> (B, nh, T, hs)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        drop = self.dropout if self.training else 0.0
        if cache is None:
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

    def decode(self, x: torch.Tensor, cache: KVCache, layer: int) -> torch.Tensor:
        """:meth:`forward` for one new token per sequence, ``x`` ``(B, 1, C)``, in eval mode.

        The hot loop of sampling and of the neural codec: at batch 1 a step is a few dozen
        tiny ops, so their count (not FLOPs) sets the speed. This path skips module calls,
        the generic q/k/v reshapes and the mask logic: keys and values go into the cache
        with one copy, and SDPA with a single query needs no mask. Same math as
        :meth:`forward`, so logits agree with the full pass to float rounding.
        """
        B, _, C = x.shape
        qkv = F.linear(x, self.c_attn.weight, self.c_attn.bias)  # (B, 1, 3C)
        qkv = qkv.view(B, 3, self.n_head, 1, C // self.n_head)  # (B, 3, nh, 1, hs): q | k | v
        k, v = cache.append_kv(layer, qkv[:, 1:])  # (B, nh, pos+1, hs) each
        y = F.scaled_dot_product_attention(qkv[:, 0], k, v)  # (B, nh, 1, hs)
        # (B, nh, 1, hs) -> (B, 1, C): with one query no transpose is needed (a view, no copy)
        return F.linear(y.reshape(B, 1, C), self.c_proj.weight, self.c_proj.bias)


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
    """Pre-LN transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))``."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True,
                 norm: str = "layernorm", activation: str = "gelu", mlp_ratio: int = 4,
                 norm_eps: float = 1e-5) -> None:
        super().__init__()
        self.ln_1 = make_norm(norm, n_embd, bias, norm_eps)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = make_norm(norm, n_embd, bias, norm_eps)
        self.mlp = MLP(n_embd, mlp_ratio, dropout, bias, activation)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))

    def decode(self, x: torch.Tensor, cache: KVCache, layer: int) -> torch.Tensor:
        """:meth:`forward` for one new token per sequence ``(B, 1, C)`` in eval mode (see
        :meth:`CausalSelfAttention.decode`): calls ``forward``/functional ops directly,
        because ``Module.__call__`` costs about as much as a tiny matmul."""
        x = x + self.attn.decode(self.ln_1.forward(x), cache, layer)
        mlp = self.mlp
        h = _activation(mlp.activation, F.linear(self.ln_2.forward(x), mlp.c_fc.weight, mlp.c_fc.bias))
        return x + F.linear(h, mlp.c_proj.weight, mlp.c_proj.bias)


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
