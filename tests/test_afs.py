"""The analytic first step (``afs=True``): ε̂(x_T, T) ≈ L⁻¹x_T/σ_T in place of the first
model call, the budget kept exact, refused where it does not apply."""

from __future__ import annotations

import pytest
import torch
from conftest import F64
from sampling_cases import problem

import sdekit
from sdekit import NIVPSDE, GFFCovariance
from sdekit.sampling import GaussianTeleport
from sdekit.testing import data_spectrum, fourier_gaussian_problem, score_sampler

DETERMINISTIC = ["ddim", "heun", "dpm_solver_2m", "dpmpp_3m", "dpmpp_2s", "dpm_solver_3s",
                 "unipc", "ipndm", "deis", "torchdiffeq:rk4"]  # fmt: skip


def test_the_analytic_prediction_is_the_exact_one_at_T():
    """For centred Gaussian data the exact ε̂ at T is σ_T (α_T² C̃ + σ_T²)⁻¹ L⁻¹x_T: the
    analytic L⁻¹x_T/σ_T differs by α_T² c/σ_T² (≈ 4e-5 · c here); a wrong L (or Σ in place
    of L) would be off by O(1)."""
    sde = NIVPSDE(GFFCovariance((1, 8, 8), dtype=F64))
    oracle = fourier_gaussian_problem(sde, data_spectrum((1, 8, 8), 1.5, 1e-3), scale=1.0)
    x_T = sde.prior_sample(4, generator=torch.Generator().manual_seed(0), dtype=F64)
    exact = oracle(x_T, torch.full((4,), sde.T, dtype=F64))
    analytic = sde.covariance.inv_sqrt_apply(x_T) / sde.prior_scale
    err = float((analytic - exact).abs().max() / exact.abs().max())
    assert 1e-6 < err < 2e-3, err


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_afs_is_the_sampler_on_a_model_answering_analytically_first(name):
    """sample(steps, afs=True) == sample(steps + 1) with a model whose first answer is
    L⁻¹x/σ_T: the same grid (steps + 1 calls' worth), one call fewer, never at (x_T, T)."""
    oracle = problem("vp", "gff")
    sde = oracle.sde
    x_T = sde.prior_sample(3, generator=torch.Generator().manual_seed(0), dtype=F64)
    seen = []

    def model(x, t):
        seen.append(float(t[0]))
        return oracle(x, t)

    first = []

    def answering(x, t):
        if not first:
            first.append(1)
            return sde.covariance.inv_sqrt_apply(x) / sde.prior_scale
        return oracle(x, t)

    x, info = sdekit.sample(sde, model, x_T=x_T, sampler=name, steps=10, afs=True,
                            return_info=True)  # fmt: skip
    y, ref = sdekit.sample(sde, answering, x_T=x_T, sampler=name, steps=11, return_info=True)
    torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(info.grid.t, ref.grid.t)
    assert info.nfe == len(seen) == ref.nfe - 1 <= 10
    assert seen[0] != sde.T


def test_afs_spends_the_budget_exactly():
    """One-call samplers and singlestep ones use all of steps; Heun, two calls per
    interval, uses all 20 of 20 with afs (19 without)."""
    oracle = problem("vp", "identity")
    for name, steps, nfe in [("ipndm", 5, 5), ("dpmpp_3s", 10, 10), ("heun", 20, 20),
                             ("heun", 11, 10), ("ddim", 1, 1)]:  # fmt: skip
        _, info = sdekit.sample(oracle.sde, oracle, n=2, sampler=name, steps=steps, afs=True,
                                dtype=F64, return_info=True)  # fmt: skip
        assert info.nfe == nfe, (name, steps, info.nfe)


def test_afs_lowers_the_exact_kl_at_few_steps():
    """On the exact-KL problem (docs/samplers.md) the saved call buys an interval that is
    worth more than the analytic step's error."""
    for name in ("dpm_solver_2m", "deis"):
        plain = score_sampler(name, 6, shape=(1, 8, 8)).kl
        afs = score_sampler(name, 6, shape=(1, 8, 8), afs=True).kl
        assert afs < plain, (name, afs, plain)


def test_afs_is_refused_where_it_does_not_apply():
    oracle = problem("vp", "gff")
    sde = oracle.sde
    kw = dict(n=2, steps=5, dtype=F64)
    with pytest.raises(ValueError, match="afs: the analytic first step is for deterministic"):
        sdekit.sample(sde, oracle, sampler="ancestral", afs=True, **kw)
    with pytest.raises(ValueError, match="afs needs a sampler with a fixed budget"):
        sdekit.sample(sde, oracle, n=2, sampler="torchdiffeq:dopri5", afs=True, dtype=F64)
    with pytest.raises(ValueError, match="afs must be True or False"):
        sdekit.sample(sde, oracle, sampler="ddim", afs=1, **kw)
    images = oracle.sample_data(64, torch.Generator().manual_seed(0))
    jump = GaussianTeleport.from_data(sde, images)
    with pytest.raises(ValueError, match="afs cannot follow a teleport"):
        sdekit.sample(sde, oracle, sampler="ddim", afs=True, teleport=jump, **kw)
