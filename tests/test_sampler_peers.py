"""Peers as referees: with Σ = I and DDPM's discrete schedule, sdekit's samplers
reproduce diffusers' schedulers sample for sample on the same model and noise."""

from __future__ import annotations

import os

import pytest
import torch
from conftest import F64

from sdekit import NIVPSDE, GFFCovariance, IdentityCovariance, sample
from sdekit.testing import GaussianOracle

os.environ.setdefault("HF_HUB_OFFLINE", "1")
diffusers = pytest.importorskip("diffusers")

N = 1000
SHAPE = (1, 4, 4)
BETAS = torch.linspace(1e-4, 0.02, N, dtype=F64)


@pytest.fixture(scope="module")
def setup():
    sde = NIVPSDE.from_betas(IdentityCovariance(SHAPE), BETAS)
    oracle = GaussianOracle(sde, 0.2, GFFCovariance(SHAPE, alpha=1.0, dtype=F64))
    x_T = torch.randn(8, *SHAPE, dtype=F64, generator=torch.Generator().manual_seed(0))
    return sde, oracle, x_T


def diffusers_model(oracle):
    """diffusers' integer timestep k is sdekit's continuous t = (k + 1)/N."""

    def model(x, k):
        t = (torch.as_tensor(k, dtype=F64) + 1) / N
        return oracle(x, t.expand(x.shape[0]))

    return model


def float64_schedule(s):
    """diffusers builds its ᾱ in float32; give it the float64 values sdekit uses."""
    s.betas = BETAS.clone()
    s.alphas = 1 - BETAS
    s.alphas_cumprod = torch.cumprod(1 - BETAS, 0)
    if hasattr(s, "alpha_t"):
        s.alpha_t = s.alphas_cumprod.sqrt()
        s.sigma_t = (1 - s.alphas_cumprod).sqrt()
        s.lambda_t = s.alpha_t.log() - s.sigma_t.log()
    return s


def grid_of(s):
    """diffusers' timesteps as sdekit times, then t = 0 (σ = 0: the final denoising step)."""
    return torch.cat([(s.timesteps.to(F64) + 1) / N, torch.zeros(1, dtype=F64)])


def test_ancestral_matches_ddpm_scheduler(setup):
    sde, oracle, x_T = setup
    s = float64_schedule(
        diffusers.DDPMScheduler(
            num_train_timesteps=N, clip_sample=False, variance_type="fixed_small"
        )
    )
    s.set_timesteps(N)
    model, g, x = diffusers_model(oracle), torch.Generator().manual_seed(1), x_T.clone()
    for k in s.timesteps:
        x = s.step(model(x, k), k, x, generator=g).prev_sample
    y, info = sample(
        sde,
        oracle,
        x_T=x_T,
        sampler="ancestral",
        grid=grid_of(s),
        generator=torch.Generator().manual_seed(1),
        return_info=True,
    )
    assert info.nfe == N
    torch.testing.assert_close(y, x, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_ddim_matches_ddim_scheduler(setup, eta):
    sde, oracle, x_T = setup
    s = float64_schedule(diffusers.DDIMScheduler(num_train_timesteps=N, clip_sample=False))
    s.set_timesteps(50)
    model, g, x = diffusers_model(oracle), torch.Generator().manual_seed(2), x_T.clone()
    for k in s.timesteps:
        x = s.step(model(x, k), k, x, eta=eta, generator=g).prev_sample
    y, info = sample(
        sde,
        oracle,
        x_T=x_T,
        sampler="ddim",
        grid=grid_of(s),
        eta=eta,
        generator=torch.Generator().manual_seed(2),
        return_info=True,
    )
    assert info.nfe == 50
    torch.testing.assert_close(y, x, rtol=1e-10, atol=1e-10)


# diffusers' DPMSolverMultistepScheduler casts the sample to float32 inside step(),
# so agreement is to float32 precision (≈1e-7 relative) and not 1e-10.
@pytest.mark.parametrize("order,steps", [(2, 20), (2, 10), (3, 20), (3, 10)])
def test_dpmpp_matches_dpmsolver_multistep(setup, order, steps):
    sde, oracle, x_T = setup
    s = float64_schedule(
        diffusers.DPMSolverMultistepScheduler(
            num_train_timesteps=N, algorithm_type="dpmsolver++", solver_order=order
        )
    )
    s.set_timesteps(steps)
    model, x = diffusers_model(oracle), x_T.clone()
    for k in s.timesteps:
        x = s.step(model(x, k), k, x).prev_sample
    y, info = sample(
        sde, oracle, x_T=x_T, sampler=f"dpmpp_{order}m", grid=grid_of(s), return_info=True
    )
    assert info.nfe == steps
    torch.testing.assert_close(y, x, rtol=2e-6, atol=2e-6)


def test_dpmpp_2m_sde_matches_sde_dpmsolver(setup):
    sde, oracle, x_T = setup
    steps = 20
    s = float64_schedule(
        diffusers.DPMSolverMultistepScheduler(
            num_train_timesteps=N, algorithm_type="sde-dpmsolver++", solver_order=2
        )
    )
    s.set_timesteps(steps)
    g = torch.Generator().manual_seed(4)
    noises = [torch.randn(x_T.shape, generator=g, dtype=F64) for _ in range(steps)]
    model, x = diffusers_model(oracle), x_T.clone()
    for k, z in zip(s.timesteps, noises, strict=True):
        x = s.step(model(x, k), k, x, variance_noise=z).prev_sample
    y = sample(
        sde,
        oracle,
        x_T=x_T,
        sampler="dpmpp_2m_sde",
        grid=grid_of(s),
        generator=torch.Generator().manual_seed(4),
    )
    torch.testing.assert_close(y, x, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("steps", [6, 10, 20])
def test_unipc_bh2_matches_unipc_scheduler(setup, order, steps):
    sde, oracle, x_T = setup
    s = float64_schedule(
        diffusers.UniPCMultistepScheduler(
            num_train_timesteps=N, solver_order=order, solver_type="bh2"
        )
    )
    s.set_timesteps(steps)
    model, x = diffusers_model(oracle), x_T.clone()
    for k in s.timesteps:
        x = s.step(model(x, k), k, x).prev_sample
    y, info = sample(
        sde,
        oracle,
        x_T=x_T,
        sampler="unipc",
        order=order,
        variant="bh2",
        grid=grid_of(s),
        return_info=True,
    )
    assert info.nfe == steps
    torch.testing.assert_close(y, x, rtol=2e-6, atol=2e-6)


def test_unipc_bh1_matches_unipc_scheduler_to_sigma_min(setup):
    """diffusers' bh1 returns NaN when its last step goes to σ = 0 (B(h) = h = -∞), so
    compare with final_sigmas_type="sigma_min": the last step goes to t = 1/N."""
    sde, oracle, x_T = setup
    s = float64_schedule(
        diffusers.UniPCMultistepScheduler(
            num_train_timesteps=N, solver_order=3, solver_type="bh1", final_sigmas_type="sigma_min"
        )
    )
    s.set_timesteps(10)
    model, x = diffusers_model(oracle), x_T.clone()
    for k in s.timesteps:
        x = s.step(model(x, k), k, x).prev_sample
    grid = torch.cat([(s.timesteps.to(F64) + 1) / N, torch.tensor([1 / N], dtype=F64)])
    y = sample(
        sde, oracle, x_T=x_T, sampler="unipc", order=3, variant="bh1", grid=grid, denoise=False
    )
    torch.testing.assert_close(y, x, rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("steps", [10, 20])
def test_deis_log_rho_matches_deis_multistep_scheduler(setup, order, steps):
    """diffusers' DEIS ("logrho": the Lagrange basis in log ρ = −λ) is sdekit's
    ``deis`` with ``variable="log_rho"``; its last σ is that of timestep 0 (t = 1/N), no
    denoising step; lower-order final steps below 15 steps, as diffusers. With its σ in
    float64 the two agree to rounding."""
    sde, oracle, x_T = setup
    s = float64_schedule(diffusers.DEISMultistepScheduler(num_train_timesteps=N, solver_order=order))
    s.set_timesteps(steps)
    ac = s.alphas_cumprod[torch.cat([s.timesteps, torch.zeros(1, dtype=torch.long)])]
    s.sigmas = ((1 - ac) / ac).sqrt()  # diffusers rounds its σ to float32; float64 here
    model, x = diffusers_model(oracle), x_T.clone()
    for k in s.timesteps:
        x = s.step(model(x, k), k, x).prev_sample
    grid = torch.cat([(s.timesteps.to(F64) + 1) / N, torch.full((1,), 1 / N, dtype=F64)])
    y, info = sample(
        sde, oracle, x_T=x_T, sampler="deis", order=order, variable="log_rho",
        lower_order_final=True, grid=grid, denoise=False, return_info=True,
    )  # fmt: skip
    assert info.nfe == steps
    torch.testing.assert_close(y, x, rtol=1e-9, atol=1e-9)
