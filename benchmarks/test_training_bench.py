"""One training step, NI (GFF) vs isotropic, and data loading, side by side.

    pytest benchmarks/test_training_bench.py --benchmark-only

Target (issue 4): GFF step / isotropic step ≤ 1.05 with the same U-Net and batch;
loading a batch must cost a small fraction of a step.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from sdekit.data import BatchStream, ImageDataset
from sdekit.experiments import build_model, build_sde
from sdekit.training import TrainConfig, Trainer


def _cpu_preset() -> dict:
    """The Fashion-MNIST recipe's ``cpu`` preset (model and schedule), read from the recipe."""
    path = Path(__file__).resolve().parents[1] / "recipes" / "fashion_mnist_nivp.py"
    spec = importlib.util.spec_from_file_location("fashion_mnist_nivp", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {**module.PRESETS["cpu"], "dataset": "fashion_mnist"}


CFG = _cpu_preset()
BATCH = 64


def fake_dataset(n=2048, shape=(1, 28, 28)):
    g = torch.Generator().manual_seed(0)
    return ImageDataset(torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8))


@pytest.mark.parametrize("noise", ["isotropic", "gff"])
def test_training_step(benchmark, tmp_path, noise):
    benchmark.group = "training step (U-Net 1.1M, batch 64, 1x28x28)"
    cfg = {**CFG, "noise": noise}
    torch.manual_seed(0)
    sde = build_sde(cfg)
    model = build_model(cfg, sde)
    loss_space = "correlated" if noise == "gff" else "whitened"
    trainer = Trainer(
        sde,
        model,
        fake_dataset(),
        TrainConfig(
            steps=10**6, batch_size=BATCH, warmup=10, progress=False, loss_space=loss_space
        ),
        tmp_path,
        device="cpu",
    )
    benchmark.pedantic(trainer.train_step, rounds=10, warmup_rounds=2)


@pytest.mark.parametrize("kind", ["fashion_mnist_64", "cifar10_128_flips"])
def test_data_loading(benchmark, kind):
    benchmark.group = "data loading (one batch from memory)"
    if kind == "fashion_mnist_64":
        stream = BatchStream(fake_dataset(60000), 64)
    else:
        ds = fake_dataset(50000, (3, 32, 32))
        ds.flip = True
        stream = BatchStream(ds, 128)
    benchmark(stream.next)
