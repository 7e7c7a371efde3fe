"""Files from elsewhere never run code: CIFAR-10 batches, archives, checkpoints, cells."""

from __future__ import annotations

import hashlib
import os
import pickle

import numpy as np
import pytest
import torch
from conftest import tiny_experiment
from test_data import write_cifar

import sdekit.data.cifar10 as cifar10
from sdekit.data import DatasetError, load_cifar10
from sdekit.errors import InputError
from sdekit.files import (
    CheckpointError,
    atomic_save,
    confined,
    load_checkpoint,
    open_for_write,
    write_text_safely,
)


class _RunsACommand:
    """Unpickling this calls os.system: what a crafted batch would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_cifar_batch_is_refused_without_running_anything(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar(folder)
    marker = tmp_path / "marker"
    crafted = {b"data": _RunsACommand(marker), b"labels": [0]}
    (folder / "data_batch_2").write_bytes(pickle.dumps(crafted, protocol=2))
    with pytest.raises(DatasetError) as err:
        load_cifar10(tmp_path, download=False)
    text = str(err.value)
    assert "data_batch_2" in text and "system" in text and "refuses" in text
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_real_format_batches_load_with_every_protocol(tmp_path, protocol):
    """The official batches are Python-2 pickles (bytes keys, a uint8 array, int labels,
    byte-string file names); the same content at any protocol still loads."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"batch_label": b"training batch 1 of 5",
            b"labels": rng.integers(0, 10, 4).tolist(),
            b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8),
            b"filenames": [b"a.png", b"b.png", b"c.png", b"d.png"],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    train = load_cifar10(tmp_path, download=False)
    assert len(train) == 20 and train.images.dtype == torch.uint8


def test_the_archive_is_verified_by_sha256(tmp_path, monkeypatch):
    archive = tmp_path / "cifar-10-python.tar.gz"
    archive.write_bytes(b"not the official archive")
    with pytest.raises(DatasetError, match=r"sha256 \w+ \(expected 6d958be0"):
        cifar10.verify_archive(archive)
    assert not archive.exists()  # a bad download is not left behind
    archive.write_bytes(b"pretend official")
    monkeypatch.setattr(cifar10, "SHA256", hashlib.sha256(b"pretend official").hexdigest())
    monkeypatch.setattr(cifar10, "MD5", hashlib.md5(b"pretend official").hexdigest())
    cifar10.verify_archive(archive)  # matching digests pass
    monkeypatch.setattr(cifar10, "SHA256", "0" * 64)
    with pytest.raises(DatasetError, match="sha256"):
        cifar10.verify_archive(archive)  # a matching MD5 alone is not enough


def test_stored_cells_and_classifier_weights_load_without_code(tmp_path):
    """Evaluation cells and classifier weights go through the weights-only loader too."""
    marker = tmp_path / "marker"
    path = atomic_save({"images": _RunsACommand(marker)}, tmp_path / "cell.pt")
    with pytest.raises(CheckpointError, match="system"):
        load_checkpoint(path)
    from sdekit.metrics.features import load_fashion_classifier

    with pytest.raises(CheckpointError):
        load_fashion_classifier(path)
    assert not marker.exists()


# -- writes never leave the run folder through symlinks ---------------------------------


def _dangling(tmp_path, name):
    """A dangling link at ``run/name`` pointing outside the run folder."""
    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    outside = tmp_path / "outside" / name
    (run / name).symlink_to(outside)
    return run, outside


def test_atomic_save_refuses_a_symlink_at_the_file_or_its_temporary(tmp_path):
    run, outside = _dangling(tmp_path, "ckpt.pt")
    with pytest.raises(InputError, match="ckpt.pt is a symbolic link"):
        atomic_save({"a": 1}, run / "ckpt.pt")
    assert not outside.exists() and os.path.islink(run / "ckpt.pt")
    tmp = run / f".cell.pt.tmp-{os.getpid()}"
    tmp.symlink_to(tmp_path / "outside" / "tmp")
    with pytest.raises(InputError, match="symbolic link"):
        atomic_save({"a": 1}, run / "cell.pt")
    assert not (tmp_path / "outside" / "tmp").exists() and not (run / "cell.pt").exists()


def test_safe_writers_refuse_links_and_write_plain_files(tmp_path):
    run, outside = _dangling(tmp_path, "config.json")
    with pytest.raises(InputError, match="config.json is a symbolic link"):
        write_text_safely(run / "config.json", "{}")
    with pytest.raises(InputError, match="symbolic link"):
        open_for_write(run / "config.json", "a")
    assert not outside.exists()
    assert write_text_safely(run / "summary.md", "ok\n").read_text() == "ok\n"
    with open_for_write(run / "summary.md", "a") as f:
        f.write("more\n")
    assert (run / "summary.md").read_text() == "ok\nmore\n"


@pytest.mark.parametrize("name", ["metrics.jsonl", "metrics.csv"])
def test_the_metrics_log_never_writes_through_a_link(tmp_path, name):
    from sdekit.training.run_log import MetricsLog

    run, outside = _dangling(tmp_path, name)
    log = MetricsLog(run)
    with pytest.raises(InputError, match=f"{name} is a symbolic link"):
        log.append({"step": 1, "loss": 0.5})
    with pytest.raises(InputError, match=f"{name} is a symbolic link"):
        log.trim(0)
    assert not outside.exists()


def test_sample_grids_never_write_through_a_link(tmp_path):
    from sdekit.training.images import save_image_grid

    run, outside = _dangling(tmp_path, "samples.png")
    with pytest.raises(InputError, match="samples.png is a symbolic link"):
        save_image_grid(torch.zeros(1, 1, 4, 4), run / "samples.png")
    assert not outside.exists()
    path = save_image_grid(torch.zeros(2, 1, 4, 4), run / "ok.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confined_names_stay_inside_the_folder(tmp_path):
    run = tmp_path / "run"
    (run / "sub").mkdir(parents=True)
    assert confined(run, "eval") == run / "eval"
    assert confined(run, "sub/eval") == run / "sub" / "eval"
    (run / "linked").symlink_to(tmp_path)
    for bad, why in [
        ("", "non-empty"),
        ("/etc/eval", "absolute"),
        ("../eval", r"'\.\.'"),
        ("sub/../../eval", r"'\.\.'"),
        ("linked/eval", "symbolic link"),
    ]:
        with pytest.raises(InputError, match=why):
            confined(run, bad)


# -- reads are bounded by what the header justifies -------------------------------------


def _idx_gz(path, shape, body: bytes):
    import gzip
    import struct

    header = bytes([0, 0, 0x08, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)
    with gzip.open(path, "wb") as f:
        f.write(header + body)
    return path


def test_an_idx_stream_longer_or_shorter_than_its_header_is_refused(tmp_path):
    from sdekit.data.fashion_mnist import read_idx

    exact = 2 * 28 * 28
    ok = read_idx(_idx_gz(tmp_path / "ok.gz", (2, 28, 28), bytes(exact)))
    assert ok.shape == (2, 28, 28)
    # 2 images announced, a megabyte of zeros follows (a tiny .gz): refused after one byte more
    longer = _idx_gz(tmp_path / "longer.gz", (2, 28, 28), bytes(exact + 2**20))
    with pytest.raises(DatasetError, match=r"\(1568 bytes\) but the file holds more bytes"):
        read_idx(longer)
    shorter = _idx_gz(tmp_path / "shorter.gz", (2, 28, 28), bytes(exact - 1))
    with pytest.raises(DatasetError, match="holds 1567 bytes"):
        read_idx(shorter)


def test_an_idx_header_announcing_an_absurd_size_is_refused_before_reading(tmp_path):
    from sdekit.data.fashion_mnist import MAX_IDX_ELEMENTS, read_idx

    huge = _idx_gz(tmp_path / "huge.gz", (2**16, 2**16, 2), b"")
    with pytest.raises(DatasetError, match=f"more than the {MAX_IDX_ELEMENTS} sdekit reads"):
        read_idx(huge)
    many = tmp_path / "many.gz"
    import gzip

    with gzip.open(many, "wb") as f:
        f.write(bytes([0, 0, 0x08, 255]))
    with pytest.raises(DatasetError, match="255 dimensions"):
        read_idx(many)


_model_cfg = tiny_experiment


def test_a_checkpoint_config_with_an_unknown_or_huge_model_is_refused_before_building():
    from sdekit.experiments.config import build_model, build_sde
    from sdekit.models import MAX_UNET_WIDTH, UNet

    ok = _model_cfg()
    build_model(ok, build_sde(ok))
    bad = _model_cfg(channels=64)
    with pytest.raises(InputError, match=r"unknown U-Net parameter\(s\) 'channels'"):
        build_model(bad, build_sde(bad))
    huge = _model_cfg(ch=2**20, ch_mult=[1, 2])
    with pytest.raises(InputError, match=f"more than the {MAX_UNET_WIDTH}"):
        build_model(huge, build_sde(huge))
    for kwargs, match in [
        ({"ch": 0}, "ch must be a positive int"),
        ({"ch_mult": []}, "ch_mult must be"),
        ({"num_res_blocks": 10**6}, "num_res_blocks must be an int in"),
    ]:
        with pytest.raises(InputError, match=match):
            UNet(1, 8, **kwargs)
