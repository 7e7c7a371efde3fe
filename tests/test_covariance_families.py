"""Family-specific facts: GFF conventions, parameter gradients, Kronecker structure, .to()."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import (
    F64,
    FAMILIES,
    dense_fourier,
    gff_spectrum_reference,
    make_case,
    random_spd,
    symmetric_spectrum,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from sdekit import (
    CholeskyCovariance,
    DiagonalCovariance,
    FourierCovariance,
    GFFCovariance,
    IdentityCovariance,
    KroneckerCovariance,
)
from sdekit.covariance import gff_eigenvalues, mirror_frequencies


# ----------------------------------------------------------------------- GFF
@pytest.mark.parametrize("hw", [(4, 4), (5, 6), (7, 5), (32, 32), (16, 9)])
def test_gff_spectrum_matches_hand_computed(hw):
    lam = gff_eigenvalues(*hw, dtype=F64)
    torch.testing.assert_close(lam, torch.from_numpy(gff_spectrum_reference(*hw)))


def test_gff_unit_pixel_variance_and_documented_numbers():
    op = GFFCovariance((3, 32, 32), dtype=F64)
    torch.testing.assert_close(op.diagonal(), torch.ones(3, 32, 32, dtype=F64))
    lam = op.eigenvalues
    # the paper's sigma_N at 32x32 with DC = 1 (unnormalised convention)
    raw = GFFCovariance((1, 32, 32), normalize=False, dtype=F64)
    assert math.isclose(float(raw.diagonal()[0, 0, 0]) ** 0.5, 0.14555, abs_tol=5e-5)
    # condition number 512, eigenvalues from ~0.09 to ~47 (DESIGN.md)
    assert math.isclose(float(lam.max() / lam.min()), 512.0, rel_tol=1e-12)
    assert 0.09 < float(lam.min()) < 0.095 and 47.0 < float(lam.max()) < 47.5
    # log det = sum of log eigenvalues over every channel
    torch.testing.assert_close(op.logdet(), 3 * lam.log().sum())


def test_gff_alpha_zero_is_white_noise():
    op = GFFCovariance((2, 6, 5), alpha=0.0, dtype=F64)
    torch.testing.assert_close(op.to_dense(), torch.eye(60, dtype=F64))


def test_gff_is_stationary_and_smooth():
    """Σ[p, q] depends only on p - q (periodic); neighbours are positively correlated."""
    H, W = 6, 8
    S = GFFCovariance((1, H, W), dtype=F64).to_dense().reshape(H, W, H, W)
    for dy, dx in [(0, 1), (1, 0), (2, 3)]:
        vals = torch.stack(
            [S[y, x, (y + dy) % H, (x + dx) % W] for y in range(H) for x in range(W)]
        )
        torch.testing.assert_close(vals, vals[0].expand_as(vals))
    assert float(S[0, 0, 0, 1]) > 0.3


def test_gff_is_a_fourier_covariance_specialisation():
    op = GFFCovariance((2, 5, 6), alpha=1.5, dc_frequency=0.5, dtype=F64)
    assert isinstance(op, FourierCovariance)
    ref = gff_spectrum_reference(5, 6, alpha=1.5, dc=0.5)
    torch.testing.assert_close(
        op.to_dense(), torch.from_numpy(dense_fourier(ref[None].repeat(2, 0)))
    )


def test_fourier_dense_spectrum_equals_eigenvalues():
    lam = symmetric_spectrum((1, 5, 4), seed=11)
    S = FourierCovariance(lam).to_dense()
    ev = torch.linalg.eigvalsh(S)
    torch.testing.assert_close(ev, lam.flatten().sort().values, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------- fourier_spectrum
FOURIER_DIAGONAL = {"identity", "fourier", "fourier_shared", "gff", "blue", "offset"}


@pytest.mark.parametrize("name", FAMILIES)
def test_fourier_spectrum_is_the_dense_matrix_in_the_fourier_basis(name):
    """Σ = blockdiag_c(Fᴴ diag(λ_c) F) with λ = fourier_spectrum() (so λ are Σ's
    eigenvalues); None for the families that are not Fourier-diagonal."""
    op, dense = make_case(name, (2, 3, 4))
    spectrum = op.fourier_spectrum()
    if name not in FOURIER_DIAGONAL:  # diagonal, Cholesky, Kronecker of a dense colour
        assert spectrum is None
        return
    assert spectrum.shape == (2, 3, 4)
    lam = spectrum.to(F64)
    torch.testing.assert_close(torch.from_numpy(dense_fourier(lam.numpy())), dense)
    ev = torch.linalg.eigvalsh(dense)
    torch.testing.assert_close(ev, lam.flatten().sort().values, rtol=1e-10, atol=1e-12)


def test_fourier_spectrum_of_kronecker_and_one_dimensional_events():
    """A Kronecker product is Fourier-diagonal when its channels are uncorrelated:
    λ[c, k] = Σ_c[c, c] λ_s[k]; white noise has a spectrum on any event."""
    variances = torch.tensor([0.5, 2.0], dtype=F64)
    spatial = GFFCovariance((1, 3, 4), dtype=F64)
    for channel in (CholeskyCovariance(torch.diag(variances)), DiagonalCovariance(variances)):
        op = KroneckerCovariance(channel, spatial)
        lam = op.fourier_spectrum()
        torch.testing.assert_close(lam, variances[:, None, None] * spatial.eigenvalues)
        torch.testing.assert_close(torch.from_numpy(dense_fourier(lam.numpy())), op.to_dense())
    white = KroneckerCovariance(IdentityCovariance((2,)), spatial).fourier_spectrum()
    assert white.dtype == F64 and torch.equal(white, spatial.eigenvalues.expand(2, 3, 4))
    # white noise is diagonal in every Fourier basis, a 1-D event's included
    assert IdentityCovariance((5,)).spatial_dims is None
    assert torch.equal(IdentityCovariance((5,)).fourier_spectrum(), torch.ones(5, dtype=F64))


# ---------------------------------------------------------------- Kronecker
def test_kronecker_with_dense_operator_factors_and_hw_spatial():
    Sc = random_spd(3, seed=1, cond=4.0)
    Ss = random_spd(12, seed=2)
    op = KroneckerCovariance(CholeskyCovariance(Sc), CholeskyCovariance(Ss, (3, 4)))
    assert op.event_shape == (3, 3, 4)
    S = torch.kron(Sc, Ss)
    torch.testing.assert_close(op.to_dense(), S)
    L = op.sqrt_to_dense()
    torch.testing.assert_close(L @ L.T, S)
    torch.testing.assert_close(op.logdet(), torch.linalg.slogdet(S)[1])
    x = torch.randn(2, 3, 3, 4, dtype=F64)
    torch.testing.assert_close(
        op.inv_sqrt_apply_t(x).reshape(2, -1), torch.linalg.solve(L.T, x.reshape(2, -1).T).T
    )


# ----------------------------------------------------- parameter gradients
def test_gradients_reach_the_parameters():
    v = (torch.rand(1, 3, 3, dtype=F64) + 0.5).requires_grad_()
    x = torch.randn(2, 1, 3, 3, dtype=F64)
    assert torch.autograd.gradcheck(lambda v: DiagonalCovariance(v).log_prob(x), (v,))

    a = torch.randn(1, 4, 3, dtype=F64, requires_grad=True)
    z = torch.randn(2, 1, 4, 3, dtype=F64)

    def fourier_logp(a):
        return FourierCovariance(torch.exp(a + mirror_frequencies(a))).log_prob(z)

    assert torch.autograd.gradcheck(fourier_logp, (a,))

    B = torch.randn(4, 4, dtype=F64)
    y = torch.randn(3, 4, dtype=F64)

    def chol_logp(B):
        return CholeskyCovariance(B @ B.T + 4 * torch.eye(4, dtype=F64)).log_prob(y)

    assert torch.autograd.gradcheck(chol_logp, (B.requires_grad_(),))


# -------------------------------------------------------------- properties
@settings(max_examples=40, deadline=None)
@given(
    c=st.integers(1, 3),
    h=st.integers(1, 7),
    w=st.integers(1, 7),
    shared=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_fourier_property_any_grid(c, h, w, shared, seed):
    shape = (c, h, w)
    lam = symmetric_spectrum(shape[-2:] if shared else shape, seed)
    op = FourierCovariance(lam, shape)
    S = torch.from_numpy(dense_fourier(lam.expand(shape).numpy()))
    L = op.sqrt_to_dense()
    torch.testing.assert_close(L, L.T)  # symmetric square root
    torch.testing.assert_close(L @ L, S)
    torch.testing.assert_close(op.logdet(), torch.linalg.slogdet(S)[1])
    x = torch.randn(2, *shape, dtype=F64)
    torch.testing.assert_close(op.solve(op.apply(x)), x)


@settings(max_examples=30, deadline=None)
@given(d=st.integers(1, 12), seed=st.integers(0, 2**31 - 1), cond=st.floats(1.0, 1e4))
def test_cholesky_property_any_spd(d, seed, cond):
    S = random_spd(d, seed, cond)
    op = CholeskyCovariance(S)
    x = torch.randn(3, d, dtype=F64)
    torch.testing.assert_close(op.apply(op.solve(x)), x, rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(op.logdet(), torch.linalg.slogdet(S)[1])
    same = CholeskyCovariance.from_factor(op.factor)
    torch.testing.assert_close(same.to_dense(), S)


# --------------------------------------------------------- dtype / device
def test_to_changes_dtype_and_keeps_values():
    op = KroneckerCovariance(random_spd(2, 0), GFFCovariance((1, 4, 4), dtype=F64))
    op32 = op.to(dtype=torch.float32)
    assert op32.dtype == torch.float32 and op.dtype == F64
    assert op32.spatial.dtype == torch.float32 and op32.channel.dtype == torch.float32
    torch.testing.assert_close(op32.to_dense().double(), op.to_dense(), rtol=1e-6, atol=1e-6)
    ident = IdentityCovariance((2, 2))
    assert ident.to(dtype=F64) is not ident and ident.dtype is None
    assert ident.sample(2, dtype=F64).dtype == F64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    ops = [
        GFFCovariance((3, 8, 8)),
        CholeskyCovariance(random_spd(12, 0), (3, 4)).to(dtype=torch.float32),
        KroneckerCovariance(random_spd(3, 1).float(), GFFCovariance((1, 4, 4))),
    ]
    for op in ops:
        gpu = op.to(device="cuda")
        x = torch.randn(4, *op.event_shape)
        for m in ("sqrt_apply", "inv_sqrt_apply", "log_prob"):
            torch.testing.assert_close(
                getattr(gpu, m)(x.cuda()).cpu(), getattr(op, m)(x), rtol=1e-4, atol=1e-4
            )
        assert gpu.sample(2).device.type == "cuda"
