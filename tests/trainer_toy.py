"""A tiny regression task for the Trainer tests (no dependency on any pixseq model).

Its training step draws from every global RNG the Trainer must checkpoint — dropout
(torch), input jitter (torch), a Python ``random`` factor and a NumPy ``np.random`` offset —
so a resume that forgets any of them produces a different loss curve.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset


def toy_data(n: int = 64, seed: int = 1) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.3
    return TensorDataset(x, y)


class ToyTask:
    """MLP regression; ``nan_at`` makes the loss NaN from that step on."""

    def __init__(self, seed: int = 0, dropout: float = 0.1, noisy: bool = True, nan_at: int | None = None) -> None:
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.GELU(), nn.Dropout(dropout), nn.Linear(16, 1))
        self.noisy, self.nan_at = noisy, nan_at
        self.seen_dtypes: set[torch.dtype] = set()

    def parts(self) -> list[str]:
        return ["model"]

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net}

    def parameters(self, part: str):
        return self.net.parameters()

    def training_step(self, batch, step: int, part: str):
        x, y = batch
        if self.noisy:
            x = x * (1.0 + 0.01 * random.random()) + 0.01 * torch.randn_like(x) + 0.001 * float(np.random.randn())
        pred = self.net(x)
        self.seen_dtypes.add(pred.dtype)
        loss = ((pred.float() - y) ** 2).mean()
        if self.nan_at is not None and step >= self.nan_at:
            loss = loss * float("nan")
        return loss, {"mae": (pred.float() - y).abs().mean().item()}

    def eval_step(self, batch) -> dict[str, float]:
        # Draws from every global RNG, as a careless task might: the Trainer must restore them.
        random.random(), np.random.randn(), torch.randn(1)
        x, y = batch
        return {"mse": ((self.net(x).float() - y) ** 2).mean().item()}

    def count_tokens(self, batch) -> int:
        return int(batch[0].numel())

    def sample_images(self, batch) -> torch.Tensor:
        # (B, 3, H, W) in [0, 1]: the inputs painted as 2x2 grey images, just to exercise the grid.
        x = torch.sigmoid(batch[0][:4]).reshape(-1, 1, 2, 2)
        return x.expand(-1, 3, -1, -1)


def weights(task: ToyTask) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in task.net.state_dict().items()}


class LatePartTask(ToyTask):
    """Two parts; ``late``'s loss leaves its parameters out before step ``start`` (as a
    VQGAN's discriminator before ``disc_start``), so they get no gradient at all then."""

    def __init__(self, start: int = 3, **kwargs) -> None:
        super().__init__(**kwargs)
        self.late, self.start = nn.Linear(4, 1), start

    def parts(self) -> list[str]:
        return ["model", "late"]

    def modules(self) -> dict[str, nn.Module]:
        return {"net": self.net, "late": self.late}

    def parameters(self, part: str):
        return self.net.parameters() if part == "model" else self.late.parameters()

    def training_step(self, batch, step: int, part: str):
        if part == "model":
            return super().training_step(batch, step, part)
        x, y = batch
        if step < self.start:
            return x.new_zeros((), requires_grad=True), {}
        return ((self.late(x) - y) ** 2).mean(), {}


class BufferTask(ToyTask):
    """A buffer updated from each batch, like BatchNorm's running statistics: under torchrun
    it differs between ranks until rank 0's is broadcast after the step."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.net.register_buffer("seen", torch.zeros(4))

    def training_step(self, batch, step: int, part: str):
        with torch.no_grad():
            self.net.seen.lerp_(batch[0].mean(0), 0.5)
        return super().training_step(batch, step, part)
