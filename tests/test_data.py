"""Datasets in their official formats (tiny files written here), errors, batch streams."""

from __future__ import annotations

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from sdekit.data import (
    BatchStream,
    DatasetError,
    ImageDataset,
    load_cifar10,
    load_fashion_mnist,
    read_idx,
)


def write_cifar(folder, n=10, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, n).tolist(),
        }
        with open(folder / name, "wb") as f:
            pickle.dump(d, f)


def write_idx(path, arr):
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def write_fashion(folder, n=12):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))


def test_cifar10_official_format(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    train = load_cifar10(tmp_path, download=False)
    test = load_cifar10(tmp_path, train=False, download=False)
    assert len(train) == 50 and len(test) == 10 and train.shape == (3, 32, 32)
    x = train.batch(torch.arange(4))
    assert x.dtype == torch.float32 and float(x.min()) >= -1 and float(x.max()) <= 1
    # pixel (c, h, w) of image 0 is data[0][c*1024 + h*32 + w]
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "rb") as f:
        raw = pickle.load(f)[b"data"][0]
    assert int(train.images[0, 1, 2, 3]) == int(raw[1024 + 2 * 32 + 3])
    flipped = train.batch(torch.arange(2), flips=torch.tensor([True, False]))
    torch.testing.assert_close(flipped[0], x[0].flip(-1))
    torch.testing.assert_close(flipped[1], x[1])


def test_cifar10_missing_and_corrupt(tmp_path):
    with pytest.raises(DatasetError, match="CIFAR-10 not found.*--data-dir"):
        load_cifar10(tmp_path, download=False)
    write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04truncated")
    with pytest.raises(DatasetError, match="data_batch_3 is not a valid CIFAR-10 python batch"):
        load_cifar10(tmp_path, download=False)


def test_fashion_mnist_idx(tmp_path):
    write_fashion(tmp_path)
    d = load_fashion_mnist(tmp_path, download=False)
    assert len(d) == 12 and d.shape == (1, 28, 28)
    small = load_fashion_mnist(tmp_path, download=False, resolution=14)
    assert small.shape == (1, 14, 14)
    ref = read_idx(tmp_path / "train-images-idx3-ubyte.gz")
    assert int(d.images[3, 0, 5, 6]) == int(ref[3, 5, 6])


def test_fashion_mnist_truncated_and_bad_magic(tmp_path):
    write_fashion(tmp_path)
    p = tmp_path / "train-images-idx3-ubyte.gz"
    raw = gzip.open(p).read()
    with gzip.open(p, "wb") as f:
        f.write(raw[:-100])
    with pytest.raises(DatasetError, match="header announces shape .*truncated or corrupt"):
        load_fashion_mnist(tmp_path, download=False)
    with gzip.open(p, "wb") as f:
        f.write(b"\x01\x02\x03\x04" + raw[4:])
    with pytest.raises(DatasetError, match="bad magic number"):
        read_idx(p)
    p.write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="could not be read"):
        read_idx(p)


def test_fashion_mnist_missing_says_how_to_get_it(tmp_path, monkeypatch):
    import sdekit.data.fashion_mnist as fm

    monkeypatch.setattr(fm, "DEBIAN_DIR", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "empty", download=False)


def test_batch_stream_shards_and_resumes():
    ds = ImageDataset(torch.arange(20, dtype=torch.uint8).reshape(20, 1, 1, 1).repeat(1, 1, 2, 2))
    full = BatchStream(ds, 8, seed=3)
    r0, r1 = (
        BatchStream(ds, 8, seed=3, rank=0, world_size=2),
        BatchStream(ds, 8, seed=3, rank=1, world_size=2),
    )
    for _ in range(5):  # crosses epochs (20 // 8 = 2 batches per epoch)
        torch.testing.assert_close(torch.cat([r0.next(), r1.next()]), full.next())
    state = full.state_dict()
    a = full.next()
    other = BatchStream(ds, 8, seed=3)
    other.load_state_dict(state)
    torch.testing.assert_close(other.next(), a)
    with pytest.raises(ValueError, match="not divisible by world size"):
        BatchStream(ds, 9, world_size=2)
