"""Parameterisations in NI form: each one's loss optimum is the exact ε̂ (Gaussian oracle).

Three checks per (parameterisation, SDE, Σ):
1. the conditional mean of the raw target, which the loss is minimised by, maps to the
   oracle's exact ε̂ = E[ε | x_t];
2. an affine least-squares fit of the raw target on x_t (the empirical loss minimiser;
   exact here because everything is jointly Gaussian) maps to ε̂ within Monte Carlo error;
3. the loss the trainer computes on ε̂ (``denoising_loss`` with ``eps_loss_weight``)
   equals the network's own loss w ‖out − target‖² for an arbitrary output.
"""

from __future__ import annotations

import pytest
import torch
from conftest import F64, random_spd, tiny_experiment

from sdekit import NIVESDE, NIVPSDE, CholeskyCovariance, GFFCovariance
from sdekit.covariance import FourierCovariance, power_spectrum
from sdekit.models import (
    PARAMETERIZATIONS,
    EDMParameterization,
    GaussianResidualParameterization,
    ParameterizedModel,
    gaussian_residual,
    gaussian_residual_from_data,
    make_parameterization,
    whitened_data_std,
)
from sdekit.sde import expand_to
from sdekit.testing import GaussianOracle
from sdekit.training import denoising_loss

SHAPE = (1, 3, 4)
D = 12


def problems():
    gff = GFFCovariance(SHAPE, dtype=F64)
    chol = CholeskyCovariance(random_spd(D, 3), SHAPE)
    data = CholeskyCovariance(0.3 * random_spd(D, 4, cond=30.0), SHAPE)
    mean = torch.linspace(-0.5, 0.5, D, dtype=F64).reshape(SHAPE)
    return {
        "vp-gff": GaussianOracle(NIVPSDE(gff), mean, data),
        "vp-cholesky": GaussianOracle(NIVPSDE(chol), mean, data),
        "ve-gff": GaussianOracle(NIVESDE(gff, sigma_max=20.0), mean, data),
    }


def parameterization(name):
    if name == "edm":
        return EDMParameterization(sigma_data=0.7)
    if name == "gaussian-residual":  # a Gaussian other than the data's: the optimum is the same
        return GaussianResidualParameterization(0.2, 0.5 * torch.eye(D, dtype=F64))
    return make_parameterization(name)


@pytest.fixture(params=list(problems()), ids=str, scope="module")
def oracle(request):
    return problems()[request.param]


@pytest.mark.parametrize("name", list(PARAMETERIZATIONS))
@pytest.mark.parametrize("t", [0.05, 0.5, 0.95])
def test_conditional_mean_of_the_target_is_the_exact_eps(oracle, name, t):
    p, sde = parameterization(name), oracle.sde
    g = torch.Generator().manual_seed(0)
    x = oracle.sample_marginal(6, t, generator=g)
    tt = torch.full((6,), t, dtype=F64)
    eps, x0 = oracle.eps(x, tt), oracle.denoise(x, tt)
    # the target is affine in (x0, ε) at fixed x_t, so E[target | x_t] = target(E x0, E ε)
    best = p.target(sde, x0, eps, tt)
    torch.testing.assert_close(p.to_eps(sde, best, x, tt), eps, atol=1e-9, rtol=1e-9)


def least_squares_eps(p, sde, x0, noise, t, x):
    """ε̂ at ``x`` of the affine least-squares fit of p's raw target on x_t: the minimiser
    of p's empirical loss at time ``t`` over networks affine in x_t (the exact optimum's
    class here, everything being jointly Gaussian)."""
    n = x0.shape[0]
    tt = torch.full((n,), t, dtype=F64)
    xt, _ = sde.perturb(x0, tt, noise=noise)
    features = torch.cat([xt.flatten(1), torch.ones(n, 1, dtype=F64)], 1)
    coef = torch.linalg.lstsq(features, p.target(sde, x0, noise, tt).flatten(1)).solution
    m = x.shape[0]
    fitted = (torch.cat([x.flatten(1), torch.ones(m, 1, dtype=F64)], 1) @ coef).view_as(x)
    return p.to_eps(sde, fitted, x, torch.full((m,), t, dtype=F64))


@pytest.mark.parametrize("t", [0.1, 0.6])
def test_least_squares_optimum_of_each_loss_is_the_same_eps(oracle, t):
    """On one sample of (x₀, ε), every parameterisation's empirical loss minimiser gives
    the same ε̂ to rounding (their losses differ by a positive per-time factor and an
    invertible linear map only), and that ε̂ is the oracle's up to Monte Carlo error."""
    sde, g = oracle.sde, torch.Generator().manual_seed(1)
    x0 = oracle.sample_data(20_000, generator=g)
    noise = torch.randn(x0.shape, generator=g, dtype=F64)
    x = oracle.sample_marginal(8, t, generator=g)
    fits = {
        name: least_squares_eps(parameterization(name), sde, x0, noise, t, x)
        for name in PARAMETERIZATIONS
    }
    for name, fit in fits.items():
        torch.testing.assert_close(fit, fits["whitened"], atol=1e-7, rtol=1e-7, msg=name)
    exact = oracle.eps(x, torch.full((8,), t, dtype=F64))
    assert float((fits["whitened"] - exact).square().mean().sqrt()) < 0.05


class Affine(torch.nn.Module):
    """A stand-in network: out = W x_in + b(t_in), arbitrary but fixed."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(5)
        self.w = torch.nn.Parameter(torch.randn(D, D, generator=g, dtype=F64) / D**0.5)
        self.b = torch.nn.Parameter(torch.randn(D, generator=g, dtype=F64))

    def forward(self, x, t):
        flat = x.flatten(1) @ self.w.T + self.b * torch.sin(t.to(F64))[:, None]
        return flat.view_as(x)


@pytest.mark.parametrize("name", list(PARAMETERIZATIONS))
def test_trainer_loss_is_the_networks_own_loss(oracle, name):
    p, sde = parameterization(name), oracle.sde
    model = ParameterizedModel(Affine(), p, sde)
    g = torch.Generator().manual_seed(2)
    x0 = oracle.sample_data(16, generator=g)
    noise = torch.randn(x0.shape, generator=g, dtype=F64)
    t = torch.rand(16, generator=g, dtype=F64) * 0.9 + 0.05
    ours = denoising_loss(
        sde, model, x0, t, noise, loss_space=model.loss_space, weight=model.eps_loss_weight
    )
    xt, _ = sde.perturb(x0, t, noise=noise)
    own = (model.raw(xt, t) - p.target(sde, x0, noise, t)).square().flatten(1).mean(1)
    own = own * p.loss_weight(sde, t)
    torch.testing.assert_close(ours, own.float(), rtol=1e-5, atol=1e-7)


def test_edm_coefficients_are_karras_table_1():
    """At σ_d = 0.5 and s = σ/α: c_skip, c_out, c_in, c_noise as in EDM's Table 1."""
    sde = NIVPSDE(GFFCovariance(SHAPE, dtype=F64))
    p = EDMParameterization(0.5)
    t = torch.tensor([0.1, 0.6], dtype=F64)
    alpha, sigma = sde.marginal(t)
    s = sigma / alpha
    x = torch.randn(2, *SHAPE, dtype=F64)
    _, c_skip, c_out, c_in = p._scales(sde, t, x)
    torch.testing.assert_close(c_skip.flatten(), 0.25 / (s**2 + 0.25))
    torch.testing.assert_close(c_out.flatten(), 0.5 * s / (s**2 + 0.25).sqrt())
    torch.testing.assert_close(c_in.flatten(), 1 / (s**2 + 0.25).sqrt())
    x_in, c_noise = p.network_input(sde, x, t)
    torch.testing.assert_close(c_noise, 0.25 * s.log())
    y_ve = sde.covariance.inv_sqrt_apply(x) / expand_to(alpha, x)
    torch.testing.assert_close(x_in, expand_to(c_in.flatten(), x) * y_ve)


def test_whitened_data_std_and_errors():
    lam = GFFCovariance(SHAPE, dtype=F64).eigenvalues
    p = 0.25 * torch.ones(SHAPE, dtype=F64)
    expected = float((p / lam.expand(SHAPE)).mean().sqrt())
    assert whitened_data_std(p, lam) == pytest.approx(expected)
    assert whitened_data_std(p, 1.0) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="noise_variances > 0"):
        whitened_data_std(p, 0.0)
    with pytest.raises(ValueError, match="unknown parameterization 'eps0'.*valid: whitened"):
        make_parameterization("eps0")
    with pytest.raises(ValueError, match="sigma_data"):
        EDMParameterization(sigma_data=0.0)


def test_model_follows_the_covariance_to_the_input_device():
    cov = FourierCovariance(torch.ones(1, 3, 4, dtype=F64), SHAPE)
    model = ParameterizedModel(Affine(), make_parameterization("v"), NIVPSDE(cov))
    x = torch.randn(2, *SHAPE, dtype=F64)
    out = model(x, torch.full((2,), 0.5, dtype=F64))
    assert out.shape == x.shape and out.dtype == F64


class Zero(torch.nn.Module):
    """A network at the U-Net's initialisation: its output layer is zero."""

    def forward(self, x, t):
        return torch.zeros_like(x)


def test_gaussian_residual_at_zero_output_is_the_gaussian_denoiser(oracle):
    """With the data's own mean and covariance, a zero network is the exact ε̂ (the data
    are Gaussian here); with another Gaussian it is that Gaussian's ε̂."""
    sde, g = oracle.sde, torch.Generator().manual_seed(3)
    x = oracle.sample_marginal(5, 0.4, generator=g)
    t = torch.tensor([0.05, 0.2, 0.4, 0.7, 0.95], dtype=F64)
    own = ParameterizedModel(
        Zero(), GaussianResidualParameterization(oracle.mean, oracle.data), sde
    )
    torch.testing.assert_close(own(x, t), oracle.eps(x, t), atol=1e-10, rtol=1e-10)
    other = parameterization("gaussian-residual")
    reference = GaussianOracle(sde, 0.2, 0.5 * torch.eye(D, dtype=F64))
    model = ParameterizedModel(Zero(), other, sde)
    torch.testing.assert_close(model(x, t), reference.eps(x, t), atol=1e-10, rtol=1e-10)
    assert not torch.allclose(model(x, t), oracle.eps(x, t), atol=1e-3)


def test_gaussian_residual_from_data_recovers_a_stationary_gaussian():
    """Mean image and spectrum of draws from N(μ, C), C stationary: the record rebuilds an
    oracle whose ε̂ matches the true Gaussian's within Monte Carlo error, under GFF noise
    on the spectral path."""
    shape = (1, 8, 8)
    lam = GFFCovariance(shape, dtype=F64).eigenvalues.expand(shape).clone()
    cov = FourierCovariance(0.3 * lam + 0.01, shape)
    mean = torch.linspace(-0.5, 0.5, 64, dtype=F64).reshape(shape)
    sde = NIVPSDE(GFFCovariance(shape, dtype=F64))
    truth = GaussianOracle(sde, mean, cov)
    images = truth.sample_data(20_000, generator=torch.Generator().manual_seed(4))
    record = gaussian_residual_from_data(images)
    assert set(record) == {"mean", "spectrum"}
    p = gaussian_residual(record)
    torch.testing.assert_close(p.mean, mean, atol=0.02, rtol=0)
    spectrum = torch.tensor(record["spectrum"], dtype=F64)
    assert float(((spectrum / cov.eigenvalues) - 1).abs().max()) < 0.1
    assert p.oracle(sde).path == "spectral"
    x = truth.sample_marginal(8, 0.3, generator=torch.Generator().manual_seed(5))
    t = torch.full((8,), 0.3, dtype=F64)
    err = (p.gaussian_eps(sde, x, t) - truth.eps(x, t)).square().mean().sqrt()
    assert float(err) < 0.02 * float(truth.eps(x, t).square().mean().sqrt())
    with pytest.raises(ValueError, match=r"images must be a float tensor \(n >= 2"):
        gaussian_residual_from_data(images[:1])
    with pytest.raises(ValueError, match="ridge"):
        gaussian_residual_from_data(images, ridge=0.0)
    with pytest.raises(ValueError, match=r"mean must be a scalar or have the covariance's event"):
        GaussianResidualParameterization(torch.zeros(1, 4, 4), cov)
    with pytest.raises(ValueError, match=r"covariance must be .* square \(d, d\) matrix"):
        GaussianResidualParameterization(0.0, torch.ones(3, 4))


# ------------------------------------------------------------ configs and the registry
def test_every_target_round_trips_through_its_config_record():
    """from_data (where the target measures the data) → to_config → JSON →
    parameterization_from_config rebuilds the same parameterisation: equal ε̂."""
    import json

    from sdekit.models import parameterization_from_config

    shape = (1, 8, 8)
    noise = GFFCovariance(shape, dtype=F64)
    sde = NIVPSDE(noise)
    g = torch.Generator().manual_seed(6)
    images = GFFCovariance(shape, alpha=1.5, dtype=F64).sample(64, generator=g)
    x = torch.randn(3, *shape, generator=g, dtype=F64)
    t = torch.tensor([0.1, 0.5, 0.9], dtype=F64)
    for name, cls in PARAMETERIZATIONS.items():
        assert cls.needs_data({}) == bool(cls.config_keys), name
        p = cls.from_data(images, noise)
        record = json.loads(json.dumps(p.to_config()))
        keys = {"target", *cls.config_keys, *cls.data_options}
        assert record["target"] == name and set(record) == keys
        assert not cls.needs_data(record)
        again = parameterization_from_config({**record, "ch": 8})  # net keys are ignored
        assert type(again) is cls
        out = torch.randn(3, *shape, generator=g, dtype=F64)
        torch.testing.assert_close(again.to_eps(sde, out, x, t), p.to_eps(sde, out, x, t))
    edm = EDMParameterization.from_data(images, noise)
    expected = whitened_data_std(power_spectrum(images), noise.eigenvalues.expand(shape))
    assert edm.sigma_data == expected
    for name in ("edm", "gaussian-residual"):
        with pytest.raises(ValueError, match=f"model target '{name}' needs model"):
            parameterization_from_config({"target": name})


def test_old_target_names_and_configs_without_a_target_still_load():
    """``eps`` is the old name of ``whitened``; a config without a target trained L ε."""
    from sdekit.experiments.config import build_model, build_sde, model_target
    from sdekit.models import (
        CorrelatedNoiseModel,
        EpsilonParameterization,
        UNet,
        parameterization_from_config,
    )

    assert isinstance(make_parameterization("eps"), EpsilonParameterization)
    assert parameterization_from_config({"target": "eps"}).name == "whitened"
    assert parameterization_from_config({}).name == "correlated"
    base = {k: v for k, v in tiny_experiment().items() if k != "model"}
    net = tiny_experiment()["model"]
    old_eps = {**base, "model": {**net, "target": "eps"}}
    assert model_target(old_eps) == "whitened"
    assert type(build_model(old_eps, build_sde(old_eps))) is UNet
    untargeted = {**base, "model": net}
    assert model_target(untargeted) == "correlated"
    model = build_model(untargeted, build_sde(untargeted))
    assert isinstance(model, CorrelatedNoiseModel) and model.loss_space == "correlated"
    with pytest.raises(ValueError, match="model target must be one of"):
        model_target({**base, "model": {"target": "epsilon"}})


def test_correlated_noise_model_is_the_correlated_parameterization():
    """CorrelatedNoiseModel(net, Σ) is ParameterizedModel with the ``correlated`` row: the
    same ε̂, loss space and (unit) loss weight, and the state dict holds the net only."""
    from sdekit.models import CorrelatedEpsilonParameterization, CorrelatedNoiseModel

    sde = NIVPSDE(GFFCovariance(SHAPE, dtype=F64))
    thin = CorrelatedNoiseModel(Affine(), sde.covariance)
    full = ParameterizedModel(Affine(), CorrelatedEpsilonParameterization(), sde)
    assert isinstance(thin, ParameterizedModel) and thin.covariance is sde.covariance
    x = torch.randn(4, *SHAPE, dtype=F64)
    t = torch.tensor([0.1, 0.3, 0.6, 0.9], dtype=F64)
    torch.testing.assert_close(thin(x, t), full(x, t), rtol=0, atol=0)
    torch.testing.assert_close(thin.correlated(x, t), Affine()(x, t), rtol=0, atol=0)
    assert thin.loss_space == full.loss_space == "correlated"
    assert torch.equal(thin.eps_loss_weight(t), torch.ones(4, dtype=F64))
    assert set(thin.state_dict()) == {"net.w", "net.b"}
    thin.load_state_dict(full.state_dict(), strict=True)


def test_moving_the_module_moves_the_covariance_and_forward_mutates_nothing():
    """The covariance follows the module's ``.to()`` (device only: a dtype cast of the
    weights leaves Σ alone); ``forward`` leaves the model's attributes as they were."""
    from sdekit.models import CorrelatedNoiseModel

    cov = FourierCovariance(torch.ones(1, 3, 4, dtype=F64), SHAPE)
    sde = NIVPSDE(cov)
    x = torch.randn(2, *SHAPE, dtype=F64)
    t = torch.full((2,), 0.5, dtype=F64)
    for model in (
        ParameterizedModel(Affine(), make_parameterization("v"), sde),
        CorrelatedNoiseModel(Affine(), cov),
        ParameterizedModel(Zero(), GaussianResidualParameterization(0.1, cov), sde),
    ):
        before = dict(vars(model))
        cache = getattr(model.parameterization, "_cache", None)
        out = model(x, t)
        assert out.shape == x.shape and out.dtype == F64
        assert vars(model) == before and getattr(model.parameterization, "_cache", None) is cache
        model.to(torch.float64).to("cpu")
        assert model.sde.covariance.dtype == F64 and model.sde.covariance.device.type == "cpu"
        if torch.cuda.is_available():
            model.cuda()
            assert model.sde.covariance.device.type == "cuda"
            assert model(x.cuda(), t.cuda()).device.type == "cuda"
            model.cpu()
            assert model.sde.covariance.device.type == "cpu"
    assert sde.covariance is cov  # the caller's SDE is never touched


def test_gaussian_residual_offers_the_dense_gaussian_and_records_which():
    """``gaussian_structure="dense"``: the mean image and dense covariance of non-stationary
    draws — the skip is then the best affine denoiser (the true Gaussian's ε̂ within MC
    error, where the stationary fit is far off); the config records the structure and the
    factor, and rebuilds the same model."""
    from sdekit.experiments.config import complete_from_data

    shape = (1, 4, 4)
    scales = torch.linspace(0.05, 1.0, 16, dtype=F64)
    C = scales.sqrt()[:, None] * random_spd(16, 2, cond=10.0) * scales.sqrt()[None, :]
    sde = NIVPSDE(GFFCovariance(shape, dtype=F64))
    truth = GaussianOracle(sde, 0.1, CholeskyCovariance(C, shape))
    images = truth.sample_data(20_000, generator=torch.Generator().manual_seed(0))
    x = truth.sample_marginal(64, 0.4, generator=torch.Generator().manual_seed(1))
    t = torch.full((64,), 0.4, dtype=F64)
    scale = float(truth.eps(x, t).square().mean().sqrt())

    def error(p):
        return float((p.gaussian_eps(sde, x, t) - truth.eps(x, t)).square().mean().sqrt()) / scale

    dense = GaussianResidualParameterization.from_data(images, gaussian_structure="dense")
    stationary = GaussianResidualParameterization.from_data(images)
    assert error(dense) < 0.02 < 0.2 < error(stationary)
    record = dense.to_config()
    assert record["gaussian_structure"] == "dense" and set(record["gaussian"]) == {"mean", "factor"}
    assert stationary.to_config()["gaussian_structure"] == "stationary"
    rebuilt = GaussianResidualParameterization.from_config(record)
    torch.testing.assert_close(rebuilt.gaussian_eps(sde, x, t), dense.gaussian_eps(sde, x, t))
    # the experiment config measures what model.gaussian_structure asks for
    cfg = {"dataset": "fashion_mnist", "resolution": 4, "noise": "gff", "noise_params": {},
           "model": {"target": "gaussian-residual", "gaussian_structure": "dense"}}  # fmt: skip
    done = complete_from_data(cfg, images[:500].to(torch.float32))
    assert done["model"]["gaussian_structure"] == "dense" and "factor" in done["model"]["gaussian"]
    with pytest.raises(ValueError, match="structure must be one of"):
        GaussianResidualParameterization.from_data(images, gaussian_structure="sparse")
