"""The noise-aligned schedule (sdekit.sde.aligned) and the data-shaped covariance.

Oracle: for data with a natural-image spectrum P_k ∝ |k|⁻² and GFF noise, the times at
which the modes' SNR crosses 1 under the aligned schedule spread over the time axis like
white noise's under DDPM's schedule, while on DDPM's schedule GFF squeezes them together.
"""

import math

import pytest
import torch

import sdekit
from sdekit import NIVPSDE, FourierCovariance, GFFCovariance, IdentityCovariance
from sdekit.covariance import (
    CholeskyCovariance,
    KroneckerCovariance,
    make_covariance,
    power_spectrum,
)
from sdekit.experiments.config import build_sde, complete_from_data
from sdekit.experiments.sampling import grid_rule, run_context
from sdekit.sampling import SamplingSpec, resolve, transfer_grid
from sdekit.sde import (
    AlignedLogSNR,
    chain_log_snr,
    crossing_log_snrs,
    fourier_eigenvalues,
    snr_crossing_times,
)
from sdekit.testing import data_spectrum, fourier_gaussian_problem

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


def ddpm_ends():
    return chain_log_snr(DDPM_BETAS)[[-1, 0]].tolist()


@pytest.mark.parametrize("pinned", [True, False], ids=["pinned", "slope-1 ends"])
def test_aligned_gff_crossings_spread_like_white_noise(problem, pinned):
    data, gff = problem
    white = crossing_time_quantiles(DDPM_BETAS, data, 1.0)
    squeezed = crossing_time_quantiles(DDPM_BETAS, data, gff)
    fit = AlignedLogSNR.fit(data, gff, log_snr_range=ddpm_ends() if pinned else None)
    aligned = crossing_time_quantiles(fit.betas(DDPM_BETAS), data, gff)
    # the problem exists: on DDPM's chain GFF forms the modes in a short stretch
    assert (squeezed[-1] - squeezed[0]) < 0.5 * (white[-1] - white[0])
    # and the aligned chain removes it: every decile within 0.01 of white noise's
    torch.testing.assert_close(aligned, white, atol=0.01, rtol=0)


def test_pinned_ends_keep_the_reference_chains_first_and_last_log_snr(problem):
    data, gff = problem
    fit = AlignedLogSNR.fit(data, gff, log_snr_range=ddpm_ends())
    ell_ref, ell_new = chain_log_snr(DDPM_BETAS), chain_log_snr(fit.betas(DDPM_BETAS))
    torch.testing.assert_close(ell_new[[0, -1]], ell_ref[[0, -1]])
    assert bool((torch.diff(ell_new) < 0).all())
    with pytest.raises(ValueError, match="must enclose every crossing"):
        AlignedLogSNR.fit(data, gff, log_snr_range=(0.0, 20.0))


def test_slope_1_ends_keep_the_reference_margins(problem):
    """Unpinned, the most persistent mode has the same SNR at t = T, the last-formed mode
    the same SNR at t = 1/N, as under white noise on the reference chain."""
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
    fit = AlignedLogSNR.fit(data, data / data.mean(), log_snr_range=ddpm_ends())
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
        "num_timesteps": 1000,
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
        betas = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
        ends = chain_log_snr(betas)[[-1, 0]].tolist()
        fit = AlignedLogSNR.fit(
            power_spectrum(x), fourier_eigenvalues(sde.covariance), log_snr_range=ends
        )
        expected = NIVPSDE.from_betas(sde.covariance, fit.betas(betas))
        t = torch.tensor([0.01, 0.5, 1.0], dtype=F64)
        torch.testing.assert_close(sde.marginal(t), expected.marginal(t))
    assert isinstance(build_sde(_cfg("isotropic", "linear")).covariance, IdentityCovariance)
    with pytest.raises(ValueError, match="schedule"):
        build_sde(_cfg("isotropic", "cosine"))


# ------------------------------------------------------------------- sampling grids


@pytest.mark.parametrize("sampler", ["ddim", "dpm_solver_2m", "ancestral"])
def test_transferred_grid_samples_exactly_as_on_ddpm_chain(problem, sampler):
    """VP marginals depend on t only through λ(t): on the aligned chain, DDPM's grid moved
    by transfer_grid gives the same samples as DDPM's chain (exact model, same noise)."""
    data, _ = problem
    shape = (1, 24, 24)
    gff = GFFCovariance(shape, dtype=F64)
    fit = AlignedLogSNR.fit(data, fourier_eigenvalues(gff), log_snr_range=ddpm_ends())
    ddpm = NIVPSDE.from_betas(gff, DDPM_BETAS)
    aligned = NIVPSDE.from_betas(gff, fit.betas(DDPM_BETAS))
    times = torch.linspace(1.0, 1e-3, 11, dtype=F64) ** 1.5
    moved = transfer_grid(times, ddpm, aligned)
    torch.testing.assert_close(aligned.log_snr(moved), ddpm.log_snr(times))
    x_T = ddpm.prior_sample(3, generator=torch.Generator().manual_seed(0))
    out = {}
    for name, sde, grid in (("ddpm", ddpm, times), ("aligned", aligned, moved)):
        oracle = fourier_gaussian_problem(sde, data[0], scale=1.0)
        g = torch.Generator().manual_seed(1)
        out[name] = sdekit.sample(sde, oracle, x_T=x_T, sampler=sampler, grid=grid, generator=g)
    torch.testing.assert_close(out["aligned"], out["ddpm"], atol=1e-8, rtol=1e-8)
    with pytest.raises(ValueError, match="leave the target's range"):
        transfer_grid(times, ddpm, NIVPSDE.from_betas(gff, DDPM_BETAS[:500] * 0.1))


def test_the_reference_grid_rule_follows_the_schedule():
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(4)) * 2 - 1
    linear = _cfg("gff", "linear")
    assert grid_rule(linear, "auto") is None
    cfg = complete_from_data(_cfg("gff", "aligned"), x)
    sde = build_sde(cfg)
    assert grid_rule(cfg, "auto") == "reference" and grid_rule(cfg, "own") is None
    spec = SamplingSpec(sampler="ddim", steps=10, grid=grid_rule(cfg, "auto"))
    times = resolve(spec, sde, run_context(cfg, sde)).grid.t  # DDPM's noise levels
    reference = NIVPSDE.from_betas(sde.covariance, torch.linspace(1e-4, 0.02, 1000, dtype=F64))
    expected = torch.linspace(1.0, reference.default_eps, 10, dtype=F64)
    torch.testing.assert_close(sde.log_snr(times), reference.log_snr(expected))
    with pytest.raises(ValueError, match="grid must be one of"):
        grid_rule(cfg, "logsnr")
    with pytest.raises(ValueError, match="needs a reference SDE"):
        resolve(spec, sde)
    assert spec.key() != spec.replace(grid=None).key()  # another grid, another cell


def test_chain_helpers_reject_bad_input():
    with pytest.raises(ValueError, match="betas must be"):
        chain_log_snr(torch.tensor([0.1, 1.5]))
    with pytest.raises(ValueError, match="strictly decreasing"):
        snr_crossing_times(torch.tensor([1.0, 2.0]), torch.tensor([0.0]))
