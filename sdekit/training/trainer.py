"""The training loop: Adam with warm-up, gradient clipping, EMA, atomic checkpoints with
exact resume, JSONL/CSV metrics, PNG sample grids, and torch.distributed (DDP).

Reproducibility contract: everything random is drawn from state that goes into the
checkpoint — the batch stream (epoch, offset), one noise generator for t and ε
(the same on every rank: each rank draws the *global* batch's noise and keeps its
shard, so N processes compute exactly what one process computes on the global
batch), and the global torch RNG of every rank (dropout). Resuming from a
checkpoint therefore continues bit for bit.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .._progress import progress_bar
from ..data import BatchStream, ImageDataset
from ..errors import InputError
from ..models import model_num_classes
from ..sampling import DEFAULT_SAMPLER, DEFAULT_STEPS, SamplingSpec
from ..sde import SDE
from .checkpoint import (
    CheckpointFolder,
    capture_rng,
    check_state_keys,
    load_checkpoint,
    load_state_strict,
    restore_generator,
    restore_rng,
)
from .distributed import DistInfo
from .ema import make_ema
from .guards import StopSignals, check_finite_loss, check_finite_weights
from .images import IMAGE_RANGE
from .losses import denoising_loss, drop_labels, global_batch_noise
from .optim import make_optimizer
from .run_folder import RunLock
from .run_log import MetricsLog, write_sample_grid

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "Trainer", "MAX_TRAIN_SEED"]

#: the largest training seed (the data order is drawn from seed · 1 000 003 + epoch, which
#: must fit a 64-bit generator seed)
MAX_TRAIN_SEED = 2**32 - 1


@dataclass
class TrainConfig:
    """Hyperparameters of :class:`Trainer` (DDPM's CIFAR-10 values as defaults)."""

    steps: int = 300_000
    batch_size: int = 128  # global, over all ranks
    lr: float = 2e-4
    warmup: int = 5000
    grad_clip: float = 1.0
    ema_decay: float = 0.9999
    ema_warmup: bool = True  # decay min(ema_decay, (1 + n)/(10 + n)) after n updates
    discrete_steps: int | None = 1000  # DDPM's integer timesteps; None: t ~ U(eps, T)
    likelihood_weighting: bool = False
    loss_space: str = "whitened"  # or "correlated": the error of L ε (see losses.py)
    label_dropout: float = 0.1  # class-conditional nets: P(label → null label), for CFG
    seed: int = 0
    log_every: int = 100
    ckpt_every: int = 5000
    keep_checkpoints: int = 2
    sample_every: int = 0  # 0: never during training
    sample_n: int = 64
    sample_steps: int = DEFAULT_STEPS  # model evaluations per sample
    sample_sampler: str = DEFAULT_SAMPLER
    sample_clip_x0: float | None = IMAGE_RANGE  # data in [-1, 1]; None or 0: off
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    compile: bool = False
    channels_last: bool = False
    progress: bool = True

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise InputError(f"lr must be a finite number > 0, got {self.lr}")
        if not (isinstance(self.seed, int) and 0 <= self.seed <= MAX_TRAIN_SEED):
            raise InputError(f"seed must be an int in [0, 2**32 - 1], got {self.seed!r}")
        if not (0 <= self.label_dropout <= 1):
            raise InputError(f"label_dropout must lie in [0, 1], got {self.label_dropout}")
        if not (0 <= self.ema_decay < 1):
            raise InputError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")


class Trainer:
    """Trains ``model`` (an ε-prediction ``nn.Module``) on ``dataset`` for ``sde``.

    **Arguments:**
    - ``sde``: the forward SDE (its covariance shapes the training noise).
    - ``model``: ``model(x, t) -> ε̂``; one with an ``eps_loss_weight(t)`` method (a
      :class:`~sdekit.models.ParameterizedModel`) trains on its parameterisation's loss
      (its weight and loss space; ``config.loss_space`` applies to other models).
    - ``dataset``: an :class:`~sdekit.data.ImageDataset`.
    - ``config``: a :class:`TrainConfig`.
    - ``run_dir``: where ``checkpoints/``, ``metrics.jsonl``/``.csv`` and ``samples/`` go.
    - ``device``: default CUDA (this rank's device) if available, else CPU.
    - ``extra_config``: recorded in every checkpoint (e.g. the recipe's full config).
    - ``run_lock``: the :class:`~sdekit.training.run_folder.RunLock` on ``run_dir``, verified
      before every write (checkpoint, metrics, sample grid): a folder lost stops the run.

    Under ``torchrun`` (``torch.distributed`` initialised) the model is wrapped in
    DistributedDataParallel; only rank 0 logs, samples and writes checkpoints.
    """

    def __init__(
        self, sde: SDE, model: torch.nn.Module, dataset: ImageDataset, config: TrainConfig,
        run_dir, device=None, extra_config: dict | None = None, run_lock: RunLock | None = None,
    ):  # fmt: skip
        self.sde, self.config, self.run_dir = sde, config, Path(run_dir)
        self.before_write = None if run_lock is None else run_lock.verify
        self.extra_config = dict(extra_config or {})
        self.dist = DistInfo.current()
        self.device = torch.device(device) if device is not None else self.dist.default_device()
        if tuple(dataset.shape) != tuple(sde.event_shape):
            raise InputError(
                f"dataset images have shape {dataset.shape} but the SDE's event_shape "
                f"is {sde.event_shape}"
            )
        self.sde = copy.copy(sde)  # the caller's SDE keeps its covariance where it was
        self.sde.covariance = sde.covariance.to(device=self.device)
        torch.manual_seed(config.seed + self.dist.rank)  # dropout differs per rank
        self.model = model.to(self.device)
        # a ParameterizedModel brings its own loss; config.loss_space is for plain models
        self.loss_weight = getattr(model, "eps_loss_weight", None)
        self.loss_space = model.loss_space if self.loss_weight else config.loss_space
        self.num_classes = model_num_classes(model)  # > 0: trains on (image, label) pairs
        if self.num_classes and dataset.labels is None:
            raise InputError("the model is class-conditional but the dataset has no labels")
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = make_ema(self.model, config.ema_decay, config.ema_warmup)
        self.optimizer, self.scheduler = make_optimizer(self.model, config.lr, config.warmup)
        self.net = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.forward = torch.compile(self.net) if config.compile else self.net
        self.stream = BatchStream(
            dataset, config.batch_size, config.seed, self.dist.rank, self.dist.world_size
        )
        self.noise_gen = torch.Generator(self.device).manual_seed(config.seed + 7919)
        self.metrics = MetricsLog(self.run_dir, self.before_write)
        folder, keep = self.run_dir / "checkpoints", config.keep_checkpoints
        self.checkpoints = CheckpointFolder(folder, keep, self.before_write)
        self.step = 0
        self.last_loss = math.nan

    # ---------------------------------------------------------------- train
    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def train_step(self) -> float:
        """One optimisation step on the next global batch; returns the global mean loss."""
        cfg = self.config
        self.model.train()
        x0, y = self.stream.next_labelled() if self.num_classes else (self.stream.next(), None)
        x0 = x0.to(self.device, non_blocking=True)
        if cfg.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        shard = {"rank": self.dist.rank, "world_size": self.dist.world_size}
        t, noise = global_batch_noise(
            self.sde, x0, self.noise_gen, discrete_steps=cfg.discrete_steps,
            device=self.device, **shard,
        )  # fmt: skip
        if y is not None:  # label dropout: the null label (num_classes) trains CFG's branch
            y = drop_labels(y.to(self.device), cfg.label_dropout, self.num_classes,
                            self.noise_gen, **shard)  # fmt: skip
        amp = cfg.amp and self.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            per = denoising_loss(
                self.sde,
                self.forward,
                x0,
                t,
                noise,
                likelihood_weighting=cfg.likelihood_weighting,
                loss_space=self.loss_space,
                weight=self.loss_weight,
                model_kwargs={} if y is None else {"y": y},
            )
        loss = per.mean()
        self.last_loss = float(self.dist.mean(loss.detach()))
        check_finite_loss(self.last_loss, self.step + 1, self.scheduler.get_last_lr()[0])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update_parameters(self.model)
        self.step += 1
        return self.last_loss

    def fit(self, steps: int | None = None) -> None:
        """Train until ``steps`` (default ``config.steps``) total steps, checkpointing,
        logging and sampling on the way; a final checkpoint is always written. SIGINT /
        SIGTERM stop it after the current step, with a final checkpoint, by
        :class:`~sdekit.training.guards.TrainingInterrupted` (any rank's signal stops every
        rank at the same step); a non-finite loss or weight by
        :class:`~sdekit.training.guards.DivergenceError`, before anything is written."""
        target = self.config.steps if steps is None else steps
        with StopSignals() as stop:
            self._fit(self.config, target, stop)
        stop.raise_if_stopped(self.step, self.checkpoints.latest)

    def _fit(self, cfg: TrainConfig, target: int, stop: StopSignals) -> None:
        if self.is_main:
            self.metrics.trim(self.step)
        show = cfg.progress and self.is_main and self.step < target
        bar = progress_bar(show, total=target, initial=self.step, desc="train", unit="step")
        tick, seen = time.perf_counter(), 0
        while self.step < target and not self.dist.any(bool(stop.signum), self.device):
            loss = self.train_step()
            seen += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
            if self.is_main and (self.step % cfg.log_every == 0 or self.step == target):
                dt, lr = time.perf_counter() - tick, self.scheduler.get_last_lr()[0]
                speed = seen / dt if dt > 0 else None
                row = dict(step=self.step, loss=loss, lr=lr, steps_per_s=speed)
                self.metrics.append(row)
                tick, seen = time.perf_counter(), 0
            if self.step % cfg.ckpt_every == 0:
                self.save_checkpoint()
            if cfg.sample_every and self.step % cfg.sample_every == 0:
                self.sample_grid(self.run_dir / "samples" / f"step{self.step:07d}.png")
        if bar is not None:
            bar.close()
        self.save_checkpoint()

    # -------------------------------------------------------------- outputs
    def sample_grid(self, path, n=None, steps=None, sampler=None, seed: int = 0):
        """Sample with the EMA weights and write a PNG grid (rank 0; ``TrainConfig.sample_*``
        unless given)."""
        if not self.is_main:
            return None
        return write_sample_grid(
            self.sde, self.ema.module.eval(), path, self.sample_spec(n, steps, sampler, seed),
            self.device, before_write=self.before_write,
        )  # fmt: skip

    def sample_spec(self, n=None, steps=None, sampler=None, seed: int = 0) -> SamplingSpec:
        """The :class:`~sdekit.sampling.SamplingSpec` of the training run's sample grids."""
        cfg = self.config
        return SamplingSpec(
            sampler=sampler or cfg.sample_sampler, steps=steps or cfg.sample_steps,
            n=n or cfg.sample_n, seed=seed, clip_x0=cfg.sample_clip_x0,
            classes="all" if self.num_classes else None,  # conditional: a block per class
        )  # fmt: skip

    # ---------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        """Everything a bit-exact resume needs (collective under DDP: the RNG of every rank)."""
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "stream": self.stream.state_dict(),
            "noise_gen": self.noise_gen.get_state(),
            **capture_rng(self.dist, self.device),
            "config": {"train": asdict(self.config), **self.extra_config},
        }

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step{N}.pt`` and ``checkpoints/latest.pt`` atomically (rank 0)."""
        check_finite_weights({"model": self.model, "EMA model": self.ema}, self.step)
        state = self.state_dict()  # collective under DDP: every rank takes part
        return self.checkpoints.save(state, self.step) if self.is_main else None

    def load_checkpoint(self, path) -> None:
        """Restore everything a checkpoint holds (strict key checks; ``weights_only`` load)."""
        self.load_state_dict(load_checkpoint(path, map_location=self.device), path)

    def load_state_dict(self, state: dict, path) -> None:
        """Restore :meth:`state_dict`'s record (read from ``path``, named in errors)."""
        check_state_keys(state, path)
        load_state_strict(self.model, state["model"], "model", path)
        load_state_strict(self.ema, state["ema"], "EMA model", path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stream.load_state_dict(state["stream"])
        reseed = self.config.seed + 7919 + int(state["step"])
        restore_generator(self.noise_gen, state["noise_gen"], reseed, path)
        restore_rng(state, self.dist, self.device)
        self.step = int(state["step"])

    def resume_if_possible(self) -> bool:
        """Resume from ``checkpoints/latest.pt`` (or, if it is damaged, the newest intact
        ``step*.pt``, with a warning); True when resumed."""
        if self.is_main:
            self.checkpoints.remove_partial_writes()
        found = self.checkpoints.load_newest(map_location=self.device)
        if found is None:
            return False
        path, state = found
        self.load_state_dict(state, path)
        log.info("resumed from %s at step %d", path, self.step)
        return True
