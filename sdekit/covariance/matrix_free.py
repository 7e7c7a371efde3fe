"""A covariance given only by its matrix-vector product: Σ x = ``matvec(x)``.

For a kernel on irregular points, a graph-Laplacian GFF on a mesh or a learned Σ there is no
closed-form factor. With Σ symmetric positive-definite, sdekit needs L = Σ^½ (symmetric),
L⁻¹ = Σ^(−½) and log det Σ, all from products with Σ (``linear_operator``, Pleiss et al.):

- Σ^(±½) x by contour-integral quadrature (Pleiss et al. 2020, "Fast matrix square roots
  with applications to Gaussian processes and Bayesian optimization"): Σ^(−½) x =
  Σ_q w_q (Σ + s_q I)⁻¹ x, each shifted solve by one msMINRES run, with the quadrature
  (``quadrature`` points) fitted to Σ's spectrum estimated by Lanczos;
- log det Σ by stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017): E[zᵀ log(Σ) z] over
  Rademacher probes z; :meth:`MatrixFreeCovariance.logdet_with_error` returns the estimate
  with its standard error over ``logdet_probes`` probes (tests check the dense value lies
  within 4 standard errors);
- Σ x itself (``apply``) is exact, one matvec.

At construction a cheap check refuses a matvec that is not symmetric (⟨u, Σv⟩ = ⟨Σu, v⟩ on
random u, v) or whose Lanczos estimate of λ_min is not > 0 (not positive-definite).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._cg import conjugate_gradients
from ..errors import InputError, InputTypeError
from ._validation import as_event_shape
from .base import CovarianceOperator

__all__ = ["MatrixFreeCovariance"]


def _as_linear_operator(matvec, d: int, dtype, device):
    from linear_operator.operators import LinearOperator

    class _Matvec(LinearOperator):
        def __init__(self):
            super().__init__(torch.zeros((), dtype=dtype, device=device))

        def _matmul(self, rhs):  # rhs (..., d, k): columns are vectors
            cols = rhs.mT.reshape(-1, d)
            return matvec(cols).reshape(*rhs.shape[:-2], rhs.shape[-1], d).mT

        def _size(self):
            return torch.Size([d, d])

        def _transpose_nonbatch(self):
            return self

        @property
        def dtype(self):
            return dtype

        @property
        def device(self):
            return device

    return _Matvec()


class MatrixFreeCovariance(CovarianceOperator):
    """Σ defined by ``matvec`` alone (module docstring).

    **Arguments:**
    - ``matvec``: Σ applied to a batch of events, ``(n, *event_shape) -> (n, *event_shape)``;
      symmetric positive-definite.
    - ``event_shape``: the shape of one event.
    - ``dtype`` / ``device``: where ``matvec`` computes (default float64, cpu).
    - ``rtol``: target relative error of L x and L⁻¹ x (sets the quadrature points and the
      msMINRES tolerance; 1e-6 by default).
    - ``logdet_probes``: Rademacher probes of the log-determinant estimate (64).
    - ``seed``: the probes' seed (the estimate is reproducible).
    - ``precision``: ``matvec`` applies the precision P = Σ⁻¹ instead (a graph Laplacian, a
      GMRF): then L x = P^(−½) x, L⁻¹ x = P^(½) x, log det Σ = −log det P, Σ⁻¹ x exact and
      Σ x by conjugate gradients. :meth:`from_precision` says it by name.
    """

    def __init__(self, matvec, event_shape, *, dtype=torch.float64, device="cpu",
                 rtol: float = 1e-6, logdet_probes: int = 64, seed: int = 0,
                 precision: bool = False):  # fmt: skip
        if not callable(matvec):
            raise InputTypeError(f"matvec must be callable, got {type(matvec).__name__}")
        if not (isinstance(rtol, float) and 0 < rtol < 1):
            raise InputError(f"rtol must be a float in (0, 1), got {rtol!r}")
        if not (isinstance(logdet_probes, int) and logdet_probes >= 2):
            raise InputError(f"logdet_probes must be an int >= 2, got {logdet_probes!r}")
        self.event_shape = as_event_shape(event_shape)
        self.matvec, self.rtol, self.seed = matvec, rtol, seed
        self.logdet_probes, self.precision = logdet_probes, bool(precision)
        self._anchor = torch.zeros((), dtype=dtype, device=torch.device(device))
        self.quadrature = max(8, min(40, math.ceil(-1.5 * math.log10(rtol)) + 6))
        self._lo = _as_linear_operator(self._flat_matvec, self.dim, dtype, self._anchor.device)
        self._check_spd()
        self._logdet = None

    # ------------------------------------------------------------------ helpers
    def _flat_matvec(self, v: Tensor) -> Tensor:
        """Σ on rows of shape (k, d)."""
        out = self.matvec(v.reshape(v.shape[0], *self.event_shape))
        return out.reshape(v.shape[0], -1)

    def _settings(self):
        import contextlib

        from linear_operator import settings

        stack = contextlib.ExitStack()
        stack.enter_context(settings.minres_tolerance(self.rtol * 1e-2))
        stack.enter_context(settings.max_cg_iterations(max(1000, 4 * self.dim)))
        stack.enter_context(settings.max_cholesky_size(0))  # never densify
        return stack

    def _ciq(self, x: Tensor, inverse: bool) -> Tensor:
        from linear_operator.utils.contour_integral_quad import contour_integral_quad

        flat = x.reshape(-1, self.dim)
        with self._settings(), torch.no_grad():
            solves, weights, _, _ = contour_integral_quad(
                self._lo, flat.T.contiguous(), inverse=inverse,
                num_contour_quadrature=self.quadrature, max_lanczos_iter=min(self.dim, 50),
            )  # fmt: skip
        return (solves * weights).sum(0).T.reshape(x.shape)

    def _check_spd(self) -> None:
        g = torch.Generator(device=self._anchor.device).manual_seed(self.seed)
        u, v = torch.randn(2, self.dim, generator=g, dtype=self.dtype, device=self.device)
        su, sv = self._flat_matvec(torch.stack([u, v]))
        if su.shape != u.shape:
            raise InputError(f"matvec must return a batch of events {self.event_shape}, got a "
                             f"shape of {su.numel() // 1} elements per event")  # fmt: skip
        asym = float((u @ sv - v @ su).abs() / (u.norm() * sv.norm()).clamp_min(1e-300))
        if asym > 1e-6 if self.dtype == torch.float64 else asym > 1e-3:
            raise InputError(f"matvec is not symmetric: <u, Σv> and <Σu, v> differ by {asym:.3g} "
                             "(relative) on random u, v")  # fmt: skip
        from linear_operator.utils.lanczos import lanczos_tridiag

        with torch.no_grad():
            _, t = lanczos_tridiag(lambda r: self._flat_matvec(r.T).T, min(self.dim, 30),
                                   self.dtype, self.device, torch.Size([self.dim, self.dim]),
                                   init_vecs=u[:, None])  # fmt: skip
        lam_min = float(torch.linalg.eigvalsh(t.squeeze(0) if t.ndim == 3 else t).min())
        if not lam_min > 0:
            raise InputError(f"matvec is not positive-definite: Lanczos finds an eigenvalue "
                             f"{lam_min:.3g} <= 0")  # fmt: skip

    @classmethod
    def from_precision(cls, precision_matvec, event_shape, **kwargs) -> MatrixFreeCovariance:
        """Σ = P⁻¹ for a precision P given by ``precision_matvec`` (e.g. a graph Laplacian
        plus a mass term, :func:`graph_laplacian_gff`)."""
        return cls(precision_matvec, event_shape, precision=True, **kwargs)

    # ------------------------------------------------------------------ the core
    def _sqrt_apply(self, x: Tensor) -> Tensor:
        return self._ciq(x, inverse=self.precision)  # Σ^½ x, or P^(−½) x for a precision

    def _inv_sqrt_apply(self, x: Tensor) -> Tensor:
        return self._ciq(x, inverse=not self.precision)

    def _product(self, x: Tensor) -> Tensor:
        return self._flat_matvec(x.reshape(-1, self.dim)).reshape(x.shape)

    def _cg_solve(self, x: Tensor) -> Tensor:
        flat = x.reshape(-1, self.dim)
        with torch.no_grad():
            out = conjugate_gradients(self._flat_matvec, flat, rtol=self.rtol * 1e-2)
        return out.solution.reshape(x.shape)

    def apply(self, x: Tensor) -> Tensor:
        """Σ x: one matvec (by conjugate gradients for a precision matvec)."""
        self.check_input(x)
        return self._cg_solve(x) if self.precision else self._product(x)

    def solve(self, x: Tensor) -> Tensor:
        """Σ⁻¹ x: one matvec for a precision matvec, else conjugate gradients."""
        self.check_input(x)
        return self._product(x) if self.precision else self._cg_solve(x)

    def logdet_with_error(self) -> tuple[Tensor, float]:
        """(log det Σ by stochastic Lanczos quadrature, its standard error over the probes)."""
        if self._logdet is None:
            from linear_operator.utils.lanczos import lanczos_tridiag

            g = torch.Generator(device=self.device).manual_seed(self.seed + 1)
            z = torch.randint(0, 2, (self.dim, self.logdet_probes), generator=g,
                              device=self.device).to(self.dtype) * 2 - 1  # fmt: skip
            with torch.no_grad():
                _, t = lanczos_tridiag(
                    lambda r: self._flat_matvec(r.T).T,
                    min(self.dim, 100),
                    self.dtype,
                    self.device,
                    torch.Size([self.dim, self.dim]),
                    init_vecs=z,
                    num_init_vecs=self.logdet_probes,
                    tol=1e-10,
                )
            evals, evecs = torch.linalg.eigh(t)  # (probes, k, k)  # fmt: skip
            per_probe = self.dim * (evecs[:, 0, :].square() * evals.clamp_min(1e-300).log()).sum(-1)
            est = per_probe.mean() * (-1 if self.precision else 1)
            self._logdet = (est, float(per_probe.std() / math.sqrt(self.logdet_probes)))
        return self._logdet

    def logdet(self) -> Tensor:
        """log det Σ (stochastic Lanczos quadrature; :meth:`logdet_with_error` gives its error)."""
        return self.logdet_with_error()[0]

    def to(self, device=None, dtype=None) -> CovarianceOperator:
        same_dtype = dtype is None or dtype == self.dtype
        same_device = device is None or torch.device(device) == self.device
        if same_dtype and same_device:
            return self
        raise InputError("a MatrixFreeCovariance computes where its matvec does: build it again "
                         "with dtype= / device= (and a matvec there)")  # fmt: skip

    def __repr__(self) -> str:
        kind = ", precision=True" if self.precision else ""
        return f"MatrixFreeCovariance(event_shape={self.event_shape}, rtol={self.rtol:g}{kind})"


def graph_laplacian_gff(event_shape, mass: float = 0.1, *, dtype=torch.float64, device="cpu",
                        **kwargs) -> MatrixFreeCovariance:  # fmt: skip
    """The GFF of the H×W grid graph with free boundaries: Σ = (Δ_G + m² I)⁻¹ per channel,
    Δ_G the graph Laplacian (degree minus adjacency, 4-neighbours; not periodic, so not
    Fourier-diagonal), scaled so its mean variance is about 1 (a 16-probe Hutchinson estimate of
    tr Σ / d) — a matrix-free precision."""
    shape = as_event_shape(event_shape)
    if len(shape) < 2:
        raise InputError(f"event_shape must be (..., H, W), got {shape}")
    if not (isinstance(mass, (int, float)) and math.isfinite(mass) and mass > 0):
        raise InputError(
            f"mass must be a number > 0 (m² makes Δ_G + m² I invertible), got {mass!r}"
        )

    def laplacian(x: Tensor) -> Tensor:
        out = (mass**2) * x
        for dim in (-2, -1):
            d = torch.diff(x, dim=dim)
            pad = [0, 0, 0, 0]
            lo, hi = list(pad), list(pad)
            axis = 0 if dim == -1 else 2
            lo[axis + 1], hi[axis] = 1, 1  # −d at the start of each edge, +d at its end
            out = out - torch.nn.functional.pad(d, lo) + torch.nn.functional.pad(d, hi)
        return out

    # the mean variance of (Δ_G + m²)⁻¹: scale the precision so it is 1 (a pixel's unit)
    probe = MatrixFreeCovariance.from_precision(laplacian, shape, dtype=dtype, device=device,
                                                **kwargs)  # fmt: skip
    g = torch.Generator(device=device).manual_seed(0)
    z = torch.randint(0, 2, (16, *shape), generator=g, device=device).to(dtype) * 2 - 1
    scale = float((z * probe.apply(z)).sum() / z.numel())  # E zᵀΣz / d = tr Σ / d
    return MatrixFreeCovariance.from_precision(lambda x: scale * laplacian(x), shape,
                                               dtype=dtype, device=device, **kwargs)  # fmt: skip
