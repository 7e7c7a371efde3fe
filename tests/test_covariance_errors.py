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
    with pytest.raises(ValueError, match="alpha must be a finite real number"):
        GFFCovariance((1, 8, 8), alpha=float("nan"))
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


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.complex64])
def test_half_and_complex_dtypes_are_refused_at_construction(dtype):
    with pytest.raises(TypeError, match=r"dtype must be torch.float32 or torch.float64"):
        GFFCovariance((1, 4, 4), dtype=dtype)
    images = torch.randn(6, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match=r"dtype must be torch.float32 or torch.float64"):
        FourierCovariance.from_data(images, dtype=dtype)
    if not dtype.is_complex:
        with pytest.raises(TypeError, match="eigenvalues' dtype must be torch.float32"):
            FourierCovariance(torch.ones(4, 4, dtype=dtype))


def test_gff_names_alpha_and_dc_frequency_outside_their_usable_range():
    with pytest.raises(ValueError, match="alpha must be a finite real number, got inf"):
        GFFCovariance((1, 4, 4), alpha=float("inf"))
    with pytest.raises(ValueError, match=r"alpha=50 .*usable range here is about \|alpha\| <= "):
        GFFCovariance((1, 8, 8), alpha=50)
    with pytest.raises(ValueError, match=r"dc_frequency=1e-30 .*dc_frequency in \["):
        GFFCovariance((1, 8, 8), dc_frequency=1e-30)
    with pytest.raises(ValueError, match="dc_frequency must be > 0"):
        GFFCovariance((1, 4, 4), dc_frequency=float("inf"))
    assert GFFCovariance((1, 8, 8), alpha=50, dtype=F64).alpha == 50  # float64 holds it


def test_from_data_on_constant_images_says_they_have_no_variance():
    with pytest.raises(ValueError, match="images have no variance"):
        FourierCovariance.from_data(torch.full((5, 1, 4, 4), 0.3))
    with pytest.raises(ValueError, match="images have no variance"):
        FourierCovariance.from_data(torch.zeros(5, 3, 4, 4))


def test_sample_with_a_float_n_is_a_type_error():
    with pytest.raises(TypeError, match="n must be a non-negative int .* got float 2.0"):
        GFFCovariance((1, 4, 4)).sample(2.0)


def test_infinite_beta_max_and_sigma_max_are_refused():
    from sdekit import NIVESDE, NIVPSDE

    cov = GFFCovariance((1, 4, 4))
    with pytest.raises(ValueError, match="both finite, got beta_min=0.1, beta_max=inf"):
        NIVPSDE(cov, beta_max=float("inf"))
    with pytest.raises(ValueError, match="both finite, got sigma_min=0.01, sigma_max=inf"):
        NIVESDE(cov, sigma_max=float("inf"))
