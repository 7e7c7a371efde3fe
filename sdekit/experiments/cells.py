"""The cell store: a run's evaluation samples on disk, keyed by the spec that drew them.

One cell is one :class:`~sdekit.sampling.SamplingSpec` with one seed and ``n`` samples of
one set of weights, stored as 8-bit images in
``<run>/evaluation/samples/<label>_n<n>_seed<seed>_<key>_<model>.pt`` (``key``:
:meth:`SamplingSpec.key`, so any change of sampler, budget, grid, options, clamp, teleport,
n or seed is another cell; ``model``: the weights' identity, step and content hash, so
samples of older weights are never scored as the new model's). Files are written atomically, so an
interrupted evaluation resumes at its first missing cell; a stored cell is read back only
if it holds what its spec says (the spec itself, ``n`` uint8 images, an integer NFE).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import torch

from ..errors import InputError
from ..files import CheckpointError, atomic_save, load_checkpoint
from ..sampling import SamplingSpec
from ..training.images import to_uint8

log = logging.getLogger(__name__)

__all__ = ["CellStore"]


class CellStore:
    """The stored evaluation cells of ``run_dir`` (module docstring)."""

    def __init__(self, run_dir, model: str):
        self.run_dir, self.model = Path(run_dir), str(model)
        self.root = self.run_dir / "evaluation" / "samples"

    def path(self, spec: SamplingSpec) -> Path:
        if isinstance(spec.seed, tuple) or spec.n is None:
            raise InputError("a cell is one spec with one seed and n set (spec.per_seed())")
        name = f"{spec.label()}_n{spec.n}_seed{spec.seed}_{spec.key()}_{self.model}.pt"
        return self.root / name

    def load(self, spec: SamplingSpec) -> dict | None:
        """The stored cell of ``spec``, or ``None`` if there is none; ``CheckpointError`` if
        the file does not hold what the spec says."""
        path = self.path(spec)
        if not path.is_file():
            return None
        cell = load_checkpoint(path)
        images, nfe = cell.get("images"), cell.get("nfe")
        problems = []
        if cell.get("spec") != spec.to_dict():
            problems.append("its spec differs")
        if cell.get("model") != self.model:
            problems.append(f"drawn by model {cell.get('model')!r}, not {self.model!r}")
        if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8):
            problems.append("no uint8 images")
        elif images.shape[0] != spec.n:
            problems.append(f"{images.shape[0]} images for n = {spec.n}")
        if not (isinstance(nfe, int) and nfe >= 0):
            problems.append(f"nfe {nfe!r}")
        if problems:
            raise CheckpointError(
                f"stored cell {path} is not what its spec says ({'; '.join(problems)}); "
                "delete it to sample the cell again"
            )
        return cell

    def get(self, spec: SamplingSpec, draw: Callable) -> dict:
        """The stored cell, else ``draw(spec) -> (x, info)``, stored atomically, returned."""
        cell = self.load(spec)
        if cell is not None:
            return cell
        t0 = time.perf_counter()
        x, info = draw(spec)
        teleport_time = None if spec.teleport is None else float(info.grid.t[0])
        cell = {
            "spec": spec.to_dict(),
            "model": self.model,
            "images": to_uint8(x.cpu()),
            "nfe": int(info.nfe),
            "network_passes": info.network_passes,
            "seconds": round(time.perf_counter() - t0, 2),
            "teleport_time": teleport_time,
        }
        self.path(spec).parent.mkdir(parents=True, exist_ok=True)
        atomic_save(cell, self.path(spec))
        return cell

    def relative(self, spec: SamplingSpec) -> str:
        """The cell's path relative to the run folder (what summaries record)."""
        return self.path(spec).relative_to(self.run_dir).as_posix()
