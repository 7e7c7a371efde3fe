"""Separable channel ⊗ spatial covariances, e.g. colour correlation ⊗ GFF."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import InputError, InputTypeError
from .base import CovarianceOperator
from .cholesky import CholeskyCovariance

__all__ = ["KroneckerCovariance"]


class KroneckerCovariance(CovarianceOperator):
    """Σ = Σ_c ⊗ Σ_s over events ``(C, *grid)`` (e.g. ``(C, H, W)``), with L = L_c ⊗ L_s.

    Cov(x[c, p], x[c', p']) = Σ_c[c, c'] · Σ_s[p, p']. Both factors stay
    structured: L x applies L_s to every channel and L_c across channels (the two
    commute), so a GFF spatial factor keeps its FFT cost. Lᵀ = L_cᵀ ⊗ L_sᵀ,
    log det Σ = |grid| log det Σ_c + C log det Σ_s.

    **Arguments:**
    - ``channel``: Σ_c as a ``(C, C)`` SPD matrix, or any operator with
      ``event_shape == (C,)``.
    - ``spatial``: any operator on one channel's grid, ``event_shape`` ``(1, *grid)`` or
      ``grid`` — ``(1, H, W)`` or ``(H, W)`` for images; a Fourier operator's grid is its
      last ``spatial_dims`` dims (so ``(1, L)`` and ``(1, D, H, W)`` too).
    """

    def __init__(self, channel, spatial: CovarianceOperator):
        if not isinstance(channel, CovarianceOperator):
            channel = CholeskyCovariance(channel)
        if not isinstance(spatial, CovarianceOperator):
            raise InputTypeError(
                f"spatial must be a CovarianceOperator, got {type(spatial).__name__}"
            )
        if len(channel.event_shape) != 1:
            raise InputError(f"channel must act on event_shape (C,), got {channel.event_shape}")
        s = tuple(spatial.event_shape)
        k = spatial.spatial_dims
        if k is None:  # white: read the legacy image layouts
            k = 2 if len(s) in (2, 3) else len(s) - 1
        if k < 1 or len(s) not in (k, k + 1) or (len(s) == k + 1 and s[0] != 1):
            layout = {1: "(1, L) or (L,)", 2: "(1, H, W) or (H, W)", 3: "(1, D, H, W) or (D, H, W)"}
            raise InputError(
                f"spatial must have event_shape {layout.get(k, '(1, *grid) or grid')} "
                f"(a {k}-dim grid), got {s}"
            )
        for a, b, what in (
            (channel.dtype, spatial.dtype, "dtype"),
            (channel.device, spatial.device, "device"),
        ):
            if a is not None and b is not None and a != b:
                raise InputError(f"channel and spatial must share a {what}: {a} vs {b}")
        self.channel = channel
        self.spatial = spatial
        self.grid = s[-k:]
        self.spatial_dims = k
        self.event_shape = (channel.event_shape[0], *self.grid)

    def _spatial(self, fn, x: Tensor) -> Tensor:
        axis = -1 - len(self.grid)  # the channel axis
        if len(self.spatial.event_shape) > len(self.grid):
            return fn(x.unsqueeze(axis)).squeeze(axis)
        return fn(x)

    def _channel(self, fn, x: Tensor) -> Tensor:
        axis = -1 - len(self.grid)
        return fn(x.movedim(axis, -1)).movedim(-1, axis)

    def _sqrt_apply(self, x: Tensor) -> Tensor:
        return self._channel(self.channel._sqrt_apply, self._spatial(self.spatial._sqrt_apply, x))

    def _sqrt_apply_t(self, x: Tensor) -> Tensor:
        y = self._spatial(self.spatial._sqrt_apply_t, x)
        return self._channel(self.channel._sqrt_apply_t, y)

    def _inv_sqrt_apply(self, x: Tensor) -> Tensor:
        y = self._spatial(self.spatial._inv_sqrt_apply, x)
        return self._channel(self.channel._inv_sqrt_apply, y)

    def _inv_sqrt_apply_t(self, x: Tensor) -> Tensor:
        y = self._spatial(self.spatial._inv_sqrt_apply_t, x)
        return self._channel(self.channel._inv_sqrt_apply_t, y)

    def logdet(self) -> Tensor:
        pixels = math.prod(self.grid)
        return pixels * self.channel.logdet() + self.event_shape[0] * self.spatial.logdet()

    def diagonal(self) -> Tensor:
        d_c = self.channel.diagonal()
        d_s = self.spatial.diagonal().reshape(self.grid)
        return d_c.reshape(-1, *[1] * len(self.grid)) * d_s

    def fourier_spectrum(self) -> Tensor | None:
        """Σ_c[c, c] · λ_s[k] when the channel factor is diagonal (channels uncorrelated) and
        the spatial factor is Fourier-diagonal; ``None`` otherwise (e.g. the correlated
        colour of :meth:`FourierCovariance.from_data`)."""
        spatial = self.spatial.fourier_spectrum()
        if spatial is None:
            return None
        channel = self.channel.to_dense()  # C × C: cheap
        variances = channel.diagonal()
        if bool((channel != torch.diag(variances)).any()):
            return None
        dtype = self.channel.dtype or spatial.dtype  # an identity channel holds no tensors
        spatial = spatial.reshape(self.grid).to(dtype=dtype)
        variances = variances.to(dtype=dtype, device=spatial.device)
        return variances.reshape(-1, *[1] * len(self.grid)) * spatial

    def __repr__(self) -> str:
        return f"KroneckerCovariance(channel={self.channel!r}, spatial={self.spatial!r})"
