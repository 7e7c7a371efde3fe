"""An experiment config (a plain JSON dict) → dataset, covariance, SDE, U-Net.

Keys (all recorded in ``config.json`` and in every checkpoint):

- ``dataset``: a name in :data:`sdekit.data.DATASETS` (``cifar10``, ``fashion_mnist``,
  ``synthetic``); ``data_dir``; ``resolution``.
- ``noise``: a name in :data:`sdekit.covariance.COVARIANCES` (``isotropic``, ``gff``, …)
  and ``noise_params``, the family's parameters (e.g. ``{"alpha": 1.0}`` for GFF).
- ``beta_start``, ``beta_end``, ``num_timesteps``: the DDPM chain, embedded exactly by
  :meth:`sdekit.NIVPSDE.from_betas`.
- ``model``: :class:`sdekit.models.UNet` keyword arguments plus ``target``
  (``"correlated"``: the net predicts L ε and is wrapped by
  :class:`~sdekit.models.CorrelatedNoiseModel`; ``"whitened"``: it predicts ε).
- ``train``: :class:`sdekit.training.TrainConfig` fields.
"""

from __future__ import annotations

import torch

from ..covariance import CovarianceOperator, make_covariance
from ..data import DATASETS, load_dataset_by_name
from ..models import CorrelatedNoiseModel, UNet
from ..sde import NIVPSDE

__all__ = [
    "event_shape",
    "noise_params",
    "model_target",
    "build_sde",
    "build_model",
    "load_dataset",
    "train_config_kwargs",
]

MODEL_TARGETS = ("correlated", "whitened")


def event_shape(cfg: dict) -> tuple[int, int, int]:
    """(channels, resolution, resolution) of the config's dataset."""
    if cfg["dataset"] not in DATASETS:
        raise ValueError(f"unknown dataset {cfg['dataset']!r}; valid: {', '.join(DATASETS)}")
    channels = DATASETS[cfg["dataset"]].channels
    return (channels, cfg["resolution"], cfg["resolution"])


def noise_params(cfg: dict) -> dict:
    """The covariance family's parameters (``noise_alpha``, the older key, is GFF's α)."""
    params = dict(cfg.get("noise_params") or {})
    if "noise_alpha" in cfg:
        params.setdefault("alpha", cfg["noise_alpha"])
    return params


def model_target(cfg: dict) -> str:
    """What the network predicts: ``"correlated"`` (L ε, the default) or ``"whitened"`` (ε)."""
    target = cfg["model"].get("target", "correlated")
    if target not in MODEL_TARGETS:
        raise ValueError(f"model target must be one of {MODEL_TARGETS}, got {target!r}")
    return target


def build_sde(cfg: dict) -> NIVPSDE:
    """The NI-VP SDE of the config's DDPM chain and noise covariance."""
    cov = make_covariance(cfg["noise"], event_shape(cfg), **noise_params(cfg))
    betas = torch.linspace(
        cfg["beta_start"], cfg["beta_end"], cfg["num_timesteps"], dtype=torch.float64
    )
    return NIVPSDE.from_betas(cov, betas)


def build_model(cfg: dict, covariance: CovarianceOperator) -> torch.nn.Module:
    """The U-Net as an ε-prediction model ``model(x, t) -> ε̂`` for ``covariance``
    (a correlated-target net is wrapped: ε̂ = L⁻¹ net(x, t))."""
    c, h, _ = event_shape(cfg)
    kwargs = {k: v for k, v in cfg["model"].items() if k != "target"}
    net = UNet(in_channels=c, resolution=h, **kwargs)
    if model_target(cfg) == "correlated":
        return CorrelatedNoiseModel(net, covariance)
    return net


def load_dataset(cfg: dict, train: bool = True):
    """The config's dataset (train or test split) from the dataset registry."""
    return load_dataset_by_name(cfg["dataset"], cfg.get("data_dir"), train, cfg["resolution"])


def train_config_kwargs(cfg: dict) -> dict:
    """``TrainConfig`` keyword arguments: the config's ``train`` section; a correlated-target
    model trains in the correlated loss space unless the config says otherwise."""
    kwargs = dict(cfg["train"])
    if model_target(cfg) == "correlated":
        kwargs.setdefault("loss_space", "correlated")
    return kwargs
