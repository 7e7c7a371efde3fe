"""Checkpoints that survive crashes: atomic writes, safe loads, a rotating folder.

- :func:`atomic_save` writes to a temporary file, fsyncs, then ``os.replace``\\ s it: a
  crash leaves the old file or the new one, never half of one.
- :func:`load_checkpoint` loads with ``weights_only=True`` (tensors and plain
  containers only: no code runs) and says what is wrong with a file that cannot be read.
- :class:`CheckpointFolder` keeps ``step{N}.pt`` files and ``latest.pt``; resuming takes
  ``latest.pt`` or, when it is damaged, the newest intact ``step*.pt`` with a warning.
- :func:`capture_rng` / :func:`restore_rng`: the global RNG state that makes a resume
  continue bit for bit.
"""

from __future__ import annotations

import logging
import os
import pickle
import zipfile
from pathlib import Path

import torch

from .distributed import DistInfo

log = logging.getLogger(__name__)

__all__ = [
    "CheckpointError",
    "CheckpointFolder",
    "atomic_save",
    "load_checkpoint",
    "load_state_strict",
    "capture_rng",
    "restore_rng",
]


class CheckpointError(ValueError):
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
        if "Unsupported global" in str(err):
            raise CheckpointError(
                f"{path} is not a readable sdekit checkpoint: it holds objects other than "
                "tensors and plain containers, which sdekit refuses to load (they could run "
                f"code): {_refused(err)}"
            ) from None
        raise CheckpointError(
            f"{path} is not a readable sdekit checkpoint ({size} bytes): it is truncated, "
            f"damaged or not a checkpoint at all ({_first_line(err)})"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(
            f"{path} is not a readable sdekit checkpoint ({size} bytes): it is truncated or "
            f"damaged, e.g. by a crash during a copy ({_first_line(err)})"
        ) from None


def _refused(err: Exception) -> str:
    """The refused global from torch's weights-only message, without its advice to load
    unsafely."""
    for line in str(err).splitlines():
        if "Unsupported global" in line:
            return line.split("Unsupported global:")[1].split(" was not")[0].strip()
    return "a refused global"


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def load_state_strict(module: torch.nn.Module, state: dict, what: str, path) -> None:
    """``load_state_dict(strict=True)`` with an error that names the mismatch."""
    own, theirs = set(module.state_dict()), set(state)
    missing, unexpected = sorted(own - theirs), sorted(theirs - own)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not match the {what}: missing keys {missing[:5]}"
            f"{'…' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
            f"{'…' if len(unexpected) > 5 else ''} (was it written with another configuration?)"
        )
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not match the {what}: {err}") from None


class CheckpointFolder:
    """``folder/step{N:07d}.pt`` (the newest ``keep``) and ``folder/latest.pt``."""

    def __init__(self, folder, keep: int = 2):
        self.folder, self.keep = Path(folder), keep

    @property
    def latest(self) -> Path:
        return self.folder / "latest.pt"

    def step_files(self) -> list[Path]:
        """The ``step*.pt`` files, newest first."""
        return sorted(self.folder.glob("step*.pt"), reverse=True)

    def save(self, state: dict, step: int) -> Path:
        """Write ``step{step}.pt`` then ``latest.pt`` atomically; drop the oldest step files."""
        path = atomic_save(state, self.folder / f"step{step:07d}.pt")
        atomic_save(state, self.latest)
        for old in self.step_files()[self.keep :]:
            old.unlink()
        return path

    def load_newest(self, map_location="cpu") -> tuple[Path, dict] | None:
        """``(path, state)`` of ``latest.pt``, or of the newest intact ``step*.pt`` when
        ``latest.pt`` is damaged (logged as a warning naming both); ``None`` when the folder
        holds no checkpoint. **Raises:** :class:`CheckpointError` when none is readable."""
        candidates = ([self.latest] if self.latest.exists() else []) + self.step_files()
        errors = []
        for path in candidates:
            try:
                state = load_checkpoint(path, map_location)
            except CheckpointError as err:
                errors.append(str(err))
                continue
            if errors:
                log.warning("%s; resuming from the intact %s instead", errors[0], path)
            return path, state
        if errors:
            raise CheckpointError(
                "no readable checkpoint in "
                f"{self.folder}: " + "; ".join(errors) + " (start over with --no-resume)"
            )
        return None


def capture_rng(dist_info: DistInfo, device: torch.device) -> dict:
    """The global CPU RNG state of every rank (gathered under DDP) and this rank's CUDA one."""
    rngs = dist_info.all_gather(torch.get_rng_state())
    state = {"rng_cpu": rngs}
    if device.type == "cuda":
        state["rng_cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(state: dict, dist_info: DistInfo, device: torch.device) -> None:
    """Set the global RNG of this rank from :func:`capture_rng`'s record."""
    rngs = state["rng_cpu"]
    torch.set_rng_state(rngs[dist_info.rank if len(rngs) > dist_info.rank else 0].cpu())
    if "rng_cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["rng_cuda"].cpu(), device)
