"""Tiny training problems for the trainer tests."""

from __future__ import annotations

import torch

from sdekit import NIVPSDE, GFFCovariance
from sdekit.data import gaussian_field_dataset
from sdekit.models import UNet
from sdekit.training import TrainConfig, Trainer

SHAPE = (1, 8, 8)


def tiny_unet(dropout: float = 0.1) -> UNet:
    torch.manual_seed(0)
    return UNet(
        in_channels=1,
        resolution=8,
        ch=8,
        ch_mult=(1, 2),
        num_res_blocks=1,
        attn_resolutions=(4,),
        dropout=dropout,
        groups=4,
    )


def make_trainer(run_dir, steps=6, batch=8, dropout=0.1, run_lock=None, **cfg) -> Trainer:
    sde = NIVPSDE.from_betas(GFFCovariance(SHAPE), torch.linspace(1e-4, 0.02, 1000))
    defaults = dict(warmup=3, log_every=2, ckpt_every=1000, ema_decay=0.9, progress=False)
    config = TrainConfig(steps=steps, batch_size=batch, **{**defaults, **cfg})
    return Trainer(
        sde,
        tiny_unet(dropout),
        gaussian_field_dataset(40, SHAPE),
        config,
        run_dir,
        device="cpu",
        run_lock=run_lock,
    )


def flat_params(module) -> torch.Tensor:
    return torch.cat(
        [p.detach().flatten() for p in module.state_dict().values() if p.is_floating_point()]
    )
