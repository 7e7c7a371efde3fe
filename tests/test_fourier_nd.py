"""Fourier-diagonal covariances over 1, 2 or 3 trailing spatial dims (``spatial_dims=``):
dense cross-checks built without sdekit, and the oracle, samplers, likelihood and teleport on
(C, L) signals and (C, D, H, W) volumes."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import torch

import sdekit
from sdekit import (
    NIVPSDE,
    CholeskyCovariance,
    FourierCovariance,
    GaussianTeleport,
    GFFCovariance,
    IdentityCovariance,
    KroneckerCovariance,
)
from sdekit.covariance import (
    GaussianStatistics,
    gff_eigenvalues,
    gff_spectrum,
    make_covariance,
    power_spectrum,
    shared_spatial_dims,
    statistics,
)
from sdekit.errors import InputError
from sdekit.likelihood import log_likelihood
from sdekit.metrics import radial_power_spectrum
from sdekit.metrics.spectrum import ring_mean
from sdekit.testing import GaussianOracle, data_spectrum, population_kl

F64 = torch.float64
SIGNAL, VOLUME = (2, 12), (2, 3, 4, 5)  # (C, L) and (C, D, H, W)
EVENTS = {1: SIGNAL, 3: VOLUME}


def dftn_matrix(grid) -> np.ndarray:
    """The orthonormal N-D DFT on row-major flattened grids: a Kronecker product of 1-D ones."""
    out = np.ones((1, 1))
    for n in grid:
        out = np.kron(out, scipy.linalg.dft(n, scale="sqrtn"))
    return out


def hand_spectrum(grid, alpha: float, dc: float = 1.0) -> np.ndarray:
    """|k|^(-2α), |k|² = Σ_i min(j_i, n_i - j_i)², DC as |k| = dc, unit mean: by hand."""
    lam = np.empty(grid)
    for idx in itertools.product(*map(range, grid)):
        k2 = sum(min(j, n - j) ** 2 for j, n in zip(idx, grid, strict=True))
        lam[idx] = (dc**2 if k2 == 0 else k2) ** (-alpha)
    return lam / lam.mean()


def dense_reference(lam: np.ndarray, channels: int) -> np.ndarray:
    """blockdiag over channels of F^H diag(λ) F, λ shared: Σ as a dense matrix."""
    F = dftn_matrix(lam.shape)
    block = (F.conj().T @ np.diag(lam.ravel()) @ F).real
    return scipy.linalg.block_diag(*[block] * channels)


# --------------------------------------------------------------- the operators
@pytest.mark.parametrize("grid", [(7,), (12,), (3, 4, 5), (2, 3, 3)], ids=str)
@pytest.mark.parametrize("alpha", [1.0, -0.5])
def test_gff_spectrum_is_the_hand_formula(grid, alpha):
    got = gff_spectrum(grid, alpha=alpha, dc_frequency=0.7, dtype=F64)
    np.testing.assert_allclose(got.numpy(), hand_spectrum(grid, alpha, 0.7), rtol=1e-13)
    # the 2-D function is the N-D one on an image's grid
    torch.testing.assert_close(gff_eigenvalues(4, 6, dtype=F64), gff_spectrum((4, 6), dtype=F64))


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("alpha", [1.0, 0.5, -0.5])
def test_gff_operator_is_the_dense_matrix(k, alpha):
    shape = EVENTS[k]
    op = GFFCovariance(shape, alpha=alpha, dtype=F64, spatial_dims=k)
    assert op.spatial_dims == k and op.grid == shape[-k:] and op.dim == math.prod(shape)
    dense = torch.from_numpy(dense_reference(hand_spectrum(shape[-k:], alpha), shape[0]))
    torch.testing.assert_close(op.to_dense(), dense, rtol=1e-10, atol=1e-12)
    L = op.sqrt_to_dense()
    torch.testing.assert_close(L @ L.T, dense, rtol=1e-10, atol=1e-12)
    x = torch.randn(3, *shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    flat = x.reshape(3, -1)
    torch.testing.assert_close(op.inv_sqrt_apply(op.sqrt_apply(x)), x, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        op.inv_sqrt_apply_t(x).reshape(3, -1), torch.linalg.solve(L.T, flat.T).T, rtol=1e-9,
        atol=1e-10,
    )  # fmt: skip
    assert float(op.logdet()) == pytest.approx(float(torch.linalg.slogdet(dense)[1]), rel=1e-10)
    ref = scipy.stats.multivariate_normal(np.zeros(op.dim), dense.numpy()).logpdf(flat.numpy())
    np.testing.assert_allclose(op.log_prob(x).numpy(), ref, rtol=1e-10)
    torch.testing.assert_close(op.diagonal().flatten(), dense.diagonal(), rtol=1e-10, atol=0)
    # fourier_spectrum: Σ in the N-D Fourier basis, per channel
    F = torch.from_numpy(dftn_matrix(shape[-k:]))
    block = F @ dense[: F.shape[0], : F.shape[0]].to(torch.complex128) @ F.conj().T
    torch.testing.assert_close(
        block, torch.diag(op.fourier_spectrum()[0].flatten()).to(block.dtype), atol=1e-10,
        rtol=0,
    )  # fmt: skip


@pytest.mark.parametrize("k", [1, 3])
def test_kronecker_with_an_nd_fourier_factor_is_the_dense_kronecker_product(k):
    shape = EVENTS[k]
    colour = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=F64)
    spatial = GFFCovariance((1, *shape[1:]), dtype=F64, spatial_dims=k)
    op = KroneckerCovariance(colour, spatial)
    assert op.event_shape == shape and op.spatial_dims == k
    torch.testing.assert_close(
        op.to_dense(), torch.kron(colour, spatial.to_dense().contiguous()), rtol=1e-10, atol=1e-12
    )
    assert float(op.logdet()) == pytest.approx(float(torch.logdet(op.to_dense())), rel=1e-10)
    torch.testing.assert_close(op.diagonal().flatten(), op.to_dense().diagonal())
    # uncorrelated channels: Fourier-diagonal with λ[c, k] = Σ_c[c, c] λ_s[k]
    diag = KroneckerCovariance(torch.diag(colour.diagonal()), spatial).fourier_spectrum()
    torch.testing.assert_close(diag, colour.diagonal().reshape(-1, *[1] * k) * spatial.eigenvalues)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_power_spectrum_and_from_data_over_n_dims(k):
    shape = {1: SIGNAL, 2: (2, 4, 6), 3: VOLUME}[k]
    x = torch.randn(50, *shape, generator=torch.Generator().manual_seed(k), dtype=F64)
    x = x.cumsum(-1) + 0.3  # correlated along the last axis, off-centre
    power = power_spectrum(x, spatial_dims=k)
    assert power.shape == shape
    # by hand: |DFT of (x − channel mean)|² averaged over the images, then symmetrised
    axes = tuple(range(2, x.ndim))
    centred = (x - x.mean(dim=(0, *axes), keepdim=True)).numpy()
    raw = (np.abs(np.fft.fftn(centred, axes=axes, norm="ortho")) ** 2).mean(0)
    mirrored = np.roll(
        np.flip(raw, axis=tuple(range(1, raw.ndim))), 1, axis=tuple(range(1, raw.ndim))
    )
    np.testing.assert_allclose(power.numpy(), 0.5 * (raw + mirrored), rtol=1e-12)
    # Parseval: the mean of the spectrum is each channel's pixel variance about its mean
    var = centred.transpose(1, 0, *range(2, x.ndim)).reshape(shape[0], -1).var(1)
    np.testing.assert_allclose(power.reshape(shape[0], -1).mean(1).numpy(), var, rtol=1e-12)
    one = x[:, :1]
    op = FourierCovariance.from_data(one, dtype=F64, spatial_dims=k)
    assert isinstance(op, FourierCovariance) and op.spatial_dims == k
    lam = power[:1].clamp_min(1e-3 * float(power[:1].mean()))
    torch.testing.assert_close(op.eigenvalues, lam / lam.mean())
    colour = FourierCovariance.from_data(x, dtype=F64, spatial_dims=k)
    assert isinstance(colour, KroneckerCovariance) and colour.event_shape == shape


def test_ring_mean_and_radial_spectrum_over_n_dims():
    grid = (4, 6, 5)
    radius = torch.from_numpy(hand_spectrum(grid, -0.5) * 0)  # shape only
    for idx in itertools.product(*map(range, grid)):
        radius[idx] = round(math.sqrt(sum(min(j, n - j) ** 2 for j, n in zip(idx, grid))))
    values = (radius + 1).pow(-2.0).expand(3, *grid)  # a function of the rounded radius
    radii, means = ring_mean(values, spatial_dims=3)
    torch.testing.assert_close(means, (radii.to(F64) + 1).pow(-2.0))
    white = torch.randn(400, 1, 64, generator=torch.Generator().manual_seed(0), dtype=F64)
    _, p = radial_power_spectrum(white, spatial_dims=1)
    assert float((p - 1).abs().max()) < 0.3  # white noise: flat at 1


# ------------------------------------------------------- the oracle and samplers
def problem(k, noise="gff", shape=None):
    shape = shape or EVENTS[k]
    cov = {
        "gff": GFFCovariance(shape, dtype=F64, spatial_dims=k),
        "identity": IdentityCovariance(shape),
    }[noise]
    sde = NIVPSDE(cov)
    data = FourierCovariance(0.25 * data_spectrum(shape, 1.5, 1e-3, spatial_dims=k), shape,
                             spatial_dims=k)  # fmt: skip
    mean = torch.linspace(-0.5, 0.5, math.prod(shape), dtype=F64).reshape(shape)
    return sde, mean, data


@pytest.mark.parametrize("noise", ["gff", "identity"])
@pytest.mark.parametrize("k", [1, 3])
def test_the_spectral_oracle_equals_the_dense_one(k, noise):
    sde, mean, data = problem(k, noise)
    spectral = GaussianOracle(sde, mean, data)
    dense = GaussianOracle(sde, mean, data, path="dense")
    assert (spectral.path, spectral.spatial_dims) == ("spectral", k)
    x = spectral.sample_marginal(4, 0.4, torch.Generator().manual_seed(0))
    for t in (0.05, 0.4, 0.9):
        torch.testing.assert_close(spectral.eps(x, t), dense.eps(x, t), rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(spectral.log_prob(x, t), dense.log_prob(x, t), rtol=1e-10,
                                   atol=1e-9)  # fmt: skip
    # and the marginal density is the dense Gaussian's
    alpha, sigma = (float(v) for v in sde.marginal(torch.tensor(0.4, dtype=F64)))
    K = alpha**2 * data.to_dense() + sigma**2 * sde.covariance.to_dense().to(F64)
    ref = scipy.stats.multivariate_normal((alpha * mean).flatten().numpy(), K.numpy())
    np.testing.assert_allclose(
        spectral.log_prob(x, 0.4).numpy(), ref.logpdf(x.reshape(4, -1).numpy()), rtol=1e-10
    )
    torch.testing.assert_close(spectral.flow(x, 0.4, 0.1), dense.flow(x, 0.4, 0.1), rtol=1e-9,
                               atol=1e-10)  # fmt: skip


def test_operators_over_different_dims_share_no_basis():
    """A 1-D spectrum on (C, L) rows and a 2-D one on the same array are not jointly diagonal:
    auto falls back to the dense path, spectral is refused."""
    shape = (2, 8)
    noise = GFFCovariance(shape, dtype=F64, spatial_dims=1)
    data = GFFCovariance(shape, alpha=1.5, dtype=F64)  # 2-D over (2, 8)
    assert shared_spatial_dims((noise, data), shape) is None
    assert shared_spatial_dims((IdentityCovariance(shape), data), shape) == 2
    assert shared_spatial_dims((IdentityCovariance((5,)),) * 2, (5,)) == 1
    sde = NIVPSDE(noise)
    assert GaussianOracle(sde, 0.0, data).path == "dense"
    with pytest.raises(InputError, match="same spatial_dims"):
        GaussianOracle(sde, 0.0, data, path="spectral")


@pytest.mark.parametrize("k", [1, 3])
def test_deterministic_samplers_converge_on_signals_and_volumes(k):
    """dpm_solver_2m's exact KL to the exact PF-ODE law falls at its order (2: KL ∝ h⁴)."""
    sde, mean, data = problem(k)
    oracle = GaussianOracle(sde, mean, data)
    kls = [
        population_kl(oracle, sampler="dpm_solver_2m", steps=n, reference="exact_flow")[0]
        for n in (20, 40, 80)
    ]
    slopes = [math.log2(a / b) / 2 for a, b in itertools.pairwise(kls)]  # KL ~ error²
    assert min(slopes) > 1.7, (kls, slopes)
    # what users get: the data law, to within the prior's and t_min's own gap
    assert population_kl(oracle, sampler="dpm_solver_2m", steps=40)[0] < 1e-4


@pytest.mark.parametrize("k", [1, 3])
def test_ancestral_sampling_converges_to_the_data_law(k):
    """DDPM ancestral's KL to the data law (moment-matched per Fourier mode, whose Monte-Carlo
    bias is ≈ 1/n per mode: 7e-4 here) falls with the step count."""
    sde, mean, data = problem(k)
    oracle = GaussianOracle(sde, mean, data)

    def kl(steps):
        x = sdekit.sample(sde, oracle, n=1000, sampler="ancestral", steps=steps, dtype=F64,
                          generator=torch.Generator().manual_seed(0))  # fmt: skip
        return oracle.kl_per_dim(x)

    coarse, fine = kl(100), kl(400)  # measured 9.7e-3 → 1.5e-3 (1-D), 6.4e-3 → 1.3e-3 (3-D)
    assert fine < 0.5 * coarse and fine < 3e-3, (coarse, fine)


@pytest.mark.parametrize("k", [1, 3])
def test_likelihood_is_the_exact_density(k):
    sde, mean, data = problem(k, shape={1: (1, 8), 3: (1, 2, 2, 3)}[k])  # the ODE's d×d trace
    o = GaussianOracle(sde, mean, data)
    eps, d = sde.default_eps, o.dim
    x = o.sample_data(2, torch.Generator().manual_seed(0))
    lp, _ = log_likelihood(sde, o, x, trace="exact", rtol=1e-7, atol=1e-7)
    x_T = o.flow(x, eps, sde.T)
    prior_gap = sde.prior_logp(x_T) - o.log_prob(x_T, sde.T)
    assert float((lp - (o.log_prob(x, eps) + prior_gap)).abs().max()) / d < 1e-4


@pytest.mark.parametrize("k", [1, 3])
def test_teleport_on_signals_and_volumes(k, monkeypatch):
    sde, mean, data = problem(k)
    oracle = GaussianOracle(sde, mean, data)
    tp = GaussianTeleport(sde, mean, data, max_snr=1.0)
    assert tp.oracle.path == "spectral" and sde.default_eps < tp.time < sde.T
    x_T = sde.prior_sample(3, generator=torch.Generator().manual_seed(0), dtype=F64)
    torch.testing.assert_close(tp(x_T), oracle.flow(x_T, sde.T, tp.time), rtol=1e-12, atol=1e-12)
    # from data above the dense limit: the stationary fit runs over the noise's own dims
    monkeypatch.setattr(statistics, "DENSE_LIMIT", 8)
    x0 = oracle.sample_data(4000, generator=torch.Generator().manual_seed(1))
    fitted = GaussianTeleport.from_data(sde, x0)
    assert fitted.oracle.path == "spectral" and fitted.oracle.spatial_dims == k
    assert fitted.time == pytest.approx(tp.time, abs=0.02)


@pytest.mark.parametrize("k", [1, 3])
def test_stationary_statistics_round_trip_their_record(k):
    shape = EVENTS[k]
    x = torch.randn(30, *shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    g = GaussianStatistics.from_images(x, "stationary", spatial_dims=k)
    assert g.covariance.spatial_dims == k
    record = g.to_config()
    assert record["spatial_dims"] == k
    back = GaussianStatistics.from_config(record)
    torch.testing.assert_close(back.covariance.to_dense(), g.covariance.to_dense())
    # an image record keeps its old form (no key), and reads back as 2-D
    img = GaussianStatistics.from_images(torch.randn(5, 1, 4, 4, dtype=F64), "stationary")
    assert "spatial_dims" not in img.to_config()


def test_registry_builds_nd_families():
    for name in ("gff", "pink", "blue"):
        op = make_covariance(name, SIGNAL, spatial_dims=1)
        assert op.spatial_dims == 1 and op.event_shape == SIGNAL


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("bad", [0, 4, True, "2", 2.5])
def test_spatial_dims_outside_1_2_3_is_refused(bad):
    with pytest.raises(InputError, match="spatial_dims must be one of"):
        GFFCovariance(VOLUME, spatial_dims=bad)
    with pytest.raises(InputError, match="spatial_dims must be one of"):
        power_spectrum(torch.randn(2, *VOLUME), spatial_dims=bad)


def test_events_too_short_or_images_of_the_wrong_rank_are_refused():
    with pytest.raises(InputError, match=r"must be \(\.\.\., D, H, W\) for spatial_dims=3"):
        GFFCovariance((4, 5), spatial_dims=3)
    with pytest.raises(InputError, match=r"\(n, C, L\) for spatial_dims=1"):
        power_spectrum(torch.randn(3, 2, 4, 4), spatial_dims=1)
    with pytest.raises(InputError, match="must end with the spectrum's grid"):
        FourierCovariance(torch.ones(6), (2, 5), spatial_dims=1)
    with pytest.raises(InputError, match=r"spatial_dims=3 needs images \(n, C, D, H, W\)"):
        GaussianStatistics.from_images(torch.randn(4, 1, 8), "stationary", spatial_dims=3)
    with pytest.raises(InputError, match="not symmetric|symmetric"):
        FourierCovariance(torch.arange(1.0, 7.0), (1, 6), spatial_dims=1)
    # a dense matrix is no Fourier operator: the oracle takes its dense path
    chol = CholeskyCovariance(torch.eye(24, dtype=F64), (1, 24))
    assert shared_spatial_dims((chol, IdentityCovariance((1, 24))), (1, 24)) is None
