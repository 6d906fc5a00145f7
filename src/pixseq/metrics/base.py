"""The stateful-metric base class: ``update`` / ``compute`` / ``reset``, DDP-aware.

State is a dict of tensors that are *summed* across batches and processes (sums, counts,
sums of outer products ...), so accumulating over batches and across DDP ranks gives the
same answer as one big batch. Subclasses declare their state in ``__init__`` with
:meth:`add_state` and reduce it in :meth:`compute`.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


class Metric:
    """Base class for pixseq's stateful metrics."""

    #: True when a larger value means better quality.
    higher_is_better: bool = True
    #: Short name used in tables and JSON.
    name: str = "metric"

    def __init__(self) -> None:
        self._defaults: dict[str, torch.Tensor] = {}
        self._state: dict[str, torch.Tensor] = {}

    def add_state(self, name: str, default: torch.Tensor) -> None:
        """Register a summable state tensor (float64 recommended for sums)."""
        self._defaults[name] = default.clone()
        self._state[name] = default.clone()

    def __getattr__(self, item: str) -> Any:
        state = self.__dict__.get("_state", {})
        if item in state:
            return state[item]
        raise AttributeError(item)

    def _accumulate(self, name: str, value: torch.Tensor) -> None:
        cur = self._state[name]
        self._state[name] = cur + value.detach().to(device=cur.device, dtype=cur.dtype)

    def reset(self) -> None:
        """Forget everything accumulated."""
        self._state = {k: v.clone() for k, v in self._defaults.items()}

    def synced_state(self) -> dict[str, torch.Tensor]:
        """The state summed over all DDP processes (the local state when not distributed)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return dict(self._state)
        out = {}
        for k, v in self._state.items():
            t = v.clone()
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            out[k] = t
        return out

    def update(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def compute(self) -> Any:  # pragma: no cover - interface
        raise NotImplementedError
