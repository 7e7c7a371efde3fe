"""GaussianTeleport: the closed-form Gaussian PF-ODE flow before the model takes over."""

from __future__ import annotations

import pytest
import torch

import sdekit
from sdekit import NIVPSDE, GaussianTeleport, GFFCovariance, IdentityCovariance
from sdekit.covariance import FourierCovariance, statistics
from sdekit.sampling import GRIDS
from sdekit.testing import GaussianOracle, data_spectrum

F64 = torch.float64
SHAPE = (1, 8, 8)


def gaussian_problem(noise):
    sde = NIVPSDE(noise)
    data = FourierCovariance(0.25 * data_spectrum(SHAPE, 1.5), SHAPE)
    return sde, GaussianOracle(sde, 0.1, data), data


@pytest.mark.parametrize("noise", [IdentityCovariance(SHAPE), GFFCovariance(SHAPE, dtype=F64)])
def test_teleport_is_the_exact_flow_to_the_hand_over_time(noise):
    sde, oracle, data = gaussian_problem(noise)
    tp = GaussianTeleport(sde, 0.1, data, max_snr=1.0)
    assert sde.default_eps < tp.time < sde.T
    assert tp.max_snr_at(tp.time) == pytest.approx(1.0, rel=1e-6)
    # the largest whitened mode variance: data spectrum over noise spectrum
    lam = (
        torch.ones(SHAPE, dtype=F64) if isinstance(noise, IdentityCovariance) else noise.eigenvalues
    )
    assert tp.c_max == pytest.approx(float((data.eigenvalues / lam).max()), rel=1e-9)
    x_T = sde.prior_sample(5, generator=torch.Generator().manual_seed(0), dtype=F64)
    torch.testing.assert_close(tp(x_T), oracle.flow(x_T, sde.T, tp.time), rtol=1e-12, atol=1e-12)
    # a larger SNR threshold hands over later (smaller t)
    assert GaussianTeleport(sde, 0.1, data, max_snr=4.0).time < tp.time


@pytest.mark.parametrize("sampler", ["dpm_solver_2m", "ddim"])
def test_teleport_lowers_the_exact_kl_at_a_fixed_budget(sampler):
    """On exact scores the teleported part is error-free, so the same NFE spent on [eps, t_s]
    gives a lower population KL; a teleport that hands over at T changes nothing."""
    sde, oracle, data = gaussian_problem(GFFCovariance(SHAPE, dtype=F64))
    tp = GaussianTeleport(sde, 0.1, data, max_snr=1.0)

    def kl(**kw):
        return oracle.affine_kl_per_dim(
            lambda x: sdekit.sample(sde, oracle, x_T=x, sampler=sampler, steps=8, **kw)
        )

    base, teleported = kl(), kl(teleport=tp)
    assert teleported < 0.5 * base, (base, teleported)
    at_T = GaussianTeleport(sde, 0.1, data, max_snr=1e-12)
    assert at_T.time == sde.T
    assert kl(teleport=at_T) == pytest.approx(base, rel=1e-9)


def test_from_data_estimates_the_gaussian(monkeypatch):
    sde, oracle, data = gaussian_problem(GFFCovariance(SHAPE, dtype=F64))
    x0 = oracle.sample_data(20_000, generator=torch.Generator().manual_seed(1))
    exact = GaussianTeleport(sde, 0.1, data)
    dense = GaussianTeleport.from_data(sde, x0)
    assert dense.oracle.path == "dense"
    assert dense.c_max == pytest.approx(exact.c_max, rel=0.05)
    assert dense.time == pytest.approx(exact.time, abs=0.01)
    # above the dense limit: a stationary (Fourier) covariance around the mean image
    monkeypatch.setattr(statistics, "DENSE_LIMIT", 16)
    stationary = GaussianTeleport.from_data(sde, x0)
    assert stationary.oracle.path == "spectral"
    assert stationary.time == pytest.approx(exact.time, abs=0.01)
    x_T = sde.prior_sample(3, generator=torch.Generator().manual_seed(2), dtype=F64)
    ref = exact(x_T)
    for tp in (dense, stationary):
        moved = tp(x_T, t_from=sde.T)
        assert float((moved - ref).norm() / ref.norm()) < 0.05


def test_grids_start_where_asked():
    sde = NIVPSDE(GFFCovariance(SHAPE, dtype=F64))
    eps = sde.default_eps
    for name, fn in GRIDS.items():
        t = fn(sde, 6, eps, start=0.4)
        assert float(t[0]) == pytest.approx(0.4, abs=1e-12), name
        assert float(t[-1]) == pytest.approx(eps, abs=1e-12), name
        assert bool((t[1:] < t[:-1]).all()), name
        torch.testing.assert_close(fn(sde, 6, eps, start=None), fn(sde, 6, eps))
        with pytest.raises(ValueError, match="start must lie in"):
            fn(sde, 6, eps, start=1.5)


def test_teleport_rejects_bad_input():
    sde, oracle, data = gaussian_problem(GFFCovariance(SHAPE, dtype=F64))
    with pytest.raises(ValueError, match="max_snr must be"):
        GaussianTeleport(sde, 0.1, data, max_snr=0.0)
    x0 = oracle.sample_data(10, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match=r"images must have shape \(n >= 2, 1, 8, 8\)"):
        GaussianTeleport.from_data(sde, x0[:, 0])
    with pytest.raises(ValueError, match="ridge must be"):
        GaussianTeleport.from_data(sde, x0, ridge=-1.0)
    tp = GaussianTeleport(sde, 0.1, data)
    other = NIVPSDE(GFFCovariance(SHAPE, dtype=F64))
    with pytest.raises(ValueError, match="another SDE"):
        sdekit.sample(other, oracle, n=2, steps=4, teleport=tp)
    with pytest.raises(ValueError, match="must start where the teleport hands over"):
        sdekit.sample(sde, oracle, n=2, teleport=tp, grid=torch.tensor([0.9, 0.5, 0.1]))
    # an explicit grid from t_s is accepted
    grid = torch.linspace(tp.time, 0.01, 5, dtype=F64)
    x, info = sdekit.sample(sde, oracle, n=2, teleport=tp, grid=grid, return_info=True)
    assert x.shape == (2, *SHAPE) and float(info.grid.t[0]) == pytest.approx(tp.time)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.complex128])
def test_teleport_from_data_refuses_8_bit_and_complex_images(dtype):
    sde = NIVPSDE(GFFCovariance(SHAPE, dtype=F64))
    with pytest.raises(TypeError, match=f"images must be real floating-point .* {dtype}"):
        GaussianTeleport.from_data(sde, torch.zeros(4, *SHAPE, dtype=dtype))
