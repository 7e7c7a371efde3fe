"""Sampler overheads, batch 64, event (3, 32, 32), side by side in one run.

    pytest benchmarks/test_sampler_bench.py --benchmark-only

* group "per-step overhead": every sampler, 20 steps, GFF noise, with a nearly
  free model (ε̂ = 0.1 x), so the time is the sampler's own work per step;
* group "torchsde vs native": ``torchsde:euler`` against the native
  ``euler_maruyama`` loop, 100 steps, same cheap model (target ratio ≤ 1.3);
* group "NI vs isotropic": ``dpmpp_2m`` and ``ancestral``, 20 steps, with the same
  small convolutional network, GFF vs Identity noise (target ratio ≤ 1.05).
"""

from __future__ import annotations

import pytest
import torch

from sdekit import NIVPSDE, GFFCovariance, IdentityCovariance, sample

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
