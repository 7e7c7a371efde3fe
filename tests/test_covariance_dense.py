"""Every covariance operator against an independently built dense Σ (float64, ~1e-10)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import F64

TOL = dict(rtol=1e-10, atol=1e-10)


def flat(x, shape):
    return x.reshape(*x.shape[: x.ndim - len(shape)], -1)


def test_to_dense_matches_independent_matrix(case):
    op, S = case
    torch.testing.assert_close(op.to_dense().to(F64), S, **TOL)


def test_factor_reproduces_sigma(case):
    op, S = case
    L = op.sqrt_to_dense().to(F64)
    torch.testing.assert_close(L @ L.T, S, **TOL)


def test_transposed_factors(case):
    op, _ = case
    L = op.sqrt_to_dense().to(F64)
    x = torch.randn(3, *op.event_shape, dtype=F64)
    xf = flat(x, op.event_shape)
    torch.testing.assert_close(flat(op.sqrt_apply_t(x), op.event_shape), xf @ L, **TOL)
    torch.testing.assert_close(
        flat(op.inv_sqrt_apply_t(x), op.event_shape), torch.linalg.solve(L.T, xf.T).T, **TOL
    )


@pytest.mark.parametrize("batch", [(), (4,), (2, 3)])
def test_apply_solve_roundtrip_with_batch_dims(case, batch):
    op, S = case
    x = torch.randn(*batch, *op.event_shape, dtype=F64)
    xf = flat(x, op.event_shape)
    torch.testing.assert_close(flat(op.apply(x), op.event_shape), xf @ S.T, **TOL)
    torch.testing.assert_close(
        flat(op.solve(x), op.event_shape),
        torch.linalg.solve(S, xf.unsqueeze(-1)).squeeze(-1),
        rtol=1e-9,
        atol=1e-9,
    )
    torch.testing.assert_close(op.inv_sqrt_apply(op.sqrt_apply(x)), x, **TOL)
    torch.testing.assert_close(op.sqrt_apply(op.inv_sqrt_apply(x)), x, **TOL)
    assert op.sqrt_apply(x).shape == x.shape


def test_logdet_and_diagonal(case):
    op, S = case
    sign, logabs = torch.linalg.slogdet(S)
    assert sign > 0
    torch.testing.assert_close(op.logdet().to(F64), logabs, **TOL)
    torch.testing.assert_close(op.diagonal().to(F64).flatten(), S.diagonal(), **TOL)


def test_log_prob_matches_multivariate_normal(case):
    op, S = case
    x = torch.randn(2, 3, *op.event_shape, dtype=F64)
    ref = torch.distributions.MultivariateNormal(torch.zeros(op.dim, dtype=F64), S)
    torch.testing.assert_close(
        op.log_prob(x).to(F64), ref.log_prob(flat(x, op.event_shape)), rtol=1e-10, atol=1e-8
    )


def test_float32_agrees_with_float64(case):
    op, _ = case
    op32 = op.to(dtype=torch.float32)
    x = torch.randn(5, *op.event_shape, dtype=F64)
    for method in ("sqrt_apply", "inv_sqrt_apply", "apply", "solve"):
        out64 = getattr(op, method)(x)
        out32 = getattr(op32, method)(x.float())
        assert out32.dtype == torch.float32
        torch.testing.assert_close(out32.double(), out64, rtol=1e-4, atol=1e-4)


def test_sample_covariance_converges(case):
    """Each entry of the sample covariance lies within 5 standard errors,
    SE_ij = sqrt((Σ_ij² + Σ_ii Σ_jj) / N) for Gaussian samples with known mean."""
    op, S = case
    if op.dim > 100:
        pytest.skip("checked at the small shapes")
    n = 20_000
    g = torch.Generator().manual_seed(0)
    z = flat(op.sample(n, generator=g, dtype=F64), op.event_shape)
    assert z.shape == (n, op.dim)
    emp = z.T @ z / n
    se = ((S.square() + S.diagonal()[:, None] * S.diagonal()[None, :]) / n).sqrt()
    assert bool(((emp - S).abs() <= 5 * se).all()), float(((emp - S).abs() / se).max())


def test_sample_is_reproducible(case):
    op, _ = case
    a = op.sample(3, generator=torch.Generator().manual_seed(7), dtype=F64)
    b = op.sample(3, generator=torch.Generator().manual_seed(7), dtype=F64)
    assert a.shape == (3, *op.event_shape)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert op.sample((2, 3), dtype=F64).shape == (2, 3, *op.event_shape)


def test_gradcheck_through_every_method(case):
    op, _ = case
    if op.dim > 40:
        pytest.skip("gradcheck at the smallest shape")
    x = torch.randn(2, *op.event_shape, dtype=F64, requires_grad=True)
    for method in (
        "sqrt_apply",
        "inv_sqrt_apply",
        "sqrt_apply_t",
        "inv_sqrt_apply_t",
        "apply",
        "solve",
        "log_prob",
    ):
        assert torch.autograd.gradcheck(getattr(op, method), (x,)), method


def test_dims_and_repr(case):
    op, S = case
    assert op.dim == math.prod(op.event_shape) == S.shape[0]
    assert type(op).__name__ in repr(op)
