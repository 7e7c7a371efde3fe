"""The Gaussian oracle against brute-force dense formulas and autograd."""

from __future__ import annotations

import pytest
import torch
from conftest import F64, random_spd

from sdekit import (
    NIVESDE,
    NIVPSDE,
    CholeskyCovariance,
    GFFCovariance,
    IdentityCovariance,
    NISubVPSDE,
)
from sdekit.testing import GaussianOracle

SHAPE = (2, 3, 4)
D = 24


def cases():
    gff = GFFCovariance(SHAPE, dtype=F64)
    chol = CholeskyCovariance(random_spd(D, 7), SHAPE)
    data_gff = GFFCovariance(SHAPE, alpha=1.7, dtype=F64)
    data_dense = random_spd(D, 8, cond=100.0)
    mean = torch.linspace(-1, 1, D, dtype=F64).reshape(SHAPE)
    return {
        "vp-gff-spectral": (NIVPSDE(gff), mean, data_gff),
        "vp-identity-spectral": (NIVPSDE(IdentityCovariance(SHAPE)), mean, data_gff),
        "ve-gff-dense-data": (NIVESDE(gff, sigma_max=20.0), mean, data_dense),
        "subvp-cholesky": (NISubVPSDE(chol), mean, data_dense),
        "vp-cholesky-gffdata": (NIVPSDE(chol), mean, data_gff),
    }


@pytest.fixture(params=list(cases()), ids=str)
def oracle(request):
    sde, mean, data = cases()[request.param]
    return GaussianOracle(sde, mean, data)


def dense_marginal(oracle, t):
    alpha, sigma = oracle.sde.marginal(torch.tensor(t, dtype=F64))
    C = oracle.data.to_dense()
    S = oracle.noise.to_dense().to(F64)
    return alpha * oracle.mean.flatten(), alpha**2 * C + sigma**2 * S


def test_paths(oracle):
    spectral = isinstance(
        oracle.sde.covariance, (GFFCovariance, IdentityCovariance)
    ) and isinstance(oracle.data, GFFCovariance)
    assert oracle.path == ("spectral" if spectral else "dense")


@pytest.mark.parametrize("t", [0.05, 0.5, 0.95])
def test_log_prob_matches_multivariate_normal(oracle, t):
    m, K = dense_marginal(oracle, t)
    x = torch.randn(6, *SHAPE, dtype=F64) * 2
    ref = torch.distributions.MultivariateNormal(m, K).log_prob(x.reshape(6, -1))
    torch.testing.assert_close(oracle.log_prob(x, t), ref, rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("t", [0.05, 0.5])
def test_score_is_the_gradient_of_log_prob_and_eps_follows(oracle, t):
    x = torch.randn(4, *SHAPE, dtype=F64, requires_grad=True)
    (grad,) = torch.autograd.grad(oracle.log_prob(x, t).sum(), x)
    x = x.detach()
    torch.testing.assert_close(oracle.score(x, t), grad, rtol=1e-9, atol=1e-9)
    sigma = oracle.sde.marginal(torch.tensor(t, dtype=F64))[1]
    eps = -sigma * oracle.noise.sqrt_apply_t(grad)
    torch.testing.assert_close(oracle.eps(x, t), eps, rtol=1e-9, atol=1e-9)
    # the denoiser is Tweedie's formula
    alpha = oracle.sde.marginal(torch.tensor(t, dtype=F64))[0]
    x0 = (x + sigma**2 * oracle.noise.apply(grad)) / alpha
    torch.testing.assert_close(oracle.denoise(x, t), x0, rtol=1e-9, atol=1e-9)


def test_per_sample_times(oracle):
    x = torch.randn(3, *SHAPE, dtype=F64)
    t = torch.tensor([0.1, 0.4, 0.8], dtype=F64)
    joint = oracle.eps(x, t)
    for i in range(3):
        torch.testing.assert_close(joint[i : i + 1], oracle.eps(x[i : i + 1], float(t[i])))
    lp = oracle.log_prob(x, t)
    for i in range(3):
        torch.testing.assert_close(lp[i : i + 1], oracle.log_prob(x[i : i + 1], float(t[i])))


def test_samples_have_the_right_moments(oracle):
    n = 40000
    for t, x in [
        (0.3, oracle.sample_marginal(n, 0.3, torch.Generator().manual_seed(0))),
        (None, oracle.sample_data(n, torch.Generator().manual_seed(1))),
    ]:
        if t is None:
            m, K = oracle.mean.flatten(), oracle.data.to_dense()
        else:
            m, K = dense_marginal(oracle, t)
        xf = x.reshape(n, -1)
        se = ((K.square() + K.diagonal()[:, None] * K.diagonal()[None]) / n).sqrt()
        emp = (xf - m).T @ (xf - m) / n
        assert bool(((emp - K).abs() <= 5 * se).all())
        assert oracle.kl_per_dim(x, t) < 2e-3


def test_flow_solves_the_probability_flow_ode(oracle):
    """d/dt flow(x, T, t) equals the PF-ODE drift at the flowed point (central differences)."""
    x = oracle.sample_marginal(3, 0.9, torch.Generator().manual_seed(2))
    rev = oracle.sde.reverse(oracle, probability_flow=True)
    for t in (0.2, 0.6):
        h = 1e-5
        xt = oracle.flow(x, 0.9, t)
        deriv = (oracle.flow(x, 0.9, t + h) - oracle.flow(x, 0.9, t - h)) / (2 * h)
        torch.testing.assert_close(deriv, rev.drift(xt, t), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(oracle.flow(oracle.flow(x, 0.9, 0.3), 0.3, 0.9), x)


def test_flow_pushes_marginals_forward(oracle):
    """The PF-ODE map carries p_0.8 to p_0.2: a flowed exact sample is an exact sample."""
    x = oracle.sample_marginal(30000, 0.8, torch.Generator().manual_seed(3))
    y = oracle.flow(x, 0.8, 0.2)
    assert oracle.kl_per_dim(y, 0.2) < 2e-3
    assert oracle.kl_per_dim(y, 0.8) > 10 * oracle.kl_per_dim(y, 0.2)


def test_dense_and_spectral_paths_agree():
    sde, mean, data = cases()["vp-gff-spectral"]
    a = GaussianOracle(sde, mean, data)
    b = GaussianOracle(sde, mean, data, path="dense")
    assert (a.path, b.path) == ("spectral", "dense")
    x = torch.randn(4, *SHAPE, dtype=F64)
    torch.testing.assert_close(a.eps(x, 0.3), b.eps(x, 0.3))
    torch.testing.assert_close(a.log_prob(x, 0.3), b.log_prob(x, 0.3))
    torch.testing.assert_close(a.flow(x, 0.7, 0.1), b.flow(x, 0.7, 0.1))
    torch.testing.assert_close(a.log_prob_data(x), b.log_prob_data(x))


def test_log_prob_data(oracle):
    x = torch.randn(5, *SHAPE, dtype=F64)
    ref = torch.distributions.MultivariateNormal(oracle.mean.flatten(), oracle.data.to_dense())
    torch.testing.assert_close(oracle.log_prob_data(x), ref.log_prob(x.reshape(5, -1)))


def test_float32_input_returns_float32():
    sde, mean, data = cases()["vp-gff-spectral"]
    sde32 = NIVPSDE(GFFCovariance(SHAPE))
    o = GaussianOracle(sde32, mean, data)
    x = torch.randn(2, *SHAPE)
    assert o(x, torch.full((2,), 0.5)).dtype == torch.float32


def test_bad_input():
    sde, mean, data = cases()["vp-gff-spectral"]
    with pytest.raises(ValueError, match="data_covariance has event_shape"):
        GaussianOracle(sde, mean, GFFCovariance((1, 3, 4), dtype=F64))
    with pytest.raises(ValueError, match="spectral path needs Fourier-diagonal"):
        GaussianOracle(sde, mean, random_spd(D, 1), path="spectral")
    with pytest.raises(ValueError, match=r"t must lie in \[0, T=1.0\]"):
        GaussianOracle(sde, mean, data)(torch.zeros(1, *SHAPE, dtype=F64), 2.0)


def test_affine_kl_is_exact():
    sde, mean, data = cases()["vp-gff-spectral"]
    o = GaussianOracle(sde, mean, data)
    # the exact flow maps the prior N(0, σ_T² Σ) to nearly p_eps (σ_T ≈ 1, α_T ≈ 0)
    exact = o.affine_kl_per_dim(lambda x: o.flow(x, 1.0, 0.01), t=0.01)
    assert exact < 1e-5
    # the identity map leaves the prior: KL(N(0, σ_T² Σ) ‖ p_1) is tiny, ‖ p_0.01 is not
    assert o.affine_kl_per_dim(lambda x: x, t=1.0) < 1e-5 < o.affine_kl_per_dim(lambda x: x, t=0.01)
    # agreement with a Monte-Carlo estimate for a coarse DDIM
    from sdekit import sample

    run = lambda x: sample(sde, o, x_T=x, sampler="ddim", steps=4, denoise=False, eps=0.01)  # noqa: E731
    kl = o.affine_kl_per_dim(run, t=0.01)
    xs = run(sde.prior_sample(40000, generator=torch.Generator().manual_seed(0), dtype=F64))
    assert kl > 1e-3
    assert abs(o.kl_per_dim(xs, 0.01) - kl) < 0.1 * kl
