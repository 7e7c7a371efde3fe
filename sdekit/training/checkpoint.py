"""Checkpoints that survive crashes: atomic writes and safe loads (:mod:`sdekit.files`),
strict state loading, a rotating folder.

- :class:`CheckpointFolder` keeps ``step{N}.pt`` files and ``latest.pt``; resuming takes
  ``latest.pt`` or, when it is damaged, the newest intact ``step*.pt`` with a warning.
- :func:`capture_rng` / :func:`restore_rng`: the global RNG state that makes a resume
  continue bit for bit.
- :data:`TRAINER_STATE_KEYS` / :func:`check_state_keys`: what a trainer's record must hold.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from ..files import CheckpointError, atomic_save, load_checkpoint, nothing_to_check
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
    "restore_generator",
    "TRAINER_STATE_KEYS",
    "check_state_keys",
]

#: what :meth:`Trainer.state_dict` records and a resume needs (``rng_cuda`` and ``config``
#: are recorded too, but optional)
TRAINER_STATE_KEYS = (
    "step",
    "model",
    "ema",
    "optimizer",
    "scheduler",
    "stream",
    "noise_gen",
    "rng_cpu",
)


def check_state_keys(state: dict, path) -> None:
    """:class:`CheckpointError` naming the missing keys unless ``state`` (read from ``path``)
    holds every one of :data:`TRAINER_STATE_KEYS`."""
    missing = set(TRAINER_STATE_KEYS) - set(state)
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {sorted(missing)}")


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


_STEP_FILE = re.compile(r"step(\d+)\.pt")


class CheckpointFolder:
    """``folder/step{N:07d}.pt`` (the newest ``keep``, by step) and ``folder/latest.pt``;
    ``before_write()``, if given, runs before each save (e.g. a run lock's check)."""

    def __init__(self, folder, keep: int = 2, before_write=None):
        self.folder, self.keep = Path(folder), keep
        self.before_write = before_write or nothing_to_check

    @property
    def latest(self) -> Path:
        return self.folder / "latest.pt"

    def step_files(self) -> list[tuple[int, Path]]:
        """``(step, path)`` of the ``step*.pt`` files, highest step first (the number in
        the name, never the name's order)."""
        found = [(_STEP_FILE.fullmatch(p.name), p) for p in self.folder.glob("step*.pt")]
        return sorted(((int(m.group(1)), p) for m, p in found if m), reverse=True)

    def save(self, state: dict, step: int) -> Path:
        """Write ``step{step}.pt`` then ``latest.pt`` atomically; then drop the step files
        beyond ``step`` (left by an abandoned future: a resume from an earlier file) and
        all but the newest ``keep``."""
        self.before_write()
        path = atomic_save(state, self.folder / f"step{step:07d}.pt")
        atomic_save(state, self.latest)
        files = self.step_files()
        for s, old in files:
            if s > step:
                log.warning("removing %s: it lies past the step %d this run resumed", old, step)
                old.unlink()
        for _, old in [f for f in files if f[0] <= step][self.keep :]:
            old.unlink()
        return path

    def remove_partial_writes(self) -> None:
        """Delete temporary files left by writes that a crash interrupted."""
        for tmp in self.folder.glob(".*.tmp-*"):
            tmp.unlink(missing_ok=True)

    def load_newest(self, map_location="cpu") -> tuple[Path, dict] | None:
        """``(path, state)`` of ``latest.pt``, or of the newest intact ``step*.pt`` when
        ``latest.pt`` is damaged (logged as a warning naming both); ``None`` when the folder
        holds no checkpoint. **Raises:** :class:`CheckpointError` when none is readable."""
        candidates = [self.latest] if self.latest.exists() else []
        candidates += [p for _, p in self.step_files()]
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
                f"{self.folder}: " + "; ".join(errors)
                + " (start over with --no-resume --old-run archive|remove)"
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


def restore_generator(generator: torch.Generator, state: torch.Tensor, reseed: int, path) -> None:
    """Set ``generator`` to a recorded state; one recorded by a generator of another device
    type (a CUDA checkpoint resumed on CPU, or the reverse: the states differ in size) cannot
    continue the same numbers, so the generator is seeded with ``reseed`` instead, with a
    warning that the resumed run is not bit-identical to continuing where it was."""
    state = state.cpu()
    if state.numel() == generator.get_state().numel():
        generator.set_state(state)
        return
    log.warning(
        "%s: its noise generator was recorded on another device type (state of %d bytes, "
        "this %s generator has %d): the noise stream restarts from seed %d, so this resume is "
        "not bit-identical to one on the original device",
        path, state.numel(), generator.device.type, generator.get_state().numel(), reseed,
    )  # fmt: skip
    generator.manual_seed(reseed)
