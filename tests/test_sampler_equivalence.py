"""Whitened equivalence, backends against native loops, NFE accounting, grids."""

from __future__ import annotations

import pytest
import torch
from conftest import F64
from sampling_cases import SHAPE, problem

from sdekit import NIVPSDE, VPSDE, GFFCovariance, sample
from sdekit.sampling import GRIDS, Grid
from sdekit.testing import GaussianOracle

ALL_NATIVE = [
    ("ancestral", {}),
    ("ddim", {}),
    ("ddim", {"eta": 0.5}),
    ("euler", {}),
    ("heun", {}),
    ("euler_maruyama", {}),
    ("pc", {}),
    ("dpmpp_2m", {}),
    ("dpmpp_3m", {}),
    ("dpmpp_2m_sde", {}),
    ("ipndm", {}),
    ("deis", {}),
    ("deis", {"variable": "log_rho"}),
    ("ipndm", {"afs": True}),
    ("dpmpp_2s", {"afs": True}),
    ("torchsde:euler", {}),
    ("torchsde:srk", {}),
    ("torchdiffeq:rk4", {}),
    ("torchdiffeq:dopri5", {}),
]


@pytest.mark.parametrize("name,opts", ALL_NATIVE, ids=[f"{a}{b or ''}" for a, b in ALL_NATIVE])
def test_whitened_equivalence(name, opts):
    """With Σ = GFF, sampling equals L applied to isotropic sampling of the whitened
    problem y = L⁻¹x, whose model is ε(L y, t) (same noise draws for stochastic ones)."""
    oracle = problem("vp", "gff")
    sde = oracle.sde
    L, Linv = sde.covariance.sqrt_apply, sde.covariance.inv_sqrt_apply
    iso = VPSDE(SHAPE)

    def white_model(y, t):
        return oracle(L(y), t)

    x_T = sde.prior_sample(6, generator=torch.Generator().manual_seed(0))
    steps = None if name == "torchdiffeq:dopri5" else 12  # adaptive: no budget
    x = sample(
        sde,
        oracle,
        x_T=x_T,
        sampler=name,
        steps=steps,
        generator=torch.Generator().manual_seed(1),
        **opts,
    )
    y = sample(
        iso,
        white_model,
        x_T=Linv(x_T),
        sampler=name,
        steps=steps,
        generator=torch.Generator().manual_seed(1),
        **opts,
    )
    # adaptive step-size control measures errors in x or in y, so only agrees to tolerance
    tol = 1e-4 if name == "torchdiffeq:dopri5" else 1e-9
    torch.testing.assert_close(x, L(y), rtol=tol, atol=tol)


@pytest.mark.parametrize("grid", ["time", "logsnr"])
@pytest.mark.parametrize("sde_kind", ["vp", "ve"])
def test_torchsde_euler_equals_native_euler_maruyama(grid, sde_kind):
    """Same grid (uniform or not) and same Brownian increments: identical results."""
    oracle = problem(sde_kind, "gff")
    kw = dict(n=5, steps=15, grid=grid, dtype=F64, return_info=True)
    a, ia = sample(
        oracle.sde,
        oracle,
        sampler="euler_maruyama",
        generator=torch.Generator().manual_seed(3),
        **kw,
    )
    b, ib = sample(
        oracle.sde,
        oracle,
        sampler="torchsde:euler",
        generator=torch.Generator().manual_seed(3),
        **kw,
    )
    torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)
    assert ia.nfe == ib.nfe == 15  # torchsde's shape-check call costs no NFE


@pytest.mark.parametrize("method", ["milstein", "heun", "midpoint", "euler_heun", "srk"])
def test_every_torchsde_method_runs_and_is_close_to_euler(method):
    oracle = problem("vp", "gff")
    kw = dict(n=4, steps=50, dtype=F64, generator=torch.Generator().manual_seed(5))
    x = sample(oracle.sde, oracle, sampler=f"torchsde:{method}", **kw)
    kw["generator"] = torch.Generator().manual_seed(5)
    ref = sample(oracle.sde, oracle, sampler="torchsde:euler", **kw)
    assert x.shape == ref.shape and bool(torch.isfinite(x).all())
    if method == "milstein":  # Milstein = Euler for additive noise
        torch.testing.assert_close(x, ref)


@pytest.mark.parametrize("grid", ["time", "karras"])
def test_torchdiffeq_euler_equals_native_euler(grid):
    oracle = problem("subvp", "cholesky")
    x_T = oracle.sde.prior_sample(4, generator=torch.Generator().manual_seed(0))
    a = sample(oracle.sde, oracle, x_T=x_T, sampler="euler", steps=25, grid=grid)
    b = sample(oracle.sde, oracle, x_T=x_T, sampler="torchdiffeq:euler", steps=25, grid=grid)
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "adaptive_heun", "dopri8"])
def test_torchdiffeq_adaptive_stays_in_range_and_is_accurate(method):
    oracle = problem("ve", "gff")
    sde, eps = oracle.sde, oracle.sde.default_eps
    seen = []

    def model(x, t):
        seen.append(t)
        return oracle(x, t)

    x_T = sde.prior_sample(4, generator=torch.Generator().manual_seed(0))
    x, info = sample(
        sde,
        model,
        x_T=x_T,
        sampler=f"torchdiffeq:{method}",
        denoise=False,
        rtol=1e-7,
        atol=1e-7,
        return_info=True,
    )
    times = torch.cat([t.flatten() for t in seen])
    assert float(times.min()) >= eps and float(times.max()) <= sde.T
    ref = oracle.flow(x_T, sde.T, eps)
    assert float((x - ref).abs().max() / ref.abs().max()) < 1e-4
    assert info.nfe == len(seen)


def test_ancestral_is_ddim_with_eta_one():
    oracle = problem("vp", "gff")
    kw = dict(n=4, steps=10, dtype=F64)
    a = sample(
        oracle.sde, oracle, sampler="ancestral", generator=torch.Generator().manual_seed(0), **kw
    )
    b = sample(
        oracle.sde,
        oracle,
        sampler="ddim",
        eta=1.0,
        generator=torch.Generator().manual_seed(0),
        **kw,
    )
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "name,steps,nfe,intervals",
    [
        ("dpmpp_2m", 20, 20, 19),
        ("ddim", 7, 7, 6),
        ("heun", 10, 9, 4),
        ("pc", 10, 9, 4),
        ("torchdiffeq:rk4", 5, 5, 1),
        ("torchsde:srk", 5, 5, 2),
        ("ipndm", 7, 7, 7),  # no final denoising step by default
        ("deis", 7, 7, 7),
    ],
)
def test_nfe_accounting(name, steps, nfe, intervals):
    """steps is the budget of model evaluations, the final denoising step included."""
    oracle = problem("vp", "identity")
    _, info = sample(
        oracle.sde, oracle, n=2, sampler=name, steps=steps, dtype=F64, return_info=True
    )
    assert info.nfe == nfe
    assert info.grid.num_intervals == intervals
    assert info.grid.denoise == (name not in ("ipndm", "deis"))


def test_without_denoise_the_grid_has_steps_plus_one_times():
    oracle = problem("vp", "identity")
    x, info = sample(
        oracle.sde, oracle, n=2, sampler="ddim", steps=5, denoise=False, dtype=F64, return_info=True
    )
    assert info.nfe == 5 and info.grid.t.numel() == 6
    assert float(info.grid.t[0]) == 1.0 and float(info.grid.t[-1]) == pytest.approx(1e-3)


@pytest.mark.parametrize("name", list(GRIDS))
@pytest.mark.parametrize("sde_kind", ["vp", "subvp", "ve"])
def test_grids_are_decreasing_and_uniform_in_their_variable(name, sde_kind):
    sde = problem(sde_kind, "identity").sde
    t = GRIDS[name](sde, 9, 1e-3)
    assert t.numel() == 9 and float(t[0]) == sde.T and float(t[-1]) == pytest.approx(1e-3)
    assert bool((t.diff() < 0).all())
    lam = sde.log_snr(t)
    var = {
        "time": t,
        "time_quadratic": t.sqrt(),
        "logsnr": lam,
        "karras": torch.exp(-lam / 2) ** (1 / 7),
    }[name]
    torch.testing.assert_close(var.diff(), var.diff().mean().expand(8), rtol=1e-8, atol=1e-10)


def test_float32_sampling_with_gff():
    sde = NIVPSDE(GFFCovariance((3, 8, 8)))
    oracle = GaussianOracle(sde, 0.0, GFFCovariance((3, 8, 8), alpha=1.5, dtype=F64))
    x = sample(sde, oracle, n=3, steps=10, generator=torch.Generator().manual_seed(0))
    assert x.dtype == torch.float32 and x.shape == (3, 3, 8, 8)


def test_progress_bar(capsys):
    pytest.importorskip("tqdm")
    oracle = problem("vp", "identity")
    sample(oracle.sde, oracle, n=2, steps=4, dtype=F64, progress=True)
    assert "nfe" in capsys.readouterr().err


def test_grid_object():
    sde = problem("vp", "identity").sde
    g = Grid.from_times(sde, torch.tensor([1.0, 0.5, 0.1], dtype=F64), denoise=False)
    assert g.num_intervals == 2 and g.num_steps == 2
    torch.testing.assert_close(g.log_snr, sde.log_snr(g.t))


def test_clip_x0_clamps_the_data_prediction():
    """With clip_x0 the final x̂₀ lies in [-c, c]; without it an off-range model escapes."""
    oracle = problem("vp", "gff")
    wild = lambda x, t: 3.0 * oracle(x, t)  # noqa: E731
    x = sample(
        oracle.sde, wild, n=8, steps=10, dtype=F64, generator=torch.Generator().manual_seed(0)
    )
    assert float(x.abs().max()) > 1.0
    y = sample(
        oracle.sde,
        wild,
        n=8,
        steps=10,
        dtype=F64,
        clip_x0=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert float(y.abs().max()) <= 1.0 + 1e-9
    # a model that never leaves the range is untouched
    tame = sample(
        oracle.sde,
        oracle,
        n=4,
        steps=5,
        dtype=F64,
        clip_x0=100.0,
        generator=torch.Generator().manual_seed(1),
    )
    ref = sample(
        oracle.sde, oracle, n=4, steps=5, dtype=F64, generator=torch.Generator().manual_seed(1)
    )
    torch.testing.assert_close(tame, ref)
