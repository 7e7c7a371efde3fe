"""Datasets by name, for configs and command lines.

Each entry is ``load(data_dir, train, resolution) -> ImageDataset`` plus its channel
count; :func:`register_dataset` adds one (the experiment layer looks names up here,
never in an if-chain).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InputError
from .cifar10 import load_cifar10
from .common import ImageDataset
from .fashion_mnist import load_fashion_mnist
from .synthetic import gaussian_field_dataset

__all__ = ["DATASETS", "DatasetSpec", "register_dataset", "load_dataset_by_name"]


@dataclass(frozen=True)
class DatasetSpec:
    """How to load a dataset: ``load(data_dir, train, resolution)``; its channels and its
    number of classes (0: unlabelled)."""

    load: Callable[..., ImageDataset]
    channels: int
    num_classes: int = 0


DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, load, channels: int, num_classes: int = 0) -> None:
    """Add ``load(data_dir, train, resolution) -> ImageDataset`` under ``name`` (labels
    0 … ``num_classes`` − 1 where it has them)."""
    DATASETS[name] = DatasetSpec(load, channels, num_classes)


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    return DATASETS[name]


def load_dataset_by_name(name: str, data_dir=None, train: bool = True, resolution=None):
    """The registered dataset ``name`` (``ValueError`` naming the valid ones otherwise)."""
    return _spec(name).load(data_dir, train, resolution)


register_dataset(
    "cifar10", lambda data_dir, train, resolution: load_cifar10(data_dir or "data", train), 3, 10
)
register_dataset(
    "fashion_mnist",
    lambda data_dir, train, resolution: load_fashion_mnist(
        data_dir, train=train, resolution=resolution or 28
    ),
    1,
    10,
)
register_dataset(
    "synthetic",
    lambda data_dir, train, resolution: gaussian_field_dataset(
        512, (1, resolution or 16, resolution or 16), seed=0 if train else 1
    ),
    1,
    2,
)
