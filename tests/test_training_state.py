"""EMA warm-up, same-seed reproducibility across processes, damaged-checkpoint recovery."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch
from training_helpers import flat_params, make_trainer

from sdekit.training import atomic_save
from sdekit.training.checkpoint import CheckpointError, CheckpointFolder, load_checkpoint
from sdekit.training.ema import ema_decay_at, make_ema

TINY = {
    "dataset": "synthetic",
    "resolution": 8,
    "noise": "gff",
    "beta_start": 1e-4,
    "beta_end": 0.02,
    "num_timesteps": 1000,
    "model": {
        "ch": 8,
        "ch_mult": [1, 2],
        "num_res_blocks": 1,
        "attn_resolutions": [4],
        "dropout": 0.1,
        "groups": 4,
    },
    "train": {"steps": 3, "batch_size": 4, "warmup": 2, "ckpt_every": 100, "progress": False},
}


@pytest.mark.parametrize("warmup", [True, False])
def test_ema_is_the_warmed_up_average(warmup):
    """The weight starts at 0 and is 1 from the first update on: after N updates the EMA
    is 1 − Π d_n exactly (the initial weights keep the share Π d_n)."""
    model = torch.nn.Linear(1, 1, bias=False).double()
    torch.nn.init.zeros_(model.weight)
    ema = make_ema(model, decay=0.999, warmup=warmup)
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        model.weight.fill_(1.0)
    n_updates = 4000
    for _ in range(n_updates):
        ema.update_parameters(model)
    kept = math.prod(ema_decay_at(n, 0.999, warmup) for n in range(1, n_updates + 1))
    assert float(ema.module.weight.detach()) == pytest.approx(1 - kept, abs=1e-12)
    if warmup:
        assert kept < 1e-3  # the zero-initialised start is forgotten
    else:
        assert kept == pytest.approx(0.999**n_updates) and kept > 0.018


def test_ema_decay_warmup_values():
    assert ema_decay_at(0, 0.999) == pytest.approx(0.1)
    assert ema_decay_at(90, 0.999) == pytest.approx(0.91)
    assert ema_decay_at(10**6, 0.999) == 0.999
    assert ema_decay_at(0, 0.999, warmup=False) == 0.999


def _train_in_a_new_process(run_dir) -> str:
    code = (
        "import json, sys, hashlib, torch\n"
        "from sdekit.experiments import train\n"
        "cfg = json.loads(sys.argv[1])\n"
        "tr = train(cfg, sys.argv[2], resume=False, device='cpu')\n"
        "flat = torch.cat([v.flatten().double() for v in tr.model.state_dict().values()])\n"
        "print(hashlib.sha256(flat.numpy().tobytes()).hexdigest())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(TINY), str(run_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


def test_same_seed_gives_identical_weights_in_two_processes(tmp_path):
    a = _train_in_a_new_process(tmp_path / "a")
    b = _train_in_a_new_process(tmp_path / "b")
    assert a == b and len(a) == 64


def test_resume_falls_back_to_the_newest_intact_checkpoint(tmp_path, caplog):
    tr = make_trainer(tmp_path, steps=4, ckpt_every=2, dropout=0.0)
    tr.fit()  # step0000002.pt, step0000004.pt, latest.pt (= step 4)
    latest = tmp_path / "checkpoints" / "latest.pt"
    data = latest.read_bytes()
    latest.write_bytes(data[: len(data) // 2])  # a crash during a copy
    again = make_trainer(tmp_path, steps=4, ckpt_every=2, dropout=0.0)
    with caplog.at_level("WARNING"):
        assert again.resume_if_possible() and again.step == 4
    assert "latest.pt" in caplog.text and "step0000004.pt" in caplog.text
    assert torch.equal(flat_params(again.model), flat_params(tr.model))


def test_no_readable_checkpoint_names_every_file_and_the_way_out(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    (folder / "latest.pt").write_bytes(b"")
    (folder / "step0000002.pt").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError) as err:
        CheckpointFolder(folder).load_newest()
    text = str(err.value)
    assert "latest.pt" in text and "step0000002.pt" in text and "--no-resume" in text
    assert CheckpointFolder(tmp_path / "empty").load_newest() is None


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"", "the file is empty"),
        (b"\x8f\x00random bytes that are no checkpoint", "truncated, damaged or not a checkpoint"),
    ],
)
def test_unreadable_checkpoint_messages(tmp_path, content, expected):
    path = tmp_path / "c.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=expected) as err:
        load_checkpoint(path)
    assert "weights_only=False" not in str(err.value)


def test_a_checkpoint_holding_code_is_refused_without_unsafe_advice(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("never printed",))

    path = atomic_save({"x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="objects other than tensors") as err:
        load_checkpoint(path)
    assert "weights_only=False" not in str(err.value)
