"""A run folder as a small database: one writer at a time, one identity, nothing mixed.

- :class:`RunLock`: ``run_dir/.lock`` names the process that writes the folder (pid, host,
  start time). A second writer is refused naming the holder; a lock left by a process that
  is gone (same host, pid not running) is taken over with a warning. A training checks its
  lock before each of its writes (:meth:`RunLock.verify`): a folder removed, moved or
  replaced under it stops it (:class:`RunFolderLostError`) instead of being recreated
  half-full.
- :func:`config_differences` / :func:`check_same_run`: a run's ``config.json`` is written
  once, at creation; resuming with another configuration is refused with the differing
  keys, except those in :data:`RESUMABLE_KEYS` (more steps, logging, where it runs).
- :func:`clear_run`: what starting over (``--no-resume``) does to a folder that holds a run:
  nothing unless told — ``"archive"`` moves it aside, ``"remove"`` deletes it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path

from ..errors import InputError
from ..files import open_for_write, refuse_symlink

log = logging.getLogger(__name__)

__all__ = [
    "RunLock",
    "RunLockedError",
    "RunFolderLostError",
    "holding_lock",
    "RESUMABLE_KEYS",
    "config_differences",
    "check_same_run",
    "holds_run",
    "clear_run",
    "OLD_RUN_ACTIONS",
]

LOCK_NAME = ".lock"


class RunLockedError(InputError):
    """Another live process writes the run folder."""


class RunFolderLostError(InputError, RuntimeError):
    """The run folder a writer locked was removed, moved, replaced or taken over since
    (the command line reports it in one line, like a locked run)."""


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux ``/proc``), else None."""
    stat = _read(f"/proc/{pid}/stat")
    return stat.rsplit(")", 1)[1].split()[19] if stat else None


def _alive(pid: int, start: str | None) -> bool:
    """Is process ``pid`` running, and is it the one that started at ``start`` (a pid
    reused by another process after the holder died is not the holder)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    now = _start_time(pid)
    return start is None or now is None or now == start


class RunLock:
    """``with RunLock(run_dir): ...`` — hold ``run_dir/.lock`` while writing the folder.

    The lock file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW`` and holds
    ``{"pid", "host", "since", "boot", "start"}`` (the boot id and the process's start
    time, so a pid reused after the holder died, or after a reboot, is not mistaken for
    it). If it exists: a live holder (or one on another host, which cannot be checked) →
    :class:`RunLockedError` naming it; a dead holder on this host → the lock is taken
    over, with a warning. Released (deleted) on exit, if still
    ours. :meth:`verify` (before each write of a long-running writer) raises
    :class:`RunFolderLostError` once the lock file is not the one it created (same path,
    same inode, naming this process). ``enabled=False`` (e.g. DDP ranks other than 0) makes
    it a no-op; ``create=False`` does not create a missing folder (and takes no lock there).
    """

    def __init__(self, run_dir, what: str = "train", enabled: bool = True, create: bool = True):
        self.path = Path(run_dir) / LOCK_NAME
        self.what, self.enabled, self.create = what, enabled, create
        self._mine = False
        self._inode: int | None = None

    def _holder(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> RunLock:
        if not self.enabled:
            return self
        if not self.path.parent.is_dir():
            if not self.create:  # nothing to guard: the caller reports the missing folder
                return self
            self.path.parent.mkdir(parents=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
              "what": self.what, "boot": _read("/proc/sys/kernel/random/boot_id"),
              "start": _start_time(os.getpid())}  # fmt: skip
        for _ in range(2):
            try:
                with open_for_write(self.path, "x") as f:
                    json.dump(me, f)
                    self._inode = os.fstat(f.fileno()).st_ino  # the file created, no race
                self._mine = True
                return self
            except FileExistsError:
                holder = self._holder()
                pid, host = holder.get("pid"), holder.get("host")
                rebooted = holder.get("boot") not in (None, me["boot"])
                live = not isinstance(pid, int) or host != me["host"] or (
                    not rebooted and _alive(pid, holder.get("start"))
                )
                if live and holder:
                    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
                    raise RunLockedError(
                        f"run folder {self.path.parent} is in use: {holder.get('what', 'a')} "
                        f"process {pid} on {host} holds {self.path} since {since}; wait for it "
                        f"to finish or stop it (a lock of a process that is gone is taken over)"
                    ) from None
                log.warning("taking over %s from process %s, which is gone", self.path, pid)
                refuse_symlink(self.path).unlink(missing_ok=True)
        raise RunLockedError(f"could not take the lock {self.path}")

    def verify(self) -> None:
        """Raise :class:`RunFolderLostError` unless ``run_dir/.lock`` is still the file this
        process created (a no-op for a disabled lock or one never taken): a folder deleted,
        moved aside or swapped for a copy under a running writer would otherwise be
        recreated by its next write, holding a checkpoint without the run it came from.
        The identity is the lock file's inode: on a file system whose inode numbers are not
        stable (some network and FUSE mounts) this check can stop a healthy run."""
        if not self._mine:
            return
        try:
            inode = os.stat(self.path, follow_symlinks=False).st_ino
        except OSError:
            inode = None
        if inode != self._inode or self._holder().get("pid") != os.getpid():
            self._mine = False  # not ours any more: release() must not delete it
            raise RunFolderLostError(
                f"the run folder {self.path.parent} changed under this process: its lock "
                f"{self.path} is gone or is not the one this process created (the folder was "
                "removed, moved or replaced, or another process took it over); stopping "
                "without writing, so nothing of this run lands in another"
            )

    def release(self) -> None:
        if self._mine and self._holder().get("pid") == os.getpid():
            self.path.unlink(missing_ok=True)
        self._mine = False

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holding_lock(what: str):
    """Decorate ``f(run_dir, ...)`` to run holding ``run_dir``'s :class:`RunLock`."""

    def decorate(f):
        @functools.wraps(f)
        def locked(run_dir, *args, **kwargs):
            with RunLock(run_dir, what, create=False):
                return f(run_dir, *args, **kwargs)

        return locked

    return decorate


#: config keys (dotted paths) that may change when a run resumes: its length, how it logs,
#: checkpoints and shows progress, where it runs and finds its data
RESUMABLE_KEYS = frozenset({
    "train.steps", "train.log_every", "train.ckpt_every", "train.keep_checkpoints",
    "train.progress", "train.sample_every", "train.sample_n", "train.sample_steps",
    "train.sample_sampler", "train.sample_clip_x0", "train.compile", "train.channels_last",
    "device", "data_dir", "data_on_device",
})  # fmt: skip


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and k not in ("noise_params", "schedule_params", "gaussian"):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(
    old: dict, new: dict, defaults: dict | None = None, ignore=RESUMABLE_KEYS
) -> list[str]:
    """``"key: old → new"`` for every dotted key whose value differs between two configs,
    except the ``ignore`` keys; a key missing on one side reads as its value in
    ``defaults`` (dotted keys), else as absent."""
    defaults = defaults or {}
    a, b = {**defaults, **_flatten(old)}, {**defaults, **_flatten(new)}
    out = []
    for key in sorted(set(a) | set(b)):
        if key in ignore or a.get(key) == b.get(key):
            continue
        out.append(f"{key}: {a.get(key, '(absent)')!r} → {b.get(key, '(absent)')!r}")
    return out


def check_same_run(run_dir, cfg: dict, defaults: dict | None = None) -> None:
    """Refuse (:class:`InputError` listing the differing keys) to resume the run in
    ``run_dir`` with a configuration other than the one in its ``config.json``
    (:func:`config_differences`, with ``defaults`` for keys an older config lacks)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return
    try:
        old = json.loads(path.read_text())
    except ValueError as err:
        raise InputError(f"{path} is not valid JSON ({err}): the run cannot be resumed") from None
    diff = config_differences(old, cfg, defaults)
    if diff:
        raise InputError(
            f"the run in {run_dir} was created with another configuration; differing keys: "
            + "; ".join(diff)
            + ". Use another --run-dir for a new run, or start over with --no-resume "
            "--old-run archive|remove (only the length, logging and device may change on resume)"
        )


def holds_run(run_dir) -> bool:
    """True when ``run_dir`` holds (part of) a run: a config, metrics or checkpoints."""
    run_dir = Path(run_dir)
    names = ("config.json", "metrics.jsonl", "metrics.csv", "checkpoints")
    return any(os.path.lexists(run_dir / n) for n in names)


OLD_RUN_ACTIONS = ("refuse", "archive", "remove")


def clear_run(run_dir, action: str = "refuse") -> Path | None:
    """Make way for a new run in ``run_dir`` (a fresh start; call it holding the
    :class:`RunLock`, which stays). If the folder holds a run (:func:`holds_run`):
    ``"refuse"`` → :class:`InputError`; ``"archive"`` → everything but the lock moves into
    ``<name>.archived-<YYYYmmdd-HHMMSS>/`` beside the folder (returned); ``"remove"`` →
    everything but the lock is deleted. Links are moved or deleted, never followed."""
    if action not in OLD_RUN_ACTIONS:
        raise InputError(f"old_run must be one of {OLD_RUN_ACTIONS}, got {action!r}")
    run_dir = refuse_symlink(Path(run_dir))
    if not holds_run(run_dir):
        return None
    if action == "refuse":
        raise InputError(
            f"{run_dir} already holds a run; starting over would mix the two: pass "
            "--old-run archive (move it aside) or --old-run remove (delete it), or use "
            "another --run-dir"
        )
    entries = [e for e in run_dir.iterdir() if e.name != LOCK_NAME]
    if action == "remove":
        for e in entries:
            if e.is_dir() and not e.is_symlink():
                shutil.rmtree(e)
            else:
                e.unlink()
        log.info("removed the old run in %s", run_dir)
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target, k = run_dir.with_name(f"{run_dir.name}.archived-{stamp}"), 1
    while os.path.lexists(target):
        k += 1
        target = run_dir.with_name(f"{run_dir.name}.archived-{stamp}-{k}")
    target.mkdir()
    for e in entries:
        e.rename(target / e.name)
    log.info("moved the old run in %s to %s", run_dir, target)
    return target
