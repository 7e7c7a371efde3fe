"""Restoring images with a trained run as the prior: the recipes' ``restore`` command.

A task names the measurement y = A x + n on the run's images (docs/inverse.md):

- ``inpainting`` — the central H/2 × W/2 box is missing;
- ``superres`` — 2× super-resolution from 2×2 block means;
- ``deblur`` — a Gaussian blur of 1.5 pixels (circular);

with white noise or GFF-correlated noise (unit-mean GFF eigenvalues on y's grid; for
inpainting, the GFF over the image restricted to the observed pixels) of per-pixel standard
deviation ``noise_std`` in the model's [-1, 1] units. The posterior is sampled by
:func:`sdekit.inverse.posterior_model` with any method and sampler; PSNR and SSIM (on
[0, 1] images, torchmetrics) are reported per image against the truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..covariance import GFFCovariance, ScaledCovariance
from ..errors import InputError
from ..files import atomic_write
from ..inverse import Measurement, gaussian_kernel, posterior_model
from ..models.labels import model_num_classes
from ..sampling import sample
from ..training.images import from_uint8, save_image_grid, to_uint8
from .config import load_dataset
from .runs import open_run, unused_stem

__all__ = [
    "RESTORE_TASKS",
    "RESTORE_METHODS",
    "MEASUREMENT_NOISES",
    "Restoration",
    "task_measurement",
    "restore_run",
]

RESTORE_TASKS = ("inpainting", "superres", "deblur")
#: the command line's method names → (posterior_model method, options)
RESTORE_METHODS = {
    "pigdm": ("pigdm", {"covariance": "tweedie"}),
    "pigdm-isotropic": ("pigdm", {"covariance": "isotropic"}),
    "pigdm-alpha": ("pigdm", {"covariance": "isotropic", "weight": "alpha"}),
    "dps": ("dps", {}),
    "dps-normalized": ("dps", {"normalize": True}),
    "projection": ("projection", {}),
}
MEASUREMENT_NOISES = ("white", "gff")
BLUR_STD = 1.5


def task_measurement(task: str, event_shape, noise: str = "white", noise_std: float = 0.05,
                     dtype=torch.float32) -> Measurement:  # fmt: skip
    """The measurement of ``task`` on events ``event_shape`` (C, H, W) (module docstring)."""
    if task not in RESTORE_TASKS:
        raise InputError(f"task must be one of {RESTORE_TASKS}, got {task!r}")
    if noise not in MEASUREMENT_NOISES:
        raise InputError(
            f"the measurement noise must be one of {MEASUREMENT_NOISES}, got {noise!r}"
        )
    ok = isinstance(noise_std, (int, float)) and math.isfinite(noise_std) and noise_std > 0
    if not ok:
        raise InputError(f"noise_std (the measurement noise level) must be > 0, got {noise_std!r}")
    shape = tuple(event_shape)
    c, h, w = shape

    def level(y_shape):
        if noise == "white":
            return float(noise_std)
        return ScaledCovariance(GFFCovariance(y_shape, dtype=torch.float64), float(noise_std))

    if task == "inpainting":
        mask = torch.ones(shape, dtype=torch.bool)
        mask[:, h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2] = False
        m = Measurement.inpainting(mask, noise=level(shape))
    elif task == "superres":
        m = Measurement.downsample(2, noise=level((c, h // 2, w // 2)), event_shape=shape)
    else:
        m = Measurement.blur(gaussian_kernel(BLUR_STD), noise=level(shape), event_shape=shape)
    return m.to(dtype=dtype)


@dataclass(frozen=True)
class Restoration:
    """Truth, measurement (shown through A⁺; a blur's y as it is), restorations, per-image
    PSNR / SSIM, paths."""

    truth: Tensor
    shown: Tensor
    restored: Tensor
    psnr: Tensor
    ssim: Tensor
    png: Path
    npz: Path

    def summary(self) -> dict:
        n = self.psnr.numel()
        sd = lambda v: float(v.std()) if n > 1 else 0.0  # noqa: E731
        return {
            "n": n,
            "psnr": float(self.psnr.mean()), "psnr_sd": sd(self.psnr),
            "ssim": float(self.ssim.mean()), "ssim_sd": sd(self.ssim),
            "png": str(self.png), "npz": str(self.npz),
        }  # fmt: skip


def image_quality(restored: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    """Per-image PSNR (dB) and SSIM of images in [-1, 1], measured on [0, 1]."""
    from torchmetrics.functional.image import (
        peak_signal_noise_ratio,
        structural_similarity_index_measure,
    )

    a = ((restored.clamp(-1, 1) + 1) / 2).float().cpu()
    b = ((truth.clamp(-1, 1) + 1) / 2).float().cpu()
    psnr = torch.stack([peak_signal_noise_ratio(a[i : i + 1], b[i : i + 1], data_range=1.0)
                        for i in range(a.shape[0])])  # fmt: skip
    ssim = structural_similarity_index_measure(a, b, data_range=1.0, reduction="none")
    return psnr, ssim.reshape(-1)


def _input_images(images, cfg: dict, n: int, data_dir) -> Tensor:
    if images is None:
        data = load_dataset({**cfg, **({"data_dir": str(data_dir)} if data_dir else {})},
                            train=False)  # fmt: skip
        if n > len(data):
            raise InputError(f"n={n} is more than the test set's {len(data)} images")
        return data.batch(torch.arange(n))
    path = Path(images)
    if not path.is_file() or path.suffix != ".npz":
        raise InputError(f"images must be an .npz file with an 'images' array (as 'sample' "
                         f"writes), got {path}")  # fmt: skip
    with np.load(path, allow_pickle=False) as f:
        if "images" not in f:
            raise InputError(f"{path} has no 'images' array")
        arr = f["images"]
    if arr.dtype != np.uint8 or arr.ndim != 4:
        raise InputError(f"{path}: 'images' must be uint8 of shape (N, C, H, W), got "
                         f"{arr.dtype} {arr.shape}")  # fmt: skip
    return from_uint8(torch.from_numpy(arr[:n]))


def restore_run(run_dir, *, task: str, noise: str = "white", noise_std: float = 0.05,
                method: str = "pigdm", n: int = 8, images=None, seed: int = 0,
                sampler: str = "dpm_solver_2m", steps: int = 50, device="cpu", out=None,
                data_dir=None, progress: bool = False, method_options: dict | None = None,
                ) -> Restoration:  # fmt: skip
    """Restore ``n`` images (the test set's first, or those of an ``.npz``) measured by
    ``task`` with the run's EMA model as the prior; write a PNG (rows: truth, the measurement
    — shown through A⁺, a blur's y as it is —, the restoration) and an ``.npz`` (truth, y,
    restored as uint8 images) under ``<run_dir>/restorations/`` unless ``out`` (a path stem)
    is given."""
    if not (isinstance(n, int) and n >= 1):
        raise InputError(f"n (images to restore) must be an int >= 1, got {n!r}")
    run = open_run(run_dir, device, data_dir)
    truth = _input_images(images, run.cfg, n, data_dir).to(device)
    if tuple(truth.shape[1:]) != tuple(run.sde.event_shape):
        raise InputError(f"images have shape {tuple(truth.shape[1:])}, the run's model takes "
                         f"{tuple(run.sde.event_shape)}")  # fmt: skip
    meas = task_measurement(task, run.sde.event_shape, noise, noise_std).to(device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    y = meas.simulate(truth, g)
    model = posterior_model(run.sde, run.model, meas, y, method, **(method_options or {}))
    kwargs = {}
    k = model_num_classes(run.model)
    if k > 0:  # a conditional run restores with its unconditional branch
        kwargs["model_kwargs"] = {"y": torch.full((truth.shape[0],), k, device=device)}
    restored = sample(run.sde, model, n=truth.shape[0], sampler=sampler, steps=steps,
                      generator=g, progress=progress, device=device, **kwargs)  # fmt: skip
    # a blur's y is an image already (its A⁺ divides the noise by a spectrum near 0 at high
    # frequencies); a mask's or a downsampling's is shown through A⁺
    shown = y if task == "deblur" else meas.pinv(y) if meas.has_pinv else meas.adjoint(y)
    psnr, ssim = image_quality(restored, truth)
    name = f"{task}-{noise}{noise_std:g}-{method}-{sampler}-{steps}steps-seed{seed}"
    stem = unused_stem(Path(out) if out else Path(run_dir) / "restorations" / (
        name.replace(".", "p").replace(":", "-")))  # fmt: skip
    stem.parent.mkdir(parents=True, exist_ok=True)  # an existing grid is never overwritten
    png = save_image_grid(torch.cat([truth, shown, restored]).cpu(), stem.with_suffix(".png"),
                          nrow=truth.shape[0])  # fmt: skip
    arrays = {k: to_uint8(v.cpu()).numpy() for k, v in
              (("truth", truth), ("shown", shown), ("restored", restored))}  # fmt: skip
    npz = stem.with_suffix(".npz")
    atomic_write(npz, lambda f: np.savez_compressed(f, **arrays))
    return Restoration(truth.cpu(), shown.cpu(), restored.cpu(), psnr, ssim, png, npz)
