"""Evaluation of a trained run: a thin loop over sampling specs, and test bits/dim.

Each :class:`~sdekit.sampling.SamplingSpec` is one row of the table. A spec with several
seeds pools its cells (one ``n``-sample cell per seed, :meth:`SamplingSpec.per_seed`). The
three parts: the cells come from the run's :class:`~sdekit.experiments.cells.CellStore`
(drawn once, reused after), their 8-bit images are scored by
:func:`~sdekit.experiments.scoring.score_samples` against the test set, and the rows go to
``<run>/<name>.json`` and ``.md``. Rows record their cells' paths (``cells``), so reports
find the samples from the summary alone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .._progress import progress_bar
from ..errors import InputError
from ..files import confined, write_text_safely
from ..models import model_num_classes
from ..models.labels import class_labels
from ..sampling import SamplingSpec
from ..training.images import from_uint8
from ..training.run_folder import holding_lock
from .cells import CellStore
from .config import load_dataset
from .reports import markdown_table
from .runs import open_run
from .sampling import RunSampler
from .scoring import reference_set, score_samples

log = logging.getLogger(__name__)

__all__ = ["evaluate_run", "test_bits_per_dim", "write_summary"]


def _asked_labels(spec: SamplingSpec, model):
    """The labels a conditional spec asked for, cell after cell (``None`` without classes)."""
    if spec.classes is None:
        return None
    k = model_num_classes(model)
    return torch.cat([class_labels(one.classes, one.n, k) for one in spec.per_seed()])


@holding_lock("evaluate")
def evaluate_run(
    run_dir,
    specs: Sequence[SamplingSpec],
    *,
    device="cpu",
    name: str = "evaluation",
    bpd_n: int = 0,
    n_boot: int = 200,
    progress: bool = True,
    data_dir=None,
) -> dict:
    """Score every spec's samples (FID ± bootstrap sd, precision, recall, log-spectrum
    RMSE) and, when ``bpd_n > 0``, the test bits/dim of the first ``bpd_n`` test images;
    write ``run_dir/<name>.json`` and ``.md``; return the summary. ``data_dir`` replaces the
    run's dataset folder (:func:`~sdekit.experiments.runs.open_run`). The run folder is
    locked meanwhile (a training or another evaluation of it is refused)."""
    specs = list(specs)
    if not specs or any(s.n is None or s.n < 2 for s in specs):
        raise InputError("specs: give at least one SamplingSpec, each with n >= 2 samples")
    confined(run_dir, f"{name}.json")  # a name that would leave the run folder: refused now
    if not (isinstance(bpd_n, int) and bpd_n >= 0):
        raise InputError(f"bpd_n (test images for bits/dim) must be an int >= 0, got {bpd_n!r}")
    run = open_run(run_dir, device, data_dir)
    cfg, sde, model = run.cfg, run.sde, run.model
    store, draw = CellStore(run_dir, run.identity), RunSampler(cfg, sde, model, device)
    ref = reference_set(cfg, device)
    bar = progress_bar(progress, total=sum(len(s.seeds) for s in specs), desc="evaluate")
    rows = []
    for spec in specs:
        cells = []
        for one in spec.per_seed():
            cells.append(store.get(one, draw))
            if bar is not None:
                bar.update(1)
        x = from_uint8(torch.cat([c["images"] for c in cells]))
        row = {
            "sampler": spec.sampler,
            "steps": spec.steps,
            "nfe": cells[0]["nfe"],
            "network_passes": cells[0].get("network_passes"),  # per sample (CFG: up to 2 nfe)
            "seconds": round(sum(c["seconds"] for c in cells), 2),
            **score_samples(x, ref, n_boot, spec.seeds[0], _asked_labels(spec, model)),
            "cells": [store.relative(one) for one in spec.per_seed()],
            "spec": spec.to_dict(),
        }
        if len(spec.seeds) > 1:
            row["seeds"] = list(spec.seeds)
        if spec.teleport is not None:
            row.update(teleport=spec.teleport, teleport_time=cells[0]["teleport_time"])
        rows.append(row)
        log.info("%s", {k: v for k, v in row.items() if k not in ("cells", "spec")})
    if bar is not None:
        bar.close()
    summary = {"rows": rows, "features": ref.feature_name, "model": run.identity}
    summary.update(_common(specs))
    summary["bootstrap_resamples"] = n_boot
    if bpd_n > 0:
        summary.update(test_bits_per_dim(cfg, sde, model, bpd_n, device, specs[0].seeds[0]))
    write_summary(run_dir, name, summary)
    return summary


def _common(specs: list[SamplingSpec]) -> dict:
    """The fields every spec shares (the table's caption): samples per row, seed(s), clamp,
    grid and teleport; ``None`` where the specs differ."""

    def shared(values):
        values = list(values)
        return values[0] if all(v == values[0] for v in values) else None

    seeds = shared(list(s.seeds) for s in specs)
    return {
        "samples_per_cell": shared(s.n * len(s.seeds) for s in specs),
        "seed": None if seeds is None else seeds[0] if len(seeds) == 1 else seeds,
        "clip_x0": shared(s.clip_x0 for s in specs),
        "grid": shared(s.grid if not isinstance(s.grid, tuple) else "explicit" for s in specs),
        "teleport": shared(s.teleport for s in specs),
    }


def test_bits_per_dim(cfg, sde, model, n: int, device, seed: int) -> dict:
    """Bits/dim of the first ``n`` test images (probability-flow ODE, Hutchinson trace)."""
    from ..likelihood import bits_per_dim

    t0 = time.perf_counter()
    images = load_dataset(cfg, train=False).images[:n].to(device)
    gen = torch.Generator(device).manual_seed(seed)
    bpd, nfe = bits_per_dim(sde, model, images, generator=gen)
    return {
        "test_bits_per_dim": round(float(bpd.mean()), 4),
        "test_bits_per_dim_se": round(float(bpd.std() / n**0.5), 4),
        "bpd_images": n,
        "bpd_nfe": nfe,
        "bpd_seconds": round(time.perf_counter() - t0, 1),
    }


def write_summary(run_dir, name: str, summary: dict) -> None:
    """``<run_dir>/<name>.json`` and a Markdown table ``<name>.md``."""
    rows = summary["rows"]
    keys = ["sampler", "steps", "nfe", "seconds", "fid", "fid_sd", "precision", "recall"]
    keys = [k for k in keys + ["log_spectrum_rmse"] if all(k in r for r in rows)]
    lines = [markdown_table(keys, [[r[k] for k in keys] for r in rows]).rstrip("\n")]
    if "test_bits_per_dim" in summary:
        lines.append(
            f"\ntest bits/dim ({summary['bpd_images']} images): "
            f"{summary['test_bits_per_dim']} ± {summary['test_bits_per_dim_se']}"
        )
    if summary["features"]:
        lines.append(
            f"\nfeatures: {summary['features']}; {summary['samples_per_cell']} samples per cell"
        )
    run_dir = Path(run_dir)
    write_text_safely(confined(run_dir, f"{name}.json"), json.dumps(summary, indent=2))
    write_text_safely(confined(run_dir, f"{name}.md"), "\n".join(lines) + "\n")
