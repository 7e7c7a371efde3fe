"""Runs of an experiment: train (torchrun-aware) into a run folder, load its EMA model,
and draw samples from it (a PNG grid and an ``.npz`` of 8-bit images)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..files import CheckpointError, atomic_write, write_text_safely
from ..sampling import SamplingSpec
from ..training import TrainConfig, Trainer, load_checkpoint, load_state_strict
from ..training.images import save_image_grid, to_uint8
from ..training.run_folder import RunLock, check_same_run, clear_run
from .config import (
    build_model,
    build_sde,
    complete_from_data,
    load_dataset,
    train_config_kwargs,
)
from .sampling import RunSampler

log = logging.getLogger(__name__)

__all__ = [
    "train",
    "TrainedRun",
    "open_run",
    "load_trained",
    "sample_run",
    "unused_stem",
    "weights_digest",
]


def unused_stem(stem: Path) -> Path:
    """``stem``, or ``stem-2``, ``stem-3`` … : the first whose .png and .npz do not exist."""
    candidate, k = stem, 1
    while any(os.path.lexists(candidate.with_suffix(s)) for s in (".png", ".npz")):
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


def _resume_defaults() -> dict:
    """What an absent key of an older config.json means (compared on resume)."""
    fields = {f"train.{f.name}": f.default for f in dataclasses.fields(TrainConfig)}
    return {**fields, "conditional": False, "schedule": "linear"}


def train(
    cfg: dict, run_dir, resume: bool = True, device=None, old_run: str = "refuse"
) -> Trainer:
    """Train (or resume) the experiment in ``run_dir``; torchrun-aware.

    The folder is locked while training (:class:`~sdekit.training.run_folder.RunLock`: a
    second writer is refused; a folder removed or replaced under the run stops it with
    :class:`~sdekit.training.run_folder.RunFolderLostError` before its next write).
    ``config.json`` is written once, when the run is created; resuming with another
    configuration is refused with the differing keys (only the length, logging and device
    may change: :data:`~sdekit.training.run_folder.RESUMABLE_KEYS`).
    ``resume=False`` on a folder that holds a run does what ``old_run`` says: ``"refuse"``
    (the default), ``"archive"`` (move it aside) or ``"remove"``
    (:func:`~sdekit.training.run_folder.clear_run`)."""
    started = _init_distributed()
    run_dir = Path(run_dir)
    main = not dist.is_initialized() or dist.get_rank() == 0
    try:
        with RunLock(run_dir, "train", enabled=main) as lock:
            if not resume:
                if old_run == "refuse" or main:
                    clear_run(run_dir, old_run)
                if dist.is_initialized():
                    dist.barrier()  # the old run is gone before any rank looks for it
            dataset = load_dataset(cfg, train=True)
            cfg = complete_from_data(cfg, lambda: dataset.batch(torch.arange(len(dataset))))
            if resume:
                check_same_run(run_dir, cfg, _resume_defaults())
            return _train(cfg, run_dir, dataset, device, lock)
    finally:
        if started:
            dist.destroy_process_group()


def _train(cfg: dict, run_dir: Path, dataset, device, lock: RunLock) -> Trainer:
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
        sde, build_model(cfg, sde), dataset, tcfg, run_dir, device=device,
        extra_config={"experiment": cfg}, run_lock=lock,
    )  # fmt: skip
    lock.verify()  # the folder is still ours after the data and the model were built
    config_json = run_dir / "config.json"
    if trainer.is_main and not os.path.lexists(config_json):  # written once, at creation
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text_safely(config_json, json.dumps(cfg, indent=2))
    trainer.resume_if_possible()  # a fresh start finds nothing (clear_run)
    t0, start = time.perf_counter(), trainer.step
    trainer.fit()
    if trainer.is_main and trainer.step > start:
        log.info("trained %d steps in %.1f s", trainer.step - start, time.perf_counter() - t0)
    return trainer


@dataclass(frozen=True)
class TrainedRun:
    """A trained run opened for sampling: its config, SDE, EMA model and the identity of
    the weights (``"step<N>-<sha256 of the EMA tensors, 12 hex digits>"``), which keys the
    run's evaluation cells so samples of older weights are never reused."""

    cfg: dict
    sde: object
    model: torch.nn.Module
    identity: str


def weights_digest(state: dict) -> str:
    """sha256 of a state dict's tensors (names, dtypes, shapes and bytes, in name order)."""
    h = hashlib.sha256()
    for name in sorted(state):
        value = state[name]
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
            # reshape: a contiguous 1×1-conv weight saved channels-last keeps stride(-1) > 1
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def open_run(run_dir, device="cpu", data_dir=None) -> TrainedRun:
    """The run in ``run_dir`` from ``checkpoints/latest.pt`` (EMA weights); ``data_dir``
    replaces the dataset folder the run was trained with (a run moved to another machine)."""
    path = Path(run_dir) / "checkpoints" / "latest.pt"
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path} (train first, or pass --run-dir)")
    state = load_checkpoint(path, map_location=device)
    cfg = state["config"]["experiment"]
    if data_dir is not None:
        cfg = {**cfg, "data_dir": str(data_dir)}
    sde = build_sde(cfg)
    model = build_model(cfg, sde)
    ema = {k.removeprefix("module."): v for k, v in state["ema"].items() if k != "n_averaged"}
    load_state_strict(model, ema, "model (EMA weights)", path)
    sde.covariance = sde.covariance.to(device=device)
    identity = f"step{int(state['step'])}-{weights_digest(ema)[:12]}"
    return TrainedRun(cfg, sde, model.to(device).eval(), identity)


def load_trained(run_dir, device="cpu", data_dir=None):
    """``(cfg, sde, EMA model)`` of :func:`open_run`."""
    run = open_run(run_dir, device, data_dir)
    return run.cfg, run.sde, run.model


def sample_run(
    run_dir, spec: SamplingSpec, device="cpu", out=None, progress: bool = False, data_dir=None
):
    """Sample the EMA model with ``spec`` (its grid rule and teleport resolved against the
    run, :class:`~sdekit.experiments.sampling.RunSampler`); write a PNG grid and an ``.npz``
    of uint8 images. An existing grid is never overwritten: the new one gets the next free
    suffix (``…-2.png``, ``-3`` …). ``data_dir``: see :func:`open_run` (a teleport fits the
    training set). Returns ``(png path, SampleInfo)``."""
    cfg, sde, model = load_trained(run_dir, device, data_dir)
    x, info = RunSampler(cfg, sde, model, device, progress)(spec)
    name = f"{spec.sampler.replace(':', '-')}_{spec.steps}steps"
    out = unused_stem(Path(out) if out else Path(run_dir) / "samples" / name)
    png = save_image_grid(x, out.with_suffix(".png"))
    images = to_uint8(x.cpu()).numpy()
    atomic_write(out.with_suffix(".npz"), lambda f: np.savez_compressed(f, images=images))
    return png, info
