"""Two CPU processes with gloo: replicas stay identical and match one process on the
same global batch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

WORKER = Path(__file__).parent / "ddp_worker.py"


def test_two_process_gloo_matches_single_process(tmp_path):
    steps = 4
    multi, single = tmp_path / "multi", tmp_path / "single"
    multi.mkdir()
    single.mkdir()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(WORKER),
        str(multi),
        str(steps),
    ]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    res = subprocess.run(
        [sys.executable, str(WORKER), str(single), str(steps)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]

    p0 = torch.load(multi / "params_rank0.pt")
    p1 = torch.load(multi / "params_rank1.pt")
    ps = torch.load(single / "params_rank0.pt")
    torch.testing.assert_close(p0, p1, rtol=0, atol=0)  # replicas identical
    torch.testing.assert_close(p0, ps, rtol=1e-5, atol=1e-6)  # = one process, global batch
    l0 = json.loads((multi / "losses_rank0.json").read_text())
    ls = json.loads((single / "losses_rank0.json").read_text())
    assert l0 == json.loads((multi / "losses_rank1.json").read_text())
    assert max(abs(a - b) for a, b in zip(l0, ls, strict=True)) < 1e-5
    assert (multi / "run" / "checkpoints" / "latest.pt").exists()
