"""The paper's CIFAR-10 experiment — NI-DDPM with Gaussian-Free-Field noise vs DDPM — as far
as its text states it (two models with the same hyperparameters, 300,000 iterations, 1000
steps); what it leaves open (the U-Net, batch, learning rate, EMA, β schedule) is DDPM's
(Ho et al. 2020). docs/results.md, "The paper says / sdekit assumes", lists each choice.

    python recipes/cifar10_nivp.py --preset paper --noise gff          # GPUs
    torchrun --nproc_per_node=8 recipes/cifar10_nivp.py --preset paper --noise gff
    python recipes/cifar10_nivp.py --preset smoke --data-dir DATA       # minutes on a CPU
    python recipes/cifar10_nivp.py evaluate --preset paper --noise gff

Data: DATA/cifar-10-batches-py (the official python batches), downloaded with a
checksum check when online; offline, download cifar-10-python.tar.gz elsewhere,
extract it and pass --data-dir.
"""

from __future__ import annotations

import sys

from sdekit.experiments.cli import run_recipe

DDPM_SCHEDULE = {"beta_start": 1e-4, "beta_end": 0.02, "num_timesteps": 1000}

PRESETS = {
    "paper": {
        "_about": "DDPM's CIFAR-10 setup: 35.7M U-Net, batch 128, lr 2e-4, warmup 5000, "
        "clip 1, EMA 0.9999, dropout 0.1, flips, 300k steps; the paper's whitened-ε objective",
        "resolution": 32,
        "noise": "gff",
        **DDPM_SCHEDULE,
        "data_on_device": True,
        "model": {
            "ch": 128,
            "ch_mult": [1, 2, 2, 2],
            "num_res_blocks": 2,
            "attn_resolutions": [16],
            "dropout": 0.1,
            "target": "whitened",  # the paper's objective, eq. 16: ‖ε_θ − ε‖², ε white
        },
        "train": {
            "steps": 300_000,
            "batch_size": 128,
            "lr": 2e-4,
            "warmup": 5000,
            "grad_clip": 1.0,
            "ema_decay": 0.9999,
            "log_every": 100,
            "ckpt_every": 5000,
            "sample_every": 10_000,
            "sample_n": 64,
            "sample_steps": 100,
            "sample_sampler": "dpmpp_2m",
        },
    },
    "smoke": {
        "_about": "tiny U-Net, 200 steps of batch 32: a few minutes on a CPU",
        "resolution": 32,
        "noise": "gff",
        **DDPM_SCHEDULE,
        "model": {
            "ch": 16,
            "ch_mult": [1, 2, 2],
            "num_res_blocks": 1,
            "attn_resolutions": [8],
            "dropout": 0.1,
            "groups": 8,
            "target": "whitened",
        },
        "train": {
            "steps": 200,
            "batch_size": 32,
            "lr": 1e-3,
            "warmup": 20,
            "ema_decay": 0.99,
            "log_every": 20,
            "ckpt_every": 100,
            "sample_n": 16,
            "sample_steps": 20,
            "sample_sampler": "dpmpp_2m",
        },
    },
}

if __name__ == "__main__":
    sys.exit(run_recipe(__doc__.split("\n\n")[0], PRESETS, "cifar10"))
