"""CIFAR-10 from the official python batches (``cifar-10-batches-py``)."""

from __future__ import annotations

import hashlib
import logging
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from .common import DatasetError, ImageDataset

log = logging.getLogger(__name__)

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise DatasetError(
            f"{path} is not a valid CIFAR-10 python batch ({err}); delete it and download again"
        ) from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != data.shape[0]:
        raise DatasetError(
            f"{path}: expected data of shape (n, 3072) with n labels, "
            f"got {data.shape} and {len(labels)} labels (truncated or corrupt)"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _download(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    archive = root / "cifar-10-python.tar.gz"
    log.info("downloading %s", URL)
    try:
        urllib.request.urlretrieve(URL, archive)
    except OSError as err:
        raise DatasetError(
            f"CIFAR-10 is not in {root / 'cifar-10-batches-py'} and could not be downloaded "
            f"({err}). Download {URL} on a machine with internet access, extract it, and "
            "pass the folder containing 'cifar-10-batches-py' with --data-dir."
        ) from None
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    if md5 != MD5:
        archive.unlink()
        raise DatasetError(f"checksum mismatch for {archive}: md5 {md5}, expected {MD5}")
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")


def load_cifar10(root, train: bool = True, download: bool = True) -> ImageDataset:
    """CIFAR-10 as an :class:`ImageDataset` of uint8 images (n, 3, 32, 32).

    ``root`` is the folder that contains (or will contain) ``cifar-10-batches-py``.
    Random horizontal flips are applied at batch time (``flip=True``).
    """
    root = Path(root)
    folder = root / "cifar-10-batches-py"
    files = TRAIN_FILES if train else TEST_FILES
    if not all((folder / f).exists() for f in files):
        if not download:
            raise DatasetError(
                f"CIFAR-10 not found in {folder}. Download {URL}, extract it into "
                f"{root}, or pass --data-dir pointing at the folder that holds "
                "'cifar-10-batches-py'."
            )
        _download(root)
    parts = [_read_batch(folder / f) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return ImageDataset(torch.from_numpy(images), torch.from_numpy(labels), flip=True)
