"""Multi-process data parallel: process-group set-up from ``torchrun`` variables and helpers.

Design choice: gradients are all-reduced **by hand** after backward (one flat buffer per
optimizer part) instead of wrapping modules in ``DistributedDataParallel``. DDP's reducer
assumes one forward/backward per parameter set per iteration; multi-part tasks (GANs: the
generator loss backpropagates through the discriminator, whose gradients must then be
dropped) and gradient accumulation would need ``no_sync``/``find_unused_parameters``
juggling. Averaging the gradients of exactly the parameters a part updates is simple and
correct for every task; the cost is no overlap of communication with backward, which
matters little at pixseq's model sizes. Buffers (BatchNorm statistics) are broadcast from
rank 0 after each step, as DDP does with ``broadcast_buffers=True``.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist
from torch import nn

from pixseq.errors import PixseqError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and progress bars."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_from_env(device: str | torch.device | None = None, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group described by ``torchrun``'s environment, if any.

    Reads ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``. With no
    ``WORLD_SIZE`` (or 1) this is a single process and nothing is initialised. Backend: NCCL
    when training on CUDA, Gloo on CPU. Idempotent: an existing group is reused.
    """
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise PixseqError(f"WORLD_SIZE={world} but {', '.join(missing)} not set; launch with torchrun")
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = torch.device(device).type == "cuda" if device not in (None, "auto") else torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    return DistInfo(rank, world, local_rank)


def launched_world_size() -> int:
    """Processes in this job: the joined group's size, else torchrun's ``WORLD_SIZE`` (so
    commands can check sizes before the Trainer joins the group), else 1."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def local_device(device: torch.device) -> torch.device:
    """``device`` as this process's own GPU: a bare ``cuda`` becomes ``cuda:LOCAL_RANK`` under
    torchrun (more than one process); anything else is returned unchanged.

    Until the Trainer joins the process group (which makes the local rank's GPU the current
    one), a bare ``cuda`` means GPU 0 in every process: work done before that, such as
    encoding a data set with the model, would put every rank's copy of the model and its
    activations on GPU 0 (out of memory there with several ranks, the other GPUs idle).
    """
    if device.type != "cuda" or device.index is not None or launched_world_size() <= 1:
        return device
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))


def all_reduce_mean(grads: list[torch.Tensor], stats: torch.Tensor, world_size: int) -> torch.Tensor:
    """Average ``grads`` (in place) and ``stats`` over ranks with one collective call.

    Everything is packed into one float32 buffer: fewer, larger messages are what both
    Gloo and NCCL are fast at. Returns the averaged ``stats``.
    """
    if world_size <= 1:
        return stats
    device = stats.device
    flat = torch.cat([g.reshape(-1).to(device, torch.float32) for g in grads] + [stats.float()])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset: offset + n].view_as(g))
        offset += n
    return flat[offset:]


def broadcast_state(modules: Iterable[nn.Module], buffers_only: bool = False) -> None:
    """Copy rank 0's parameters and/or buffers to every rank (identical start, synced BN stats)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return
    with torch.no_grad():
        for m in modules:
            tensors = list(m.buffers()) if buffers_only else list(m.parameters()) + list(m.buffers())
            for t in tensors:
                dist.broadcast(t.data, src=0)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on at least one (e.g. a Ctrl-C seen by one)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def gather_objects(obj: object) -> list:
    """Every rank's ``obj`` as a list indexed by rank (on every rank)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() <= 1:
        return [obj]
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for all ranks (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def shutdown(wait: bool) -> None:
    """Leave the process group, if this process joined one (the end of every command).

    ``wait``: first wait for every rank (a command that succeeded), so that no process exits,
    closing its connections, while rank 0 still writes the model; Gloo may abort a process
    whose peer went away. After an error, ranks may be stuck elsewhere: leave at once.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if wait and dist.get_world_size() > 1:
            dist.barrier()
    finally:
        dist.destroy_process_group()


def is_main_process() -> bool:
    """True on rank 0 (or without torchrun); usable before and after process-group set-up.

    CLI code uses it to keep every file write and summary line to one process.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0
