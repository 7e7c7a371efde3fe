"""Bad input to sample() gets a clear error."""

from __future__ import annotations

import pytest
import torch
from conftest import F64
from sampling_cases import SHAPE, problem

from sdekit import sample


@pytest.fixture(scope="module")
def oracle():
    return problem("vp", "gff")


def test_unknown_sampler_lists_the_valid_ones(oracle):
    with pytest.raises(
        ValueError, match=r"unknown sampler 'dpm'.*ancestral.*dpmpp_2m.*torchsde:<method>"
    ):
        sample(oracle.sde, oracle, n=2, sampler="dpm")
    with pytest.raises(ValueError, match="unknown torchsde method 'rk4'.*torchsde:euler"):
        sample(oracle.sde, oracle, n=2, sampler="torchsde:rk4")
    with pytest.raises(ValueError, match="torchsde:reversible_heun is not supported"):
        sample(oracle.sde, oracle, n=2, sampler="torchsde:reversible_heun")
    with pytest.raises(ValueError, match="unknown torchdiffeq method 'srk'"):
        sample(oracle.sde, oracle, n=2, sampler="torchdiffeq:srk")


def test_bad_steps_n_and_x_T(oracle):
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        sample(oracle.sde, oracle, n=2, steps=0)
    with pytest.raises(ValueError, match="give n"):
        sample(oracle.sde, oracle)
    with pytest.raises(ValueError, match=r"x_T must have shape \(\*batch, 1, 6, 6\)"):
        sample(oracle.sde, oracle, x_T=torch.zeros(2, 6, 6, dtype=F64))
    with pytest.raises(ValueError, match=r"x_T must have shape \(n, 1, 6, 6\)"):
        sample(oracle.sde, oracle, x_T=torch.zeros(2, 2, *SHAPE, dtype=F64))
    with pytest.raises(ValueError, match="n=3 disagrees with x_T's batch size 2"):
        sample(oracle.sde, oracle, n=3, x_T=torch.zeros(2, *SHAPE, dtype=F64))


def test_times_outside_the_horizon(oracle):
    with pytest.raises(ValueError, match=r"grid must lie in \[0, T=1.0\]"):
        sample(oracle.sde, oracle, n=2, grid=torch.tensor([1.5, 0.5]))
    with pytest.raises(ValueError, match="grid must be strictly decreasing"):
        sample(oracle.sde, oracle, n=2, grid=torch.tensor([0.5, 0.9]))
    with pytest.raises(ValueError, match=r"eps must lie in \(0, T=1.0\)"):
        sample(oracle.sde, oracle, n=2, eps=0.0)
    with pytest.raises(ValueError, match="unknown grid 'cosine'"):
        sample(oracle.sde, oracle, n=2, grid="cosine")


def test_model_returning_the_wrong_shape(oracle):
    with pytest.raises(
        ValueError,
        match=r"model\(x, t\) must return ε̂ with the shape of x \(2, 1, 6, 6\), got \(2, 36\)",
    ):
        sample(oracle.sde, lambda x, t: x.reshape(2, -1), n=2, dtype=F64)
    with pytest.raises(ValueError, match="got tuple"):
        sample(oracle.sde, lambda x, t: (x,), n=2, dtype=F64)


def test_bad_sampler_options(oracle):
    with pytest.raises(TypeError, match="unexpected keyword argument 'etaa'"):
        sample(oracle.sde, oracle, n=2, sampler="ddim", etaa=1.0, dtype=F64)
    with pytest.raises(ValueError, match="variance must be 'posterior' or 'beta'"):
        sample(oracle.sde, oracle, n=2, sampler="ancestral", variance="large", dtype=F64)
    with pytest.raises(ValueError, match="predictor must be"):
        sample(oracle.sde, oracle, n=2, sampler="pc", predictor="ode", dtype=F64)
    with pytest.raises(ValueError, match="order must be 1, 2 or 3"):
        sample(oracle.sde, oracle, n=2, sampler="unipc", order=4, dtype=F64)
    with pytest.raises(ValueError, match="variant must be 'bh1' or 'bh2'"):
        sample(oracle.sde, oracle, n=2, sampler="unipc", variant="bh3", dtype=F64)
    with pytest.raises(ValueError, match="clip_x0 must be > 0"):
        sample(oracle.sde, oracle, n=2, clip_x0=-1.0, dtype=F64)
    with pytest.raises(ValueError, match="eta must be >= 0"):
        sample(oracle.sde, oracle, n=2, sampler="ddim", eta=-1.0, dtype=F64)


def test_dtype_mismatch_of_x_T(oracle):
    with pytest.raises(TypeError, match="x_T has dtype torch.float32"):
        sample(oracle.sde, oracle, x_T=torch.zeros(2, *SHAPE))


def test_an_empty_x_T_and_a_non_generator_are_refused(oracle):
    from sdekit.errors import InputError, InputTypeError

    with pytest.raises(InputError, match=r"x_T must hold at least one sample, got shape \(0,"):
        sample(oracle.sde, oracle, x_T=torch.zeros(0, *SHAPE, dtype=F64), steps=2)
    with pytest.raises(InputTypeError, match="generator must be a torch.Generator or None"):
        sample(oracle.sde, oracle, n=2, steps=2, generator=0, dtype=F64)


def test_bad_corrector_snr_and_solver_tolerances(oracle):
    from sdekit.errors import InputError

    with pytest.raises(InputError, match="snr must be a finite number >= 0.*got -1"):
        sample(oracle.sde, oracle, n=2, steps=3, sampler="pc", snr=-1, dtype=F64)
    for bad in ({"rtol": -1e-5}, {"atol": -1.0}):
        with pytest.raises(InputError, match=f"{next(iter(bad))} must be a finite number >= 0"):
            sample(oracle.sde, oracle, n=2, sampler="torchdiffeq:dopri5", dtype=F64, **bad)


def test_heun_default_grid_is_safe_on_a_steep_schedule():
    """VP with β_max = 100 (σ̃_T ≈ 7e10): the Karras grid spreads its nodes from
    KARRAS_SIGMA_MAX, Heun reaches it by one Euler step, and the whitened sample variance
    converges to 1 (it was 5.5e8 at 10 steps when every node sat at huge σ̃)."""
    from sdekit import NIVPSDE, GFFCovariance, sample
    from sdekit.sampling.grids import KARRAS_SIGMA_MAX, karras
    from sdekit.sde import GaussianOracle

    f64 = torch.float64
    data = GFFCovariance((1, 4, 4), alpha=1.5, dtype=f64)
    steep = NIVPSDE(GFFCovariance((1, 4, 4), dtype=f64), beta_min=0.1, beta_max=100.0)
    t = karras(steep, 11, 1e-3)
    alpha, sigma = steep.marginal(t)
    assert float(sigma[0] / alpha[0]) > 1e10 and t[0] == 1.0
    assert abs(float(sigma[1] / alpha[1]) - KARRAS_SIGMA_MAX) < 1e-6 * KARRAS_SIGMA_MAX
    oracle = GaussianOracle(steep, 0.0, data)
    variances = []
    for steps in (20, 40):
        x = sample(steep, oracle.eps, n=2000, sampler="heun", steps=steps, dtype=f64,
                   generator=torch.Generator().manual_seed(0))  # fmt: skip
        variances.append(float(data.inv_sqrt_apply(x).var()))
    assert 0.5 < variances[0] < 3 and 0.85 < variances[1] < 1.3
