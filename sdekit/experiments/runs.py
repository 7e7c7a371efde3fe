"""An experiment = a config dict → dataset, SDE, U-Net, trainer; plus sampling of a
trained run (its evaluation is in :mod:`sdekit.training.evaluation`). The recipes are
thin command lines over these modules.

Config keys (all plain JSON values, recorded in ``config.json`` and every checkpoint):
``dataset`` ("cifar10" | "fashion_mnist" | "synthetic"), ``data_dir``, ``resolution``,
``noise`` ("gff" | "isotropic"), ``noise_alpha``, ``beta_start``, ``beta_end``,
``num_timesteps`` (the DDPM chain, embedded exactly by ``NIVPSDE.from_betas``),
``model`` (UNet keyword arguments) and ``train`` (TrainConfig fields).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..covariance import make_covariance
from ..data import gaussian_field_dataset, load_cifar10, load_fashion_mnist
from ..models import CorrelatedNoiseModel, UNet
from ..sampling import sample
from ..sde import NIVPSDE
from .checkpoint import load_checkpoint, load_state_strict
from .images import save_image_grid, to_uint8
from .trainer import TrainConfig, Trainer

log = logging.getLogger(__name__)

__all__ = [
    "build_sde",
    "build_model",
    "load_dataset",
    "train",
    "load_trained",
    "draw_samples",
    "sample_run",
]


def event_shape(cfg: dict) -> tuple[int, int, int]:
    channels = 3 if cfg["dataset"] == "cifar10" else 1
    return (channels, cfg["resolution"], cfg["resolution"])


def build_sde(cfg: dict) -> NIVPSDE:
    cov = make_covariance(cfg["noise"], event_shape(cfg), alpha=cfg.get("noise_alpha", 1.0))
    betas = torch.linspace(
        cfg["beta_start"], cfg["beta_end"], cfg["num_timesteps"], dtype=torch.float64
    )
    return NIVPSDE.from_betas(cov, betas)


def build_model(cfg: dict) -> torch.nn.Module:
    """The U-Net; with ``"target": "correlated"`` (default) it predicts L ε and is wrapped
    so that the model still returns the whitened ε̂ = L⁻¹ net(x, t)."""
    c, h, _ = event_shape(cfg)
    kwargs = dict(cfg["model"])
    target = kwargs.pop("target", "correlated")
    net = UNet(in_channels=c, resolution=h, **kwargs)
    if target == "correlated":
        return CorrelatedNoiseModel(net, build_sde(cfg).covariance)
    if target != "whitened":
        raise ValueError(f"model target must be 'correlated' or 'whitened', got {target!r}")
    return net


def load_dataset(cfg: dict, train: bool = True):
    name = cfg["dataset"]
    if name == "cifar10":
        return load_cifar10(cfg.get("data_dir") or "data", train=train)
    if name == "fashion_mnist":
        return load_fashion_mnist(cfg.get("data_dir"), train=train, resolution=cfg["resolution"])
    if name == "synthetic":
        return gaussian_field_dataset(512, event_shape(cfg), seed=0 if train else 1)
    raise ValueError(f"unknown dataset {name!r}; valid: cifar10, fashion_mnist, synthetic")


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
        train_kw = dict(cfg["train"])
        if cfg["model"].get("target", "correlated") == "correlated":
            train_kw.setdefault("loss_space", "correlated")
        tcfg = TrainConfig(**train_kw)
        if dist.is_initialized() and dist.get_rank() != 0:
            tcfg.progress = False
        if device is None and cfg.get("device"):
            device = cfg["device"]
        if cfg.get("data_on_device") and device not in (None, "cpu"):
            dataset = dataset.to(device)
        trainer = Trainer(
            build_sde(cfg),
            build_model(cfg),
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
    state = load_checkpoint(path, map_location=device)
    cfg = state["config"]["experiment"]
    model = build_model(cfg)
    ema = {k.removeprefix("module."): v for k, v in state["ema"].items() if k != "n_averaged"}
    load_state_strict(model, ema, "model (EMA weights)", path)
    sde = build_sde(cfg)
    sde.covariance = sde.covariance.to(device=device)
    return cfg, sde, model.to(device).eval()


@torch.no_grad()
def draw_samples(sde, model, n, sampler, steps, seed, device, clip_x0, progress=False):
    """float32 samples of the EMA model from a seeded generator, with the sampler's info."""
    g = torch.Generator(device).manual_seed(seed)
    return sample(
        sde,
        model,
        n=n,
        sampler=sampler,
        steps=steps,
        generator=g,
        device=device,
        dtype=torch.float32,
        progress=progress,
        return_info=True,
        clip_x0=clip_x0,
    )


@torch.no_grad()
def sample_run(
    run_dir,
    n: int = 64,
    sampler: str = "dpmpp_2m",
    steps: int = 50,
    seed: int = 0,
    device="cpu",
    out=None,
    progress: bool = False,
    clip_x0: float | None = 1.0,
):
    """Sample the EMA model; write a PNG grid and an ``.npz`` of uint8 images
    (``clip_x0=1``: the data live in [-1, 1], see :func:`sdekit.sample`)."""
    cfg, sde, model = load_trained(run_dir, device)
    x, info = draw_samples(sde, model, n, sampler, steps, seed, device, clip_x0, progress)
    out = Path(out) if out else Path(run_dir) / "samples" / f"{sampler}_{steps}steps"
    png = save_image_grid(x, out.with_suffix(".png"))
    images = to_uint8(x.cpu()).numpy()
    np.savez_compressed(out.with_suffix(".npz"), images=images)
    return png, info
