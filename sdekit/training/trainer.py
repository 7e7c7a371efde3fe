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
import csv
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..data import BatchStream, ImageDataset
from ..sampling import sample
from ..sde import SDE
from .checkpoint import atomic_save, load_checkpoint, load_state_strict
from .images import save_image_grid
from .losses import denoising_loss, sample_training_times

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "Trainer"]


@dataclass
class TrainConfig:
    """Hyperparameters of :class:`Trainer` (DDPM's CIFAR-10 values as defaults)."""

    steps: int = 300_000
    batch_size: int = 128  # global, over all ranks
    lr: float = 2e-4
    warmup: int = 5000
    grad_clip: float = 1.0
    ema_decay: float = 0.9999
    discrete_steps: int | None = 1000  # DDPM's integer timesteps; None: t ~ U(eps, T)
    likelihood_weighting: bool = False
    loss_space: str = "whitened"  # or "correlated": the error of L ε (see losses.py)
    seed: int = 0
    log_every: int = 100
    ckpt_every: int = 5000
    keep_checkpoints: int = 2
    sample_every: int = 0  # 0: never during training
    sample_n: int = 64
    sample_steps: int = 50
    sample_sampler: str = "dpmpp_2m"
    sample_clip_x0: float | None = 1.0  # data in [-1, 1]
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    compile: bool = False
    channels_last: bool = False
    progress: bool = True

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (0 <= self.ema_decay < 1):
            raise ValueError(f"ema_decay must lie in [0, 1), got {self.ema_decay}")


@dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    enabled: bool = False
    extra: dict = field(default_factory=dict)

    @classmethod
    def current(cls) -> _Dist:
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), True)
        return cls()


class Trainer:
    """Trains ``model`` (an ε-prediction ``nn.Module``) on ``dataset`` for ``sde``.

    **Arguments:**
    - ``sde``: the forward SDE (its covariance shapes the training noise).
    - ``model``: ``model(x, t) -> ε̂``.
    - ``dataset``: an :class:`~sdekit.data.ImageDataset`.
    - ``config``: a :class:`TrainConfig`.
    - ``run_dir``: where ``checkpoints/``, ``metrics.jsonl``/``.csv`` and ``samples/`` go.
    - ``device``: default CUDA (this rank's device) if available, else CPU.
    - ``extra_config``: recorded in every checkpoint (e.g. the recipe's full config).

    Under ``torchrun`` (``torch.distributed`` initialised) the model is wrapped in
    DistributedDataParallel; only rank 0 logs, samples and writes checkpoints.
    """

    def __init__(
        self,
        sde: SDE,
        model: torch.nn.Module,
        dataset: ImageDataset,
        config: TrainConfig,
        run_dir,
        device=None,
        extra_config: dict | None = None,
    ):
        self.sde, self.config, self.run_dir = sde, config, Path(run_dir)
        self.extra_config = dict(extra_config or {})
        self.dist = _Dist.current()
        if device is None:
            device = (
                torch.device("cuda", torch.cuda.current_device())
                if torch.cuda.is_available()
                else torch.device("cpu")
            )
        self.device = torch.device(device)
        if tuple(dataset.shape) != tuple(sde.event_shape):
            raise ValueError(
                f"dataset images have shape {dataset.shape} but the SDE's event_shape "
                f"is {sde.event_shape}"
            )
        self.sde = copy.copy(sde)  # the caller's SDE keeps its covariance where it was
        self.sde.covariance = sde.covariance.to(device=self.device)
        torch.manual_seed(config.seed + self.dist.rank)  # dropout differs per rank
        self.model = model.to(self.device)
        if config.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.ema = AveragedModel(
            self.model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        warm = max(config.warmup, 1)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: min(1.0, (s + 1) / warm)
        )
        self.net = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.forward = torch.compile(self.net) if config.compile else self.net
        self.stream = BatchStream(
            dataset, config.batch_size, config.seed, self.dist.rank, self.dist.world_size
        )
        self.noise_gen = torch.Generator(self.device).manual_seed(config.seed + 7919)
        self.step = 0
        self.last_loss = math.nan

    # ---------------------------------------------------------------- train
    @property
    def is_main(self) -> bool:
        return self.dist.rank == 0

    def _global_noise(self, x0: torch.Tensor):
        """t and ε for the global batch from the shared generator; this rank's shard."""
        cfg, w = self.config, self.dist.world_size
        n = x0.shape[0] * w
        t = sample_training_times(
            self.sde,
            n,
            discrete_steps=cfg.discrete_steps,
            generator=self.noise_gen,
            device=self.device,
        )
        noise = torch.randn(
            (n, *x0.shape[1:]), generator=self.noise_gen, device=self.device, dtype=x0.dtype
        )
        lo = self.dist.rank * x0.shape[0]
        return t[lo : lo + x0.shape[0]], noise[lo : lo + x0.shape[0]]

    def train_step(self) -> float:
        """One optimisation step on the next global batch; returns the global mean loss."""
        cfg = self.config
        self.model.train()
        x0 = self.stream.next().to(self.device, non_blocking=True)
        if cfg.channels_last:
            x0 = x0.contiguous(memory_format=torch.channels_last)
        t, noise = self._global_noise(x0)
        amp = cfg.amp and self.device.type == "cuda"
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            per = denoising_loss(
                self.sde,
                self.forward,
                x0,
                t,
                noise,
                likelihood_weighting=cfg.likelihood_weighting,
                loss_space=cfg.loss_space,
            )
        loss = per.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.ema.update_parameters(self.model)
        self.step += 1
        value = loss.detach()
        if self.dist.enabled:
            dist.all_reduce(value)
            value = value / self.dist.world_size
        self.last_loss = float(value)
        return self.last_loss

    def fit(self, steps: int | None = None) -> None:
        """Train until ``steps`` (default ``config.steps``) total steps, checkpointing,
        logging and sampling on the way; a final checkpoint is always written."""
        cfg = self.config
        target = cfg.steps if steps is None else steps
        self._trim_metrics()
        bar = None
        if cfg.progress and self.is_main and self.step < target:
            from tqdm.auto import tqdm

            bar = tqdm(total=target, initial=self.step, desc="train", unit="step")
        tick, seen = time.perf_counter(), 0
        while self.step < target:
            loss = self.train_step()
            seen += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
            if self.step % cfg.log_every == 0 or self.step == target:
                dt = time.perf_counter() - tick
                self.log_metrics(
                    {
                        "step": self.step,
                        "loss": loss,
                        "lr": self.scheduler.get_last_lr()[0],
                        "steps_per_s": seen / dt if dt > 0 else math.nan,
                    }
                )
                tick, seen = time.perf_counter(), 0
            if self.step % cfg.ckpt_every == 0:
                self.save_checkpoint()
            if cfg.sample_every and self.step % cfg.sample_every == 0:
                self.sample_grid(self.run_dir / "samples" / f"step{self.step:07d}.png")
        if bar is not None:
            bar.close()
        self.save_checkpoint()

    # -------------------------------------------------------------- outputs
    def _trim_metrics(self) -> None:
        """Drop logged rows past the current step (a fresh start clears the files; a
        resume forgets what the interrupted run logged after its last checkpoint)."""
        if not self.is_main:
            return
        jl, cs = self.run_dir / "metrics.jsonl", self.run_dir / "metrics.csv"
        if not jl.exists():
            return
        rows = [json.loads(r) for r in jl.read_text().splitlines() if r.strip()]
        rows = [r for r in rows if r.get("step", 0) <= self.step]
        jl.write_text("".join(json.dumps(r) + "\n" for r in rows))
        if cs.exists():
            cs.unlink()
        for r in rows:
            self._append_csv(r)

    def _append_csv(self, row: dict) -> None:
        path = self.run_dir / "metrics.csv"
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)

    def log_metrics(self, row: dict) -> None:
        if not self.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        self._append_csv(row)
        log.info("step %d loss %.5f", row["step"], row["loss"])

    @torch.no_grad()
    def sample_grid(
        self,
        path,
        n: int | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        seed: int = 0,
    ):
        """Sample with the EMA weights and write a PNG grid (rank 0)."""
        if not self.is_main:
            return None
        cfg = self.config
        model = self.ema.module.eval()
        g = torch.Generator(self.device).manual_seed(seed)
        x = sample(
            self.sde,
            model,
            n=n or cfg.sample_n,
            sampler=sampler or cfg.sample_sampler,
            steps=steps or cfg.sample_steps,
            generator=g,
            device=self.device,
            dtype=torch.float32,
            clip_x0=cfg.sample_clip_x0,
        )
        return save_image_grid(x, path)

    # ---------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        rng = torch.get_rng_state()
        rngs = [rng]
        if self.dist.enabled:
            gathered = [None] * self.dist.world_size
            dist.all_gather_object(gathered, rng)
            rngs = gathered
        state = {
            "step": self.step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "stream": self.stream.state_dict(),
            "noise_gen": self.noise_gen.get_state(),
            "rng_cpu": rngs,
            "config": {"train": asdict(self.config), **self.extra_config},
        }
        if torch.cuda.is_available() and self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def save_checkpoint(self) -> Path | None:
        """Write ``checkpoints/step{N}.pt`` and ``checkpoints/latest.pt`` atomically (rank 0)."""
        state = self.state_dict()  # collective under DDP: every rank takes part
        if not self.is_main:
            return None
        folder = self.run_dir / "checkpoints"
        path = atomic_save(state, folder / f"step{self.step:07d}.pt")
        atomic_save(state, folder / "latest.pt")
        old = sorted(folder.glob("step*.pt"))[: -self.config.keep_checkpoints]
        for p in old:
            p.unlink()
        return path

    def load_checkpoint(self, path) -> None:
        """Restore everything a checkpoint holds (strict key checks; ``weights_only`` load)."""
        state = load_checkpoint(path, map_location=self.device)
        needed = {
            "step",
            "model",
            "ema",
            "optimizer",
            "scheduler",
            "stream",
            "noise_gen",
            "rng_cpu",
        }
        if not needed <= set(state):
            raise ValueError(f"checkpoint {path} lacks {sorted(needed - set(state))}")
        load_state_strict(self.model, state["model"], "model", path)
        load_state_strict(self.ema, state["ema"], "EMA model", path)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.stream.load_state_dict(state["stream"])
        self.noise_gen.set_state(
            state["noise_gen"].cpu() if self.device.type == "cpu" else state["noise_gen"]
        )
        rngs = state["rng_cpu"]
        torch.set_rng_state(rngs[self.dist.rank if len(rngs) > self.dist.rank else 0].cpu())
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"].cpu(), self.device)
        self.step = int(state["step"])

    def resume_if_possible(self) -> bool:
        """Load ``checkpoints/latest.pt`` if it exists; True when resumed."""
        latest = self.run_dir / "checkpoints" / "latest.pt"
        if latest.exists():
            self.load_checkpoint(latest)
            log.info("resumed from %s at step %d", latest, self.step)
            return True
        return False
