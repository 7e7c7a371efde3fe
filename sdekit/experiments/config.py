"""An experiment config (a plain JSON dict) → dataset, covariance, SDE, U-Net.

Keys (all recorded in ``config.json`` and in every checkpoint):

- ``dataset``: a name in :data:`sdekit.data.DATASETS` (``cifar10``, ``fashion_mnist``,
  ``synthetic``); ``data_dir``; ``resolution``.
- ``noise``: a name in :data:`sdekit.covariance.COVARIANCES` (``isotropic``, ``gff``, …)
  and ``noise_params``, the family's parameters (e.g. ``{"alpha": 1.0}`` for GFF).
  ``noise: "data"`` is noise shaped like the training set
  (:meth:`sdekit.FourierCovariance.from_data`): :func:`complete_from_data` measures it
  once and records its spectrum in ``noise_params``.
- ``beta_start``, ``beta_end``, ``num_timesteps``: the DDPM chain, embedded exactly by
  :meth:`sdekit.NIVPSDE.from_betas`. ``schedule``: ``"linear"`` (that chain, the default)
  or ``"aligned"``: the chain's log-SNR moved by :class:`sdekit.sde.AlignedLogSNR` so the
  per-mode SNR crossings under the noise fall where white noise's do (its ends pinned to
  the linear chain's); its knots, measured
  from the training set by :func:`complete_from_data`, go into ``schedule_params``.
- ``model``: :class:`sdekit.models.UNet` keyword arguments plus ``target``, what the net
  predicts: a name in :data:`sdekit.models.PARAMETERIZATIONS` (``"whitened"`` ε, the
  paper's; ``"correlated"`` L ε; ``"x0"``; ``"v"``; ``"edm"``; ``"gaussian-residual"``,
  :mod:`sdekit.models.parameterization`), each trained on its own loss. Old names read as
  their new ones (``"eps"`` → ``"whitened"``); a config without a target means
  ``"correlated"`` (:data:`sdekit.models.DEFAULT_TARGET`, what such runs trained). A target
  that needs statistics of the training set records them beside it (``sigma_data`` for
  ``"edm"``; ``gaussian``, the stationary Gaussian's mean image and spectrum, for
  ``"gaussian-residual"``), measured by :func:`complete_from_data` when absent.
- ``conditional``: true for a class-conditional U-Net (``num_classes`` = the dataset's,
  :data:`sdekit.data.DATASETS`), trained on the dataset's labels with label dropout
  (``train.label_dropout``) and sampled with ``y=labels`` (and classifier-free guidance).
- ``train``: :class:`sdekit.training.TrainConfig` fields.
"""

from __future__ import annotations

import torch

from ..covariance import FourierCovariance, make_covariance, power_spectrum
from ..data import DATASETS, load_dataset_by_name
from ..errors import InputError
from ..models import (
    DEFAULT_TARGET,
    PARAMETERIZATIONS,
    TARGET_ALIASES,
    UNet,
    parameterization_from_config,
)
from ..sde import NIVPSDE
from ..sde.aligned import AlignedLogSNR, chain_log_snr, fourier_eigenvalues

__all__ = [
    "event_shape",
    "noise_params",
    "model_target",
    "build_sde",
    "complete_from_data",
    "linear_betas",
    "build_model",
    "num_classes",
    "load_dataset",
    "train_config_kwargs",
]

MODEL_TARGETS = tuple(PARAMETERIZATIONS)
#: the model-config keys that belong to the target, not to the U-Net
_TARGET_KEYS = {"target"}.union(
    *(cls.config_keys + cls.data_options for cls in PARAMETERIZATIONS.values())
)
SCHEDULES = ("linear", "aligned")
DATA_NOISE = "data"


def event_shape(cfg: dict) -> tuple[int, int, int]:
    """(channels, resolution, resolution) of the config's dataset."""
    if cfg["dataset"] not in DATASETS:
        raise InputError(f"unknown dataset {cfg['dataset']!r}; valid: {', '.join(DATASETS)}")
    channels = DATASETS[cfg["dataset"]].channels
    return (channels, cfg["resolution"], cfg["resolution"])


def noise_params(cfg: dict) -> dict:
    """The covariance family's parameters (``noise_alpha``, the older key, is GFF's α)."""
    params = dict(cfg.get("noise_params") or {})
    if "noise_alpha" in cfg:
        params.setdefault("alpha", cfg["noise_alpha"])
    return params


def model_target(cfg: dict) -> str:
    """What the network predicts, by its canonical name (:data:`MODEL_TARGETS`; an old
    name such as ``"eps"`` gives its new one, ``"whitened"``; no target gives
    ``"correlated"``, L ε, what configs without one trained)."""
    target = cfg["model"].get("target", DEFAULT_TARGET)
    target = TARGET_ALIASES.get(target, target)
    if target not in MODEL_TARGETS:
        raise InputError(f"model target must be one of {MODEL_TARGETS}, got {target!r}")
    return target


def schedule_name(cfg: dict) -> str:
    """``"linear"`` (DDPM's chain, the default) or ``"aligned"``."""
    name = cfg.get("schedule", "linear")
    if name not in SCHEDULES:
        raise InputError(f"schedule must be one of {SCHEDULES}, got {name!r}")
    return name


def _sde_needs_data(cfg: dict) -> bool:
    return (cfg["noise"] == DATA_NOISE and "eigenvalues" not in noise_params(cfg)) or (
        schedule_name(cfg) == "aligned" and not cfg.get("schedule_params")
    )


def _needs_data(cfg: dict) -> bool:
    return _sde_needs_data(cfg) or PARAMETERIZATIONS[model_target(cfg)].needs_data(cfg["model"])


def complete_from_data(cfg: dict, images) -> dict:
    """Fill in what the config measures from the training set, once, so that the run's
    config.json (and every checkpoint) rebuilds the same SDE without the data:

    - ``noise: "data"``: the spectrum (and colour matrix) of
      :meth:`FourierCovariance.from_data` → ``noise_params``;
    - ``schedule: "aligned"``: the knots of :meth:`AlignedLogSNR.fit` from the images'
      power spectrum and the noise's eigenvalues → ``schedule_params``;
    - a ``model.target`` that needs statistics of the data
      (:meth:`~sdekit.models.Parameterization.needs_data`): its
      :meth:`~sdekit.models.Parameterization.from_data` under the noise, recorded by
      :meth:`~sdekit.models.Parameterization.to_config` (``"edm"``: σ_d →
      ``model.sigma_data``; ``"gaussian-residual"``: the stationary Gaussian's mean image
      and spectrum → ``model.gaussian``).

    ``images``: float tensor ``(n, C, H, W)`` in the model's range, or a callable giving
    it (called only when something is missing). Returns a new dict; ``cfg`` is unchanged.
    """
    if not _needs_data(cfg):
        return cfg
    x = images() if callable(images) else images
    cfg = {**cfg, "noise_params": dict(cfg.get("noise_params") or {})}
    if cfg["noise"] == DATA_NOISE and "eigenvalues" not in cfg["noise_params"]:
        cov = FourierCovariance.from_data(x)
        spatial = cov if isinstance(cov, FourierCovariance) else cov.spatial
        cfg["noise_params"]["eigenvalues"] = spatial.eigenvalues[0].tolist()
        if cov is not spatial:
            factor = cov.channel.factor
            cfg["noise_params"]["channel"] = (factor @ factor.T).tolist()
    if schedule_name(cfg) == "aligned" and not cfg.get("schedule_params"):
        cov = make_covariance(cfg["noise"], event_shape(cfg), **noise_params(cfg))
        ends = chain_log_snr(linear_betas(cfg))[[-1, 0]].tolist()
        fit = AlignedLogSNR.fit(power_spectrum(x), fourier_eigenvalues(cov), log_snr_range=ends)
        cfg["schedule_params"] = fit.to_dict()
    target = PARAMETERIZATIONS[model_target(cfg)]
    if target.needs_data(cfg["model"]):
        cov = make_covariance(cfg["noise"], event_shape(cfg), **noise_params(cfg))
        options = {
            k: cfg["model"][k] for k in target.data_options if cfg["model"].get(k) is not None
        }
        cfg["model"] = {**cfg["model"], **target.from_data(x, cov, **options).to_config()}
    return cfg


def linear_betas(cfg: dict) -> torch.Tensor:
    """DDPM's chain: β linear from ``beta_start`` to ``beta_end`` over ``num_timesteps``."""
    return torch.linspace(
        cfg["beta_start"], cfg["beta_end"], cfg["num_timesteps"], dtype=torch.float64
    )


def build_sde(cfg: dict) -> NIVPSDE:
    """The NI-VP SDE of the config's chain (DDPM's, or aligned) and noise covariance."""
    if _sde_needs_data(cfg):
        raise InputError(
            "the config measures its noise or schedule from the data: run it through "
            "complete_from_data(cfg, images) first"
        )
    cov = make_covariance(cfg["noise"], event_shape(cfg), **noise_params(cfg))
    betas = linear_betas(cfg)
    if schedule_name(cfg) == "aligned":
        betas = AlignedLogSNR.from_dict(cfg["schedule_params"]).betas(betas)
    return NIVPSDE.from_betas(cov, betas)


def num_classes(cfg: dict) -> int:
    """The U-Net's number of classes: the dataset's for a ``conditional`` config, else 0."""
    if not cfg.get("conditional"):
        return 0
    event_shape(cfg)  # an unknown dataset is named first
    k = DATASETS[cfg["dataset"]].num_classes
    if k < 1:
        raise InputError(f"dataset {cfg['dataset']!r} has no labels: it cannot train a "
                         f"conditional model (--conditional)")  # fmt: skip
    return k


def build_model(cfg: dict, sde: NIVPSDE) -> torch.nn.Module:
    """The U-Net as an ε-prediction model ``model(x, t) -> ε̂`` for ``sde``: the config's
    target (:func:`sdekit.models.parameterization_from_config`) wraps the net
    (:meth:`~sdekit.models.Parameterization.wrap`: the bare net for ``whitened``, a
    :class:`~sdekit.models.ParameterizedModel` otherwise)."""
    model_target(cfg)  # an unknown target is named before anything is built
    parameterization = parameterization_from_config(cfg["model"])
    c, h, _ = event_shape(cfg)
    kwargs = {k: v for k, v in cfg["model"].items() if k not in _TARGET_KEYS}
    from ..models import check_unet_kwargs

    check_unet_kwargs(kwargs, "the config's 'model' section")  # before anything is built
    kwargs.setdefault("num_classes", num_classes(cfg))
    return parameterization.wrap(UNet(in_channels=c, resolution=h, **kwargs), sde)


def load_dataset(cfg: dict, train: bool = True):
    """The config's dataset (train or test split) from the dataset registry."""
    return load_dataset_by_name(cfg["dataset"], cfg.get("data_dir"), train, cfg["resolution"])


def train_config_kwargs(cfg: dict) -> dict:
    """``TrainConfig`` keyword arguments: the config's ``train`` section (a wrapped model
    brings its own loss space and weight, which the trainer reads from it)."""
    return dict(cfg["train"])
