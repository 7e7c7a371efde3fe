"""Atomic checkpoints: write to a temporary file, fsync, then ``os.replace``."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def atomic_save(obj, path) -> Path:
    """``torch.save`` to ``path`` so that a crash leaves either the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code), with a clear error."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a readable sdekit checkpoint: {err}") from None


def load_state_strict(module: torch.nn.Module, state: dict, what: str, path) -> None:
    """``load_state_dict(strict=True)`` with an error that names the mismatch."""
    own, theirs = set(module.state_dict()), set(state)
    missing, unexpected = sorted(own - theirs), sorted(theirs - own)
    if missing or unexpected:
        raise ValueError(
            f"checkpoint {path} does not match the {what}: missing keys {missing[:5]}"
            f"{'…' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{'…' if len(unexpected) > 5 else ''} (was it written with another configuration?)"
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not match the {what}: {err}") from None
