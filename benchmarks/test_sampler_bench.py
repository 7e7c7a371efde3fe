"""Sampler overheads, batch 64, event (3, 32, 32), side by side in one run.

    pytest benchmarks/test_sampler_bench.py --benchmark-only

* group "per-step overhead": every sampler, 20 steps, GFF noise, with a nearly
  free model (ε̂ = 0.1 x), so the time is the sampler's own work per step;
* group "torchsde vs native": ``torchsde:euler`` against the native
  ``euler_maruyama`` loop, 100 steps, same cheap model (target ratio ≤ 1.3);
* group "NI vs isotropic": ``dpmpp_2m`` and ``ancestral``, 20 steps, with the same
  small convolutional network, GFF vs Identity noise (target ratio ≤ 1.05);
* group "teleport vs one model call": a :class:`~sdekit.GaussianTeleport` jump (dense
  covariance, d = 3072, and stationary Fourier covariance) against one call of the small
  network — the jump replaces model calls, so it should cost less than one.
"""

from __future__ import annotations

import pytest
import torch

from sdekit import NIVPSDE, GaussianTeleport, GFFCovariance, IdentityCovariance, sample

SHAPE = (3, 32, 32)
BATCH = 64


def cheap_model(x, t):
    return 0.1 * x


class SmallConvNet(torch.nn.Module):
    """A stand-in ε-network: 4 conv layers, 64 channels (≈ 110k parameters)."""

    def __init__(self):
        super().__init__()
        c = 64
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(3, c, 3, padding=1),
            torch.nn.SiLU(),
            torch.nn.Conv2d(c, c, 3, padding=1),
            torch.nn.SiLU(),
            torch.nn.Conv2d(c, c, 3, padding=1),
            torch.nn.SiLU(),
            torch.nn.Conv2d(c, 3, 3, padding=1),
        )

    @torch.no_grad()
    def forward(self, x, t):
        return self.net(x) + t.reshape(-1, 1, 1, 1) * 0.0


@pytest.fixture(scope="module")
def gff_sde():
    return NIVPSDE(GFFCovariance(SHAPE))


@pytest.fixture(scope="module")
def iso_sde():
    return NIVPSDE(IdentityCovariance(SHAPE))


@pytest.fixture(scope="module")
def x_T():
    return torch.randn(BATCH, *SHAPE, generator=torch.Generator().manual_seed(0))


SAMPLERS = [
    "ancestral",
    "ddim",
    "euler",
    "heun",
    "euler_maruyama",
    "pc",
    "dpmpp_2m",
    "dpmpp_3m",
    "dpmpp_2m_sde",
    "unipc",
    "torchsde:euler",
    "torchdiffeq:euler",
]


@pytest.mark.parametrize("name", SAMPLERS)
def test_per_step_overhead(benchmark, gff_sde, x_T, name):
    benchmark.group = "per-step overhead (20 steps, ε̂ = 0.1x, GFF)"
    g = torch.Generator().manual_seed(1)
    benchmark.pedantic(
        sample,
        args=(gff_sde, cheap_model),
        kwargs=dict(x_T=x_T, sampler=name, steps=20, generator=g),
        rounds=5,
        warmup_rounds=1,
    )


@pytest.mark.parametrize("name", ["euler_maruyama", "torchsde:euler"])
def test_torchsde_vs_native(benchmark, gff_sde, x_T, name):
    benchmark.group = "torchsde vs native (100 steps, ε̂ = 0.1x, GFF)"
    g = torch.Generator().manual_seed(1)
    benchmark.pedantic(
        sample,
        args=(gff_sde, cheap_model),
        kwargs=dict(x_T=x_T, sampler=name, steps=100, generator=g),
        rounds=5,
        warmup_rounds=1,
    )


@pytest.fixture(scope="module")
def convnet():
    torch.manual_seed(0)
    return SmallConvNet().eval()


@pytest.mark.parametrize("noise", ["isotropic", "gff"])
@pytest.mark.parametrize("name", ["dpmpp_2m", "ancestral"])
def test_ni_vs_isotropic(benchmark, gff_sde, iso_sde, convnet, x_T, noise, name):
    benchmark.group = f"NI vs isotropic ({name}, 20 steps, small conv net)"
    sde = gff_sde if noise == "gff" else iso_sde
    g = torch.Generator().manual_seed(1)
    benchmark.pedantic(
        sample,
        args=(sde, convnet),
        kwargs=dict(x_T=x_T, sampler=name, steps=20, generator=g),
        rounds=3,
        warmup_rounds=1,
    )


@pytest.fixture(scope="module")
def teleports(gff_sde):
    """Dense and stationary jumps fitted to 4000 smooth random images (d = 3072)."""
    g = torch.Generator().manual_seed(2)
    images = GFFCovariance(SHAPE, alpha=1.5).sample(4000, generator=g)
    dense = GaussianTeleport.from_data(gff_sde, images)
    fourier = GaussianTeleport(gff_sde, images.mean(0), GFFCovariance(SHAPE, alpha=1.5))
    return {"dense": dense, "fourier": fourier}


@pytest.mark.parametrize("what", ["teleport dense", "teleport fourier", "one model call"])
def test_teleport_vs_one_model_call(benchmark, gff_sde, convnet, teleports, x_T, what):
    benchmark.group = "teleport vs one model call (batch 64, (3, 32, 32))"
    t = torch.full((BATCH,), 0.5)
    fn = (
        (lambda: convnet(x_T, t))
        if what == "one model call"
        else (lambda: teleports[what.split()[1]](x_T))
    )
    benchmark.pedantic(fn, rounds=5, warmup_rounds=1)
