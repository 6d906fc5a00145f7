"""Exponential moving average of weights (Polyak averaging).

``shadow = decay * shadow + (1 - decay) * weight`` after every optimizer step, for every
floating-point parameter and buffer of the trained modules; integer buffers (e.g.
BatchNorm's ``num_batches_tracked``) are copied. Sampling with EMA weights is the usual
practice for GANs and diffusion/VQ models (e.g. Karras et al., "Progressive Growing of
GANs", 2018). Kept in float32 on the modules' device.
"""
from __future__ import annotations

import torch
from torch import nn


class EMA:
    """Shadow copies of ``{name: module}`` state dicts, updated in place.

    Only modules with parameters are averaged: a module of buffers alone holds statistics,
    not weights (e.g. a VQ codebook's code ages and reservoir of recent encoder outputs,
    whose average means nothing and whose state dict is rebuilt at every call)."""

    def __init__(self, modules: dict[str, nn.Module], decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.shadow: dict[str, dict[str, torch.Tensor]] = {
            name: {k: v.detach().clone() for k, v in m.state_dict().items()}
            for name, m in modules.items() if any(True for _ in m.parameters())
        }

    @torch.no_grad()
    def update(self, modules: dict[str, nn.Module]) -> None:
        """Move the shadow towards the current weights."""
        for name, shadow in self.shadow.items():
            for k, v in modules[name].state_dict().items():
                if v.is_floating_point():
                    shadow[k].lerp_(v.detach().to(shadow[k].dtype), 1.0 - self.decay)
                else:
                    shadow[k].copy_(v)

    def state_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        """The shadow weights (CPU copies, safe for ``torch.save``)."""
        return {n: {k: v.detach().cpu().clone() for k, v in s.items()} for n, s in self.shadow.items()}

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor]]) -> None:
        """Restore shadow weights saved by :meth:`state_dict` (bitwise)."""
        for name, shadow in self.shadow.items():
            for k, v in shadow.items():
                v.copy_(state[name][k])

    @torch.no_grad()
    def copy_to(self, modules: dict[str, nn.Module]) -> None:
        """Load the shadow weights into ``modules`` (used at the end of training)."""
        for name, shadow in self.shadow.items():
            modules[name].load_state_dict(shadow, strict=True)
