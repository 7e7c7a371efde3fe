"""Datasets: CIFAR-10 (python batches), Fashion-MNIST (IDX), synthetic fields."""

from .cifar10 import load_cifar10
from .common import BatchStream, DatasetError, ImageDataset
from .fashion_mnist import find_fashion_mnist, load_fashion_mnist, read_idx
from .registry import DATASETS, load_dataset_by_name, register_dataset
from .synthetic import gaussian_field_dataset

__all__ = [
    "ImageDataset",
    "BatchStream",
    "DatasetError",
    "load_cifar10",
    "load_fashion_mnist",
    "find_fashion_mnist",
    "read_idx",
    "gaussian_field_dataset",
    "DATASETS",
    "register_dataset",
    "load_dataset_by_name",
]
