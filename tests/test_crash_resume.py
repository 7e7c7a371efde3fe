"""Fault injection: a training run killed with SIGKILL at random moments (mid-step,
mid-checkpoint-write) and resumed each time ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import copy
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from test_training_state import TINY

from sdekit.files import load_checkpoint

WORKER = Path(__file__).with_name("crash_worker.py")
CFG = copy.deepcopy(TINY)
CFG["train"].update(steps=30, ckpt_every=1, keep_checkpoints=2)  # a write every step


def _start(run_dir: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), json.dumps(CFG), str(run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _weights(run_dir: Path) -> dict:
    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    return {"model": state["model"], "ema": state["ema"], "step": state["step"]}


def test_killed_at_random_moments_resumes_to_identical_weights(tmp_path):
    reference = tmp_path / "reference"
    proc = _start(reference)
    assert proc.wait(timeout=300) == 0

    crashed, rng, kills = tmp_path / "crashed", random.Random(1234), 0
    steps_seen = []
    for _ in range(5):
        proc = _start(crashed)
        time.sleep(rng.uniform(0.05, 0.6))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        latest = crashed / "checkpoints" / "latest.pt"
        steps_seen.append(load_checkpoint(latest)["step"] if latest.exists() else 0)
    proc = _start(crashed)
    assert proc.wait(timeout=300) == 0
    assert kills >= 3, "the run finished before it could be killed: raise the step count"
    assert steps_seen == sorted(steps_seen)  # no progress lost beyond the last checkpoint
    a, b = _weights(reference), _weights(crashed)
    assert a["step"] == b["step"] == CFG["train"]["steps"]
    for part in ("model", "ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs"
    assert not list((crashed / "checkpoints").glob(".*tmp*")), "partial writes left behind"
