"""from_diffusers: a randomly initialised small UNet2DModel (built from a config, offline) as
an sdekit ε-model — its output at every training timestep, the prediction types converted,
and sdekit's ddim equal to diffusers' DDIM loop for the same noise."""

from __future__ import annotations

import os

import pytest
import torch

from sdekit import InputError, sample
from sdekit.integrations.diffusers import from_diffusers

os.environ.setdefault("HF_HUB_OFFLINE", "1")
diffusers = pytest.importorskip("diffusers")
N = 1000


def small_unet(**kw):
    torch.manual_seed(0)
    return diffusers.UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
        block_out_channels=(8, 16), down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4, **kw,
    ).eval()  # fmt: skip


@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction", "sample"])
def test_wrapped_model_is_the_unet_at_the_matching_timestep(prediction):
    unet = small_unet()
    sched = diffusers.DDIMScheduler(num_train_timesteps=N, prediction_type=prediction)
    sde, model = from_diffusers(unet, sched)
    assert sde.event_shape == (1, 8, 8)
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for k in (0, 371, 999):
        t = torch.tensor((k + 1) / N, dtype=torch.float64)
        with torch.no_grad():
            out = unet(x, k).sample
            eps = model(x, t)
        abar = float(torch.cumprod(1 - sched.betas.double(), 0)[k])  # diffusers' ᾱ, in float64
        a, s = abar**0.5, (1 - abar) ** 0.5
        alpha, sigma = (float(v) for v in sde.marginal(t))
        assert alpha == pytest.approx(a, rel=1e-12) and sigma == pytest.approx(s, rel=1e-9)
        want = {"epsilon": out, "v_prediction": s * x + a * out, "sample": (x - a * out) / s}
        torch.testing.assert_close(eps, want[prediction], rtol=1e-4, atol=1e-5)


def test_sdekit_ddim_equals_diffusers_ddim_loop():
    unet = small_unet()
    sched = diffusers.DDIMScheduler(num_train_timesteps=N, clip_sample=False)
    sched.alphas_cumprod = torch.cumprod(1 - sched.betas.double(), 0)  # not float32-rounded
    sched.set_timesteps(10)
    sde, model = from_diffusers(unet, sched)
    x_T = torch.randn(3, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    x = x_T.clone()
    with torch.no_grad():
        for k in sched.timesteps:
            x = sched.step(unet(x, k).sample, k, x, eta=0.0).prev_sample
        grid = torch.cat([(sched.timesteps.double() + 1) / N, torch.zeros(1, dtype=torch.float64)])
        y = sample(sde, model, x_T=x_T, sampler="ddim", grid=grid)
    torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-4)


def test_unsupported_prediction_type_and_bad_scheduler():
    unet = small_unet()
    sched = diffusers.DDIMScheduler(num_train_timesteps=N)
    sched.register_to_config(prediction_type="flow")
    with pytest.raises(InputError, match="prediction_type 'flow'"):
        from_diffusers(unet, sched)
    with pytest.raises(InputError, match="diffusers scheduler"):
        from_diffusers(unet, object())
