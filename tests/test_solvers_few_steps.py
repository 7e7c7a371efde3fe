"""Few-step solvers: the exact solver score, the model-calibrated grid, robust adaptive
solving, and the defaults of sample()."""

from __future__ import annotations

import pytest
import torch
from conftest import F64

import sdekit
from sdekit import NIVESDE, NIVPSDE, GFFCovariance, IdentityCovariance, NISubVPSDE
from sdekit.errors import InputError
from sdekit.sampling import GRIDS, SAMPLERS, Grid
from sdekit.sampling.dpm_solver import singlestep_orders
from sdekit.sampling.torchdiffeq_backend import ADAPTIVE_METHODS
from sdekit.testing import (
    GaussianOracle,
    data_spectrum,
    fourier_gaussian_problem,
    population_kl,
    score_sampler,
)

SHAPE = (1, 8, 8)


def _oracle():
    sde = NIVPSDE(GFFCovariance(SHAPE, dtype=F64))
    return fourier_gaussian_problem(sde, data_spectrum(SHAPE, 1.5, 1e-3))


def test_population_kl_matches_monte_carlo():
    """The exact KL of a linear sampler equals what many samples estimate."""
    oracle = _oracle()
    kl, nfe = population_kl(oracle, sampler="ddim", steps=4)
    g = torch.Generator().manual_seed(0)
    x = sdekit.sample(oracle.sde, oracle, n=40000, sampler="ddim", steps=4, generator=g, dtype=F64)
    floor = oracle.kl_per_dim(oracle.sample_data(40000, torch.Generator().manual_seed(1)))
    assert nfe == 4 and kl > 10 * floor
    assert oracle.kl_per_dim(x) - floor == pytest.approx(kl, rel=0.1)


def test_score_sampler_ranks_and_refuses_stochastic_samplers():
    good = score_sampler("dpm_solver_2m", 10, shape=SHAPE)
    bad = score_sampler("ddim", 10, shape=SHAPE)
    assert set(good.per_problem) == {"smooth", "rough", "white"} and good.nfe == 10
    assert good.kl < bad.kl / 20
    with pytest.raises(ValueError, match="deterministic sampler"):
        score_sampler("ancestral", 10, shape=SHAPE)


def test_the_default_sampler_is_the_best_fixed_configuration_measured():
    """sample()'s default is DPM-Solver-2M (noise prediction, time-quadratic, no final
    denoising or lower-order steps): better than the previous default dpmpp_2m."""
    oracle = _oracle()
    x, info = sdekit.sample(oracle.sde, oracle, n=2, steps=10, return_info=True, dtype=F64)
    assert info.sampler == "dpm_solver_2m" and info.nfe == 10 and not info.grid.denoise
    new = score_sampler("dpm_solver_2m", 10, shape=SHAPE).kl
    old = score_sampler("dpmpp_2m", 10, shape=SHAPE).kl
    assert new < old / 2


@pytest.mark.parametrize("name", ["dpm_solver_3s", "dpmpp_2s"])
def test_singlestep_solvers_spend_exactly_their_budget(name):
    """A grid with a budget: ⌈budget/order⌉ intervals, the last at the remaining order,
    exactly ``budget`` model calls, and the mixed orders still converge."""
    oracle, entry = _oracle(), SAMPLERS[name]
    sde, x_T = oracle.sde, oracle.sde.prior_sample(2, generator=torch.Generator().manual_seed(0))
    exact = oracle.flow(x_T, sde.T, sde.default_eps)
    calls, errors = [0], {}

    def model(x, t):
        calls[0] += 1
        return oracle(x, torch.as_tensor(t, dtype=F64).expand(x.shape[0]))

    for budget in (5, 10, 20):
        k = entry.intervals(budget, {})
        t = GRIDS[entry.default_grid](sde, k + 1, sde.default_eps)
        calls[0] = 0
        x = entry.fn(sde, model, x_T, Grid.from_times(sde, t, False, budget=budget))
        assert calls[0] == budget
        errors[budget] = float(sde.covariance.inv_sqrt_apply(x - exact).square().mean())
    assert errors[20] < errors[5] / 20, errors
    assert singlestep_orders(4, 3, 10) == [3, 3, 3, 1] and singlestep_orders(3, 2, 5) == [2, 2, 1]
    with pytest.raises(InputError, match="budget=13"):
        entry.fn(sde, model, x_T, Grid.from_times(sde, t[:5], False, budget=13))


@pytest.mark.parametrize("denoise", [False, True])
def test_optimize_grid_fits_the_model_and_keeps_the_budget(denoise):
    oracle = _oracle()
    sde = oracle.sde
    result = sdekit.optimize_grid(
        sde,
        oracle,
        sampler="dpm_solver_2m",
        steps=6,
        denoise=denoise,
        n=4,
        generator=torch.Generator().manual_seed(0),
        max_evaluations=200,
        return_info=True,
        dtype=F64,
    )
    t = result.grid
    assert t.numel() == 6 + 1 - int(denoise)
    assert float(t[0]) == sde.T and float(t[-1]) == sde.default_eps
    assert bool((t[1:] < t[:-1]).all()) and result.error < result.start_error
    assert result.search_nfe > 0 and result.reference_nfe > 0
    x, info = sdekit.sample(
        sde, oracle, n=2, sampler="dpm_solver_2m", grid=t, denoise=denoise, return_info=True
    )
    assert info.nfe == 6
    tuned, _ = population_kl(oracle, sampler="dpm_solver_2m", steps=6, grid=t, denoise=denoise)
    default, _ = population_kl(oracle, sampler="dpm_solver_2m", steps=6, denoise=denoise)
    assert tuned < default / 5


def test_optimize_grid_bad_input():
    oracle = _oracle()
    with pytest.raises(ValueError, match="deterministic sampler"):
        sdekit.optimize_grid(oracle.sde, oracle, sampler="ancestral", steps=5)
    with pytest.raises(ValueError, match="leaves no interval"):
        sdekit.optimize_grid(oracle.sde, oracle, sampler="dpmpp_2s", steps=1)
    with pytest.raises(ValueError, match="n must be"):
        sdekit.optimize_grid(oracle.sde, oracle, sampler="ddim", steps=5, n=0)


@pytest.mark.parametrize("dtype", [torch.float32, F64], ids=["f32", "f64"])
@pytest.mark.parametrize("noise", ["gff", "identity"])
@pytest.mark.parametrize("make", [NIVPSDE, NISubVPSDE, lambda c: NIVESDE(c, 0.01, 50.0)])
def test_adaptive_torchdiffeq_methods_stay_inside_the_interval(make, noise, dtype):
    """torchdiffeq's initial-step probe used to ask for the drift at t = -42."""
    cov = (
        GFFCovariance((1, 12, 12), dtype=dtype)
        if noise == "gff"
        else IdentityCovariance((1, 12, 12))
    )
    sde = make(cov)
    oracle = GaussianOracle(sde, 0.0, GFFCovariance((1, 12, 12), alpha=1.5))
    for method in ADAPTIVE_METHODS:
        x = sdekit.sample(
            sde,
            lambda x, t: oracle(x, t).to(x.dtype),
            n=2,
            sampler=f"torchdiffeq:{method}",
            dtype=dtype,
            generator=torch.Generator().manual_seed(0),
        )
        assert bool(torch.isfinite(x).all())


def test_adaptive_likelihood_methods_stay_inside_the_interval():
    sde = NIVPSDE(GFFCovariance((1, 6, 6), dtype=F64))
    oracle = GaussianOracle(sde, 0.0, GFFCovariance((1, 6, 6), alpha=1.5, dtype=F64))
    x = oracle.sample_data(2, torch.Generator().manual_seed(0))
    exact = oracle.log_prob(x, sde.default_eps)  # the ODE runs from eps to T
    for method in ADAPTIVE_METHODS:
        logp, _ = sdekit.log_likelihood(
            sde, oracle, x, method=method, trace="exact", rtol=1e-4, atol=1e-4
        )
        torch.testing.assert_close(logp, exact, rtol=0, atol=5e-2)


def test_the_ddpm_chain_is_smooth_for_adaptive_solvers():
    """The embedded DDPM chain keeps its marginals at the knots, has a continuous drift, and
    an exact-trace likelihood costs about what the continuous linear schedule costs (it took
    10× more model calls with a piecewise-linear log α)."""
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
    chain = NIVPSDE.from_betas(GFFCovariance((1, 8, 8), dtype=F64), betas)
    linear = NIVPSDE(GFFCovariance((1, 8, 8), dtype=F64))
    knots = torch.arange(1001, dtype=F64) / 1000
    alphas_cumprod = torch.cat([torch.ones(1, dtype=F64), torch.cumprod(1 - betas, 0)])
    torch.testing.assert_close(chain.marginal(knots)[0] ** 2, alphas_cumprod, rtol=0, atol=1e-14)
    left, right = (torch.tensor(0.5 + d, dtype=F64) for d in (-1e-10, 1e-10))
    assert abs(float(chain.drift_coef(right) - chain.drift_coef(left))) < 1e-6
    t = torch.linspace(0.001, 1, 500, dtype=F64)
    torch.testing.assert_close(chain.t_of_log_snr(chain.log_snr(t)), t, rtol=0, atol=1e-12)
    nfe, logp = {}, {}
    for name, sde in (("chain", chain), ("linear", linear)):
        oracle = GaussianOracle(sde, 0.0, GFFCovariance((1, 8, 8), alpha=1.5, dtype=F64))
        x = oracle.sample_data(2, torch.Generator().manual_seed(0))
        logp[name], nfe[name] = sdekit.log_likelihood(sde, oracle, x, trace="exact")
    assert nfe["chain"] <= 2 * nfe["linear"], nfe
    torch.testing.assert_close(logp["chain"] / 64, logp["linear"] / 64, rtol=0, atol=1e-4)


def test_exact_flow_reference_measures_solver_error_alone():
    """reference="exact_flow": the law the exact PF-ODE map gives over the same time span and
    final step — a near-exact solve scores ~0 there, while against the data law it keeps the
    start-and-stop floor (≈ 1e-7 on the default spectra)."""
    from sdekit.testing import score_sampler

    near_exact = score_sampler("dpm_solver_3m", 400, shape=(1, 8, 8), reference="exact_flow")
    to_data = score_sampler("dpm_solver_3m", 400, shape=(1, 8, 8))
    assert near_exact.kl < 1e-10 < 1e-8 < to_data.kl
    coarse = score_sampler("dpm_solver_2m", 10, shape=(1, 8, 8), reference="exact_flow")
    assert coarse.kl > 1e-6  # a real discretisation error is still seen
