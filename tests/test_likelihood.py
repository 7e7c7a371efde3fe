"""Probability-flow log-likelihood against the exact Gaussian density."""

from __future__ import annotations

import math

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
from sdekit.errors import InputError, InputTypeError
from sdekit.likelihood import bits_per_dim, dequantize, log_likelihood
from sdekit.sampling import NonFiniteModelOutput
from sdekit.testing import GaussianOracle

SHAPE = (1, 4, 4)
D = 16


def make(sde_kind, noise_kind):
    cov = {
        "identity": IdentityCovariance(SHAPE),
        "gff": GFFCovariance(SHAPE, dtype=F64),
        "cholesky": CholeskyCovariance(random_spd(D, 3, cond=10.0), SHAPE),
    }[noise_kind]
    sde = {
        "vp": NIVPSDE(cov),
        "subvp": NISubVPSDE(cov),
        "ve": NIVESDE(cov, sigma_min=0.01, sigma_max=50.0),
    }[sde_kind]
    return GaussianOracle(sde, 0.2, GFFCovariance(SHAPE, alpha=1.5, dtype=F64))


@pytest.mark.parametrize("sde_kind", ["vp", "subvp", "ve"])
@pytest.mark.parametrize("noise_kind", ["identity", "gff", "cholesky"])
def test_exact_trace_matches_the_gaussian_density(sde_kind, noise_kind):
    """log p_eps(x) from the ODE equals the exact density, once the known gap between
    the prior N(0, σ_T² Σ) and the true p_T is accounted for; that gap is itself small."""
    o = make(sde_kind, noise_kind)
    sde, eps = o.sde, o.sde.default_eps
    x = o.sample_data(3, torch.Generator().manual_seed(0))
    lp, nfe = log_likelihood(sde, o, x, trace="exact", rtol=1e-7, atol=1e-7)
    x_T = o.flow(x, eps, sde.T)
    prior_gap = sde.prior_logp(x_T) - o.log_prob(x_T, sde.T)
    exact = o.log_prob(x, eps)
    assert float((lp - (exact + prior_gap)).abs().max()) / D < 1e-4
    assert float(prior_gap.abs().max()) / D < 5e-3  # VP: α_T ≈ 0.006; VE: c/σ_max²
    assert nfe > 0


def test_hutchinson_is_unbiased():
    o = make("vp", "gff")
    x = o.sample_data(2, torch.Generator().manual_seed(1))
    exact, _ = log_likelihood(o.sde, o, x, trace="exact", rtol=1e-6, atol=1e-6)
    runs = torch.stack(
        [
            log_likelihood(
                o.sde,
                o,
                x,
                trace="hutchinson",
                noise=kind,
                rtol=1e-6,
                atol=1e-6,
                generator=torch.Generator().manual_seed(s),
            )[0]
            for s, kind in zip(range(40), ["rademacher", "gaussian"] * 20, strict=True)
        ]
    )
    mean, se = runs.mean(0), runs.std(0) / math.sqrt(runs.shape[0])
    assert bool(((mean - exact).abs() <= 4 * se + 1e-6).all()), (mean, exact, se)
    more, _ = log_likelihood(
        o.sde, o, x, probes=64, rtol=1e-6, atol=1e-6, generator=torch.Generator().manual_seed(99)
    )
    assert float((more - exact).abs().max()) < 4 * float(runs.std(0).max()) / 8 + 1e-6


def test_bits_per_dim_convention():
    o = make("ve", "gff")
    images = torch.randint(
        0, 256, (2, *SHAPE), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    bpd, _ = bits_per_dim(
        o.sde, o, images, trace="exact", generator=torch.Generator().manual_seed(5)
    )
    x = dequantize(images, torch.Generator().manual_seed(5)).to(F64)
    lp, _ = log_likelihood(o.sde, o, x, trace="exact", generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(bpd, -lp / (D * math.log(2)) + 7.0, rtol=1e-6, atol=1e-6)
    assert float(x.min()) >= -1 and float(x.max()) <= 1


def test_bad_input():
    o = make("vp", "gff")
    with pytest.raises(ValueError, match="x must have shape"):
        log_likelihood(o.sde, o, torch.zeros(2, 4, 4, dtype=F64))
    with pytest.raises(ValueError, match="trace must be 'exact' or 'hutchinson'"):
        log_likelihood(o.sde, o, torch.zeros(2, *SHAPE, dtype=F64), trace="approx")
    with pytest.raises(TypeError, match="images must be uint8"):
        bits_per_dim(o.sde, o, torch.zeros(2, *SHAPE))
    with pytest.raises(ValueError, match="probes must be an int >= 1"):
        log_likelihood(o.sde, o, torch.zeros(2, *SHAPE, dtype=F64), probes=0)
    with pytest.raises(InputError, match="at least one sample"):
        log_likelihood(o.sde, o, torch.zeros(0, *SHAPE, dtype=F64))
    with pytest.raises(InputError, match="x holds NaN or inf"):
        log_likelihood(o.sde, o, torch.full((2, *SHAPE), float("nan"), dtype=F64))


def _bad_models():
    @torch.no_grad()
    def no_grad(x, t):
        return 0.5 * x

    return {
        "batch 1 for batch 4": (
            lambda x, t: x[:1],
            InputError,
            r"shape of x \(4, 1, 4, 4\), got \(1, 1, 4, 4\)",
        ),
        "no_grad": (no_grad, InputError, "does not depend on x through autograd"),
        "float64 output": (
            lambda x, t: 0.5 * x.double(),
            InputTypeError,
            r"model\(x, t\) returned ε̂ of dtype torch.float64 .* for x of dtype torch.float32",
        ),
        "NaN output": (lambda x, t: x * float("nan"), NonFiniteModelOutput, "log_likelihood"),
    }


@pytest.mark.parametrize("case", list(_bad_models()))
@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_the_model_output_is_checked_as_sampling_checks_it(case, trace):
    """A wrong ε̂ (batch, dtype, detached, NaN) is refused, never turned into a number."""
    model, err, match = _bad_models()[case]
    sde = NIVPSDE(GFFCovariance(SHAPE, dtype=torch.float32))
    x = torch.randn(4, *SHAPE, generator=torch.Generator().manual_seed(0))
    with pytest.raises(err, match=match):
        log_likelihood(sde, model, x, trace=trace, method="euler")
    if case == "float64 output":
        with pytest.raises(err, match=match):
            bits_per_dim(sde, model, torch.zeros(4, *SHAPE, dtype=torch.uint8), method="euler")


def test_a_non_generator_and_negative_tolerances_are_refused():
    o = make("vp", "gff")
    x = torch.zeros(2, *SHAPE, dtype=F64)
    with pytest.raises(InputTypeError, match="generator must be a torch.Generator or None"):
        log_likelihood(o.sde, o, x, generator=0)
    with pytest.raises(InputError, match="rtol must be a finite number >= 0"):
        log_likelihood(o.sde, o, x, rtol=-1.0)
    with pytest.raises(InputError, match="atol must be a finite number >= 0"):
        bits_per_dim(o.sde, o, torch.zeros(2, *SHAPE, dtype=torch.uint8), atol=float("nan"))
