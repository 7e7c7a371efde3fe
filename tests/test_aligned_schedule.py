"""The noise-aligned schedule (sdekit.sde.aligned) and the data-shaped covariance.

Oracle: for data with a natural-image spectrum P_k ∝ |k|⁻² and GFF noise, the times at
which the modes' SNR crosses 1 under the aligned schedule spread over the time axis like
white noise's under DDPM's schedule, while on DDPM's schedule GFF squeezes them together.
"""

import math

import pytest
import torch

from sdekit import NIVPSDE, FourierCovariance, GFFCovariance, IdentityCovariance
from sdekit.covariance import (
    CholeskyCovariance,
    KroneckerCovariance,
    make_covariance,
    power_spectrum,
)
from sdekit.experiments.config import build_sde, complete_from_data
from sdekit.sde import (
    AlignedLogSNR,
    chain_log_snr,
    crossing_log_snrs,
    fourier_eigenvalues,
    snr_crossing_times,
)
from sdekit.testing import data_spectrum

F64 = torch.float64
DDPM_BETAS = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
DECILES = torch.linspace(0.1, 0.9, 9, dtype=F64)


def crossing_time_quantiles(betas, data, noise, q=DECILES):
    times = snr_crossing_times(chain_log_snr(betas), crossing_log_snrs(data, noise))
    return torch.quantile(times, q)


@pytest.fixture(scope="module")
def problem():
    """A 24×24 natural-image-like spectrum (|k|⁻³, pixel variance 0.25), unit-mean GFF noise."""
    shape = (1, 24, 24)
    data = 0.25 * data_spectrum(shape, exponent=1.5, floor=1e-3).expand(shape)
    return data, fourier_eigenvalues(GFFCovariance(shape, dtype=F64))


def test_chain_log_snr_matches_the_sde_marginals():
    sde = NIVPSDE.from_betas(IdentityCovariance((1, 4, 4)), DDPM_BETAS)
    t = torch.arange(1, 1001, dtype=F64) / 1000
    alpha, sigma = sde.marginal(t)
    torch.testing.assert_close(chain_log_snr(DDPM_BETAS), (alpha / sigma).square().log())


def test_aligned_gff_crossings_spread_like_white_noise(problem):
    data, gff = problem
    white = crossing_time_quantiles(DDPM_BETAS, data, 1.0)
    squeezed = crossing_time_quantiles(DDPM_BETAS, data, gff)
    aligned_betas = AlignedLogSNR.fit(data, gff).betas(DDPM_BETAS)
    aligned = crossing_time_quantiles(aligned_betas, data, gff)
    # the problem exists: on DDPM's schedule GFF forms the modes in a short stretch
    assert (squeezed[-1] - squeezed[0]) < 0.5 * (white[-1] - white[0])
    # and the aligned schedule removes it: every decile within 0.01 of white noise's
    torch.testing.assert_close(aligned, white, atol=0.01, rtol=0)


def test_aligned_schedule_keeps_the_reference_margins_at_the_ends(problem):
    """The most persistent mode has the same SNR at t = T, the last-formed mode the same
    SNR at t = 1/N, as under white noise on the reference chain (slope-1 continuation)."""
    data, gff = problem
    fit = AlignedLogSNR.fit(data, gff)
    ell_ref, ell_new = chain_log_snr(DDPM_BETAS), chain_log_snr(fit.betas(DDPM_BETAS))
    c_ref, c_new = crossing_log_snrs(data, 1.0), crossing_log_snrs(data, gff)
    torch.testing.assert_close(ell_new[-1] - c_new.min(), ell_ref[-1] - c_ref.min())
    torch.testing.assert_close(ell_new[0] - c_new.max(), ell_ref[0] - c_ref.max())


def test_white_noise_is_its_own_alignment(problem):
    data, _ = problem
    fit = AlignedLogSNR.fit(data, torch.ones_like(data))
    torch.testing.assert_close(fit.betas(DDPM_BETAS), DDPM_BETAS, atol=1e-12, rtol=1e-9)


def test_coinciding_crossings_still_give_a_valid_chain(problem):
    """Noise shaped exactly like the data: all modes cross at one log-SNR; the map keeps
    its minimum slope, so β stays in (0, 1) and ᾱ strictly decreasing."""
    data, _ = problem
    fit = AlignedLogSNR.fit(data, data / data.mean())
    betas = fit.betas(DDPM_BETAS)
    assert bool(((betas > 0) & (betas < 1)).all())
    assert bool((torch.diff(chain_log_snr(betas)) < 0).all())


def test_aligned_round_trip_and_validation(problem):
    data, gff = problem
    fit = AlignedLogSNR.fit(data, gff, num_knots=5)
    assert AlignedLogSNR.from_dict(fit.to_dict()) == fit
    with pytest.raises(ValueError, match="strictly increasing"):
        AlignedLogSNR((0.0, 1.0), (1.0, 0.0))
    with pytest.raises(ValueError, match="num_knots"):
        AlignedLogSNR.fit(data, gff, num_knots=1)
    with pytest.raises(ValueError, match="noise_variances"):
        crossing_log_snrs(data, -gff)
    with pytest.raises(TypeError, match="Fourier basis"):
        fourier_eigenvalues(CholeskyCovariance(torch.eye(4)))


# --------------------------------------------------------------------- data-shaped noise


def test_power_spectrum_is_the_mean_dft_power_of_the_centred_images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(50, 2, 6, 5, generator=g, dtype=F64)
    expected = torch.fft.fft2(x - x.mean(dim=(0, 2, 3), keepdim=True), norm="ortho")
    expected = expected.abs().square().mean(0)
    torch.testing.assert_close(power_spectrum(x, batch_size=7), expected)
    # Parseval: the spectrum's mean is each channel's pixel variance
    pixel_var = (x - x.mean(dim=(0, 2, 3), keepdim=True)).square().mean(dim=(0, 2, 3))
    torch.testing.assert_close(power_spectrum(x).mean(dim=(1, 2)), pixel_var)


def test_from_data_recovers_a_stationary_covariance():
    """Samples of N(0, Σ) with a known Fourier spectrum give back that spectrum."""
    spec = data_spectrum((1, 8, 8), exponent=1.0, floor=0.05)
    truth = FourierCovariance(spec.expand(1, 8, 8), (1, 8, 8))
    x = truth.sample(20000, generator=torch.Generator().manual_seed(1))
    est = FourierCovariance.from_data(x, center=False, dtype=F64)
    rel = (est.eigenvalues - spec).abs() / spec
    assert float(rel.max()) < 0.1  # 20 000 samples: ~ 1 % sd per mode, 4 % at worst
    assert math.isclose(float(est.eigenvalues.mean()), 1.0, rel_tol=1e-12)


def test_from_data_with_colour_is_a_kronecker_of_the_colour_covariance():
    g = torch.Generator().manual_seed(2)
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.5, 0.3, 0.4]], dtype=F64)
    x = torch.einsum("cd,ndhw->nchw", mix, torch.randn(400, 3, 4, 4, generator=g, dtype=F64))
    cov = FourierCovariance.from_data(x, dtype=F64)
    assert isinstance(cov, KroneckerCovariance)
    colour = torch.cov(x.movedim(1, -1).reshape(-1, 3).T)
    dense = cov.channel.factor @ cov.channel.factor.T
    torch.testing.assert_close(dense, colour / colour.diagonal().mean())
    # the registry rebuilds the same operator from plain numbers (what config.json stores)
    rebuilt = make_covariance(
        "data", (3, 4, 4), eigenvalues=cov.spatial.eigenvalues[0].tolist(), channel=dense.tolist()
    )
    v = torch.randn(2, 3, 4, 4, generator=g, dtype=F64)
    torch.testing.assert_close(
        rebuilt.sqrt_apply(v.float()).double(), cov.sqrt_apply(v), atol=1e-5, rtol=1e-5
    )


def test_from_data_floors_unexcited_frequencies_and_checks_its_input():
    x = torch.ones(10, 1, 4, 4) * torch.arange(10.0).view(10, 1, 1, 1)  # only DC varies
    cov = FourierCovariance.from_data(x, floor=1e-2, dtype=F64)
    lam = cov.eigenvalues.flatten()
    raw_dc = power_spectrum(x)[0, 0, 0]
    floored = torch.full((16,), 1e-2 * float(raw_dc) / 16, dtype=F64)
    floored[0] = raw_dc
    torch.testing.assert_close(lam, floored / floored.mean())
    with pytest.raises(ValueError, match="floor"):
        FourierCovariance.from_data(x, floor=0.0)
    with pytest.raises(ValueError, match="images"):
        FourierCovariance.from_data(torch.ones(4, 4))


# ------------------------------------------------------------------- application configs


def _cfg(noise, schedule):
    return {
        "dataset": "synthetic",
        "resolution": 8,
        "noise": noise,
        "schedule": schedule,
        "beta_start": 1e-4,
        "beta_end": 0.02,
        "num_timesteps": 100,
        "model": {},
    }


def test_configs_measure_data_once_and_rebuild_without_it():
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 2 - 1
    for noise in ("gff", "data"):
        cfg = _cfg(noise, "aligned")
        with pytest.raises(ValueError, match="complete_from_data"):
            build_sde(cfg)
        done = complete_from_data(cfg, x)
        assert "schedule_params" not in cfg  # the input config is left alone
        assert complete_from_data(done, lambda: pytest.fail("measured twice")) is done
        sde = build_sde(done)
        fit = AlignedLogSNR.fit(power_spectrum(x), fourier_eigenvalues(sde.covariance))
        expected = NIVPSDE.from_betas(sde.covariance, fit.betas(torch.linspace(1e-4, 0.02, 100)))
        t = torch.tensor([0.01, 0.5, 1.0], dtype=F64)
        torch.testing.assert_close(sde.marginal(t), expected.marginal(t))
    assert isinstance(build_sde(_cfg("isotropic", "linear")).covariance, IdentityCovariance)
    with pytest.raises(ValueError, match="schedule"):
        build_sde(_cfg("isotropic", "cosine"))
