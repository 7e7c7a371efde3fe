"""Run by tests/test_crash_resume.py: train (resuming) a tiny config, to be killed at will."""

from __future__ import annotations

import json
import sys

from sdekit.experiments import train

if __name__ == "__main__":
    cfg = json.loads(sys.argv[1])
    print("ready", flush=True)  # imports done: the parent may kill from here on
    train(cfg, sys.argv[2], resume=True, device="cpu")
    print("done", flush=True)
