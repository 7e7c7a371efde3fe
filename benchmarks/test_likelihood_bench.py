"""Probability-flow likelihood cost: dopri5 at rtol = atol = 1e-5, Hutchinson vs exact trace.

    pytest benchmarks/test_likelihood_bench.py --benchmark-only

A small U-Net (untrained: the cost, not the value, is measured), batch 8, GFF noise,
1×8×8 (d = 64, where the exact trace's 64 VJPs per evaluation are affordable).
The NFE of each solve is recorded in the benchmark's extra_info.
"""

from __future__ import annotations

import pytest
import torch

from sdekit import NIVPSDE, GFFCovariance, log_likelihood
from sdekit.models import CorrelatedNoiseModel, UNet

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    cov = GFFCovariance(SHAPE)
    net = UNet(
        in_channels=1,
        resolution=8,
        ch=16,
        ch_mult=(1, 2),
        num_res_blocks=1,
        attn_resolutions=(4,),
        dropout=0.0,
        groups=8,
    )
    with torch.no_grad():  # a non-trivial output so the ODE has work to do
        net.conv_out.weight.normal_(0, 0.02)
    sde = NIVPSDE(cov)
    model = CorrelatedNoiseModel(net, cov).eval()
    x = torch.rand(8, *SHAPE) * 2 - 1
    return sde, model, x


@pytest.mark.parametrize("trace", ["hutchinson", "exact"])
def test_log_likelihood_dopri5(benchmark, setup, trace):
    benchmark.group = "log-likelihood, dopri5 rtol=atol=1e-5, batch 8, 1x8x8"
    sde, model, x = setup

    def run():
        return log_likelihood(
            sde,
            model,
            x,
            trace=trace,
            rtol=1e-5,
            atol=1e-5,
            generator=torch.Generator().manual_seed(0),
        )

    logp, nfe = benchmark.pedantic(run, rounds=2, warmup_rounds=0)
    benchmark.extra_info["nfe"] = nfe
    assert torch.isfinite(logp).all()
