"""Covariances by name, for configs and command lines: one registry of every family.

Each entry builds an operator for an ``event_shape`` from plain (JSON-able) parameters:

- ``isotropic`` (aliases ``identity``, ``white``): :class:`IdentityCovariance`;
- ``gff``: :class:`GFFCovariance` (``alpha``, ``dc_frequency``, ``normalize``);
- ``pink`` / ``blue``: coloured power-law noise, a GFF with α = ½ (power ∝ 1/|k|) / α = −½
  (power ∝ |k|), unit mean variance;
- ``offset``: :class:`OffsetNoiseCovariance` (``strength``, diffusers' ``noise_offset``,
  default 0.1): white noise plus a per-channel constant, exact;
- ``pyramid``: pyramid (multi-resolution) noise, the stationary Fourier equivalent of its
  exact covariance (``discount`` 0.8, ``levels``; :func:`~sdekit.covariance.pyramid.
  pyramid_covariance` with ``exact=True`` gives the exact, matrix-free one);
- ``diagonal``: :class:`DiagonalCovariance` (``variances``, broadcast to the shape);
- ``fourier``: :class:`FourierCovariance` (``eigenvalues`` on the H×W grid);
- ``cholesky``: :class:`CholeskyCovariance` (``matrix``, d × d);
- ``kronecker``: :class:`KroneckerCovariance` of a colour matrix ``channel`` (C × C) and
  a spatial family named by ``spatial`` with ``spatial_params``;
- ``data``: noise shaped like the data, the spectrum (``eigenvalues``, H × W) and colour
  matrix (``channel``, C × C, for C > 1) that :meth:`FourierCovariance.from_data`
  measured; the application fills them in from the training set.

:data:`NOISE_NAMES` lists the families that need nothing but the shape (what a command
line can offer); :func:`register_covariance` adds a family.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import InputError
from .base import CovarianceOperator
from .cholesky import CholeskyCovariance
from .diagonal import DiagonalCovariance
from .fourier import FourierCovariance
from .gff import GFFCovariance
from .identity import IdentityCovariance
from .kronecker import KroneckerCovariance
from .offset import OffsetNoiseCovariance
from .pyramid import pyramid_covariance

__all__ = [
    "COVARIANCES",
    "NOISE_NAMES",
    "CovarianceFamily",
    "make_covariance",
    "register_covariance",
]


@dataclass(frozen=True)
class CovarianceFamily:
    """``build(event_shape, **params) -> CovarianceOperator``; ``shape_only``: no parameter
    is required (so a name on a command line is enough)."""

    build: Callable[..., CovarianceOperator]
    shape_only: bool
    about: str


COVARIANCES: dict[str, CovarianceFamily] = {}
_ALIASES: dict[str, str] = {}


def register_covariance(
    name: str, build, *, shape_only: bool, about: str, aliases: tuple[str, ...] = ()
) -> None:
    """Add a family under ``name`` (lower case) and its ``aliases``."""
    COVARIANCES[name] = CovarianceFamily(build, shape_only, about)
    for alias in aliases:
        _ALIASES[alias] = name


def _diagonal(event_shape, variances) -> DiagonalCovariance:
    v = torch.as_tensor(variances, dtype=torch.get_default_dtype())
    return DiagonalCovariance(v.expand(tuple(event_shape)).clone())


def _kronecker(event_shape, channel, spatial: str = "gff", spatial_params: dict | None = None):
    spatial_shape = (1, *tuple(event_shape)[1:])
    return KroneckerCovariance(
        torch.as_tensor(channel, dtype=torch.get_default_dtype()),
        make_covariance(spatial, spatial_shape, **(spatial_params or {})),
    )


register_covariance(
    "isotropic",
    lambda event_shape: IdentityCovariance(event_shape),
    shape_only=True,
    about="white noise N(0, I)",
    aliases=("identity", "white"),
)
register_covariance(
    "gff",
    lambda event_shape, **kw: GFFCovariance(event_shape, **kw),
    shape_only=True,
    about="Gaussian Free Field, λ_k ∝ |k|^-2α (the paper's)",
)
register_covariance(
    "pink",
    lambda event_shape, spatial_dims=2: GFFCovariance(
        event_shape, alpha=0.5, spatial_dims=spatial_dims
    ),
    shape_only=True,
    about="pink noise, power ∝ 1/|k| (GFF with α = ½)",
)
register_covariance(
    "blue",
    lambda event_shape, spatial_dims=2: GFFCovariance(
        event_shape, alpha=-0.5, spatial_dims=spatial_dims
    ),
    shape_only=True,
    about="blue noise, power ∝ |k| (GFF with α = −½)",
)
register_covariance(
    "offset",
    lambda event_shape, strength=0.1: OffsetNoiseCovariance(event_shape, strength),
    shape_only=True,
    about="offset noise, I + s² 11ᵀ per channel (diffusers' noise_offset s, default 0.1)",
)
register_covariance(
    "pyramid",
    lambda event_shape, discount=0.8, levels=None: pyramid_covariance(
        event_shape, discount, levels, dtype=torch.get_default_dtype()
    ),
    shape_only=True,
    about="pyramid noise Σ ∝ I + Σ_i d^2i U_i U_iᵀ, its stationary Fourier equivalent",
)
register_covariance("diagonal", _diagonal, shape_only=False, about="per-element variances")
register_covariance(
    "fourier",
    lambda event_shape, eigenvalues, spatial_dims=2: FourierCovariance(
        eigenvalues, event_shape, spatial_dims=spatial_dims
    ),
    shape_only=False,
    about="any stationary periodic spectrum",
)
register_covariance(
    "cholesky",
    lambda event_shape, matrix: CholeskyCovariance(matrix, event_shape),
    shape_only=False,
    about="a dense SPD matrix",
)
register_covariance(
    "kronecker", _kronecker, shape_only=False, about="colour matrix ⊗ a spatial family"
)


def _data_shaped(event_shape, eigenvalues, channel=None):
    dtype = torch.get_default_dtype()
    spatial_shape = (1, *tuple(event_shape)[1:])
    spatial = FourierCovariance(torch.as_tensor(eigenvalues, dtype=dtype), spatial_shape)
    if channel is None:
        if tuple(event_shape) != spatial_shape:
            raise InputError(f"a data-shaped covariance over {tuple(event_shape)} needs 'channel'")
        return spatial
    return KroneckerCovariance(torch.as_tensor(channel, dtype=dtype), spatial)


register_covariance(
    "data",
    _data_shaped,
    shape_only=False,
    about="shaped like the data: its power spectrum (⊗ its colour covariance)",
)

NOISE_NAMES = tuple(name for name, fam in COVARIANCES.items() if fam.shape_only)


def make_covariance(name: str, event_shape, **params) -> CovarianceOperator:
    """The covariance family ``name`` (see the module table) over ``event_shape``.

    **Raises:** ``ValueError`` naming the valid families for an unknown name, and the
    family's parameters when the given ones do not fit it.
    """
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in COVARIANCES:
        raise InputError(f"unknown noise {name!r}; valid: {', '.join(COVARIANCES)}")
    try:
        return COVARIANCES[key].build(event_shape, **params)
    except TypeError as err:
        raise InputError(
            f"noise {name!r} ({COVARIANCES[key].about}) cannot take parameters "
            f"{sorted(params)}: {err}"
        ) from err
