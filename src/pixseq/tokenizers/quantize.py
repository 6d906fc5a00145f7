"""Vector quantization with a learned codebook, and the tools that keep the codebook alive.

Nearest-code lookup with a straight-through gradient and the VQ-VAE losses
(van den Oord et al., "Neural Discrete Representation Learning", 2017)::

    loss = ||sg[z_e] - z_q||^2  +  beta * ||z_e - sg[z_q]||^2

Options, each aimed at codebook collapse (few codes used), the most common complaint
about trained tokenizers:

* ``ema``: codebook = exponential moving average of the encoder outputs assigned to each
  code (VQ-VAE appendix / Razavi et al. 2019); the codebook-loss term is then dropped.
* ``l2_norm``: codes and encoder outputs are compared on the unit sphere (cosine
  similarity; Yu et al., "Vector-quantized Image Modeling with Improved VQGAN", 2022).
* ``kmeans_init``: the codebook is initialised by k-means over the first training batch.
* ``dead_restart``: codes unused for ``dead_after`` training steps are re-seeded from
  recent encoder outputs (Dhariwal et al., "Jukebox", 2020; Zeghidour et al. 2021).

Usage statistics are always kept while training: :meth:`usage` is the fraction of codes
used within the last ``usage_window`` steps, ``info["perplexity"]`` the exponential of the
entropy of the batch's code histogram (``K`` means perfectly uniform use).

Under ``torch.distributed`` (every rank in training mode, same number of forward passes,
as the Trainer runs it) the statistics are global: code counts and EMA sums are summed
over the ranks, and the codes k-means or a restart produce come from rank 0, so every rank
holds the same codebook and statistics, as one process with the combined batch would.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _sum_over_ranks(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over all ranks, in place (unchanged in one process)."""
    if _world_size() > 1:
        dist.all_reduce(t)
    return t


def _from_rank0(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's ``t`` on every rank, in place (unchanged in one process)."""
    if _world_size() > 1:
        dist.broadcast(t, src=0)
    return t


@dataclass
class QuantizerConfig:
    """Codebook size/dimension, loss weight and the anti-collapse options."""

    num_codes: int = 1024
    dim: int = 64
    beta: float = 0.25
    ema: bool = False
    ema_decay: float = 0.99
    l2_norm: bool = False
    kmeans_init: bool = True
    kmeans_iters: int = 10
    dead_restart: bool = True
    dead_after: int = 50  # training steps without use before a code counts as dead
    usage_window: int = 50  # steps over which usage() counts a code as used
    reservoir: int = 4096  # recent encoder outputs kept for restarts

    def __post_init__(self) -> None:
        # num_codes=0 used to surface as a ZeroDivisionError in the codebook's initialiser
        if min(self.num_codes, self.dim, self.dead_after, self.usage_window) < 1:
            raise ValueError("num_codes, dim, dead_after and usage_window must be >= 1")
        if min(self.kmeans_iters, self.reservoir) < 0:
            raise ValueError("kmeans_iters and reservoir must be >= 0")
        if not (self.beta >= 0.0 and 0.0 <= self.ema_decay < 1.0):  # written so that NaN fails too
            raise ValueError(f"beta must be >= 0 and ema_decay in [0, 1), got {self.beta} and {self.ema_decay}")


class VectorQuantizer(nn.Module):
    """Maps ``(B, d, h, w)`` encoder outputs to their nearest codebook entries."""

    def __init__(self, config: QuantizerConfig) -> None:
        super().__init__()
        c = self.config = config
        self.embedding = nn.Embedding(c.num_codes, c.dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / c.num_codes, 1.0 / c.num_codes)
        if c.ema:
            self.embedding.weight.requires_grad_(False)
            self.register_buffer("ema_count", torch.ones(c.num_codes))
            self.register_buffer("ema_sum", self.embedding.weight.detach().clone())
        if c.kmeans_init:
            # persistent: a resumed or loaded model must not be re-initialised
            self.register_buffer("initialized", torch.tensor(False))
        # A host-side mirror of ``initialized`` once it is True: reading the buffer back at
        # every training forward would make a GPU host wait each time.
        self._known_initialized = False
        # Training-time statistics: not part of the model files.
        self.register_buffer("code_age", torch.zeros(c.num_codes, dtype=torch.long), persistent=False)
        self.register_buffer("ever_used", torch.zeros(c.num_codes, dtype=torch.bool), persistent=False)
        self.register_buffer("recent", torch.zeros(0, c.dim), persistent=False)

    @property
    def num_codes(self) -> int:
        return self.config.num_codes

    def codebook(self) -> torch.Tensor:
        """The ``(K, d)`` code vectors as used for lookup (unit length when ``l2_norm``)."""
        w = self.embedding.weight
        return F.normalize(w, dim=1) if self.config.l2_norm else w

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """``(B, h, w)`` code indices -> ``(B, d, h, w)`` code vectors."""
        return F.embedding(indices, self.codebook()).permute(0, 3, 1, 2).contiguous()

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the nearest code (squared L2) for each row of ``flat`` ``(N, d)``."""
        # fp32 even under bf16 autocast: the argmin is sensitive to rounding of the distances
        with torch.autocast(device_type=flat.device.type, enabled=False):
            flat, cb = flat.float(), self.codebook().float()
            # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2, without materialising (N, K, d)
            d2 = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ cb.t() + cb.pow(2).sum(1)[None]
        return d2.argmin(1)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Quantize ``z`` ``(B, d, h, w)``.

        Returns:
            ``z_q`` with a straight-through gradient to ``z``, the VQ loss (scalar), and an
            info dict with ``indices`` ``(B, h, w)`` and ``perplexity``.
        """
        B, D, H, W = z.shape
        z = z.float()
        flat = z.permute(0, 2, 3, 1).reshape(-1, D)  # (B*h*w, d)
        if self.config.l2_norm:
            flat = F.normalize(flat, dim=1)
        if self.training and self.config.kmeans_init and not self._is_initialized():
            self._kmeans_init(flat.detach())
        idx = self.nearest(flat.detach())
        zq_flat = F.embedding(idx, self.codebook())
        commit = F.mse_loss(flat, zq_flat.detach())
        loss = self.config.beta * commit
        if not self.config.ema:
            loss = loss + F.mse_loss(zq_flat, flat.detach())
        if self.training:
            self._update_stats(flat.detach(), idx)
        zq_flat = flat + (zq_flat - flat).detach()  # straight-through estimator
        z_q = zq_flat.view(B, H, W, D).permute(0, 3, 1, 2).contiguous()
        counts = torch.bincount(idx, minlength=self.num_codes).float()
        probs = counts / counts.sum()
        perplexity = torch.exp(-(probs * torch.log(probs.clamp_min(1e-10))).sum())
        return z_q, loss, {"indices": idx.view(B, H, W), "perplexity": perplexity, "commit": commit.detach()}

    def _is_initialized(self) -> bool:
        if not self._known_initialized:
            self._known_initialized = bool(self.initialized)
        return self._known_initialized

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._known_initialized = False  # the loaded state may be an uninitialized one: read it again

    # -- training-time codebook maintenance ---------------------------------------------
    @torch.no_grad()
    def _kmeans_init(self, flat: torch.Tensor) -> None:
        """Lloyd's k-means on one batch of encoder outputs seeds the codebook."""
        K = self.num_codes
        pick = torch.randint(0, flat.shape[0], (K,), device=flat.device)
        centers = flat[pick] + 1e-4 * torch.randn(K, flat.shape[1], device=flat.device)
        for _ in range(self.config.kmeans_iters):
            assign = torch.cdist(flat, centers).argmin(1)
            sums = torch.zeros_like(centers).index_add_(0, assign, flat)
            cnt = torch.bincount(assign, minlength=K).float()
            filled = cnt > 0
            centers[filled] = sums[filled] / cnt[filled, None]
        self._set_codes(torch.arange(K, device=flat.device), _from_rank0(centers))
        self.initialized.fill_(True)
        self._known_initialized = True

    @torch.no_grad()
    def _set_codes(self, which: torch.Tensor, vectors: torch.Tensor) -> None:
        self.embedding.weight[which] = vectors.to(self.embedding.weight.dtype)
        if self.config.ema:
            self.ema_sum[which] = vectors
            self.ema_count[which] = 1.0

    @torch.no_grad()
    def _update_stats(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        c = self.config
        counts = _sum_over_ranks(torch.bincount(idx, minlength=c.num_codes))
        self.code_age.add_(1).masked_fill_(counts > 0, 0)
        self.ever_used |= counts > 0
        keep = torch.randperm(flat.shape[0], device=flat.device)[: c.reservoir // 4]
        self.recent = torch.cat([flat[keep], self.recent.to(flat.device)])[: c.reservoir]
        if c.ema:
            self._ema_update(flat, idx, counts.float())
        if c.dead_restart:
            self._restart_dead()

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor) -> None:
        d = self.config.ema_decay
        sums = _sum_over_ranks(torch.zeros_like(self.ema_sum).index_add_(0, idx, flat))
        self.ema_count.mul_(d).add_(counts, alpha=1 - d)
        self.ema_sum.mul_(d).add_(sums, alpha=1 - d)
        # Laplace smoothing keeps rarely used codes from dividing by ~0
        n = self.ema_count.sum()
        smoothed = (self.ema_count + 1e-5) / (n + self.num_codes * 1e-5) * n
        self.embedding.weight.copy_(self.ema_sum / smoothed[:, None])

    @torch.no_grad()
    def _restart_dead(self) -> None:
        dead = (self.code_age >= self.config.dead_after).nonzero().flatten()
        if dead.numel() == 0 or self.recent.shape[0] == 0:
            return
        pick = torch.randint(0, self.recent.shape[0], (dead.numel(),), device=dead.device)
        noise = 1e-3 * self.recent.std() * torch.randn(dead.numel(), self.config.dim, device=dead.device)
        # the dead set is the same on every rank (global counts); the new codes are rank 0's
        self._set_codes(dead, _from_rank0(self.recent[pick] + noise))
        self.code_age[dead] = 0

    @torch.no_grad()
    def sync(self) -> None:
        """Under ``torch.distributed``, make every rank hold rank 0's codebook (and EMA state).

        The statistics are already global (see the module docstring); this guards against
        float drift between ranks. The trainer calls it after every step (via the task's
        ``on_step_end``). A no-op in a single process.
        """
        if _world_size() > 1:
            _from_rank0(self.embedding.weight.data)
            if self.config.ema:
                _from_rank0(self.ema_sum)
                _from_rank0(self.ema_count)

    def usage(self) -> float:
        """Fraction of codes used within the last ``usage_window`` training steps."""
        return float(self.usage_tensor())

    def usage_tensor(self) -> torch.Tensor:
        """:meth:`usage` as a 0-d tensor on the codebook's device: for logging at every
        training step without a host sync (the Trainer reads a step's numbers back at once)."""
        used = (self.code_age < self.config.usage_window) & self.ever_used
        return used.float().mean()


class CodebookStats(nn.Module):
    """A quantizer's training-time statistics as a module of their own, for training checkpoints.

    Code ages, the codes ever used and the reservoir of recent encoder outputs are not part
    of the model files (non-persistent buffers), yet dead-code restarts and :meth:`usage`
    depend on them: a resumed run without them restarts other codes at other steps. The
    Trainer checkpoints this module's state dict beside the model's. The reservoir is stored
    zero-padded to its full size with a count, so that every shape is fixed.
    """

    NAMES = ("code_age", "ever_used", "recent", "recent_count")

    def __init__(self, quantizer: VectorQuantizer) -> None:
        super().__init__()
        self._quantizer = [quantizer]  # in a list: not a submodule (its weights belong to the model)

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        q = self._quantizer[0]
        recent = q.recent.new_zeros(q.config.reservoir, q.config.dim)  # (reservoir, d)
        recent[: q.recent.shape[0]] = q.recent
        destination[prefix + "code_age"] = q.code_age
        destination[prefix + "ever_used"] = q.ever_used
        destination[prefix + "recent"] = recent
        destination[prefix + "recent_count"] = torch.tensor(q.recent.shape[0])

    def _load_from_state_dict(self, state_dict: dict, prefix: str, local_metadata, strict: bool,
                              missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
        missing = [prefix + n for n in self.NAMES if prefix + n not in state_dict]
        if missing:
            missing_keys.extend(missing)
            return
        q = self._quantizer[0]
        with torch.no_grad():
            q.code_age.copy_(state_dict[prefix + "code_age"])
            q.ever_used.copy_(state_dict[prefix + "ever_used"])
            n = int(state_dict[prefix + "recent_count"])
            q.recent = state_dict[prefix + "recent"][:n].to(q.code_age.device, q.recent.dtype).clone()
