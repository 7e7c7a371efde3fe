"""Bad input gets a ValueError / TypeError that names the argument and what was expected."""

from __future__ import annotations

import pytest
import torch
from conftest import F64

from sdekit import (
    CholeskyCovariance,
    DiagonalCovariance,
    FourierCovariance,
    GFFCovariance,
    IdentityCovariance,
    KroneckerCovariance,
)


def test_wrong_trailing_shape():
    op = GFFCovariance((3, 8, 8))
    with pytest.raises(
        ValueError, match=r"x must have shape \(\*batch, 3, 8, 8\).*got \(2, 3, 8, 7\)"
    ):
        op.sqrt_apply(torch.randn(2, 3, 8, 7))
    with pytest.raises(ValueError, match="x must have shape"):
        op.log_prob(torch.randn(8, 8))


def test_non_tensor_and_integer_input():
    op = IdentityCovariance((4,))
    with pytest.raises(TypeError, match="x must be a torch.Tensor, got list"):
        op.apply([1.0, 2.0, 3.0, 4.0])
    with pytest.raises(TypeError, match="x must have a floating dtype"):
        op.apply(torch.ones(4, dtype=torch.int64))


def test_dtype_and_device_mismatch():
    op = DiagonalCovariance(torch.ones(2, 3, dtype=F64))
    with pytest.raises(
        TypeError, match=r"x has dtype torch.float32 but DiagonalCovariance holds torch.float64"
    ):
        op.sqrt_apply(torch.ones(2, 3))
    with pytest.raises(ValueError, match="device"):
        op.sqrt_apply(torch.ones(2, 3, dtype=F64, device="meta"))
    with pytest.raises(TypeError, match="conflicts"):
        op.sample(2, dtype=torch.float32)
    with pytest.raises(TypeError, match="floating dtype"):
        op.to(dtype=torch.int32)


def test_diagonal_rejects_non_positive_variances():
    with pytest.raises(
        ValueError,
        match=r"variances must contain finite, strictly positive .*found 0 at index \(1,\)",
    ):
        DiagonalCovariance(torch.tensor([1.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="variances"):
        DiagonalCovariance(torch.tensor([1.0, float("nan")]))
    with pytest.raises(TypeError, match="variances must be real"):
        DiagonalCovariance(torch.ones(3, dtype=torch.complex64))


def test_fourier_rejects_bad_spectra():
    lam = torch.ones(4, 4)
    lam[0, 1] = 2.0  # λ[0, 1] != λ[0, -1]
    with pytest.raises(ValueError, match=r"eigenvalues must be symmetric, λ\[-k\] = λ\[k\]"):
        FourierCovariance(lam)
    with pytest.raises(ValueError, match="eigenvalues must contain finite, strictly positive"):
        FourierCovariance(-torch.ones(4, 4))
    with pytest.raises(ValueError, match=r"eigenvalues must have shape \(..., H, W\)"):
        FourierCovariance(torch.ones(4))
    with pytest.raises(ValueError, match="event_shape .* must end with the spectrum's grid"):
        FourierCovariance(torch.ones(4, 4), event_shape=(3, 4, 5))
    with pytest.raises(ValueError, match="do not broadcast"):
        FourierCovariance(torch.ones(2, 4, 4), event_shape=(3, 4, 4))


def test_gff_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dc_frequency must be > 0"):
        GFFCovariance((1, 8, 8), dc_frequency=0.0)
    with pytest.raises(ValueError, match="alpha must be a real number >= 0"):
        GFFCovariance((1, 8, 8), alpha=-1)
    with pytest.raises(ValueError, match=r"event_shape must be \(..., H, W\)"):
        GFFCovariance((8,))
    with pytest.raises(ValueError, match="event_shape must be a non-empty tuple of positive ints"):
        GFFCovariance((3, 0, 8))


def test_cholesky_rejects_bad_matrices():
    with pytest.raises(
        ValueError, match=r"matrix must be a square \(d, d\) matrix, got shape \(2, 3\)"
    ):
        CholeskyCovariance(torch.ones(2, 3))
    with pytest.raises(ValueError, match="matrix must be symmetric"):
        CholeskyCovariance(torch.tensor([[2.0, 1.0], [0.0, 2.0]]))
    with pytest.raises(ValueError, match="matrix must be positive definite.*leading minor 2"):
        CholeskyCovariance(torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(
        ValueError, match=r"event_shape \(2, 2\) has 4 elements but the matrix is 3×3"
    ):
        CholeskyCovariance(torch.eye(3), (2, 2))
    with pytest.raises(ValueError, match="factor must be lower triangular"):
        CholeskyCovariance.from_factor(torch.ones(2, 2))
    with pytest.raises(ValueError, match="strictly positive diagonal"):
        CholeskyCovariance.from_factor(torch.tensor([[1.0, 0.0], [1.0, -1.0]]))


def test_kronecker_rejects_bad_factors():
    with pytest.raises(ValueError, match=r"spatial must have event_shape \(1, H, W\) or \(H, W\)"):
        KroneckerCovariance(torch.eye(3), GFFCovariance((3, 4, 4)))
    with pytest.raises(TypeError, match="spatial must be a CovarianceOperator"):
        KroneckerCovariance(torch.eye(3), torch.eye(16))
    with pytest.raises(ValueError, match=r"channel must act on event_shape \(C,\)"):
        KroneckerCovariance(IdentityCovariance((3, 1)), GFFCovariance((1, 4, 4)))
    with pytest.raises(ValueError, match="must share a dtype"):
        KroneckerCovariance(torch.eye(3, dtype=F64), GFFCovariance((1, 4, 4)))


def test_sample_rejects_bad_n():
    with pytest.raises(ValueError, match="n must be a non-negative int"):
        IdentityCovariance((2,)).sample(-1)
