"""A linear-Gaussian measurement y = A x + n, n ~ N(0, Σ_y), with Σ_y any
:class:`~sdekit.covariance.CovarianceOperator` on y's shape (white, diagonal, GFF/Fourier,
dense): the likelihood

    log p(y | x) = log N(y − A x; 0, Σ_y) = −½‖L_y⁻¹(y − A x)‖² − ½ log det Σ_y − (m/2) log 2π.

The adjoint is checked once at construction, ⟨A x, u⟩ = ⟨x, Aᵀ u⟩ on random x and u, and a
pseudo-inverse (where given) by A A⁺ A x = A x: a wrong one is refused there, not found later
as a biased posterior.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..covariance import (
    CholeskyCovariance,
    CovarianceOperator,
    IdentityCovariance,
    ScaledCovariance,
)
from ..errors import InputError, InputTypeError
from .operators import (
    AveragePoolOperator,
    CallableOperator,
    FourierBlurOperator,
    LinearOperator,
    MaskOperator,
    MatrixOperator,
)

__all__ = ["Measurement"]

#: relative tolerance of the adjoint and pseudo-inverse checks, per dtype
_CHECK_RTOL = {torch.float64: 1e-9, torch.float32: 1e-4}


class Measurement:
    """y = A x + n with n ~ N(0, Σ_y) (module docstring).

    **Arguments:**
    - ``forward``: ``forward(x) -> A x`` on a batch ``(n, *event_shape)``, giving
      ``(n, *y_shape)``.
    - ``adjoint``: ``adjoint(u) -> Aᵀ u`` on a batch ``(n, *y_shape)``.
    - ``y_shape``: the shape of one measurement.
    - ``noise``: Σ_y, a :class:`CovarianceOperator` over ``y_shape`` (e.g.
      ``ScaledCovariance(GFFCovariance(y_shape), 0.05)``), or a number s > 0 for white noise
      of standard deviation s.
    - ``pinv``: optionally ``pinv(y) -> A⁺ y`` (the projection method needs it).
    - ``event_shape``: the shape of x (default: read off ``adjoint``).
    - ``dtype``: the dtype of the checks (default Σ_y's, else float64).

    The constructors :meth:`matrix`, :meth:`inpainting`, :meth:`blur` and :meth:`downsample`
    build the common operators, each with its pseudo-inverse.
    """

    def __init__(
        self,
        forward,
        adjoint,
        y_shape,
        noise,
        *,
        pinv=None,
        event_shape=None,
        dtype: torch.dtype | None = None,
    ):
        y_shape = _as_shape(y_shape, "y_shape")
        dtype = dtype or (noise.dtype if isinstance(noise, CovarianceOperator) else None)
        dtype = dtype or torch.float64
        if event_shape is None:
            if not callable(adjoint):
                raise InputTypeError(f"adjoint must be callable, got {type(adjoint).__name__}")
            event_shape = tuple(adjoint(torch.zeros(1, *y_shape, dtype=dtype)).shape[1:])
        operator = CallableOperator(forward, adjoint, _as_shape(event_shape), y_shape, pinv)
        self._init(operator, noise, dtype)

    @classmethod
    def from_operator(cls, operator: LinearOperator, noise, dtype=None) -> Measurement:
        """A measurement of a :class:`~sdekit.inverse.operators.LinearOperator`."""
        if not isinstance(operator, LinearOperator):
            raise InputTypeError(
                f"operator must be a LinearOperator, got {type(operator).__name__}"
            )
        self = cls.__new__(cls)
        self._init(operator, noise, dtype or _tensor_dtype(operator, noise))
        return self

    def _init(self, operator: LinearOperator, noise, dtype: torch.dtype) -> None:
        self.operator = operator
        self.event_shape, self.y_shape = tuple(operator.event_shape), tuple(operator.y_shape)
        self.noise = _as_noise(noise, self.y_shape)
        self.dtype = dtype
        self._check_adjoint()
        if operator.has_pinv:
            self._check_pinv()

    # -------------------------------------------------------------- constructors
    @classmethod
    def matrix(cls, A: Tensor, *, noise, event_shape=None, y_shape=None) -> Measurement:
        """y = A vec(x) + n for a dense A of shape (m, d); y of shape (m,) (or ``y_shape``),
        x of shape (d,) (or ``event_shape``, flattened row-major). A⁺ by SVD."""
        return cls.from_operator(MatrixOperator(A, event_shape, y_shape), noise)

    @classmethod
    def inpainting(cls, mask: Tensor, *, noise) -> Measurement:
        """y = the elements of x where ``mask`` (of the event shape) is True, plus noise;
        y of shape (m,), m = mask.sum(). ``noise`` may be given over the mask's full shape
        (a noise field, e.g. GFF over the image): its restriction P Σ Pᵀ to the observed
        elements is then used, as a dense Cholesky factor."""
        op = MaskOperator(torch.as_tensor(mask))
        if isinstance(noise, CovarianceOperator) and tuple(noise.event_shape) == op.event_shape:
            noise = restrict(noise, op)
        return cls.from_operator(op, noise)

    @classmethod
    def blur(
        cls, kernel: Tensor | None = None, *, noise, event_shape, spectrum=None, rcond: float = 1e-3
    ) -> Measurement:
        """y = k ⊛ x + n, circular convolution over the last two dimensions, given a small
        real ``kernel`` (centred; e.g. :func:`~sdekit.inverse.gaussian_kernel`) or the
        transfer function ``spectrum`` on the full H×W grid. y has the event shape. A⁺
        drops frequencies with |h| ≤ ``rcond`` · max|h|."""
        if (kernel is None) == (spectrum is None):
            raise InputError(
                "blur takes exactly one of kernel= (a small 2-D kernel) and "
                "spectrum= (the transfer function on the H×W grid)"
            )
        op = (
            FourierBlurOperator.from_kernel(kernel, event_shape, rcond)
            if kernel is not None
            else FourierBlurOperator(torch.as_tensor(spectrum), event_shape, rcond)
        )
        return cls.from_operator(op, noise)

    @classmethod
    def downsample(cls, factor: int, *, noise, event_shape) -> Measurement:
        """y = the means of ``factor``×``factor`` blocks of x (over the last two dimensions)
        plus noise; y of shape (..., H/factor, W/factor). A⁺ = nearest-neighbour upsampling."""
        return cls.from_operator(AveragePoolOperator(factor, event_shape), noise)

    # ------------------------------------------------------------------ the map
    @property
    def has_pinv(self) -> bool:
        return self.operator.has_pinv

    def forward(self, x: Tensor) -> Tensor:
        """A x for x of shape ``(n, *event_shape)``."""
        self._check(x, self.event_shape, "x")
        return self.operator.forward(x)

    def adjoint(self, u: Tensor) -> Tensor:
        """Aᵀ u for u of shape ``(n, *y_shape)``."""
        self._check(u, self.y_shape, "u")
        return self.operator.adjoint(u)

    def pinv(self, y: Tensor) -> Tensor:
        """A⁺ y (an :class:`InputError` for an operator without a pseudo-inverse)."""
        self._check(y, self.y_shape, "y")
        return self.operator.pinv(y)

    def simulate(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """y = A x + n with n ~ N(0, Σ_y) drawn from ``generator``."""
        ax = self.forward(x)
        z = torch.randn(ax.shape, generator=generator, dtype=ax.dtype, device=ax.device)
        return ax + self._noise_for(ax).sqrt_apply(z)

    def log_prob(self, y: Tensor, x: Tensor) -> Tensor:
        """log p(y | x) = log N(y − A x; 0, Σ_y), shape ``(n,)``; ``y`` is one measurement
        (``y_shape``) or one per sample."""
        ax = self.forward(x)
        y = self.check_y(y, x.shape[0]).to(ax)
        return self._noise_for(ax).log_prob(y - ax)

    def check_y(self, y, batch: int | None = None) -> Tensor:
        """``y`` as a tensor of shape ``y_shape`` (one measurement) or ``(batch, *y_shape)``
        (one per sample; any batch when ``batch`` is None), else an :class:`InputError`."""
        if not isinstance(y, Tensor) or not y.is_floating_point():
            raise InputTypeError(f"y must be a floating tensor, got {type(y).__name__}")
        k = len(self.y_shape)
        ok = tuple(y.shape) == self.y_shape or (
            y.ndim == k + 1
            and tuple(y.shape[1:]) == self.y_shape
            and (batch is None or y.shape[0] == batch)
        )
        if not ok:
            lead = "n" if batch is None else str(batch)
            raise InputError(
                f"y must have shape {self.y_shape} or ({lead}, "
                f"{', '.join(map(str, self.y_shape))}) (the measurement's y_shape), "
                f"got {tuple(y.shape)}"
            )
        if not bool(torch.isfinite(y).all()):
            raise InputError("y must contain only finite values")
        return y

    def to(self, device=None, dtype=None) -> Measurement:
        """A copy with the operator's and the noise's tensors moved / cast."""
        new = object.__new__(type(self))
        vars(new).update(vars(self))
        new.operator = self.operator.to(device=device, dtype=dtype)
        new.noise = self.noise.to(device=device, dtype=dtype)
        new.dtype = dtype or self.dtype
        return new

    def __repr__(self) -> str:
        return (
            f"Measurement({type(self.operator).__name__}, event_shape={self.event_shape}, "
            f"y_shape={self.y_shape}, noise={self.noise!r})"
        )

    # ------------------------------------------------------------------ helpers
    def _noise_for(self, like: Tensor) -> CovarianceOperator:
        """Σ_y in ``like``'s dtype and device (an operator that holds no tensors as it is)."""
        if self.noise.dtype in (None, like.dtype) and self.noise.device in (None, like.device):
            return self.noise
        return self.noise.to(device=like.device, dtype=like.dtype)

    def _check(self, v: Tensor, shape, name: str) -> None:
        if not isinstance(v, Tensor):
            raise InputTypeError(f"{name} must be a torch.Tensor, got {type(v).__name__}")
        if v.ndim != len(shape) + 1 or tuple(v.shape[1:]) != tuple(shape):
            raise InputError(
                f"{name} must have shape (n, {', '.join(map(str, shape))}), got {tuple(v.shape)}"
            )

    def _random_pair(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, *self.event_shape, generator=g, dtype=self.dtype)
        u = torch.randn(2, *self.y_shape, generator=g, dtype=self.dtype)
        return x, u

    def _check_adjoint(self) -> None:
        x, u = self._random_pair()
        ax, atu = self.operator.forward(x), self.operator.adjoint(u)
        if not isinstance(ax, Tensor) or tuple(ax.shape) != (2, *self.y_shape):
            got = tuple(ax.shape) if isinstance(ax, Tensor) else type(ax).__name__
            raise InputError(
                f"forward must map (n, *event_shape) to (n, *y_shape) = "
                f"(2, {', '.join(map(str, self.y_shape))}), got {got}"
            )
        if not isinstance(atu, Tensor) or tuple(atu.shape) != (2, *self.event_shape):
            got = tuple(atu.shape) if isinstance(atu, Tensor) else type(atu).__name__
            raise InputError(
                f"adjoint must map (n, *y_shape) to (n, *event_shape) = "
                f"(2, {', '.join(map(str, self.event_shape))}), got {got}"
            )
        lhs = (ax * u).reshape(2, -1).sum(1)
        rhs = (x * atu).reshape(2, -1).sum(1)
        scale = ax.reshape(2, -1).norm(dim=1) * u.reshape(2, -1).norm(dim=1)
        err = float(((lhs - rhs).abs() / scale.clamp_min(1e-300)).max())
        if not err <= _CHECK_RTOL.get(self.dtype, 1e-4):
            raise InputError(
                f"adjoint is not the adjoint of forward: <A x, u> and <x, Aᵀ u> "
                f"differ by {err:.3g} (relative) on random x, u"
            )

    def _check_pinv(self) -> None:
        x, _ = self._random_pair()
        ax = self.operator.forward(x)
        back = self.operator.forward(self.operator.pinv(ax))
        err = float((back - ax).norm() / ax.norm().clamp_min(1e-300))
        if not err <= 10 * max(_CHECK_RTOL.get(self.dtype, 1e-4), self.operator.pinv_rtol):
            raise InputError(
                f"pinv is not a pseudo-inverse of forward: A A⁺ A x differs from "
                f"A x by {err:.3g} (relative) on a random x"
            )


def restrict(field: CovarianceOperator, mask: MaskOperator) -> CholeskyCovariance:
    """P Σ Pᵀ: the covariance of a noise field Σ at the elements a mask observes (dense)."""
    from ..covariance import DENSE_LIMIT

    if field.dim > DENSE_LIMIT:
        raise InputError(
            f"restricting a noise field to a mask is dense: d = {field.dim} is "
            f"above the limit {DENSE_LIMIT}; give noise over the {mask.y_shape} "
            "observed elements instead"
        )
    dense = field.to_dense()
    idx = mask.index.to(dense.device)
    sub = dense.index_select(0, idx).index_select(1, idx)
    return CholeskyCovariance(0.5 * (sub + sub.T), mask.y_shape)


def _as_noise(noise, y_shape) -> CovarianceOperator:
    if isinstance(noise, CovarianceOperator):
        if tuple(noise.event_shape) != tuple(y_shape):
            raise InputError(
                f"noise must be a covariance over the measurement's shape "
                f"y_shape = {tuple(y_shape)}, got event_shape "
                f"{tuple(noise.event_shape)}"
            )
        return noise
    ok = isinstance(noise, (int, float)) and not isinstance(noise, bool) and math.isfinite(noise)
    if not ok or noise <= 0:
        raise InputError(
            f"noise must be a CovarianceOperator over y_shape {tuple(y_shape)} or a "
            f"white-noise standard deviation > 0, got {noise!r}"
        )
    return ScaledCovariance(IdentityCovariance(y_shape), float(noise))


def _tensor_dtype(operator: LinearOperator, noise) -> torch.dtype:
    for value in vars(operator).values():
        if isinstance(value, Tensor) and value.is_floating_point():
            return value.dtype
    if isinstance(noise, CovarianceOperator) and noise.dtype is not None:
        return noise.dtype
    return torch.float64


def _as_shape(shape, name: str = "event_shape") -> tuple[int, ...]:
    if isinstance(shape, int):
        shape = (shape,)
    try:
        out = tuple(int(s) for s in shape)
    except TypeError:
        raise InputTypeError(f"{name} must be a tuple of ints, got {shape!r}") from None
    if not out or any(s < 1 for s in out):
        raise InputError(f"{name} must be a non-empty tuple of positive ints, got {shape!r}")
    return out
