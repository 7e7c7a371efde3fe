"""SDEs: marginals, coefficients, inverses, perturbation, prior, discretisation, wrappers."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import F64, random_spd

from sdekit import (
    NIVESDE,
    NIVPSDE,
    VESDE,
    VPSDE,
    CholeskyCovariance,
    GFFCovariance,
    IdentityCovariance,
    NISubVPSDE,
    SubVPSDE,
    eps_from_score,
    eps_from_v,
    eps_from_x0,
)
from sdekit.testing import GaussianOracle

SHAPE = (1, 4, 4)
DDPM_BETAS = torch.linspace(1e-4, 0.02, 1000, dtype=F64)


def all_sdes(cov=None):
    cov = cov or GFFCovariance(SHAPE, dtype=F64)
    return {
        "vp": NIVPSDE(cov),
        "vp_cosine": NIVPSDE(cov, schedule="cosine"),
        "vp_discrete": NIVPSDE.from_betas(cov, DDPM_BETAS),
        "subvp": NISubVPSDE(cov, beta_min=0.2, beta_max=15.0),
        "ve": NIVESDE(cov, sigma_min=0.02, sigma_max=30.0),
    }


@pytest.fixture(params=list(all_sdes()), ids=str)
def sde(request):
    return all_sdes()[request.param]


def test_linear_vp_marginal_closed_form():
    sde = NIVPSDE(GFFCovariance(SHAPE), beta_min=0.1, beta_max=20.0)
    t = torch.linspace(0, 1, 11, dtype=F64)
    log_alpha = -0.25 * t**2 * 19.9 - 0.5 * t * 0.1
    alpha, sigma = sde.marginal(t)
    torch.testing.assert_close(alpha, log_alpha.exp())
    torch.testing.assert_close(sigma, (1 - (2 * log_alpha).exp()).sqrt())
    torch.testing.assert_close(sde.diffusion(t), (0.1 + t * 19.9).sqrt())


def test_subvp_and_ve_closed_forms():
    t = torch.linspace(0, 1, 7, dtype=F64)
    sub = NISubVPSDE(GFFCovariance(SHAPE))
    a, s = sub.marginal(t)
    torch.testing.assert_close(s, 1 - a**2)
    beta = 0.1 + t * 19.9
    torch.testing.assert_close(sub.diffusion(t), (beta * (1 - a**4)).sqrt())
    ve = NIVESDE(GFFCovariance(SHAPE), sigma_min=0.01, sigma_max=50.0)
    a, s = ve.marginal(t)
    torch.testing.assert_close(a, torch.ones_like(t))
    torch.testing.assert_close(s, 0.01 * 5000**t)
    torch.testing.assert_close(ve.diffusion(t), s * math.sqrt(2 * math.log(5000)))


def test_cosine_schedule_closed_form():
    sde = NIVPSDE(GFFCovariance(SHAPE), schedule="cosine")
    assert sde.T == pytest.approx(0.9946)
    t = torch.linspace(0, 0.99, 9, dtype=F64)
    f = lambda u: torch.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    torch.testing.assert_close(sde.marginal(t)[0] ** 2, f(t) / f(torch.zeros(1, dtype=F64)))


def test_coefficients_are_consistent_with_the_marginal(sde):
    """f = d log α/dt and g² = dσ²/dt - 2 f σ², by central differences."""
    t = torch.linspace(0.05, sde.T - 0.05, 13, dtype=F64)
    if "Discrete" in repr(getattr(sde, "schedule", "")):
        t = (torch.arange(50, 950, 70, dtype=F64) + 0.5) / 1000  # inside the linear pieces
    h = 1e-6
    a_p, s_p = sde.marginal(t + h)
    a_m, s_m = sde.marginal(t - h)
    dloga = (a_p.log() - a_m.log()) / (2 * h)
    ds2 = (s_p**2 - s_m**2) / (2 * h)
    f = sde.drift_coef(t)
    sigma = sde.marginal(t)[1]
    torch.testing.assert_close(f, dloga, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(sde.diffusion(t) ** 2, ds2 - 2 * f * sigma**2, rtol=1e-6, atol=1e-6)


def test_log_snr_inverse(sde):
    t = torch.linspace(1e-3, sde.T, 50, dtype=F64)
    torch.testing.assert_close(sde.t_of_log_snr(sde.log_snr(t)), t, rtol=1e-9, atol=1e-9)
    assert bool((sde.log_snr(t).diff() < 0).all())


def test_from_betas_reproduces_ddpm_on_its_grid():
    sde = NIVPSDE.from_betas(IdentityCovariance(SHAPE), DDPM_BETAS)
    chain = sde.discretize(1000)
    torch.testing.assert_close(
        chain.alphas_cumprod, torch.cumprod(1 - DDPM_BETAS, 0), rtol=1e-13, atol=0
    )
    torch.testing.assert_close(chain.betas, DDPM_BETAS, rtol=1e-10, atol=0)
    torch.testing.assert_close(chain.t, torch.arange(1, 1001, dtype=F64) / 1000)


def test_linear_schedule_is_the_continuous_limit_of_ddpm():
    """-log(1 - β_i) = ∫β over step i = β(t_{i-½})/N exactly for the linear schedule,
    and that is DDPM's linspace(1e-4, 0.02, 1000) up to O(1/N²)."""
    chain = NIVPSDE(IdentityCovariance(SHAPE)).discretize(1000)
    integrated = -torch.log1p(-chain.betas)
    mid = (torch.arange(1, 1001, dtype=F64) - 0.5) / 1000
    torch.testing.assert_close(integrated, (0.1 + 19.9 * mid) / 1000, rtol=1e-10, atol=0)
    torch.testing.assert_close(integrated, DDPM_BETAS, rtol=0, atol=2e-5)


def test_ve_discretize_is_the_smld_geometric_grid():
    chain = NIVESDE(IdentityCovariance(SHAPE), sigma_min=0.01, sigma_max=50.0).discretize(10)
    ref = torch.exp(torch.linspace(math.log(0.01), math.log(50.0), 10, dtype=F64))
    torch.testing.assert_close(chain.sigma, ref)
    torch.testing.assert_close(chain.alpha, torch.ones(10, dtype=F64))


def test_perturb_statistics(sde):
    """x_t | x_0 ~ N(α x_0, σ² Σ): whitened residuals are standard normal."""
    x0 = torch.randn(1, *SHAPE, dtype=F64).expand(20000, *SHAPE)
    t = 0.3
    xt, noise = sde.perturb(x0, t, generator=torch.Generator().manual_seed(0))
    alpha, sigma = sde.marginal(t)
    w = sde.covariance.inv_sqrt_apply((xt - alpha * x0) / sigma)
    torch.testing.assert_close(w, noise)
    emp = w.reshape(20000, -1)
    cov = emp.T @ emp / 20000
    assert float((cov - torch.eye(16, dtype=F64)).abs().max()) < 5 * math.sqrt(2 / 20000)
    assert float(emp.mean(0).abs().max()) < 5 / math.sqrt(20000)
    # per-sample times
    tt = torch.full((20000,), t, dtype=F64)
    xt2, _ = sde.perturb(x0, tt, noise=noise)
    torch.testing.assert_close(xt2, xt)


def test_prior_logp_and_sample(sde):
    S = sde.covariance.to_dense() * sde.prior_scale**2
    ref = torch.distributions.MultivariateNormal(torch.zeros(16, dtype=F64), S)
    x = sde.prior_sample(5, generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, *SHAPE)
    torch.testing.assert_close(sde.prior_logp(x), ref.log_prob(x.reshape(5, -1)))


def test_prior_logp_with_cholesky_noise():
    sde = NIVPSDE(CholeskyCovariance(random_spd(16, 3), SHAPE))
    x = torch.randn(4, *SHAPE, dtype=F64)
    S = sde.covariance.to_dense() * sde.prior_scale**2
    ref = torch.distributions.MultivariateNormal(torch.zeros(16, dtype=F64), S)
    torch.testing.assert_close(sde.prior_logp(x), ref.log_prob(x.reshape(4, -1)))


def test_reverse_process_drift(sde):
    oracle = GaussianOracle(sde, 0.1, GFFCovariance(SHAPE, alpha=2.0, dtype=F64))
    x = torch.randn(3, *SHAPE, dtype=F64)
    t = 0.4
    sdrift = sde.reverse(oracle).drift(x, t)
    odrift = sde.reverse(oracle, probability_flow=True).drift(x, t)
    f, g2 = sde.drift_coef(t), sde.diffusion(t) ** 2
    score_term = sde.covariance.apply(oracle.score(x, torch.full((3,), t, dtype=F64)))
    torch.testing.assert_close(sdrift, f * x - g2 * score_term)
    torch.testing.assert_close(odrift, f * x - 0.5 * g2 * score_term)
    z = torch.randn_like(x)
    torch.testing.assert_close(
        sde.reverse(oracle).diffusion_apply(z, t), g2.sqrt() * sde.covariance.sqrt_apply(z)
    )
    assert bool((sde.reverse(oracle, True).diffusion_apply(z, t) == 0).all())


def test_parameterisation_wrappers_roundtrip(sde):
    oracle = GaussianOracle(sde, 0.1, GFFCovariance(SHAPE, alpha=2.0, dtype=F64))
    x = torch.randn(3, *SHAPE, dtype=F64)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=F64) * sde.T
    eps = oracle(x, t)
    alpha, sigma = sde.marginal(t)
    a, s = alpha.reshape(-1, 1, 1, 1), sigma.reshape(-1, 1, 1, 1)

    def v_model(x, t):
        x0w = sde.covariance.inv_sqrt_apply(oracle.denoise(x, t))
        return a * oracle(x, t) - s * x0w

    torch.testing.assert_close(eps_from_x0(oracle.denoise, sde)(x, t), eps)
    torch.testing.assert_close(eps_from_score(oracle.score, sde)(x, t), eps)
    torch.testing.assert_close(eps_from_v(v_model, sde)(x, t), eps)


def test_isotropic_conveniences():
    assert isinstance(VPSDE(SHAPE).covariance, IdentityCovariance)
    assert isinstance(VESDE(SHAPE, sigma_max=10.0), NIVESDE)
    assert isinstance(SubVPSDE(SHAPE), NISubVPSDE)


def test_bad_arguments():
    cov = GFFCovariance(SHAPE)
    with pytest.raises(TypeError, match="covariance must be a CovarianceOperator"):
        NIVPSDE(torch.eye(16))
    with pytest.raises(ValueError, match="schedule must be 'linear', 'cosine'"):
        NIVPSDE(cov, schedule="quadratic")
    with pytest.raises(ValueError, match="beta_min < beta_max"):
        NIVPSDE(cov, beta_min=1.0, beta_max=0.5)
    with pytest.raises(ValueError, match="sigma_min < sigma_max"):
        NIVESDE(cov, sigma_min=1.0, sigma_max=0.5)
    with pytest.raises(ValueError, match="betas must lie in"):
        NIVPSDE.from_betas(cov, [0.1, 1.5])
    with pytest.raises(ValueError, match=r"t must lie in \[0, T=1.0\]"):
        NIVPSDE(cov).perturb(torch.zeros(2, *SHAPE), 1.5)
    with pytest.raises(ValueError, match=r"x0 must have shape"):
        NIVPSDE(cov).perturb(torch.zeros(2, 4, 4), 0.5)
    with pytest.raises(ValueError, match="num_steps must be a positive int"):
        NIVPSDE(cov).discretize(0)
    with pytest.raises(ValueError, match="T must be <= 0.9946"):
        NIVPSDE(cov, schedule="cosine", T=1.0)
