"""The linear measurement operators A of y = A x + n, each with its adjoint Aᵀ and, where it
has a usable one, its Moore–Penrose pseudo-inverse A⁺ (A A⁺ A = A).

Every operator maps a batch of events ``(n, *event_shape)`` to a batch of measurements
``(n, *y_shape)``; the adjoint maps back. Tensors held as attributes move with
:meth:`LinearOperator.to`.

- :class:`MatrixOperator` — a dense A of shape (m, d) on flattened events; A⁺ by SVD.
- :class:`MaskOperator` — inpainting: y = x at the observed elements (y of shape (m,));
  A Aᵀ = I, so A⁺ = Aᵀ (zeros at the missing elements).
- :class:`FourierBlurOperator` — circular convolution on the last two dimensions,
  A = F⁻¹ diag(h) F with h the transfer function; Aᵀ = F⁻¹ diag(h̄) F and
  A⁺ = F⁻¹ diag(h̄ / |h|²) F on |h| > rcond · max|h| (0 elsewhere).
- :class:`AveragePoolOperator` — f× downsampling by f×f block means; A Aᵀ = I / f², so
  A⁺ = f² Aᵀ, nearest-neighbour upsampling.
- :class:`CallableOperator` — a user's ``forward`` / ``adjoint`` (and optional ``pinv``).
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError, InputTypeError

__all__ = [
    "LinearOperator",
    "MatrixOperator",
    "MaskOperator",
    "FourierBlurOperator",
    "AveragePoolOperator",
    "CallableOperator",
    "gaussian_kernel",
]


class LinearOperator:
    """A linear map A from events ``event_shape`` to measurements ``y_shape`` (batched)."""

    event_shape: tuple[int, ...]
    y_shape: tuple[int, ...]
    has_pinv: bool = False
    #: how far A A⁺ A may be from A (relative): nonzero for a regularised pseudo-inverse
    pinv_rtol: float = 0.0

    def forward(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def adjoint(self, u: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def pinv(self, y: Tensor) -> Tensor:
        raise InputError(
            f"{type(self).__name__} has no pseudo-inverse: the projection method needs an "
            "operator with one (Measurement.matrix, .inpainting, .blur, .downsample, or "
            "Measurement(..., pinv=...))"
        )

    def to(self, device=None, dtype=None) -> LinearOperator:
        new = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, Tensor):
                cast = dtype if value.is_floating_point() or value.is_complex() else None
                if value.is_complex() and dtype is not None:
                    cast = torch.complex128 if dtype == torch.float64 else torch.complex64
                setattr(new, name, value.to(device=device, dtype=cast))
        return new

    def _flat(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)


class MatrixOperator(LinearOperator):
    """y = A vec(x) for a dense ``matrix`` A of shape (m, d), d = prod(event_shape)."""

    has_pinv = True

    def __init__(self, matrix: Tensor, event_shape=None, y_shape=None):
        if not isinstance(matrix, Tensor) or matrix.ndim != 2 or not matrix.is_floating_point():
            got = tuple(matrix.shape) if isinstance(matrix, Tensor) else type(matrix).__name__
            raise InputError(f"A must be a floating tensor of shape (m, d), got {got}")
        if not bool(torch.isfinite(matrix).all()):
            raise InputError("A must contain only finite values")
        m, d = matrix.shape
        self.event_shape = _shape(event_shape, (d,), d, "event_shape", "d = A.shape[1]")
        self.y_shape = _shape(y_shape, (m,), m, "y_shape", "m = A.shape[0]")
        self.matrix = matrix
        self.matrix_pinv = torch.linalg.pinv(matrix)

    def forward(self, x: Tensor) -> Tensor:
        return (self._flat(x) @ self.matrix.T).reshape(x.shape[0], *self.y_shape)

    def adjoint(self, u: Tensor) -> Tensor:
        return (self._flat(u) @ self.matrix).reshape(u.shape[0], *self.event_shape)

    def pinv(self, y: Tensor) -> Tensor:
        return (self._flat(y) @ self.matrix_pinv.T).reshape(y.shape[0], *self.event_shape)


class MaskOperator(LinearOperator):
    """Inpainting: y = the elements of x where ``mask`` is True, in row-major order."""

    has_pinv = True

    def __init__(self, mask: Tensor):
        if not isinstance(mask, Tensor) or mask.ndim == 0:
            raise InputTypeError("mask must be a tensor of the event shape (True = observed)")
        if mask.dtype != torch.bool:
            if not bool(((mask == 0) | (mask == 1)).all()):
                raise InputError("mask must be boolean or hold only 0 and 1 (1 = observed)")
            mask = mask.bool()
        m = int(mask.sum())
        if m == 0:
            raise InputError("mask observes no element: at least one entry must be True")
        self.event_shape, self.y_shape = tuple(mask.shape), (m,)
        self.mask = mask
        self.index = mask.reshape(-1).nonzero().squeeze(1)

    def forward(self, x: Tensor) -> Tensor:
        return self._flat(x).index_select(1, self.index.to(x.device))

    def adjoint(self, u: Tensor) -> Tensor:
        out = u.new_zeros(u.shape[0], math.prod(self.event_shape))
        out[:, self.index.to(u.device)] = u.reshape(u.shape[0], -1)
        return out.reshape(u.shape[0], *self.event_shape)

    pinv = adjoint  # A Aᵀ = I


class FourierBlurOperator(LinearOperator):
    """Circular convolution over the last two event dimensions: A = F⁻¹ diag(h) F.

    **Arguments:**
    - ``transfer``: h on the full H×W frequency grid (``torch.fft.fftfreq`` order), real or
      complex; Hermitian-symmetric (the transfer function of a real kernel) so A is real.
    - ``event_shape``: the events' shape, ending with (H, W).
    - ``rcond``: frequencies with |h| ≤ rcond · max|h| are dropped by the pseudo-inverse.
    """

    has_pinv = True

    def __init__(self, transfer: Tensor, event_shape, rcond: float = 1e-3):
        event_shape = tuple(int(s) for s in event_shape)
        if len(event_shape) < 2 or tuple(transfer.shape) != event_shape[-2:]:
            raise InputError(
                f"the transfer function must have the events' grid shape {event_shape[-2:]} "
                f"(event_shape {event_shape}), got {tuple(transfer.shape)}"
            )
        if not transfer.is_complex():
            transfer = transfer.to(
                torch.complex128 if transfer.dtype == torch.float64 else torch.complex64
            )
        h = transfer
        flipped = torch.roll(torch.flip(h, dims=(-2, -1)), shifts=(1, 1), dims=(-2, -1))
        if not torch.allclose(h, flipped.conj(), atol=1e-6 * float(h.abs().max())):
            raise InputError(
                "the transfer function must be Hermitian-symmetric (h(-k) = conj(h(k)), the "
                "transfer function of a real kernel) for A to map real images to real images"
            )
        if not (isinstance(rcond, (int, float)) and 0 <= rcond < 1):
            raise InputError(f"rcond must be a number in [0, 1), got {rcond!r}")
        self.event_shape, self.y_shape = event_shape, event_shape
        self.pinv_rtol = float(rcond)
        self.transfer = h
        keep = h.abs() > rcond * h.abs().max()
        self.transfer_pinv = torch.where(keep, h.conj() / h.abs().square().clamp_min(1e-300), 0)

    def _filter(self, x: Tensor, h: Tensor) -> Tensor:
        spec = torch.fft.fft2(x, norm="ortho") * h.to(x.device)
        return torch.fft.ifft2(spec, norm="ortho").real.to(x.dtype)

    def forward(self, x: Tensor) -> Tensor:
        return self._filter(x, self.transfer)

    def adjoint(self, u: Tensor) -> Tensor:
        return self._filter(u, self.transfer.conj())

    def pinv(self, y: Tensor) -> Tensor:
        return self._filter(y, self.transfer_pinv)

    @classmethod
    def from_kernel(cls, kernel: Tensor, event_shape, rcond: float = 1e-3):
        """The circular convolution with a real ``kernel`` (kh, kw) centred at
        (kh // 2, kw // 2): y[i] = Σ_j kernel[j] x[i − j + c] with indices mod the grid (a
        kernel larger than the grid wraps around it)."""
        if not isinstance(kernel, Tensor) or kernel.ndim != 2 or not kernel.is_floating_point():
            raise InputError("kernel must be a real floating tensor of shape (kh, kw)")
        h, w = tuple(event_shape)[-2:]
        kh, kw = kernel.shape
        rows = (torch.arange(kh) - kh // 2) % h
        cols = (torch.arange(kw) - kw // 2) % w
        padded = kernel.new_zeros(h, w)
        padded.index_put_(
            (rows[:, None].expand(kh, kw), cols[None, :].expand(kh, kw)), kernel, accumulate=True
        )
        return cls(torch.fft.fft2(padded), event_shape, rcond)


class AveragePoolOperator(LinearOperator):
    """``factor``× downsampling of the last two dimensions by the mean of factor×factor
    blocks (H and W divisible by the factor)."""

    has_pinv = True

    def __init__(self, factor: int, event_shape):
        if not (isinstance(factor, int) and not isinstance(factor, bool) and factor >= 1):
            raise InputError(f"factor must be an int >= 1, got {factor!r}")
        event_shape = tuple(int(s) for s in event_shape)
        if len(event_shape) < 2 or event_shape[-1] % factor or event_shape[-2] % factor:
            raise InputError(
                f"event_shape {event_shape} must end with (H, W) divisible by factor={factor}"
            )
        self.factor, self.event_shape = factor, event_shape
        self.y_shape = (*event_shape[:-2], event_shape[-2] // factor, event_shape[-1] // factor)

    def _grid(self, x: Tensor) -> Tensor:
        return x.reshape(-1, 1, *x.shape[-2:])

    def forward(self, x: Tensor) -> Tensor:
        out = F.avg_pool2d(self._grid(x), self.factor)
        return out.reshape(x.shape[0], *self.y_shape)

    def pinv(self, y: Tensor) -> Tensor:
        f = self.factor
        up = y.repeat_interleave(f, dim=-2).repeat_interleave(f, dim=-1)
        return up.reshape(y.shape[0], *self.event_shape)

    def adjoint(self, u: Tensor) -> Tensor:
        return self.pinv(u) / self.factor**2


class CallableOperator(LinearOperator):
    """A user's operator: ``forward(x) -> A x`` and ``adjoint(u) -> Aᵀ u`` on batches, with
    an optional ``pinv(y) -> A⁺ y``."""

    def __init__(self, forward, adjoint, event_shape, y_shape, pinv=None):
        for name, f in (("forward", forward), ("adjoint", adjoint), ("pinv", pinv)):
            if f is not None and not callable(f):
                raise InputTypeError(f"{name} must be callable, got {type(f).__name__}")
        self._fwd, self._adj, self._pinv = forward, adjoint, pinv
        self.event_shape, self.y_shape = event_shape, y_shape
        self.has_pinv = pinv is not None

    def forward(self, x: Tensor) -> Tensor:
        return self._fwd(x)

    def adjoint(self, u: Tensor) -> Tensor:
        return self._adj(u)

    def pinv(self, y: Tensor) -> Tensor:
        return self._pinv(y) if self._pinv is not None else super().pinv(y)


def gaussian_kernel(std: float, size: int | None = None, dtype=torch.float64) -> Tensor:
    """A normalised 2-D Gaussian blur kernel of standard deviation ``std`` pixels, of odd
    ``size`` (default the odd number nearest 6·std + 1)."""
    if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
        raise InputError(f"std (the blur width in pixels) must be a number > 0, got {std!r}")
    size = size if size is not None else 2 * math.ceil(3 * std) + 1
    if not (isinstance(size, int) and size >= 1 and size % 2 == 1):
        raise InputError(f"size must be an odd int >= 1, got {size!r}")
    r = torch.arange(size, dtype=dtype) - size // 2
    g = torch.exp(-0.5 * (r / std) ** 2)
    k = g[:, None] * g[None, :]
    return k / k.sum()


def _shape(given, default, size: int, name: str, what: str) -> tuple[int, ...]:
    shape = default if given is None else tuple(int(s) for s in given)
    if math.prod(shape) != size:
        raise InputError(f"{name} {shape} must hold {what} = {size} elements")
    return shape
