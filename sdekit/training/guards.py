"""What stops a training run cleanly: divergence (a non-finite loss or weight) and a stop
signal (SIGINT / SIGTERM), each before anything non-finite or half-done is written.

- :func:`check_finite_loss` after every step (the loss is already on the host) and
  :func:`check_finite_weights` before every checkpoint raise :class:`DivergenceError`:
  the run stops, the last good checkpoints stay, and ``metrics.jsonl`` never gets a NaN.
- :class:`StopSignals` turns SIGINT / SIGTERM into a flag that the loop reads between
  steps; the trainer then writes a final checkpoint and raises :class:`TrainingInterrupted`.
"""

from __future__ import annotations

import math
import signal
import threading

import torch

from ..errors import InputError

__all__ = [
    "DivergenceError",
    "TrainingInterrupted",
    "check_finite_loss",
    "check_finite_weights",
    "StopSignals",
]


class DivergenceError(InputError, RuntimeError):
    """Training diverged: a non-finite loss or weight (nothing non-finite was written)."""


class TrainingInterrupted(RuntimeError):
    """A stop signal ended training after a final checkpoint (rerun to resume)."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum


_ADVICE = (
    "the last good checkpoints are untouched; lower --lr (or raise the warm-up), or resume "
    "from an earlier checkpoint"
)


def check_finite_loss(loss: float, step: int, lr: float) -> None:
    """:class:`DivergenceError` if the loss of ``step`` is NaN or ±inf."""
    if not math.isfinite(loss):
        raise DivergenceError(
            f"training diverged at step {step}: the loss is {loss} (learning rate {lr:.3g}); "
            + _ADVICE
        )


def check_finite_weights(modules: dict, step: int) -> None:
    """:class:`DivergenceError` naming the first tensor of ``modules`` (name → module)
    that holds a NaN or ±inf."""
    for what, module in modules.items():
        for name, tensor in module.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                bad = int((~torch.isfinite(tensor)).sum())
                raise DivergenceError(
                    f"training diverged by step {step}: {bad} non-finite value(s) in the "
                    f"{what}'s {name}; no checkpoint was written; " + _ADVICE
                )


class StopSignals:
    """``with StopSignals() as stop:`` … ``if stop.signum:`` — SIGINT and SIGTERM set
    ``signum`` instead of killing the process (a second SIGINT still interrupts at once).
    Outside the main thread, where handlers cannot be installed, it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = 0
        self._old = {}

    def _handle(self, signum, frame):
        if self.signum == signal.SIGINT == signum:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signum = signum

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in self.SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)
        self._old = {}

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def raise_if_stopped(self, step: int, checkpoint) -> None:
        """:class:`TrainingInterrupted` if a signal came (after the final ``checkpoint``)."""
        if self.signum:
            raise TrainingInterrupted(
                f"training stopped by {self.name} at step {step}; checkpoint written to "
                f"{checkpoint}; run the same command again to resume", self.signum
            )  # fmt: skip
