"""The abstract covariance operator that every noise model in sdekit goes through.

A covariance Σ over an event of shape ``event_shape`` (d = prod(event_shape)
elements) is represented by a factor L with L Lᵀ = Σ. The public core is

* ``sqrt_apply(x)``      = L x
* ``inv_sqrt_apply(x)``  = L⁻¹ x
* ``logdet()``           = log det Σ
* ``sqrt_apply_t`` / ``inv_sqrt_apply_t`` = Lᵀ x / L⁻ᵀ x (equal to the above where L
  is symmetric).

The public methods validate their input once (type, trailing shape, dtype,
device) and call the unchecked hooks ``_sqrt_apply``, ``_inv_sqrt_apply`` (and
``_sqrt_apply_t`` / ``_inv_sqrt_apply_t`` where L is not symmetric), which are
what a subclass implements, together with ``logdet``.

The base class derives everything else once:

* ``apply(x)``  = Σ x   = L (Lᵀ x)
* ``solve(x)``  = Σ⁻¹ x = L⁻ᵀ (L⁻¹ x)
* ``sample(n)`` = L z,  z ~ N(0, I)
* ``log_prob(x)`` = -½ ‖L⁻¹ x‖² - ½ log det Σ - (d/2) log 2π
* ``to_dense()``, ``sqrt_to_dense()``, ``diagonal()``, ``.to(device, dtype)``.

``fourier_spectrum()`` gives Σ's eigenvalues in the orthonormal DFT over the last
``spatial_dims`` event dims (2 for images; 1 and 3 for signals and volumes) for the families
diagonal in it (white noise, :class:`FourierCovariance` and GFF, a Kronecker product of a
diagonal channel factor and a Fourier one), ``None`` for the others.

Inputs have shape ``(*batch, *event_shape)`` with any number of batch dims.
"""

from __future__ import annotations

import abc
import copy
import math
from collections.abc import Iterator

import torch
from torch import Tensor

from ..errors import InputError, InputTypeError

__all__ = ["CovarianceOperator"]


class CovarianceOperator(abc.ABC):
    """Abstract Gaussian covariance Σ = L Lᵀ over events of shape ``event_shape``.

    Subclasses set ``self.event_shape`` (a tuple of ints) and implement
    ``_sqrt_apply``, ``_inv_sqrt_apply`` and :meth:`logdet`; those whose factor
    L is not symmetric also implement ``_sqrt_apply_t`` and ``_inv_sqrt_apply_t``.
    The hooks receive already-validated input. Tensors held as attributes (and
    nested operators) are moved by :meth:`to` automatically.
    """

    event_shape: tuple[int, ...]
    #: The number of trailing event dims that :meth:`fourier_spectrum`'s DFT runs over
    #: (1, 2 or 3); ``None`` for an operator diagonal in every such basis (white noise).
    spatial_dims: int | None = 2

    # ------------------------------------------------- hooks for subclasses
    @abc.abstractmethod
    def _sqrt_apply(self, x: Tensor) -> Tensor:
        """L x on validated input."""

    @abc.abstractmethod
    def _inv_sqrt_apply(self, x: Tensor) -> Tensor:
        """L⁻¹ x on validated input."""

    @abc.abstractmethod
    def logdet(self) -> Tensor:
        """log det Σ, a 0-dim tensor."""

    def _sqrt_apply_t(self, x: Tensor) -> Tensor:
        """Lᵀ x on validated input. Defaults to L x (symmetric L)."""
        return self._sqrt_apply(x)

    def _inv_sqrt_apply_t(self, x: Tensor) -> Tensor:
        """L⁻ᵀ x on validated input. Defaults to L⁻¹ x (symmetric L)."""
        return self._inv_sqrt_apply(x)

    # ----------------------------------------------------------- public core
    def _checked(self, fn, x: Tensor) -> Tensor:
        """``fn(x)`` after validating x; an empty batch maps to an empty batch."""
        self.check_input(x)
        return x.clone() if x.numel() == 0 else fn(x)

    def sqrt_apply(self, x: Tensor) -> Tensor:
        """L x for x of shape ``(*batch, *event_shape)``."""
        return self._checked(self._sqrt_apply, x)

    def inv_sqrt_apply(self, x: Tensor) -> Tensor:
        """L⁻¹ x for x of shape ``(*batch, *event_shape)``."""
        return self._checked(self._inv_sqrt_apply, x)

    def sqrt_apply_t(self, x: Tensor) -> Tensor:
        """Lᵀ x for x of shape ``(*batch, *event_shape)``."""
        return self._checked(self._sqrt_apply_t, x)

    def inv_sqrt_apply_t(self, x: Tensor) -> Tensor:
        """L⁻ᵀ x for x of shape ``(*batch, *event_shape)``."""
        return self._checked(self._inv_sqrt_apply_t, x)

    # --------------------------------------------------------------- derived
    @property
    def dim(self) -> int:
        """d, the number of elements of one event."""
        return math.prod(self.event_shape)

    def apply(self, x: Tensor) -> Tensor:
        """Σ x = L (Lᵀ x)."""
        return self._checked(lambda v: self._sqrt_apply(self._sqrt_apply_t(v)), x)

    def solve(self, x: Tensor) -> Tensor:
        """Σ⁻¹ x = L⁻ᵀ (L⁻¹ x)."""
        return self._checked(lambda v: self._inv_sqrt_apply_t(self._inv_sqrt_apply(v)), x)

    def sample(
        self,
        n: int | tuple[int, ...],
        generator: torch.Generator | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Draw samples L z with z ~ N(0, I).

        **Arguments:**
        - ``n``: the number of samples (0 gives an empty batch), or a tuple sample shape.
        - ``generator``: an optional ``torch.Generator`` for reproducibility.
        - ``dtype`` / ``device``: only for operators that hold no tensors
          (e.g. :class:`IdentityCovariance`); others use their own.

        **Returns:** a tensor of shape ``(n, *event_shape)``.
        """
        if not isinstance(n, (int, tuple, list)):
            raise InputTypeError(
                f"n must be a non-negative int or a tuple of them, got {type(n).__name__} {n!r}"
            )
        shape = (n,) if isinstance(n, int) else tuple(n)
        if any((not isinstance(s, int)) or isinstance(s, bool) or s < 0 for s in shape):
            raise InputError(f"n must be a non-negative int or a tuple of them, got {n!r}")
        dtype, device = self._resolve(dtype, device)
        z = torch.randn(
            (*shape, *self.event_shape), generator=generator, dtype=dtype, device=device
        )
        return z if z.numel() == 0 else self._sqrt_apply(z)

    def log_prob(self, x: Tensor) -> Tensor:
        """log N(x; 0, Σ) = -½‖L⁻¹x‖² - ½ log det Σ - (d/2) log 2π, shape ``batch``."""
        w = self.inv_sqrt_apply(x)  # validates x
        maha = w.square().flatten(start_dim=w.ndim - len(self.event_shape)).sum(-1)
        return -0.5 * maha - 0.5 * self.logdet() - 0.5 * self.dim * math.log(2 * math.pi)

    def to_dense(self) -> Tensor:
        """The dense matrix Σ of shape ``(d, d)`` (for tests and small d only)."""
        return self._dense_of(lambda e: self._sqrt_apply(self._sqrt_apply_t(e)))

    def sqrt_to_dense(self) -> Tensor:
        """The dense factor L of shape ``(d, d)`` (for tests and small d only)."""
        return self._dense_of(self._sqrt_apply)

    def diagonal(self) -> Tensor:
        """diag Σ as a tensor of shape ``event_shape`` (per-element variances)."""
        return self.to_dense().diagonal().reshape(self.event_shape)

    def fourier_spectrum(self) -> Tensor | None:
        """Σ's eigenvalues λ in the orthonormal DFT over the last :attr:`spatial_dims` event
        dims, where Σ is diagonal in that basis: a tensor of the event shape on the full
        frequency grid in ``torch.fft.fftfreq`` order (DC at index 0), so that
        Σ x = F⁻¹(λ · F x) per leading index; ``None`` for an operator that is not
        Fourier-diagonal (the default). In the operator's dtype and device (float64 for
        :class:`IdentityCovariance`); possibly a broadcast view, so do not write to it."""
        return None

    # ------------------------------------------------------- dtype / device
    @property
    def dtype(self) -> torch.dtype | None:
        """The floating dtype of the operator's tensors (``None`` if it holds none)."""
        t = next(self._tensors(), None)
        return None if t is None else t.dtype

    @property
    def device(self) -> torch.device | None:
        """The device of the operator's tensors (``None`` if it holds none)."""
        t = next(self._tensors(), None)
        return None if t is None else t.device

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> CovarianceOperator:
        """A copy with every floating tensor moved to ``device`` / cast to ``dtype``."""
        if dtype is not None and not dtype.is_floating_point:
            raise InputTypeError(f"dtype must be a floating dtype, got {dtype}")
        new = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, Tensor):
                cast = dtype if value.is_floating_point() else None
                setattr(new, name, value.to(device=device, dtype=cast))
            elif isinstance(value, CovarianceOperator):
                setattr(new, name, value.to(device=device, dtype=dtype))
        return new

    # --------------------------------------------------------------- helpers
    def check_input(self, x: Tensor, name: str = "x") -> None:
        """Raise a clear error unless ``x`` is a floating tensor of shape
        ``(*batch, *event_shape)`` with this operator's dtype and device."""
        if not isinstance(x, Tensor):
            raise InputTypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise InputTypeError(f"{name} must have a floating dtype, got {x.dtype}")
        k = len(self.event_shape)
        if x.ndim < k or tuple(x.shape[x.ndim - k :]) != tuple(self.event_shape):
            raise InputError(
                f"{name} must have shape (*batch, {', '.join(map(str, self.event_shape))}) "
                f"to match event_shape {tuple(self.event_shape)}, got {tuple(x.shape)}"
            )
        dtype, device = self.dtype, self.device
        if dtype is not None and x.dtype != dtype:
            raise InputTypeError(
                f"{name} has dtype {x.dtype} but {type(self).__name__} holds {dtype}; "
                f"use x.to({dtype}) or covariance.to(dtype={x.dtype})"
            )
        if device is not None and x.device != device:
            raise InputError(
                f"{name} is on device {x.device} but {type(self).__name__} is on {device}; "
                f"use covariance.to(device='{x.device}')"
            )

    def _tensors(self) -> Iterator[Tensor]:
        for value in vars(self).values():
            if isinstance(value, Tensor) and value.is_floating_point():
                yield value
            elif isinstance(value, CovarianceOperator):
                yield from value._tensors()

    def _resolve(self, dtype, device):
        own_dtype, own_device = self.dtype, self.device
        if own_dtype is not None and dtype is not None and dtype != own_dtype:
            raise InputTypeError(f"dtype={dtype} conflicts with the operator's dtype {own_dtype}")
        if own_device is not None and device is not None and torch.device(device) != own_device:
            raise InputError(f"device={device} conflicts with the operator's device {own_device}")
        dtype = own_dtype or dtype or torch.get_default_dtype()
        device = own_device if own_device is not None else device
        return dtype, device

    def _dense_of(self, fn) -> Tensor:
        dtype, device = self._resolve(None, None)
        basis = torch.eye(self.dim, dtype=dtype, device=device).reshape(self.dim, *self.event_shape)
        columns = fn(basis).reshape(self.dim, self.dim)  # row i = M e_i = column i
        return columns.T

    def __repr__(self) -> str:
        return f"{type(self).__name__}(event_shape={tuple(self.event_shape)})"
