"""The one training loop every pixseq model uses.

For every step and every *part* (one optimizer each: ``["model"]``, or ``["disc", "gen"]``
for a GAN) the Trainer zeroes all gradients, runs ``grad_accum`` micro-batches through
``task.training_step`` (forward under bf16 autocast when configured), backpropagates the
loss divided by ``grad_accum``, averages gradients over processes, clips them, and takes
an AdamW step followed by a step of the learning-rate schedule (warm-up + cosine, or
constant + linear: :mod:`pixseq.train.schedule`). Zeroing *all* modules'
gradients before each part is what keeps parts independent: the generator's loss
backpropagates through the discriminator, but only generator parameters are in the
generator's optimizer, and the discriminator's stray gradients are cleared before its turn.

Checkpoint: ``out_dir/train_state.pt``, written with ``torch.save`` through
:func:`pixseq.io.atomic_write` (temp file + rename) and read back with
``torch.load(weights_only=True)``; it holds only tensors, numbers, strings and containers:

    {"format": "pixseq-train-state", "version": 1, "step": int, "config": {...},
     "world_size": int, "parts": [...], "modules": {name: state_dict},
     "optimizers": {part: state_dict}, "schedulers": {part: state_dict},
     "ema": {name: state_dict} | None, "rng": [per-rank RNG state], "data": {epoch, offset, ...}}

``out_dir/history.jsonl`` (one JSON object per step) is brought up to date with each
checkpoint (rewritten atomically once per process, then appended) and when a NaN or a
cut-short step stops training (so the curve that led there is kept); ``out_dir/tb/`` holds
TensorBoard events. Only rank 0 writes any file.

Held-out evaluation (``eval_data``): at every checkpoint step and at the last step the
task's ``eval_step`` runs over the whole held-out set (sharded over processes, averaged per
item over all of them) on the weights that are saved (the EMA when on), in eval mode,
without gradients and without touching any RNG, so the training run is bitwise the same
with or without it; the means go into that step's record as ``eval/<name>``.

Exact resume: a fresh run seeds Python/NumPy/torch with ``config.seed + rank``; the
checkpoint restores every RNG, the data position, weights, AdamW moments and step counts,
so on CPU a resumed run is bitwise identical to an uninterrupted one (tested). On CUDA it
is as exact as the kernels are deterministic (``torch.use_deterministic_algorithms``).
With ``num_workers > 0`` random augmentations inside the dataset are not replayed exactly.
Resuming refuses changed settings other than those in ``RESUMABLE_CHANGES``.

Stopping: the first SIGINT/SIGTERM finishes the current step, saves a checkpoint and raises
``PixseqError("interrupted at step N; resume with --resume")`` (in the last step, the run
just ends as usual). A non-finite loss or
gradient norm raises :class:`NonFiniteError` before the update; the last checkpoint is kept.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import torch
from torch import nn
from torch.utils.data import default_collate

from pixseq.checkpoint import load_legacy_state, load_state_strict
from pixseq.config import to_dict
from pixseq.device import resolve_device
from pixseq.errors import PixseqError, first_line
from pixseq.io import atomic_write
from pixseq.runtime import notice, seed_everything
from pixseq.train import distributed as D
from pixseq.train.batches import BatchStream, cap_batch, check_map_style
from pixseq.train.compiling import compile_modules, is_compile_error
from pixseq.train.config import RESUMABLE_CHANGES, TrainConfig, TrainTask
from pixseq.train.ema import EMA
from pixseq.train.memorise import MemorisationWatch
from pixseq.train.files import (CKPT_NAME, FORMAT, HISTORY_NAME, TB_DIR, VERSION, check_crcs, check_writable_folder,
                                json_line, read_history)
from pixseq.train.schedule import endless_warmup, make_scheduler
from pixseq.train.signals import deferred_stop_signals
from pixseq.train.state import get_rng_state, preserved_rng, set_rng_state


class NonFiniteError(PixseqError):
    """The loss or gradient norm became NaN/inf; raised before the bad update is applied."""


class Trainer:
    """Train ``task`` on ``dataset`` with ``config``; checkpoints and logs go to ``out_dir``.

    A :class:`~pixseq.train.memorise.MemorisationWatch` runs before them: one notice when the
    run memorises its data. Callbacks are objects with any of ``on_record(trainer, step, record)`` (the step's
    record is complete, held-out scores included, and not yet logged: what a callback adds to
    it goes into ``history.jsonl`` and TensorBoard, strings as text), ``on_step_end(trainer,
    step, record)`` and ``on_checkpoint(trainer, step)``; ``step`` is the number of completed steps.
    """

    def __init__(self, task: TrainTask, dataset, config: TrainConfig, out_dir: str | os.PathLike,
                 device: str | torch.device = "cpu", callbacks: Sequence[Any] = (), eval_data=None) -> None:
        self.task, self.dataset, self.config = task, dataset, config
        # the watch first: a callback that ends the run (a time budget) must not skip its word
        self.out_dir, self.callbacks = Path(out_dir), [MemorisationWatch(), *callbacks]
        self.device = resolve_device(device)
        check_writable_folder(self.out_dir)
        self.dist = D.init_from_env(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        _check_task(task)
        self.modules: dict[str, nn.Module] = dict(task.modules())
        bad = sorted(n for n, m in self.modules.items() if not isinstance(m, nn.Module))
        if bad:
            raise PixseqError(f"task.modules() must map names to torch modules; not a module: {', '.join(bad)}")
        for m in self.modules.values():
            m.to(self.device)
        if config.compile:
            targets = task.compile_targets() if hasattr(task, "compile_targets") else self.modules.values()
            compile_modules(targets, self.device)
        self.parts = list(task.parts())
        if not self.parts:
            raise PixseqError("the task has no parts (task.parts() is empty): nothing to optimize")
        self.params = {p: _trainable(task.parameters(p), p) for p in self.parts}
        # every module's parameters, listed once: clearing their gradients by this list costs a
        # tenth of Module.zero_grad, which walks the module tree at each call (twice a part)
        self._all_params = [p for m in self.modules.values() for p in m.parameters()]
        _check_owned(self.params, self.modules)
        self.optimizers = {p: self._make_optimizer(p) for p in self.parts}
        self.schedulers = {p: make_scheduler(self.optimizers[p], config.warmup_steps, config.steps,
                                             config.min_lr_ratio, config.schedule, config.decay_start)
                           for p in self.parts}
        self.ema: EMA | None = None
        check_map_style(dataset)
        # the recipes cap it before anything is written; here for every other caller
        self.config = config = cap_batch(config, len(dataset), self.dist.world_size)
        self.stream = BatchStream(dataset, config.batch_size, config.seed, self.dist.rank,
                                  self.dist.world_size, config.num_workers)
        self.eval_data = eval_data
        if eval_data is not None:
            _check_eval_data(task, eval_data)
        self.step = 0
        self.history: list[dict] = []
        self._history_written = 0  # records of self.history already in history.jsonl (this process)
        self.last_checkpoint_step: int | None = None
        self._writer = None
        self._last_batch = None
        self._in_step = False
        self._started = False  # fit() ran once: a second fresh fit() would start from trained state

    # ------------------------------------------------------------------ set-up
    def _make_optimizer(self, part: str) -> torch.optim.AdamW:
        """AdamW with weight decay on matrices/kernels only (biases, norms, embeddings' 1-d
        tensors are not decayed, as in GPT-2/nanoGPT)."""
        cfg = self.config
        opts = {"lr": cfg.lr, "betas": cfg.betas, "weight_decay": cfg.weight_decay}
        if hasattr(self.task, "optim_overrides"):
            opts.update(self.task.optim_overrides(part))
        if hasattr(self.task, "lr_scale"):
            opts["lr"] = opts["lr"] * float(self.task.lr_scale(part))
        params = self.params[part]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": opts["weight_decay"]},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        # The fused kernel does the whole update in one pass over each tensor: 6x faster than the
        # default multi-tensor (foreach) path on CPU for a 12 M-parameter model (torch 2.14, one
        # thread), and the faster one on CUDA too; same update up to float rounding.
        fused = self.device.type in ("cpu", "cuda")
        return torch.optim.AdamW([g for g in groups if g["params"]], lr=opts["lr"], betas=tuple(opts["betas"]),
                                 fused=fused)

    def _ema_targets(self) -> dict[str, nn.Module]:
        """The modules the EMA averages: ``task.ema_modules()`` names them (a GAN's generator),
        else all of them."""
        names = self.task.ema_modules() if hasattr(self.task, "ema_modules") else list(self.modules)
        unknown = sorted(set(names) - set(self.modules))
        if unknown:
            raise PixseqError(f"task.ema_modules() names modules that are not in task.modules(): {', '.join(unknown)}")
        return {n: self.modules[n] for n in names}

    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CKPT_NAME

    def ema_state(self) -> dict[str, dict[str, torch.Tensor]] | None:
        """EMA weights ``{module name: state_dict}`` (None when EMA is off)."""
        return None if self.ema is None else self.ema.state_dict()

    # ------------------------------------------------------------------ main loop
    def fit(self, resume: bool = False) -> list[dict]:
        """Train up to ``config.steps``; returns one record per step (losses, lr, ...).

        A record's ``"step"`` is the 0-based index given to ``training_step``; TensorBoard
        and checkpoints count completed steps (index + 1).

        ``resume=True`` continues from ``out_dir/train_state.pt`` exactly where it stopped.
        At the end, EMA weights (if on) are loaded into the task's modules.
        """
        if resume:
            self.load_checkpoint()
        elif self._started:  # its modules, optimizer moments and schedule have moved on
            raise PixseqError("this Trainer has already trained: a fresh run needs a new Trainer with freshly "
                              "built modules, or continue from its checkpoint with fit(resume=True)")
        else:
            self._start_fresh()
        self._started = True
        for m in self.modules.values():
            m.train()
        pbar = self._progress_bar()
        try:
            with deferred_stop_signals() as stop:
                while self.step < self.config.steps:
                    self._run_one_step(pbar)
                    # a stop asked for in the last step: the run is done, it ends as usual
                    # (it said "interrupted", without the model, and a resume had to finish it)
                    if self.step < self.config.steps and D.any_rank(stop.requested, self.device):
                        raise KeyboardInterrupt
                self._evaluate_cut_short()
        except KeyboardInterrupt:
            self._interrupted(in_step=self._in_step)
        except NonFiniteError as exc:
            self._log_steps_past_checkpoint()
            hint = ("; resume it with a lower --lr or --grad-clip (the same settings replay the same steps)"
                    if self.last_checkpoint_step is not None else "")
            raise NonFiniteError(f"{exc}; training stopped, {self._kept()}{hint}") from None
        except RuntimeError as exc:
            if not (self.config.compile and is_compile_error(exc)):
                raise
            raise PixseqError(f"torch.compile failed at step {self.step} ({first_line(exc)}); train without --compile "
                              f"(compile=False), {self._kept()}") from None
        finally:
            pbar.close()
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        if self.last_checkpoint_step != self.step:
            self.save_checkpoint()
        if self.ema is not None:
            self.ema.copy_to(self.modules)
        return self.history

    def _kept(self) -> str:
        """What a failed run leaves: the last checkpoint (resumable) or nothing."""
        if self.last_checkpoint_step is None:
            return "no checkpoint was written yet"
        return f"last good checkpoint kept: {self.checkpoint_path} (step {self.last_checkpoint_step})"

    def _run_one_step(self, pbar) -> None:
        self._in_step = True
        record = self._train_step(self.step)
        self.step += 1
        self._in_step = False
        self.history.append(record)
        if self._eval_due():  # signals stay deferred meanwhile, so the record is never half-filled
            record.update(self.evaluate())
        for cb in self.callbacks:
            if hasattr(cb, "on_record"):
                cb.on_record(self, self.step, record)
        pbar.set_postfix_str(f"loss {record['loss']:.4g}", refresh=False)  # before the step is counted:
        pbar.update(1)  # a plain progress line written by it shows this step's loss
        self._log(record)
        every = self.config.ckpt_every
        if every and self.step % every == 0 and self.step < self.config.steps:
            self.save_checkpoint()
        for cb in self.callbacks:
            if hasattr(cb, "on_step_end"):
                cb.on_step_end(self, self.step, record)

    def _evaluate_cut_short(self) -> None:
        """A callback ended the run early (e.g. a time budget): its last step is evaluated too,
        into its record and TensorBoard (while the writer is open), like any last step."""
        last = self.history[-1] if self.history else {}
        if self.eval_data is None or not last or any(k.startswith("eval/") for k in last):
            return
        scores = self.evaluate()
        last.update(scores)
        self._add_scalars(scores)

    def _eval_due(self) -> bool:
        every = self.config.ckpt_every
        return self.eval_data is not None and (self.step == self.config.steps or bool(every and self.step % every == 0))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """``{"eval/<name>": mean}`` of ``task.eval_step`` over ``eval_data``: per-item means
        over every process's shard, on the weights that are saved (the EMA when on), in eval
        mode. Weights, modes and every RNG are restored afterwards."""
        with self._saved_weights():
            sums, count = self._eval_shard()
            # whole-set scores (a FID of samples against the held-out set): every rank calls it,
            # the task syncs its own statistics
            finish = self.task.eval_finish() if hasattr(self.task, "eval_finish") else {}
        gathered = D.gather_objects((sums, count))  # every rank gets the same means
        n = sum(c for _, c in gathered)
        keys = sorted({k for rank_sums, _ in gathered for k in rank_sums})
        out = {f"eval/{k}": sum(rank_sums.get(k, 0.0) for rank_sums, _ in gathered) / n for k in keys}
        out.update({f"eval/{k}": float(v) for k, v in finish.items()})
        return out

    def saved_weights(self):
        """A context in which the modules hold the weights that are saved (the EMA when on), in
        eval mode, with every RNG, weight and mode restored afterwards: for callbacks that look
        at the model (samples, diagnostics) without changing training."""
        return self._saved_weights()

    @contextmanager
    def _saved_weights(self) -> Iterator[None]:
        """The modules as they are saved (the EMA weights when on), in eval mode, for a look
        that must not change training: its weights, modes and every RNG come back afterwards."""
        raw = None
        if self.ema is not None:
            raw = {n: {k: v.detach().clone() for k, v in m.state_dict().items()} for n, m in self.modules.items()}
            self.ema.copy_to(self.modules)
        modes = {n: m.training for n, m in self.modules.items()}
        try:
            with preserved_rng():
                for m in self.modules.values():
                    m.eval()
                yield
        finally:
            for n, m in self.modules.items():
                m.train(modes[n])
                if raw is not None:
                    m.load_state_dict(raw[n])

    def _eval_shard(self) -> tuple[dict[str, float], int]:
        """Item-weighted sums of ``eval_step``'s scalars over this rank's share (every W-th item)."""
        mine = range(self.dist.rank, len(self.eval_data), self.dist.world_size)
        sums = eval_sums(self.task, self.eval_data, mine, self.config.batch_size, self.device, self._autocast)
        return sums, len(mine)

    def _train_step(self, step: int) -> dict:
        """One optimizer step for every part on ``grad_accum`` micro-batches."""
        t0 = time.perf_counter()
        micro = [_to_device(self.stream.next(), self.device) for _ in range(self.config.grad_accum)]
        self._last_batch = micro[-1]
        record: dict[str, Any] = {"step": step}
        for part in self.parts:
            record.update(self._update_part(part, micro, step))
        record["loss"] = record[f"loss/{self.parts[0]}"]
        if hasattr(self.task, "on_step_end"):
            self.task.on_step_end(step)
        if self.dist.enabled:  # before the EMA: every rank must average the same (rank 0's) buffers
            D.broadcast_state(self.modules.values(), buffers_only=True)
        if self.ema is not None:
            self.ema.update(self.modules)
        record.update(self._throughput(micro, time.perf_counter() - t0))
        return record

    def _update_part(self, part: str, micro: list, step: int) -> dict[str, float]:
        """Accumulate, average over ranks, clip and apply one part's gradients."""
        _clear_grads(self._all_params)
        accum = len(micro)
        loss_sum = torch.zeros((), device=self.device)
        scalar_sum: dict[str, Any] = {}
        for batch in micro:
            with self._autocast():
                loss, scalars = _loss_and_scalars(self.task.training_step(batch, step, part))
            (loss / accum).backward()
            loss_sum += loss.detach().float()
            for k, v in scalars.items():  # tensors stay on the device: no host sync mid-step
                v = v.detach().float().reshape(()) if isinstance(v, torch.Tensor) else float(v)
                scalar_sum[k] = scalar_sum.get(k, 0.0) + v
        params = self.params[part]
        keys = sorted(scalar_sum)
        stats = torch.stack([loss_sum / accum] + [torch.as_tensor(scalar_sum[k] / accum, dtype=torch.float32,
                                                                  device=self.device) for k in keys])
        n_stats = len(stats)
        if self.dist.enabled:  # every rank must send the same tensors: unused params send zeros
            # ... and which ones had a gradient, so that those none had one for stay out of the
            # update as in one process (AdamW skips a None gradient: no decay, no moment step)
            stats = torch.cat([stats, torch.tensor([p.grad is not None for p in params], dtype=torch.float32,
                                                   device=self.device)])
            for p in params:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
        stats = D.all_reduce_mean([p.grad for p in params if p.grad is not None], stats, self.dist.world_size)
        # zero gradients add nothing to the norm and stay zero when clipped: same as None
        norm = _grad_norm(params, self.config.grad_clip).detach().float().reshape(1)
        # the step's one wait for the device: the NaN check needs the numbers before the update
        values = torch.cat([stats, norm.to(stats.device)]).tolist()
        (loss_value, *scalar_values), had_grad, grad_norm = values[:n_stats], values[n_stats:-1], values[-1]
        for what, value in (("loss", loss_value), ("gradient norm", grad_norm)):
            if not math.isfinite(value):
                raise NonFiniteError(f"non-finite {what} ({value}) in part {part!r} at step {step}")
        for p, had in zip(params, had_grad):  # empty in one process
            if had == 0.0:
                p.grad = None
        lr = self.optimizers[part].param_groups[0]["lr"]
        self.optimizers[part].step()
        self.schedulers[part].step()
        _clear_grads(self._all_params)
        out = {f"loss/{part}": loss_value, f"lr/{part}": lr, f"grad_norm/{part}": grad_norm}
        out.update({f"{part}/{k}": v for k, v in zip(keys, scalar_values)})
        return out

    def _autocast(self):
        if self.config.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def _throughput(self, micro: list, seconds: float) -> dict[str, float]:
        world = self.dist.world_size
        out = {"time_s": seconds,
               "samples_per_s": self.config.batch_size * len(micro) * world / max(seconds, 1e-9)}
        if hasattr(self.task, "count_tokens"):
            tokens = sum(int(self.task.count_tokens(b)) for b in micro) * world
            out["tokens_per_s"] = tokens / max(seconds, 1e-9)
        if hasattr(self.task, "count_flops"):  # model FLOPs (no recomputation counted), all processes
            flops = sum(float(self.task.count_flops(b)) for b in micro) * world
            out["tflops_per_s"] = flops / max(seconds, 1e-9) / 1e12
        return out

    # ------------------------------------------------------------------ start / resume
    def _start_fresh(self) -> None:
        # Per-rank seeds: dropout masks and noise differ across ranks like independent samples.
        seed_everything(self.config.seed + self.dist.rank)
        D.broadcast_state(self.modules.values())  # identical start on every rank
        if self.config.ema_decay > 0:
            self.ema = EMA(self._ema_targets(), self.config.ema_decay)
        if self.dist.is_main:
            # said when the run starts, after the CLI's checks: a mistake stays the only line
            self._say_endless_warmup()
            if self.checkpoint_path.exists():  # the CLI asks for --force first; the API just says so
                notice(f"starting a fresh run: it replaces the checkpoint {self.checkpoint_path} of an earlier run")
            # an earlier run's TensorBoard events would interleave with this run's curves
            shutil.rmtree(self.out_dir / TB_DIR, ignore_errors=True)
        self.step, self.history, self.last_checkpoint_step, self._history_written = 0, [], None, 0
        self._in_step = False

    def _say_endless_warmup(self) -> None:
        message = endless_warmup(self.config.warmup_steps, self.config.steps, self.config.lr)
        if message is not None:
            notice(message)

    def load_checkpoint(self) -> None:
        """Restore everything saved by :meth:`save_checkpoint` (refuses inexact resumes)."""
        path = self.checkpoint_path
        if not path.is_file():
            raise PixseqError(f"nothing to resume: no {CKPT_NAME} in {self.out_dir}")
        check_crcs(path)
        state = load_legacy_state(path)
        try:
            self._check_compatible(state, path)
            self._restore(state, path)
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            # the right format but damaged or edited contents: a missing key, a wrong shape ...
            raise PixseqError(f"cannot resume from {path}: it is damaged or not from this pixseq "
                              f"({type(exc).__name__}: {first_line(exc)}); start a fresh run with --force") from None
        self.history = [r for r in read_history(self.out_dir / HISTORY_NAME) if r.get("step", -1) < self.step]
        self._history_written = 0  # the file may hold records past the checkpoint: rewrite it once
        self._in_step = False

    def _restore(self, state: dict, path: Path) -> None:
        """Load a compatible checkpoint's weights, optimizers, schedules, EMA, data position,
        RNG and step."""
        for name, m in self.modules.items():
            load_state_strict(m, state["modules"][name], source=str(path))
        for part in self.parts:
            scheduler = self.schedulers[part]
            base_lrs = list(scheduler.base_lrs)  # from this run's --lr (and the task's lr_scale)
            self.optimizers[part].load_state_dict(state["optimizers"][part])
            scheduler.load_state_dict(state["schedulers"][part])
            # The saved base rates are the saved run's --lr; a resume may lower it (see
            # RESUMABLE_CHANGES). Unchanged, these are the same numbers, computed the same way.
            scheduler.base_lrs = base_lrs
            for group, base in zip(scheduler.optimizer.param_groups, base_lrs):
                group["initial_lr"] = base
            _apply_schedule(scheduler)
        if self.config.ema_decay > 0:
            self.ema = EMA(self._ema_targets(), self.config.ema_decay)
            self.ema.load_state_dict(state["ema"])
        self.stream.load_state_dict(state["data"])
        set_rng_state(state["rng"][self.dist.rank])
        self.step = self.last_checkpoint_step = int(state["step"])

    def _check_compatible(self, state: dict, path: Path) -> None:
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise PixseqError(f"{path} is not a pixseq training checkpoint")
        if state.get("version") != VERSION:
            raise PixseqError(f"{path} is a version {state.get('version')!r} training checkpoint; this pixseq "
                              f"reads version {VERSION}")
        # a setting added since the checkpoint was written had its default then
        saved = {**to_dict(TrainConfig()), **state["config"]}
        now = to_dict(self.config)
        diffs = [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in now.items()
                 if k not in RESUMABLE_CHANGES and saved.get(k) != v]
        if state["world_size"] != self.dist.world_size:  # the data order and RNG streams are per rank
            diffs.append(f"processes: {state['world_size']} -> {self.dist.world_size} (launch "
                         + ("without torchrun" if state["world_size"] == 1 else
                            f"with torchrun --nproc-per-node {state['world_size']}, or as many processes over "
                            f"several nodes") + ")")
        if list(state["parts"]) != self.parts or set(state["modules"]) != set(self.modules):
            diffs.append(f"parts/modules: {state['parts']}/{sorted(state['modules'])} -> "
                         f"{self.parts}/{sorted(self.modules)}, i.e. another model, or one written by "
                         f"another pixseq version")
        if diffs:
            raise PixseqError(f"cannot resume {path} exactly, the run changed ({'; '.join(diffs)}); "
                              f"use the original settings or start a fresh run in another folder")
        if int(state["step"]) > now["steps"]:
            raise PixseqError(f"cannot resume {path}: it has already trained {state['step']} steps, more than "
                              f"--steps {now['steps']}; give --steps >= {state['step']}")
        if saved.get("steps") != now["steps"] and self.dist.is_main:
            # Allowed (to extend a run), but not silently: the cosine horizon moves, so the
            # learning rate from here on differs from both the old and a fresh run's.
            notice(f"--steps changed from {saved.get('steps')} to {now['steps']} on resume: the learning-rate "
                   f"schedule now ends at step {now['steps']} (steps already trained are kept as they are)")
            self._say_endless_warmup()  # the run said it at its start for its old last step, not this one
        for key, flag in (("lr", "--lr"), ("grad_clip", "--grad-clip")):
            if saved.get(key) != now[key] and self.dist.is_main:
                notice(f"{flag} changed from {saved.get(key)} to {now[key]} on resume: it applies from step "
                       f"{state['step']} on (steps already trained are kept as they are)")

    # ------------------------------------------------------------------ checkpoint / logs
    def save_checkpoint(self) -> Path:
        """Write the full training state (rank 0 only; all ranks must call it)."""
        rng = D.gather_objects(get_rng_state())
        if self.dist.is_main:
            state = {
                "format": FORMAT, "version": VERSION, "step": self.step, "config": to_dict(self.config),
                "world_size": self.dist.world_size, "parts": self.parts,
                "modules": {n: _cpu_state(m.state_dict()) for n, m in self.modules.items()},
                "optimizers": {p: o.state_dict() for p, o in self.optimizers.items()},
                "schedulers": {p: s.state_dict() for p, s in self.schedulers.items()},
                "ema": self.ema_state(), "rng": rng, "data": self.stream.state_dict(),
            }
            # The log first: a process killed between the two writes then leaves records past
            # the checkpoint, which a resume drops; the other order lost the records between
            # the previous checkpoint and this one for good (the resume reads them back).
            self._write_history()
            with atomic_write(self.checkpoint_path) as fh:
                torch.save(state, fh)
        D.barrier()
        self.last_checkpoint_step = self.step
        for cb in self.callbacks:
            if hasattr(cb, "on_checkpoint"):
                cb.on_checkpoint(self, self.step)
        return self.checkpoint_path

    def _write_history(self) -> None:
        """Bring ``history.jsonl`` up to the checkpoint: the first time in a process (a fresh
        run, or a resume that drops records past its checkpoint) rewrite it atomically, then
        only append the new records, so that a long run does not rewrite a growing file at
        every checkpoint. A torn append (a crash mid-write) is skipped when read back."""
        path = self.out_dir / HISTORY_NAME
        lines = [json_line(r) for r in self.history[self._history_written:]]
        if self._history_written == 0:
            with atomic_write(path, "w") as fh:
                fh.writelines(lines)
        elif lines:
            with open(path, "a", encoding="utf-8") as fh:
                fh.writelines(lines)
                fh.flush()
                os.fsync(fh.fileno())
        self._history_written = len(self.history)

    def _log_steps_past_checkpoint(self) -> None:
        """Write the records of the steps since the last checkpoint to ``history.jsonl`` when
        training stops without a checkpoint of them (a NaN, a step cut in half): the curve
        that led there is what one looks at next. A resume drops them again."""
        if self.dist.is_main and len(self.history) > self._history_written:
            self._write_history()

    def _interrupted(self, in_step: bool) -> None:
        if in_step:  # a step was cut in half: its state is inconsistent, keep the last checkpoint
            self._log_steps_past_checkpoint()
            if self.last_checkpoint_step is None:
                raise PixseqError(f"interrupted during step {self.step}, before the first checkpoint: "
                                  f"nothing to resume") from None
            raise PixseqError(f"interrupted during step {self.step}; last checkpoint is at step "
                              f"{self.last_checkpoint_step}; resume with --resume") from None
        if self.last_checkpoint_step != self.step:  # not again when this step was just saved
            self.save_checkpoint()
        raise PixseqError(f"interrupted at step {self.step}; resume with --resume") from None

    def _progress_bar(self):
        from pixseq.runtime import progress

        return progress(total=self.config.steps, initial=self.step, desc="train", unit="step")

    def _log(self, record: dict) -> None:
        cfg = self.config
        if not self.dist.is_main or cfg.log_every == 0:
            return
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # slow import: only when logging

            self._writer = SummaryWriter(str(self.out_dir / TB_DIR), purge_step=self.step)
        every_key = self.step % cfg.log_every == 0 or self.step == cfg.steps
        # held-out means whenever there are some (checkpoint steps)
        self._add_scalars({k: v for k, v in record.items()
                           if every_key or k.startswith("eval/") or isinstance(v, str)})
        # the last step too: the final model's images are the ones a run is judged by
        if (cfg.image_every and (self.step % cfg.image_every == 0 or self.step == cfg.steps)
                and hasattr(self.task, "sample_images")):
            self._writer.add_image("samples", self._image_grid(), self.step)

    def _add_scalars(self, record: dict) -> None:
        """TensorBoard points at this step for a record's numbers (rank 0, once logging started)."""
        if self._writer is None:
            return
        for k, v in record.items():
            if k not in ("step", "loss") and isinstance(v, (int, float)):
                self._writer.add_scalar(k, v, self.step)
            elif isinstance(v, str):  # e.g. a health warning: TensorBoard's text tab, at its step
                self._writer.add_text(k, v, self.step)

    @torch.no_grad()
    def _image_grid(self) -> torch.Tensor:
        """A grid of ``task.sample_images`` by the weights being saved (the EMA when on, as
        for held-out scores: the raw weights' images were not the model's), without touching
        training's weights, RNG or modes."""
        from torchvision.utils import make_grid

        with self._saved_weights():
            images = self.task.sample_images(self._last_batch).detach().float().clamp(0, 1).cpu()
        return make_grid(images, nrow=max(1, int(math.sqrt(len(images)))))


# ---------------------------------------------------------------------- helpers
def _trainable(params: Iterable[nn.Parameter], part: str) -> list[nn.Parameter]:
    """Unique parameters that require grad, in a stable order (the all-reduce relies on it)."""
    seen, out = set(), []
    for p in params:
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    if not out:
        raise PixseqError(f"training part {part!r} has no trainable parameters")
    return out


def _clear_grads(params: Iterable[nn.Parameter]) -> None:
    """``zero_grad(set_to_none=True)`` over a ready list of parameters."""
    for p in params:
        p.grad = None


def _grad_norm(params: list[nn.Parameter], clip: float) -> torch.Tensor:
    """The gradients' total L2 norm, after clipping them to ``clip`` when it is positive.

    Without clipping the gradients are only measured: ``clip_grad_norm_`` with an infinite
    bound would still multiply every gradient by 1, a pass over all of them each step.
    """
    if clip > 0:
        return torch.nn.utils.clip_grad_norm_(params, clip)
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.nn.utils.get_total_norm(grads)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _apply_schedule(scheduler: torch.optim.lr_scheduler.LambdaLR) -> None:
    """Set each param group's rate for the next step from ``scheduler``'s own (rebuilt) lambda.

    The optimizer's saved state holds the rate the saved run computed for its next step, with
    its own ``steps``; when ``steps`` changed on resume, that first resumed step ran at the
    old horizon's rate (the old floor when extending a finished run) and the new cosine only
    took over one step later. The same formula as ``LambdaLR.step``, so with unchanged
    settings the rate is bitwise the saved one."""
    for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * fn(scheduler.last_epoch)


def _cpu_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def _check_owned(params: dict[str, list[nn.Parameter]], modules: dict[str, nn.Module]) -> None:
    """Every optimized parameter must sit in one of ``task.modules()``: only those are
    checkpointed, so another would restart from its initial value on resume."""
    owned = {id(p) for m in modules.values() for p in m.parameters()}
    for part, ps in params.items():
        stray = sum(1 for p in ps if id(p) not in owned)
        if stray:
            raise PixseqError(f"part {part!r} optimizes {stray} parameter(s) that are in none of task.modules() "
                              f"({', '.join(modules)}), so they would not be checkpointed; add their module")


@torch.no_grad()
def eval_sums(task: Any, data: Any, indices: Sequence[int], batch_size: int, device: torch.device,
              autocast=nullcontext) -> dict[str, float]:
    """Item-weighted sums of ``task.eval_step``'s per-batch means over ``data[indices]``, in
    batches of ``batch_size`` (collated like training batches); divide by ``len(indices)``
    for the means. The caller sets eval mode and guards the RNG."""
    sums: dict[str, float] = {}
    indices = list(indices)
    for i in range(0, len(indices), batch_size):
        idx = indices[i:i + batch_size]
        batch = _to_device(default_collate([data[j] for j in idx]), device)
        with autocast():
            scalars = task.eval_step(batch)
        for k, v in scalars.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(idx)
    return sums


def _check_eval_data(task: Any, eval_data: Any) -> None:
    """Held-out data needs a task that can evaluate it and at least one item."""
    if not callable(getattr(task, "eval_step", None)):
        raise PixseqError(f"{type(task).__name__} has no eval_step, so it cannot evaluate held-out data")
    check_map_style(eval_data)
    if len(eval_data) == 0:
        raise PixseqError("the held-out data is empty")


def _check_task(task: Any) -> None:
    """A task lacking a method the Trainer calls is refused by name at construction (it was an
    AttributeError in the middle of the first step)."""
    missing = [m for m in ("parts", "modules", "parameters", "training_step") if not callable(getattr(task, m, None))]
    if missing:
        raise PixseqError(f"{type(task).__name__} is not a training task: it lacks {', '.join(missing)} "
                          f"(see pixseq.train.TrainTask)")


def _loss_and_scalars(out: Any) -> tuple[torch.Tensor, dict]:
    """Check what ``training_step`` returned: ``(scalar loss tensor, {name: number})``."""
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
        raise PixseqError(f"training_step must return (loss, {{name: scalar}}), got {type(out).__name__}")
    loss = out[0]
    if not (isinstance(loss, torch.Tensor) and loss.numel() == 1 and loss.requires_grad):
        what = (f"a tensor of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) and loss.numel() != 1 else
                "a tensor without gradient" if isinstance(loss, torch.Tensor) else type(loss).__name__)
        raise PixseqError(f"training_step must return a one-element loss tensor that requires grad, got {what}")
    return loss, out[1]
