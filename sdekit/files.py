"""Files sdekit writes and reads back: atomic writes, and loads that never run code.

- :func:`atomic_save` writes to a temporary file, fsyncs, then ``os.replace``\\ s it: a
  crash leaves the old file or the new one, never half of one.
- :func:`load_checkpoint` loads with ``weights_only=True`` (tensors and plain containers
  only: no code runs, whoever made the file) and says what is wrong with a file that
  cannot be read. Checkpoints, stored evaluation samples and classifier weights go
  through it.
"""

from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path

import torch

from .errors import InputError

__all__ = ["CheckpointError", "atomic_save", "load_checkpoint"]


class CheckpointError(InputError):
    """A checkpoint file is missing, damaged or does not match; the message says which."""


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
    """Load a checkpoint with ``weights_only=True`` (no arbitrary code runs).

    **Raises:** ``FileNotFoundError`` if there is no file; :class:`CheckpointError` naming
    the file and what is wrong with it (empty, truncated, not a checkpoint, holding
    objects other than tensors and plain containers).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is not a readable sdekit checkpoint: the file is empty")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        refused = _refused_global(str(err))
        if refused:
            raise CheckpointError(
                f"{path} is not a readable sdekit checkpoint: it holds objects other than "
                "tensors and plain containers, which sdekit refuses to load (they could run "
                f"code): {refused}"
            ) from None
        raise CheckpointError(
            f"{path} is not a readable sdekit checkpoint ({size} bytes): it is truncated, "
            f"damaged or not a checkpoint at all ({_reason(str(err))})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(
            f"{path} is not a readable sdekit checkpoint ({size} bytes): it is truncated or "
            f"damaged, e.g. by a crash during a copy ({_reason(str(err))})"
        ) from None


_GLOBAL = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)")


def _refused_global(message: str) -> str | None:
    """``"GLOBAL module.name"`` when torch's weights-only loader refused a global."""
    found = _GLOBAL.search(message)
    return f"GLOBAL {found.group(1)}" if found else None


def _reason(message: str) -> str:
    """The substance of a load error, without torch's advice to load unsafely."""
    for line in message.splitlines():
        line = line.strip()
        if line and "weights_only" not in line and "Weights only" not in line:
            return line.removeprefix("WeightsUnpickler error:").strip() or line
    return "unreadable"
