"""Covariances by name, for command lines and configs."""

from __future__ import annotations

from .base import CovarianceOperator
from .gff import GFFCovariance
from .identity import IdentityCovariance

NOISE_NAMES = ("isotropic", "gff")


def make_covariance(name: str, event_shape, alpha: float = 1.0, **kwargs) -> CovarianceOperator:
    """``"isotropic"`` (alias ``"identity"``, ``"white"``) → :class:`IdentityCovariance`;
    ``"gff"`` → :class:`GFFCovariance` with exponent ``alpha``."""
    key = name.lower()
    if key in ("isotropic", "identity", "white"):
        return IdentityCovariance(event_shape)
    if key == "gff":
        return GFFCovariance(event_shape, alpha=alpha, **kwargs)
    raise ValueError(f"unknown noise {name!r}; valid: {', '.join(NOISE_NAMES)}")
