"""NI-VP (GFF noise) vs isotropic VP diffusion on Fashion-MNIST, sized for a CPU.

    python recipes/fashion_mnist_nivp.py --preset smoke            # ≈ 3 min: train + PNG grid
    python recipes/fashion_mnist_nivp.py --preset cpu --noise gff  # 38 min (docs/training.md)
    python recipes/fashion_mnist_nivp.py evaluate --preset cpu --noise gff
    python recipes/table1_fashion_mnist.py   # isotropic vs GFF table: docs/results.md

Data: --data-dir, else Debian's 'dataset-fashion-mnist' package
(/usr/share/datasets/fashion-mnist), else a download.
"""

from __future__ import annotations

import sys

from sdekit.experiments.cli import run_recipe

DDPM_SCHEDULE = {"beta_start": 1e-4, "beta_end": 0.02, "num_timesteps": 1000}

PRESETS = {
    "smoke": {
        "_about": "the main job: 0.28M-parameter U-Net at 28x28 trained on the paper's "
        "objective for 1500 steps, 64 samples (DDPM ancestral, 100 steps): about 3 minutes "
        "on 2 cores, recognisable garments",
        "resolution": 28,
        "noise": "gff",
        **DDPM_SCHEDULE,
        "model": {
            "ch": 16,
            "ch_mult": [1, 2, 2],
            "num_res_blocks": 1,
            "attn_resolutions": [7],
            "dropout": 0.0,
            "groups": 8,
            "target": "whitened",
        },
        "train": {
            "steps": 1500,
            "batch_size": 32,
            "lr": 2e-3,
            "warmup": 100,
            "ema_decay": 0.995,
            "log_every": 50,
            "ckpt_every": 500,
            "sample_n": 64,
            "sample_steps": 100,
            "sample_sampler": "ancestral",
        },
    },
    "cpu": {
        "_about": "1.1M-parameter U-Net at 28x28 trained on the paper's objective, 4000 "
        "steps of batch 64: 38 minutes on 2 cores, recognisable garments",
        "resolution": 28,
        "noise": "gff",
        **DDPM_SCHEDULE,
        "model": {
            "ch": 32,
            "ch_mult": [1, 2, 2],
            "num_res_blocks": 1,
            "attn_resolutions": [7],
            "dropout": 0.0,
            "groups": 8,
            "target": "whitened",
        },
        "train": {
            "steps": 4000,
            "batch_size": 64,
            "lr": 1e-3,
            "warmup": 200,
            "ema_decay": 0.999,
            "log_every": 50,
            "ckpt_every": 500,
            "sample_n": 64,
            "sample_steps": 50,
            "sample_sampler": "dpmpp_2m",
        },
    },
}

if __name__ == "__main__":
    sys.exit(run_recipe(__doc__.split("\n\n")[0], PRESETS, "fashion_mnist"))
