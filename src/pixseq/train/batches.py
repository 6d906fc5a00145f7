"""The Trainer's own sampler: seeded per-epoch permutation, sharded across ranks, drop_last.

Equivalent to ``DistributedSampler(shuffle=True, drop_last=True)`` + ``BatchSampler``, but
with the position inside the data (epoch, batch offset) as explicit state so a resumed
run draws exactly the batches the uninterrupted run would have drawn.

Epoch ``e`` uses ``randperm(N, generator=seed_e)``; rank ``r`` of ``W`` takes every W-th
index starting at ``r`` (so micro-batch ``i`` of all ranks together is the contiguous
slice ``perm[i*B*W:(i+1)*B*W]``, i.e. the same samples one process with batch ``B*W`` would
see), cut into batches of ``batch_size``; the remainder is dropped.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from pixseq.errors import PixseqError
from pixseq.runtime import notice


def batches_per_epoch(n: int, batch_size: int, world_size: int = 1) -> int:
    """Whole batches of ``batch_size`` per process in ``n`` items; none is an error (also
    checked by commands before they write anything)."""
    batches = n // (batch_size * world_size)
    if batches == 0:
        raise PixseqError(f"dataset has {n} items, fewer than one batch of {batch_size} x {world_size} "
                          f"process(es); lower the batch size or add data")
    return batches


def capped_batch_size(n: int, batch_size: int, world_size: int = 1) -> int:
    """``batch_size``, or at most ``n // world_size``: each process draws its batches from its
    share of the ``n`` items, so a larger batch would leave it no whole batch per epoch.
    Fewer items than processes is an error (no process may go without data)."""
    if n < world_size:
        raise PixseqError(f"dataset has {n} item(s), fewer than the {world_size} processes: each process needs "
                          f"at least one; add data or launch fewer processes")
    return min(batch_size, n // world_size)


def cap_batch(config: Any, n: int, world_size: int = 1) -> Any:
    """``config`` (a :class:`~pixseq.train.TrainConfig`) with its ``batch_size`` capped at the
    data: a default of 32 must work on 22 built-in photos or a folder of 5. Says so in one
    notice when it changes anything (rank 0 only); the config saved with the run holds the
    capped size, so a resume on the same data sees no change."""
    batch = capped_batch_size(n, config.batch_size, world_size)
    if batch == config.batch_size:
        return config
    if world_size > 1:
        notice(f"the training data has {n} items, {n // world_size} per process over {world_size} processes, "
               f"fewer than --batch-size {config.batch_size} per process: training with batches of {batch} "
               f"per process")
    else:
        notice(f"the training data has {n} items, fewer than --batch-size {config.batch_size}: training with "
               f"batches of {batch}")
    return dataclasses.replace(config, batch_size=batch)


def check_map_style(dataset: object) -> None:
    """PixseqError unless ``dataset`` has ``len()`` and integer indexing. Shuffling per epoch
    and resuming at an exact position both need random access; an iterable (a generator,
    an ``IterableDataset``) has neither."""
    if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
        raise PixseqError(f"the Trainer needs a map-style dataset (with __len__ and __getitem__, e.g. a list or "
                          f"torch Dataset), got {type(dataset).__name__}: shuffling and exact resume need random "
                          f"access")


def _seed(value: int) -> int:
    """``value`` as a torch generator seed (< 2**64). The products above exceed it for seeds
    from ~1.8e14 on, which the config allows (up to 2**63 - 1): the first batch failed with
    'Overflow when unpacking long long'. Smaller seeds are unchanged."""
    return value % 2**64


class BatchStream:
    """An endless stream of collated batches with resumable position."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                 num_workers: int = 0) -> None:
        check_map_style(dataset)
        self.batches_per_epoch = batches_per_epoch(len(dataset), batch_size, world_size)  # type: ignore[arg-type]
        self.dataset, self.batch_size, self.seed = dataset, batch_size, seed
        self.rank, self.world_size, self.num_workers = rank, world_size, num_workers
        self.epoch, self.offset = 0, 0
        self._iter: Iterator[Any] | None = None

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """This rank's index batches for ``epoch`` (same on every run with the same seed)."""
        g = torch.Generator().manual_seed(_seed(self.seed * 100_003 + epoch))
        perm = torch.randperm(len(self.dataset), generator=g)  # type: ignore[arg-type]
        mine = perm[self.rank::self.world_size].tolist()
        b = self.batch_size
        return [mine[i * b:(i + 1) * b] for i in range(self.batches_per_epoch)]

    def _start_epoch_iter(self) -> Iterator[Any]:
        todo = self.epoch_batches(self.epoch)[self.offset:]
        if self.num_workers == 0:
            return (default_collate([self.dataset[i] for i in idx]) for idx in todo)
        # Own generator: creating the loader must not draw from the global torch RNG,
        # or a resumed run (which creates it at a different moment) would diverge.
        g = torch.Generator().manual_seed(_seed(self.seed * 7919 + self.epoch))
        return iter(DataLoader(self.dataset, batch_sampler=todo, num_workers=self.num_workers,
                               generator=g, pin_memory=False))

    def next(self) -> Any:
        """The next batch (CPU); moves to the next epoch when this one is used up."""
        if self._iter is None:
            self._iter = self._start_epoch_iter()
        batch = next(self._iter)
        self.offset += 1
        if self.offset == self.batches_per_epoch:
            self.epoch, self.offset, self._iter = self.epoch + 1, 0, None
        return batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "offset": self.offset, "batch_size": self.batch_size,
                "world_size": self.world_size, "dataset_len": len(self.dataset)}  # type: ignore[arg-type]

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["dataset_len"] != len(self.dataset):  # type: ignore[arg-type]
            raise PixseqError(f"cannot resume exactly: the checkpoint was trained on {state['dataset_len']} items, "
                              f"this dataset has {len(self.dataset)}")  # type: ignore[arg-type]
        self.epoch, self.offset, self._iter = int(state["epoch"]), int(state["offset"]), None
