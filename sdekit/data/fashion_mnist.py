"""Fashion-MNIST from IDX ``.gz`` files (Debian's ``dataset-fashion-mnist`` or a download)."""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
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

#: MD5 of the official files (what a download must match; Debian's package recompresses
#: them, so files found locally are checked by their IDX headers instead)
MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}


def download_verified(url: str, target: Path, md5: str) -> Path:
    """Download ``url`` to ``target`` through a temporary file that is renamed into place
    only when its MD5 is ``md5``; otherwise it is deleted and :class:`DatasetError` says so."""
    partial = target.with_name(f".{target.name}.download")
    urllib.request.urlretrieve(url, partial)
    digest = hashlib.md5(partial.read_bytes(), usedforsecurity=False).hexdigest()
    if digest != md5:
        partial.unlink()
        raise DatasetError(
            f"the download of {url} is not the official file: md5 {digest} (expected {md5}); "
            "it was deleted"
        )
    partial.replace(target)
    return target


#: the most elements an IDX header may announce (Fashion-MNIST's train images: 47M)
MAX_IDX_ELEMENTS = 2**31
#: the most dimensions an IDX header may announce
MAX_IDX_NDIM = 8


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array, checking its header.

    Reads no more than the header justifies: exactly prod(shape) bytes after it, refusing
    (:class:`DatasetError`) a header announcing more than :data:`MAX_IDX_ELEMENTS`
    elements or :data:`MAX_IDX_NDIM` dimensions before reading the body, and a body that
    is shorter or longer than announced.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4)
            if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] != 0x08:
                raise DatasetError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
            ndim = head[3]
            if ndim > MAX_IDX_NDIM:
                raise DatasetError(
                    f"{path}: the IDX header announces {ndim} dimensions (at most "
                    f"{MAX_IDX_NDIM}); the file is corrupt or not an image/label file"
                )
            dims = f.read(4 * ndim)
            if len(dims) < 4 * ndim:
                raise DatasetError(f"{path}: truncated IDX header")
            shape = struct.unpack(f">{ndim}I", dims)
            size = math.prod(shape)
            if size > MAX_IDX_ELEMENTS:
                raise DatasetError(
                    f"{path}: the IDX header announces shape {shape} ({size} bytes), more than "
                    f"the {MAX_IDX_ELEMENTS} sdekit reads; the file is corrupt"
                )
            body = f.read(size)
            extra = f.read(1)
    except (OSError, EOFError) as err:
        raise DatasetError(
            f"{path} could not be read ({err}); it may be truncated or corrupt"
        ) from None
    if len(body) != size or extra:
        held = f"{len(body)} bytes" if not extra else "more bytes than that"
        raise DatasetError(
            f"{path}: header announces shape {shape} ({size} bytes) but the file "
            f"holds {held} (truncated or corrupt)"
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
            download_verified(URL + n, target / n, MD5[n])
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
