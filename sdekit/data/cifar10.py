"""CIFAR-10 from the official python batches (``cifar-10-batches-py``).

The batches are pickles, and ``--data-dir`` may point anywhere (a shared drive, a copy
from a colleague, a mirror's archive), so they are read with a restricted unpickler that
admits only what the official batches hold — dicts, lists, bytes, str, ints and the numpy
array reconstruction — and refuses any other global (where a crafted file would run
code) with a :class:`DatasetError`. A downloaded archive is verified by SHA-256 (and the
published MD5) before it is extracted.
"""

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
SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
MD5 = "c58f30108f718f92721af3b95e74349a"  # the one published on the CIFAR-10 page
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_FILES = ["test_batch"]


#: the only globals an official batch needs: numpy's array reconstruction (numpy 1 and 2
#: module names), and bytes as written by Python 3 at protocol 2
SAFE_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }
)


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`SAFE_GLOBALS` and refuses everything else."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_GLOBALS:
            raise DatasetError(
                f"{self.path} is not an official CIFAR-10 batch: it asks to load the global "
                f"{module}.{name}, which sdekit refuses (a batch holds only dicts, lists, bytes "
                "and numpy arrays; anything else could run code). Replace the folder with the "
                f"official archive from {URL}"
            )
        return super().find_class(module, name)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _BatchUnpickler(f, path).load()
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except (FileNotFoundError, DatasetError):
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


def verify_archive(archive: Path) -> None:
    """Check the archive's SHA-256 and MD5 against the official ones; delete it and raise
    :class:`DatasetError` on a mismatch."""
    blob = archive.read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    md5 = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    if sha != SHA256 or md5 != MD5:
        archive.unlink()
        raise DatasetError(
            f"{archive} is not the official CIFAR-10 archive: sha256 {sha} (expected {SHA256}), "
            f"md5 {md5} (expected {MD5}); it was deleted"
        )


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
    verify_archive(archive)
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
