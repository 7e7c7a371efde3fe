"""Fashion-MNIST from IDX ``.gz`` files (Debian's ``dataset-fashion-mnist`` or a download)."""

from __future__ import annotations

import gzip
import logging
import struct
import urllib.request
from pathlib import Path

import numpy as np
import torch

from .common import DatasetError, ImageDataset

log = logging.getLogger(__name__)

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FILES = {
    True: ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    False: ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array, checking its header."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise DatasetError(
            f"{path} could not be read ({err}); it may be truncated or corrupt"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DatasetError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(shape)):
        raise DatasetError(
            f"{path}: header announces shape {shape} ({int(np.prod(shape))} bytes) but the file "
            f"holds {len(body)} bytes (truncated or corrupt)"
        )
    return np.frombuffer(body, dtype=np.uint8).reshape(shape)


def find_fashion_mnist(data_dir=None, download: bool = True) -> Path:
    """The folder with the IDX files.

    With ``data_dir``: that folder, which must exist (the files are downloaded into it when
    missing and ``download``); nothing else is looked at, so a run never trains on other
    data than the folder it names. Without: Debian's package
    (``/usr/share/datasets/fashion-mnist``), else a download into ``data/fashion-mnist``.
    """
    names = FILES[True] + FILES[False]
    if data_dir is not None and not Path(data_dir).is_dir():
        raise DatasetError(
            f"--data-dir {data_dir} does not exist; create it (the IDX files are then "
            "downloaded into it), point it at the folder with the four IDX .gz files, or omit "
            "it to use Debian's package (apt-get install dataset-fashion-mnist)"
        )
    candidates = [Path(data_dir)] if data_dir else [DEBIAN_DIR]
    for folder in candidates:
        if all((folder / n).exists() for n in names):
            return folder
    target = Path(data_dir) if data_dir else Path("data/fashion-mnist")
    if not download:
        raise DatasetError(
            "Fashion-MNIST not found (looked in "
            + ", ".join(str(c) for c in candidates)
            + "). Install it with 'apt-get install dataset-fashion-mnist' or pass --data-dir "
            "with the four IDX .gz files."
        )
    target.mkdir(parents=True, exist_ok=True)
    for n in names:
        if (target / n).exists():
            continue
        try:
            urllib.request.urlretrieve(URL + n, target / n)
        except OSError as err:
            raise DatasetError(
                f"Fashion-MNIST not found in {target} and the download of {n} failed ({err}). "
                "Install it with 'apt-get install dataset-fashion-mnist' or pass --data-dir "
                "with the four IDX .gz files."
            ) from None
    return target


def load_fashion_mnist(
    data_dir=None, train: bool = True, download: bool = True, resolution: int = 28
) -> ImageDataset:
    """Fashion-MNIST as an :class:`ImageDataset` of uint8 images (n, 1, 28, 28),
    optionally average-pooled or resized to ``resolution``."""
    folder = find_fashion_mnist(data_dir, download)
    img_name, lab_name = FILES[train]
    images = read_idx(folder / img_name)
    labels = read_idx(folder / lab_name)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(f"{folder}: images {images.shape} and labels {labels.shape} disagree")
    x = torch.from_numpy(images.copy())[:, None]
    if resolution != 28:
        xf = torch.nn.functional.interpolate(x.float(), size=(resolution, resolution), mode="area")
        x = xf.round().clamp(0, 255).to(torch.uint8)
    return ImageDataset(x, torch.from_numpy(labels.astype(np.int64)), flip=False)
