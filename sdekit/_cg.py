"""Batched conjugate gradients: solve M v = b for each row of a batch, M symmetric
positive-definite and given only by ``matvec`` (a batch of vectors to a batch of vectors).

Each row has its own step lengths α_k = ‖r_k‖² / ⟨p_k, M p_k⟩ and β_k = ‖r_{k+1}‖² / ‖r_k‖²
(Hestenes & Stiefel 1952); a row stops changing once ‖r‖ ≤ rtol · ‖b‖, and the loop ends
when every row has, or after ``max_iter`` products. In exact arithmetic CG ends in at most
m steps (m = the dimension); in floating point the residuals lose orthogonality, so the
default limit is 10 m.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import InputError

__all__ = ["CGResult", "conjugate_gradients"]


@dataclass(frozen=True)
class CGResult:
    """The solution (batch of b's shape), the products of M taken, the largest relative
    residual ‖b − M v‖ / ‖b‖ over the batch."""

    solution: Tensor
    iterations: int
    residual: float


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).reshape(a.shape[0], -1).sum(1).reshape(-1, *([1] * (a.ndim - 1)))


def conjugate_gradients(
    matvec, b: Tensor, *, rtol: float = 1e-6, max_iter: int | None = None, x0: Tensor | None = None
) -> CGResult:
    """Solve M v = b row by row by conjugate gradients (module docstring).

    **Arguments:**
    - ``matvec``: ``v -> M v`` on a batch shaped like ``b``; M symmetric positive-definite.
    - ``b``: the right-hand sides, ``(n, ...)``.
    - ``rtol``: stop a row at ‖b − M v‖ ≤ rtol · ‖b‖.
    - ``max_iter``: at most this many products (default: 10 × the dimension of one row).
    - ``x0``: a starting guess (default 0).

    **Raises:** :class:`InputError` when M is found not positive-definite (⟨p, M p⟩ ≤ 0).
    """
    if not (0 < rtol < 1):
        raise InputError(f"rtol must be in (0, 1), got {rtol!r}")
    dim = b[0].numel()
    max_iter = 10 * dim if max_iter is None else int(max_iter)
    v = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - matvec(v) if x0 is not None else b.clone()
    p = r.clone()
    rr = _dot(r, r)
    target = rtol**2 * _dot(b, b)
    it = 0
    while it < max_iter:
        active = rr > target
        if not bool(active.any()):
            break
        mp = matvec(p)
        pmp = _dot(p, mp)
        if bool((active & (pmp <= 0)).any()):
            raise InputError(
                "conjugate gradients met <p, M p> <= 0: the system matrix is not positive-"
                "definite"
            )
        alpha = torch.where(active, rr / pmp.clamp_min(1e-300), torch.zeros_like(rr))
        v = v + alpha * p
        r = r - alpha * mp
        rr_new = _dot(r, r)
        beta = torch.where(active, rr_new / rr.clamp_min(1e-300), torch.zeros_like(rr))
        p = torch.where(active, r + beta * p, p)
        rr = torch.where(active, rr_new, rr)
        it += 1
    bb = _dot(b, b).clamp_min(1e-300)
    residual = float((rr / bb).sqrt().max()) if b.shape[0] else 0.0
    return CGResult(solution=v, iterations=it, residual=residual)
