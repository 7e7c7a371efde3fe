"""Files sdekit writes and reads back: atomic writes, and loads that never run code.

- :func:`atomic_save` writes to a temporary file, fsyncs, then ``os.replace``\\ s it: a
  crash leaves the old file or the new one, never half of one.
- :func:`open_for_write`, :func:`write_text_safely` and :func:`atomic_save` never follow
  a symlink: a link (dangling or not) at the path sdekit writes, or at its temporary
  file, is refused with an :class:`~sdekit.errors.InputError`, so no write escapes the
  folder it is meant for. :func:`confined` resolves a name given by the user inside a
  folder and refuses one that would leave it (``..``, an absolute path, a symlinked
  parent).
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

__all__ = [
    "CheckpointError",
    "atomic_save",
    "atomic_write",
    "confined",
    "load_checkpoint",
    "nothing_to_check",
    "open_for_write",
    "refuse_symlink",
    "write_text_safely",
]


class CheckpointError(InputError):
    """A checkpoint file is missing, damaged or does not match; the message says which."""


def nothing_to_check() -> None:
    """A writer's default ``before_write``: no check before a write (a run lock's
    :meth:`~sdekit.training.run_folder.RunLock.verify` is the usual one)."""


def refuse_symlink(path) -> Path:
    """``path`` as a :class:`~pathlib.Path`, or :class:`~sdekit.errors.InputError` if a
    symlink (dangling or not) sits there: sdekit writes files, never through links."""
    path = Path(path)
    if os.path.islink(path):
        raise InputError(
            f"{path} is a symbolic link (to {os.readlink(path)!r}): sdekit does not write "
            "through links, so that nothing lands outside the folder it is meant for; "
            "remove the link"
        )
    return path


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_MODES = {
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "x": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
}


def open_for_write(path, mode: str = "w", **kwargs):
    """``open(path, mode)`` for writing (``"w"``, ``"a"``, ``"x"``, with ``"b"`` for
    bytes) that refuses a symlink at ``path`` (:func:`refuse_symlink`) and opens with
    ``O_NOFOLLOW``, so a link put there in between is refused too. ``kwargs`` go to
    :func:`open` (``newline``, ``encoding``)."""
    path = refuse_symlink(path)
    flags = _MODES.get(mode.replace("b", ""))
    if flags is None:
        raise InputError(f"mode must be one of 'w', 'a', 'x' (with 'b'), got {mode!r}")
    try:
        fd = os.open(path, flags | _NOFOLLOW, 0o666)
    except OSError as err:
        if os.path.islink(path):
            refuse_symlink(path)
        raise err
    return open(fd, mode, **kwargs)


def atomic_write(path, write) -> Path:
    """Call ``write(f)`` on a fresh temporary binary file beside ``path``, fsync it, then
    ``os.replace`` it onto ``path``: a crash leaves the old file or the new one. A symlink
    at ``path`` or at the temporary file is refused (:func:`refuse_symlink`); the
    temporary file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``."""
    path = refuse_symlink(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = refuse_symlink(path.with_name(f".{path.name}.tmp-{os.getpid()}"))
    if tmp.exists():  # left by a crashed writer with the same pid
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666)
    try:
        with open(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        refuse_symlink(path)  # a link put there while we wrote
        os.replace(tmp, path)
    except OSError as err:  # a full disk, a quota: name the file it was writing
        if err.filename is None and err.errno is not None:
            raise OSError(err.errno, err.strerror, str(path)) from None
        raise
    finally:
        if tmp.exists() and not os.path.islink(tmp):
            tmp.unlink()
    return path


def atomic_save(obj, path) -> Path:
    """``torch.save`` to ``path`` so that a crash leaves either the old file or the new one
    (:func:`atomic_write`: never through a symlink)."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def write_text_safely(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and never through a symlink
    (:func:`atomic_write`); the parent folder is created."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))


def confined(folder, name) -> Path:
    """``folder / name`` for a ``name`` given by the user (e.g. an evaluation name),
    refusing one that would leave ``folder``: empty, absolute, with a ``..`` part, or
    under a symlinked sub-folder of ``folder`` (:class:`~sdekit.errors.InputError`
    naming ``name``). The path itself is checked by the writers (:func:`refuse_symlink`).
    """
    folder = Path(folder)
    text = os.fspath(name)
    parts = Path(text).parts
    if not text or not parts:
        raise InputError(f"name must be a non-empty file name inside {folder}, got {text!r}")
    if Path(text).is_absolute() or text.startswith(("/", "\\")):
        raise InputError(f"name must be relative to {folder}, got the absolute path {text!r}")
    if ".." in parts or any(".." == p for p in text.replace("\\", "/").split("/")):
        raise InputError(f"name must stay inside {folder}, got {text!r} (with '..')")
    here = folder
    for part in parts[:-1]:
        here = here / part
        if os.path.islink(here):
            raise InputError(
                f"name {text!r} goes through {here}, a symbolic link: sdekit writes only "
                f"inside {folder}"
            )
    return folder / text


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
