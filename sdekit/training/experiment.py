"""An experiment = a config dict → dataset, SDE, U-Net, trainer; plus sampling and
evaluation of a trained run. The recipes are thin command lines over this module.

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
from ..metrics import log_spectrum_distance
from ..models import CorrelatedNoiseModel, UNet
from ..sampling import sample
from ..sde import NIVPSDE
from .checkpoint import load_checkpoint, load_state_strict
from .images import save_image_grid
from .trainer import TrainConfig, Trainer

log = logging.getLogger(__name__)

__all__ = [
    "build_sde",
    "build_model",
    "load_dataset",
    "train",
    "load_trained",
    "sample_run",
    "evaluate_run",
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
def _draw(sde, model, n, sampler, steps, seed, device, clip_x0, progress=False):
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
    x, info = _draw(sde, model, n, sampler, steps, seed, device, clip_x0, progress)
    out = Path(out) if out else Path(run_dir) / "samples" / f"{sampler}_{steps}steps"
    png = save_image_grid(x, out.with_suffix(".png"))
    images = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
    np.savez_compressed(out.with_suffix(".npz"), images=images)
    return png, info


def feature_extractor(cfg: dict, device="cpu"):
    """The dataset's feature extractor (Fashion-MNIST classifier or Inception-v3), or None
    with the reason logged when it is unavailable."""
    from ..metrics.features import (
        FeatureExtractorUnavailable,
        InceptionFeatures,
        load_fashion_classifier,
    )

    try:
        if cfg["dataset"] == "cifar10":
            return InceptionFeatures(device=device), "inception-v3"
        model, record = load_fashion_classifier(device=device)
        return (lambda x: model.features(x.to(device)).double().cpu()), (
            f"fashion-classifier (test accuracy {record['test_accuracy']:.4f})"
        )
    except FeatureExtractorUnavailable as err:
        log.warning("no FID / precision / recall: %s", err)
        return None, None


@torch.no_grad()
def _features(extract, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    return torch.cat([extract(chunk) for chunk in x.split(batch)])


def evaluate_run(
    run_dir,
    samplers=("ancestral", "ddim", "dpmpp_2m"),
    steps_list=(1000, 100, 50, 20, 10),
    n: int = 256,
    device="cpu",
    seed: int = 0,
    clip_x0: float | None = 1.0,
    bpd_n: int = 0,
):
    """A table over (sampler, steps): NFE, wall time, FID / precision / recall (k = 3) in
    the dataset's feature space against up to 10 000 test images (when the extractor is
    available), and the log-spectrum distance; plus test-set bits/dim of ``bpd_n`` images
    (probability-flow ODE, Hutchinson trace) when ``bpd_n > 0``."""
    from ..likelihood import bits_per_dim
    from ..metrics import FeatureStats, precision_recall

    cfg, sde, model = load_trained(run_dir, device)
    test = load_dataset(cfg, train=False)
    ref = test.batch(torch.arange(min(len(test), 10_000)))
    extract, feature_name = feature_extractor(cfg, device)
    ref_feats = ref_stats = None
    if extract is not None:
        ref_feats = _features(extract, ref)
        ref_stats = FeatureStats(ref_feats.shape[1])
        ref_stats.update(ref_feats)
    rows = []
    for name in samplers:
        for steps in steps_list:
            t0 = time.perf_counter()
            x, info = _draw(sde, model, n, name, steps, seed, device, clip_x0)
            row = {
                "sampler": name,
                "steps": steps,
                "nfe": info.nfe,
                "seconds": round(time.perf_counter() - t0, 2),
                "log_spectrum_rmse": round(log_spectrum_distance(x.cpu(), ref[:2000]), 4),
            }
            if extract is not None:
                feats = _features(extract, x.cpu())
                stats = FeatureStats(feats.shape[1])
                stats.update(feats)
                prec, rec = precision_recall(ref_feats[: max(n, 1000)], feats, k=3)
                row.update(
                    fid=round(stats.frechet_distance(ref_stats), 3),
                    precision=round(prec, 3),
                    recall=round(rec, 3),
                )
            rows.append(row)
            log.info("%s", row)
    summary = {"rows": rows, "features": feature_name, "samples_per_cell": n}
    if bpd_n > 0:
        images = test.images[:bpd_n].to(device)
        bpd, nfe = bits_per_dim(
            sde, model, images, generator=torch.Generator(device).manual_seed(seed)
        )
        summary.update(
            test_bits_per_dim=round(float(bpd.mean()), 4),
            test_bits_per_dim_se=round(float(bpd.std() / bpd_n**0.5), 4),
            bpd_images=bpd_n,
            bpd_nfe=nfe,
        )
    out = Path(run_dir) / "evaluation.json"
    out.write_text(json.dumps(summary, indent=2))
    keys = ["sampler", "steps", "nfe", "seconds", "fid", "precision", "recall", "log_spectrum_rmse"]
    keys = [k for k in keys if all(k in r for r in rows)]
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    if "test_bits_per_dim" in summary:
        lines.append(
            f"\ntest bits/dim ({bpd_n} images): {summary['test_bits_per_dim']} "
            f"± {summary['test_bits_per_dim_se']}"
        )
    if feature_name:
        lines.append(f"\nfeatures: {feature_name}; {n} samples per cell")
    (Path(run_dir) / "evaluation.md").write_text("\n".join(lines) + "\n")
    return summary
