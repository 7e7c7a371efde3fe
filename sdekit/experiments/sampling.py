"""Sampling a run: its specs, the context their rules resolve against, and the seeded draw.

A run samples with :class:`~sdekit.sampling.SamplingSpec` values. What a spec cannot know
on its own comes from the run (:func:`run_context`): DDPM's linear chain, the reference of
the ``"reference"`` grid rule, and the training images, whose Gaussian a ``teleport``
fits. The recipes' ``--sampling-grid auto`` is resolved here, once (:func:`grid_rule`).
"""

from __future__ import annotations

import torch

from ..errors import InputError
from ..sampling import SamplingContext, SamplingSpec, resolve
from ..sde import NIVPSDE
from ..training.run_log import draw_samples
from .config import linear_betas, load_dataset, schedule_name

__all__ = ["SAMPLING_GRIDS", "grid_rule", "run_context", "RunSampler"]

#: the recipes' grid choices: the sampler's own, DDPM's noise levels on the run's chain
#: ("reference"), or "auto": reference for an aligned schedule, own otherwise
SAMPLING_GRIDS = ("auto", "own", "reference")


def grid_rule(cfg: dict, grid: str) -> str | None:
    """The spec's grid for a recipe's ``--sampling-grid`` value (``None``: the sampler's
    own grid). "reference": on exact scores a solver then samples an aligned chain as well
    as DDPM's; on the aligned chain's own grid DPM-Solver-2M's KL at 10 steps is 100×
    higher (``benchmarks/aligned_schedule_kl.py``)."""
    if grid not in SAMPLING_GRIDS:
        raise InputError(f"grid must be one of {SAMPLING_GRIDS}, got {grid!r}")
    if grid == "auto":
        grid = "reference" if schedule_name(cfg) == "aligned" else "own"
    return None if grid == "own" else "reference"


def run_context(cfg: dict, sde, model=None, device=None) -> SamplingContext:
    """What the run's specs resolve against: DDPM's linear chain with the run's noise (the
    ``"reference"`` grid), the model (``"optimized"``) and the training images, loaded only
    when a teleport needs them."""

    def images():
        train = load_dataset(cfg, train=True)
        return train.batch(torch.arange(len(train)))

    reference = NIVPSDE.from_betas(sde.covariance, linear_betas(cfg))
    return SamplingContext(reference_sde=reference, model=model, data=images, device=device)


class RunSampler:
    """Draws a run's samples spec by spec, fitting each teleport (one per hand-over SNR)
    once: ``RunSampler(cfg, sde, model, device)(spec) -> (x, info)``."""

    def __init__(self, cfg: dict, sde, model, device="cpu", progress: bool = False):
        self.sde, self.model, self.device, self.progress = sde, model, device, progress
        self.context = run_context(cfg, sde, model, device)
        self._teleports: dict = {}

    def plan(self, spec: SamplingSpec):
        """The resolved plan of ``spec`` (its teleport fitted once per SNR)."""
        jump = None
        if spec.teleport is not None:
            if spec.teleport not in self._teleports:
                self._teleports[spec.teleport] = resolve(
                    SamplingSpec(teleport=spec.teleport), self.sde, self.context
                ).teleport
            jump = self._teleports[spec.teleport]
        return resolve(spec, self.sde, self.context, teleport=jump)

    def __call__(self, spec: SamplingSpec):
        return draw_samples(self.model, self.plan(spec), self.device, self.progress)
