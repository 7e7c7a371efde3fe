"""sdekit.inverse against dense linear algebra and the exact Gaussian posterior: operators and
their adjoints / pseudo-inverses, the measurement likelihood, the posterior models' identities
(ΠGDM with the Tweedie covariance *is* the exact posterior ε̂ for Gaussian data, in NI form),
convergence of sampling to the exact posterior, every sampler with every method, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import F64, random_spd

from sdekit import (
    NIVPSDE,
    CholeskyCovariance,
    FourierCovariance,
    GFFCovariance,
    IdentityCovariance,
    InputError,
    ScaledCovariance,
    available_samplers,
    sample,
)
from sdekit.inverse import Measurement, conjugate_gradients, gaussian_kernel, posterior_model
from sdekit.testing import (
    MEASUREMENT_KINDS,
    GaussianOracle,
    GaussianPosterior,
    data_spectrum,
    posterior_kl,
    referee_measurements,
)

SHAPE = (1, 4, 4)
D = 16
METHODS = ("dps", "pigdm", "projection")


def dense(fn, shape):
    """The dense matrix of a linear map on batches of ``shape``: column j = fn(e_j)."""
    n = math.prod(shape)
    return fn(torch.eye(n, dtype=F64).reshape(n, *shape)).reshape(n, -1).T


def problem(noise: str = "gff"):
    cov = GFFCovariance(SHAPE, dtype=F64) if noise == "gff" else IdentityCovariance(SHAPE)
    data = FourierCovariance(0.25 * data_spectrum(SHAPE, 1.5, 1e-2), SHAPE)
    oracle = GaussianOracle(NIVPSDE(cov), 0.1, data)
    truth = oracle.sample_data(1, torch.Generator().manual_seed(1))
    return oracle, truth


# --------------------------------------------------------------------------- covariance
def test_scaled_covariance_is_std_squared_times_base():
    base = CholeskyCovariance(random_spd(D, 3), SHAPE)
    s = ScaledCovariance(base, 0.3)
    torch.testing.assert_close(s.to_dense(), 0.09 * base.to_dense(), rtol=1e-12, atol=1e-14)
    assert float(s.logdet()) == pytest.approx(float(torch.logdet(s.to_dense())), rel=1e-10)
    x = torch.randn(3, *SHAPE, dtype=F64)
    torch.testing.assert_close(s.inv_sqrt_apply(s.sqrt_apply(x)), x)
    gff = ScaledCovariance(GFFCovariance(SHAPE, dtype=F64), 2.0)
    torch.testing.assert_close(
        gff.fourier_spectrum(), 4 * GFFCovariance(SHAPE, dtype=F64).fourier_spectrum()
    )
    with pytest.raises(InputError, match="std"):
        ScaledCovariance(base, 0.0)


# --------------------------------------------------------------------------- operators
@pytest.mark.parametrize("noise", ["white", "gff"])
@pytest.mark.parametrize("kind", MEASUREMENT_KINDS)
def test_adjoint_and_pseudo_inverse_are_dense_transpose_and_pinv(kind, noise):
    m = referee_measurements(SHAPE, noise=noise)[kind]
    A = dense(m.forward, m.event_shape)
    At = dense(m.adjoint, m.y_shape)
    torch.testing.assert_close(At, A.T, rtol=1e-12, atol=1e-12)
    P = dense(m.pinv, m.y_shape)
    # blur's A⁺ drops |h| <= 1e-3 max|h|: the pseudo-inverse truncated at those singular values
    rtol = 1e-3 if kind == "blur" else 0.0
    torch.testing.assert_close(P, torch.linalg.pinv(A, rtol=rtol), rtol=1e-6, atol=1e-6)
    if kind != "blur":
        torch.testing.assert_close(A @ P @ A, A, rtol=1e-8, atol=1e-8)  # Penrose 1


def test_blur_is_circular_convolution_with_the_kernel():
    k = gaussian_kernel(0.8, size=3)
    m = Measurement.blur(k, noise=0.1, event_shape=(1, 6, 6))
    x = torch.randn(2, 1, 6, 6, dtype=F64)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="circular")
    conv = torch.nn.functional.conv2d(padded, k.flip(0, 1)[None, None])
    torch.testing.assert_close(m.forward(x), conv, rtol=1e-10, atol=1e-12)


def test_log_prob_is_the_gaussian_likelihood_and_simulate_draws_from_it():
    m = referee_measurements(SHAPE, noise="gff")["matrix"]
    x = torch.randn(2, *SHAPE, dtype=F64)
    y = m.simulate(x, torch.Generator().manual_seed(0))
    Sy = m.noise.to_dense()
    mvn = torch.distributions.MultivariateNormal(m.forward(x).reshape(2, -1), Sy)
    torch.testing.assert_close(m.log_prob(y, x), mvn.log_prob(y.reshape(2, -1)))
    z = torch.randn(y.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    torch.testing.assert_close(y - m.forward(x), m.noise.sqrt_apply(z))


def test_inpainting_restricts_a_noise_field_to_the_observed_pixels():
    field = ScaledCovariance(GFFCovariance(SHAPE, dtype=F64), 0.2)
    mask = torch.rand(SHAPE, generator=torch.Generator().manual_seed(0)) > 0.4
    m = Measurement.inpainting(mask, noise=field)
    idx = mask.reshape(-1).nonzero().squeeze(1)
    torch.testing.assert_close(m.noise.to_dense(), field.to_dense()[idx][:, idx])


def test_conjugate_gradients_solves_each_row():
    M = torch.stack([random_spd(12, s, cond=50.0) for s in range(3)])
    b = torch.randn(3, 12, dtype=F64)
    out = conjugate_gradients(lambda v: torch.einsum("nij,nj->ni", M, v), b, rtol=1e-12)
    torch.testing.assert_close(out.solution, torch.linalg.solve(M, b), rtol=1e-9, atol=1e-10)
    assert out.iterations <= 3 * 12
    with pytest.raises(InputError, match="positive-definite"):
        conjugate_gradients(lambda v: -v, b)


# --------------------------------------------------------------------------- the referee
def test_gaussian_posterior_is_the_textbook_formula():
    oracle, truth = problem()
    m = referee_measurements(SHAPE, noise="gff")["blur"]
    y = m.simulate(truth, torch.Generator().manual_seed(2))[0]
    post = GaussianPosterior(oracle, m, y)
    C, A, Sy = oracle.data.to_dense(), dense(m.forward, SHAPE), m.noise.to_dense()
    Cp = torch.linalg.inv(torch.linalg.inv(C) + A.T @ torch.linalg.solve(Sy, A))
    mp = Cp @ (
        torch.linalg.solve(C, oracle.mean.reshape(-1)) + A.T @ torch.linalg.solve(Sy, y.reshape(-1))
    )
    torch.testing.assert_close(post.covariance, Cp, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(post.mean.reshape(-1), mp, rtol=1e-8, atol=1e-10)
    assert post.kl_per_dim(post.mean, post.covariance) == pytest.approx(0.0, abs=1e-12)
    draws = post.sample(20000, torch.Generator().manual_seed(3))
    assert post.sample_kl_per_dim(draws) < 0.01


def exact_posterior_eps(oracle, post, x, t):
    """σ_t Lᵀ (α_t² C_post + σ_t² Σ)⁻¹ (x − α_t μ_post): the exact ε̂ of p(x_t | y)."""
    alpha, sigma = (float(v) for v in oracle.sde.marginal(torch.tensor(t, dtype=F64)))
    Sigma = oracle.noise.to_dense()
    K = alpha**2 * post.covariance + sigma**2 * Sigma
    r = (x.reshape(x.shape[0], -1) - alpha * post.mean.reshape(1, -1)).T
    score = -torch.linalg.solve(K, r).T.reshape(x.shape)
    return -sigma * oracle.noise.sqrt_apply_t(score)


@pytest.mark.parametrize("noise", ["white", "gff"])
@pytest.mark.parametrize("kind", ["matrix", "inpainting"])
def test_pigdm_tweedie_is_the_exact_posterior_eps(noise, kind):
    oracle, truth = problem(noise)
    m = referee_measurements(SHAPE, noise="gff")[kind]
    y = m.simulate(truth, torch.Generator().manual_seed(2))[0]
    post = GaussianPosterior(oracle, m, y)
    model = posterior_model(oracle.sde, oracle, m, y, "pigdm", cg_rtol=1e-13, cg_max_iter=500)
    for t in (0.05, 0.4, 0.9):
        x = oracle.sample_marginal(3, t, torch.Generator().manual_seed(4))
        got = model(x, torch.tensor(t, dtype=F64))
        torch.testing.assert_close(
            got, exact_posterior_eps(oracle, post, x, t), rtol=1e-6, atol=1e-7
        )
        assert model.passes(t) == 2 + model.last_cg.iterations


def test_the_isotropic_formula_is_wrong_under_gff_noise():
    """ε̂ − σ_t ∇log p(y | x_t) (I where NI form has Lᵀ) misses the exact posterior ε̂."""
    oracle, truth = problem("gff")
    m = referee_measurements(SHAPE, noise="white")["matrix"]
    y = m.simulate(truth, torch.Generator().manual_seed(2))[0]
    post = GaussianPosterior(oracle, m, y)
    model = posterior_model(oracle.sde, oracle, m, y, "pigdm", cg_rtol=1e-13, cg_max_iter=500)
    t = 0.4
    x = oracle.sample_marginal(2, t, torch.Generator().manual_seed(4))
    eps = oracle(x, t)
    sigma = float(oracle.sde.marginal(torch.tensor(t, dtype=F64))[1])
    grad = oracle.noise.inv_sqrt_apply_t(eps - model(x, t)) / sigma  # L⁻ᵀ(ε̂ − ε̂_post)/σ = ∇
    wrong = eps - sigma * grad
    exact = exact_posterior_eps(oracle, post, x, t)
    torch.testing.assert_close(model(x, t), exact, rtol=1e-6, atol=1e-7)
    assert float((wrong - exact).abs().max()) > 1e-2


@pytest.mark.parametrize("noise", ["white", "gff"])
def test_pigdm_tweedie_sampling_converges_to_the_exact_posterior(noise):
    oracle, truth = problem(noise)
    m = referee_measurements(SHAPE, noise="gff")["downsample"]
    y = m.simulate(truth, torch.Generator().manual_seed(2))[0]
    post = GaussianPosterior(oracle, m, y)
    opts = {"cg_rtol": 1e-12, "cg_max_iter": 500}
    kl = {n: posterior_kl(post, method="pigdm", steps=n, method_options=opts)[0] for n in (10, 100)}
    assert kl[100] < 1e-4 and kl[100] < kl[10] / 4
    iso = posterior_kl(
        post, method="pigdm", steps=100, method_options={**opts, "covariance": "isotropic"}
    )[0]
    assert iso > 10 * kl[100]  # the isotropic covariance is an approximation


def test_projection_makes_the_denoised_image_consistent_with_y():
    oracle, truth = problem()
    m = referee_measurements(SHAPE, noise="white")["inpainting"]
    y = m.simulate(truth, torch.Generator().manual_seed(2))[0]
    model = posterior_model(oracle.sde, oracle, m, y, "projection")
    x = oracle.sample_marginal(3, 0.5, torch.Generator().manual_seed(4))
    x0 = oracle.sde.eps_to_x0(model(x, 0.5), x, 0.5)
    torch.testing.assert_close(m.forward(x0), y.expand(3, -1), rtol=1e-10, atol=1e-10)


def test_dps_is_the_gradient_of_the_gaussian_likelihood_at_the_denoised_image():
    oracle, truth = problem()
    m = referee_measurements(SHAPE, noise="gff")["blur"]
    y = m.simulate(truth, torch.Generator().manual_seed(2))[0]
    t = 0.3
    x = oracle.sample_marginal(2, t, torch.Generator().manual_seed(4)).requires_grad_(True)
    lik = m.log_prob(y, oracle.denoise(x, t)).sum()
    (grad,) = torch.autograd.grad(lik, x)
    sigma = oracle.sde.marginal(torch.tensor(t, dtype=F64))[1]
    want = oracle(x.detach(), t) - 0.5 * sigma * oracle.noise.sqrt_apply_t(grad)
    got = posterior_model(oracle.sde, oracle, m, y, "dps", scale=0.5)(x.detach(), t)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("method,options", [("dps", {}), ("pigdm", {"covariance": "isotropic"}),
                                            ("pigdm", {})])  # fmt: skip
def test_the_alpha_weight_scales_the_likelihood_term_by_alpha_t(method, options):
    oracle, truth = problem()
    m = referee_measurements(SHAPE, noise="gff")["blur"]
    y = m.simulate(truth, torch.Generator().manual_seed(2))[0]
    x = oracle.sample_marginal(2, 0.5, torch.Generator().manual_seed(4))
    eps = oracle(x, 0.5)
    plain = posterior_model(oracle.sde, oracle, m, y, method, **options)(x, 0.5)
    weighted = posterior_model(oracle.sde, oracle, m, y, method, weight="alpha", **options)
    alpha = oracle.sde.marginal(torch.tensor(0.5, dtype=F64))[0]
    assert 0.05 < float(alpha) < 0.9  # a time where the weight changes the term
    torch.testing.assert_close(weighted(x, 0.5) - eps, alpha * (plain - eps), rtol=1e-8, atol=1e-12)


# ------------------------------------------------------------------ every sampler, every path
SAMPLERS = [s for s in available_samplers() if "<" not in s] + ["torchdiffeq:rk4", "torchsde:euler"]


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_every_sampler_runs_with_every_method(sampler):
    oracle, truth = problem()
    m = referee_measurements(SHAPE, noise="gff")["downsample"]
    y = m.simulate(truth, torch.Generator().manual_seed(2))[0]
    for method in METHODS:
        model = posterior_model(oracle.sde, oracle, m, y, method)
        x, info = sample(
            oracle.sde,
            model,
            n=3,
            steps=9,
            sampler=sampler,
            dtype=F64,
            generator=torch.Generator().manual_seed(0),
            return_info=True,
        )
        assert x.shape == (3, *SHAPE) and bool(torch.isfinite(x).all()), (sampler, method)
        assert info.network_passes >= info.nfe * (1 if method == "projection" else 2)


def test_float32_samples_per_sample_y_and_model_kwargs():
    oracle, truth = problem("white")  # white forward noise holds no tensors: float32 works
    m = referee_measurements(SHAPE, noise="white")["matrix"]  # float64 operator
    ys = m.simulate(truth.expand(3, *SHAPE), torch.Generator().manual_seed(2))
    seen = []

    def prior(x, t, y=None):
        seen.append(y)
        return oracle(x, t)

    model = posterior_model(oracle.sde, prior, m, ys.float(), "dps")
    labels = torch.tensor([0, 1, 2])
    x = sample(
        oracle.sde,
        model,
        n=3,
        steps=3,
        dtype=torch.float32,
        generator=torch.Generator().manual_seed(0),
        model_kwargs={"y": labels},
    )
    assert x.dtype == torch.float32 and bool(torch.isfinite(x).all())
    assert seen and all(torch.equal(s, labels) for s in seen)
    with pytest.raises(InputError, match="y must have shape"):
        model(torch.zeros(2, *SHAPE), 0.5)  # 3 measurements, 2 samples


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_with_the_argument_named():
    oracle, truth = problem()
    A = torch.randn(8, D, dtype=F64)
    good = Measurement.matrix(A, noise=0.1, event_shape=SHAPE)
    with pytest.raises(InputError, match="adjoint is not the adjoint"):
        Measurement(
            lambda x: x.reshape(x.shape[0], -1) @ A.T,
            lambda u: (u @ A).reshape(-1, *SHAPE) * 1.01,
            (8,),
            noise=0.1,
        )
    with pytest.raises(InputError, match="pinv is not a pseudo-inverse"):
        Measurement(good.forward, good.adjoint, (8,), noise=0.1, pinv=good.adjoint)
    with pytest.raises(InputError, match="y_shape"):
        Measurement.matrix(A, noise=GFFCovariance(SHAPE, dtype=F64), event_shape=SHAPE)
    with pytest.raises(InputError, match="noise must be"):
        Measurement.matrix(A, noise=-0.1, event_shape=SHAPE)
    with pytest.raises(InputError, match="observes no element"):
        Measurement.inpainting(torch.zeros(SHAPE, dtype=torch.bool), noise=0.1)
    with pytest.raises(InputError, match="divisible"):
        Measurement.downsample(3, noise=0.1, event_shape=SHAPE)
    with pytest.raises(InputError, match="y must have shape"):
        posterior_model(oracle.sde, oracle, good, torch.zeros(7, dtype=F64))
    with pytest.raises(InputError, match="scale"):
        posterior_model(oracle.sde, oracle, good, torch.zeros(8, dtype=F64), "dps", scale=-1.0)
    with pytest.raises(InputError, match="weight must be one of"):
        posterior_model(oracle.sde, oracle, good, torch.zeros(8, dtype=F64), "pigdm", weight="a")
    with pytest.raises(InputError, match="takes the options"):
        posterior_model(oracle.sde, oracle, good, torch.zeros(8, dtype=F64), "projection",
                        weight="alpha")  # fmt: skip
    with pytest.raises(InputError, match="takes the options"):
        posterior_model(oracle.sde, oracle, good, torch.zeros(8, dtype=F64), "dps", step=1.0)
    with pytest.raises(InputError, match="method must be one of"):
        posterior_model(oracle.sde, oracle, good, torch.zeros(8, dtype=F64), "ddrm")
    no_pinv = Measurement(good.forward, good.adjoint, (8,), noise=0.1)
    with pytest.raises(InputError, match="pseudo-inverse"):
        posterior_model(oracle.sde, oracle, no_pinv, torch.zeros(8, dtype=F64), "projection")
    other = Measurement.matrix(torch.randn(4, 9, dtype=F64), noise=0.1)
    with pytest.raises(InputError, match="events of shape"):
        posterior_model(oracle.sde, oracle, other, torch.zeros(4, dtype=F64))
