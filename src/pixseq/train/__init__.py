"""The one Trainer: AdamW, warm-up + cosine, clipping, accumulation, bf16, EMA, exact resume, DDP.

Typical use::

    from pixseq.train import TrainConfig, Trainer
    history = Trainer(task, dataset, TrainConfig(steps=500), out_dir).fit(resume=args.resume)
    save_pretrained(task.model, out_dir / "model")

The recipes of each model family (``build_*``, ``fit_*``, ``train_*``) are described in
:mod:`pixseq.train.runs`.

Multi-process: run the same command under ``torchrun --nproc_per_node N``; see
``docs/slurm.sbatch`` for several nodes.
"""
from pixseq.train.config import RESUMABLE_CHANGES, TrainConfig, TrainTask
from pixseq.train.distributed import DistInfo, init_from_env
from pixseq.train.ema import EMA
from pixseq.train.files import CKPT_NAME, HISTORY_NAME
from pixseq.train.runs import TrainResult
from pixseq.train.schedule import warmup_cosine
from pixseq.train.trainer import NonFiniteError, Trainer

__all__ = ["TrainConfig", "TrainTask", "Trainer", "EMA", "DistInfo", "init_from_env", "warmup_cosine",
           "NonFiniteError", "CKPT_NAME", "HISTORY_NAME", "RESUMABLE_CHANGES",
           "TrainResult"]
