"""A diffusers model as an sdekit (SDE, ε-model) pair, so sdekit's samplers, ``optimize_grid``,
the teleport and ``log_likelihood`` run on models trained and shared with diffusers.

The scheduler's chain is embedded exactly: ᾱ_k = Π_{j≤k}(1 − β_j) of diffusers' 0-based
timestep k is sdekit's α(t)² at t = (k + 1)/N (``NIVPSDE.from_betas``: DDPM's discrete chain,
log α interpolated monotonically between the knots). The UNet is called at the matching
fractional timestep k(t) = N t − 1 — exact at every training timestep, the sinusoidal
embedding's own interpolation between them — and its output converted to sdekit's ε:

    epsilon:       ε̂ = output
    v_prediction:  v = α ε − σ x₀  ⇒  ε̂ = σ x + α v
    sample:        x̂₀ = output     ⇒  ε̂ = (x − α x̂₀)/σ

(the forward noise of a diffusers model is white, Σ = I). A UNet that also predicts its
variance (2C output channels, ``learned``/``learned_range``) gives its first C channels.
``model_kwargs={"y": labels}`` reaches a class-conditional UNet as ``class_labels``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..covariance import IdentityCovariance
from ..errors import InputError, InputTypeError
from ..sde import NIVPSDE, batch_time, expand_to

__all__ = ["DiffusersModel", "PREDICTION_TYPES", "from_diffusers"]

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


class DiffusersModel(torch.nn.Module):
    """``model(x, t, **kwargs) -> ε̂`` around a diffusers UNet (module docstring)."""

    def __init__(self, unet, sde: NIVPSDE, num_train_timesteps: int, prediction_type: str,
                 channels: int):  # fmt: skip
        super().__init__()
        self.unet, self.sde = unet, sde
        self.num_train_timesteps, self.prediction_type = num_train_timesteps, prediction_type
        self.channels = channels

    def timestep(self, t: Tensor) -> Tensor:
        """diffusers' (fractional) timestep of sdekit's time t: k = N t − 1."""
        return t * self.num_train_timesteps - 1

    def forward(self, x: Tensor, t, **model_kwargs) -> Tensor:
        tvec = batch_time(t, x)
        kwargs = dict(model_kwargs)
        if "y" in kwargs:
            kwargs["class_labels"] = kwargs.pop("y")
        k = self.timestep(tvec).to(dtype=torch.float32 if x.dtype != torch.float64 else x.dtype)
        out = self.unet(x.to(self.unet.dtype), k, **kwargs).sample.to(x.dtype)
        out = out[:, : self.channels]
        if self.prediction_type == "epsilon":
            return out
        alpha, sigma = (expand_to(v, x) for v in self.sde.marginal(tvec))
        if self.prediction_type == "v_prediction":
            return sigma * x + alpha * out
        return (x - alpha * out) / sigma


def from_diffusers(unet, scheduler, *, event_shape=None) -> tuple[NIVPSDE, DiffusersModel]:
    """``(sde, model)`` for a diffusers UNet and its scheduler (module docstring).

    **Arguments:**
    - ``unet``: a diffusers UNet (``UNet2DModel``, ``UNet2DConditionModel``, …) called as
      ``unet(x, timestep, **kwargs).sample``.
    - ``scheduler``: its scheduler (DDPM, DDIM, DPMSolver…): ``betas``,
      ``config.num_train_timesteps`` and ``config.prediction_type`` are read.
    - ``event_shape``: (C, H, W) of a sample (default: the UNet's ``in_channels`` and
      ``sample_size``).

    **Returns:** ``(NIVPSDE.from_betas(IdentityCovariance(event_shape), betas), model)``.
    """
    betas = getattr(scheduler, "betas", None)
    config = getattr(scheduler, "config", None)
    if not isinstance(betas, Tensor) or config is None:
        raise InputTypeError(f"scheduler must be a diffusers scheduler with betas and a config, "
                             f"got {type(scheduler).__name__}")  # fmt: skip
    prediction = config.get("prediction_type", "epsilon")
    if prediction not in PREDICTION_TYPES:
        raise InputError(f"the scheduler's prediction_type {prediction!r} is not supported: "
                         f"use one of {PREDICTION_TYPES}")  # fmt: skip
    if event_shape is None:
        ucfg = getattr(unet, "config", None)
        size = ucfg and ucfg.get("sample_size")
        if ucfg is None or size is None:
            raise InputError("give event_shape=(C, H, W): the UNet's config has no sample_size")
        size = (size, size) if isinstance(size, int) else tuple(size)
        event_shape = (ucfg["in_channels"], *size)
    event_shape = tuple(int(s) for s in event_shape)
    sde = NIVPSDE.from_betas(IdentityCovariance(event_shape), betas.to(torch.float64))
    model = DiffusersModel(unet, sde, int(config["num_train_timesteps"]), prediction,
                           event_shape[0])  # fmt: skip
    return sde, model
