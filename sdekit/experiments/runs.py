"""Runs of an experiment: train (torchrun-aware) into a run folder, load its EMA model,
and draw samples from it (a PNG grid and an ``.npz`` of 8-bit images)."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..files import CheckpointError
from ..sampling import SamplingSpec
from ..training import TrainConfig, Trainer, load_checkpoint, load_state_strict
from ..training.images import save_image_grid, to_uint8
from .config import (
    build_model,
    build_sde,
    complete_from_data,
    load_dataset,
    train_config_kwargs,
)
from .sampling import RunSampler

log = logging.getLogger(__name__)

__all__ = ["train", "load_trained", "sample_run"]


def _unused(stem: Path) -> Path:
    """``stem``, or ``stem-2``, ``stem-3`` … : the first whose .png and .npz do not exist."""
    candidate, k = stem, 1
    while candidate.with_suffix(".png").exists() or candidate.with_suffix(".npz").exists():
        k += 1
        candidate = stem.with_name(f"{stem.name}-{k}")
    return candidate


def _init_distributed() -> bool:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend)
        return True
    return False


def train(cfg: dict, run_dir, resume: bool = True, device=None) -> Trainer:
    """Train (or resume) the experiment in ``run_dir``; torchrun-aware."""
    started = _init_distributed()
    run_dir = Path(run_dir)
    try:
        dataset = load_dataset(cfg, train=True)
        cfg = complete_from_data(cfg, lambda: dataset.batch(torch.arange(len(dataset))))
        tcfg = TrainConfig(**train_config_kwargs(cfg))
        if dist.is_initialized() and dist.get_rank() != 0:
            tcfg.progress = False
        if device is None and cfg.get("device"):
            device = cfg["device"]
        if cfg.get("data_on_device") and device not in (None, "cpu"):
            dataset = dataset.to(device)
        sde = build_sde(cfg)
        torch.manual_seed(tcfg.seed)  # the seed fixes the initial weights too
        trainer = Trainer(
            sde,
            build_model(cfg, sde),
            dataset,
            tcfg,
            run_dir,
            device=device,
            extra_config={"experiment": cfg},
        )
        if trainer.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(json.dumps(cfg, indent=2))
        if resume:
            trainer.resume_if_possible()
        t0 = time.perf_counter()
        start = trainer.step
        trainer.fit()
        if trainer.is_main and trainer.step > start:
            log.info("trained %d steps in %.1f s", trainer.step - start, time.perf_counter() - t0)
        return trainer
    finally:
        if started:
            dist.destroy_process_group()


def load_trained(run_dir, device="cpu"):
    """(cfg, sde, EMA model) from ``run_dir/checkpoints/latest.pt``."""
    path = Path(run_dir) / "checkpoints" / "latest.pt"
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path} (train first, or pass --run-dir)")
    state = load_checkpoint(path, map_location=device)
    cfg = state["config"]["experiment"]
    sde = build_sde(cfg)
    model = build_model(cfg, sde)
    ema = {k.removeprefix("module."): v for k, v in state["ema"].items() if k != "n_averaged"}
    load_state_strict(model, ema, "model (EMA weights)", path)
    sde.covariance = sde.covariance.to(device=device)
    return cfg, sde, model.to(device).eval()


def sample_run(run_dir, spec: SamplingSpec, device="cpu", out=None, progress: bool = False):
    """Sample the EMA model with ``spec`` (its grid rule and teleport resolved against the
    run, :class:`~sdekit.experiments.sampling.RunSampler`); write a PNG grid and an ``.npz``
    of uint8 images. An existing grid is never overwritten: the new one gets the next free
    suffix (``…-2.png``, ``-3`` …). Returns ``(png path, SampleInfo)``."""
    cfg, sde, model = load_trained(run_dir, device)
    x, info = RunSampler(cfg, sde, model, device, progress)(spec)
    name = f"{spec.sampler.replace(':', '-')}_{spec.steps}steps"
    out = _unused(Path(out) if out else Path(run_dir) / "samples" / name)
    png = save_image_grid(x, out.with_suffix(".png"))
    np.savez_compressed(out.with_suffix(".npz"), images=to_uint8(x.cpu()).numpy())
    return png, info
