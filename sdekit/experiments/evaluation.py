"""Evaluation of a trained run: sample quality per (sampler, steps) and test bits/dim.

Every (sampler, steps) cell draws ``n`` samples of the EMA model from a seeded generator,
stores them as 8-bit images in ``run_dir/evaluation/samples/`` (written atomically, so an
interrupted evaluation resumes at the first missing cell and a finished one can be
re-scored without sampling again), and scores the 8-bit images, as saved, against up to
10 000 test images:

- FID in the dataset's feature space, with the bootstrap standard deviation over the
  generated samples (:func:`sdekit.metrics.frechet_distance_bootstrap`);
- improved precision / recall (k = 3) against ``max(n, 1000)`` test images;
- the RMSE of log radial power spectra.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .._progress import progress_bar
from ..errors import InputError
from ..metrics import (
    FeatureStats,
    frechet_distance_bootstrap,
    log_spectrum_distance,
    precision_recall,
)
from ..training import atomic_save, load_checkpoint
from ..training.images import from_uint8, to_uint8
from .config import load_dataset, sampling_times, schedule_name
from .runs import draw_samples, fit_teleport, load_trained

log = logging.getLogger(__name__)

__all__ = ["EvalCell", "evaluate_run", "feature_extractor", "cell_path"]


def feature_extractor(cfg: dict, device="cpu"):
    """The dataset's feature extractor (Fashion-MNIST classifier or Inception-v3) and its
    description, or ``(None, None)`` with the reason logged when it is unavailable."""
    from ..metrics.features import (
        FeatureExtractorUnavailable,
        InceptionFeatures,
        load_fashion_classifier,
    )

    try:
        if cfg["dataset"] == "cifar10":
            return InceptionFeatures(device=device), "inception-v3"
        model, record = load_fashion_classifier(device=device)
        return (lambda x: model.features(x.to(device)).double().cpu()), (
            f"fashion-classifier (test accuracy {record['test_accuracy']:.4f})"
        )
    except FeatureExtractorUnavailable as err:
        log.warning("no FID / precision / recall: %s", err)
        return None, None


@torch.no_grad()
def _features(extract, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    return torch.cat([extract(chunk) for chunk in x.split(batch)])


@dataclass(frozen=True)
class EvalCell:
    """One evaluation cell: ``n`` samples of ``sampler`` with ``steps`` steps from the
    sampling ``seed``, with the x̂₀ clamp ``clip_x0`` (``None``: off), on the sampler's
    ``"own"`` grid or the ``"reference"`` grid (:func:`sampling_times`), from T or, with
    ``teleport`` = a max SNR, after a :class:`~sdekit.sampling.GaussianTeleport` fitted to
    the training set with that hand-over SNR."""

    sampler: str
    steps: int
    n: int
    seed: int
    clip_x0: float | None
    grid: str = "own"
    teleport: float | None = None

    @property
    def file_name(self) -> str:
        clip = "noclip" if self.clip_x0 is None else f"clip{self.clip_x0:g}"
        sampler = self.sampler.replace(":", "-")
        grid = "" if self.grid == "own" else f"_{self.grid}grid"
        jump = "" if self.teleport is None else f"_teleport{self.teleport:g}"
        return f"{sampler}_{self.steps}steps_n{self.n}_seed{self.seed}_{clip}{grid}{jump}.pt"


def cell_path(
    run_dir,
    sampler: str,
    steps: int,
    n: int,
    seed: int,
    clip_x0,
    grid: str = "own",
    teleport: float | None = None,
) -> Path:
    """Where the 8-bit samples of one evaluation cell are stored."""
    cell = EvalCell(sampler, steps, n, seed, clip_x0, grid, teleport)
    return Path(run_dir) / "evaluation" / "samples" / cell.file_name


def _cell_samples(run_dir, cfg, sde, model, cell: EvalCell, device, teleports: dict) -> dict:
    """The stored cell if present, else draw, store atomically and return it.
    ``teleports`` caches one :class:`GaussianTeleport` per max SNR."""
    path = Path(run_dir) / "evaluation" / "samples" / cell.file_name
    if path.exists():
        return load_checkpoint(path)
    t0 = time.perf_counter()
    jump = None
    if cell.teleport is not None:
        if cell.teleport not in teleports:
            teleports[cell.teleport] = fit_teleport(cfg, sde, cell.teleport)
        jump = teleports[cell.teleport]
    start = None if jump is None else jump.time
    times = sampling_times(cfg, sde, cell.sampler, cell.steps, cell.grid, start)
    x, info = draw_samples(
        sde,
        model,
        cell.n,
        cell.sampler,
        cell.steps,
        cell.seed,
        device,
        cell.clip_x0,
        grid=times,
        teleport=jump,
    )
    stored = {
        "images": to_uint8(x.cpu()),
        "nfe": info.nfe,
        "seconds": round(time.perf_counter() - t0, 2),
        "sampler": cell.sampler,
        "steps": cell.steps,
        "seed": cell.seed,
        "clip_x0": cell.clip_x0,
        "grid": cell.grid,
        "teleport": cell.teleport,
        "teleport_time": start,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(stored, path)
    return stored


def _seeds(seed) -> tuple[int, ...]:
    """``seed`` as a non-empty tuple of distinct integers >= 0."""
    seeds = (seed,) if isinstance(seed, int) else tuple(seed)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds):
        raise InputError(f"seed must be an integer >= 0 or a list of them, got {seed!r}")
    if len(set(seeds)) != len(seeds):
        raise InputError(f"seed: the sampling seeds must be distinct, got {list(seeds)}")
    return seeds


def evaluate_run(
    run_dir,
    samplers=("ancestral", "ddim", "dpmpp_2m"),
    steps_list=(1000, 100, 50, 20, 10),
    n: int = 256,
    device="cpu",
    seed: int | Sequence[int] = 0,
    clip_x0: float | None = 1.0,
    bpd_n: int = 0,
    name: str = "evaluation",
    n_boot: int = 200,
    progress: bool = True,
    grid: str = "auto",
    teleport: float | None = None,
):
    """Score every (sampler, steps) cell and, when ``bpd_n > 0``, the test-set bits/dim of
    the first ``bpd_n`` test images (probability-flow ODE, Hutchinson trace).

    Writes ``run_dir/<name>.json`` (rows with sampler, steps, NFE, sampling seconds, FID,
    ``fid_sd`` (bootstrap standard deviation, ``n_boot`` resamples), precision, recall,
    log-spectrum RMSE) and ``run_dir/<name>.md``; returns the JSON summary. ``grid``:
    ``"auto"`` (DDPM's noise levels for an aligned schedule, else the sampler's own grid),
    ``"own"`` or ``"reference"`` (:func:`~sdekit.experiments.config.sampling_times`).
    ``teleport``: a max SNR: every cell starts with a
    :class:`~sdekit.sampling.GaussianTeleport` of the training set's mean and covariance,
    handing over to the model where the largest whitened mode reaches that SNR.
    ``seed``: the sampling seed, or several distinct seeds: each (sampler, steps) is then
    scored on the union of its ``n``-sample cells, one per seed (stored cells are reused;
    rows carry ``seeds``), for a larger sample from cells already drawn.
    """
    from ..likelihood import bits_per_dim

    if n < 2:
        raise InputError(f"n (samples per cell) must be >= 2, got {n}")
    seeds = _seeds(seed)
    cfg, sde, model = load_trained(run_dir, device)
    test = load_dataset(cfg, train=False)
    ref = test.batch(torch.arange(min(len(test), 10_000)))
    extract, feature_name = feature_extractor(cfg, device)
    ref_feats = ref_stats = None
    if extract is not None:
        ref_feats = _features(extract, ref)
        ref_stats = FeatureStats(ref_feats.shape[1])
        ref_stats.update(ref_feats)
    rows = []
    if grid == "auto":
        grid = "reference" if schedule_name(cfg) == "aligned" else "own"
    if teleport is not None and not float(teleport) > 0:
        raise InputError(f"teleport (a max SNR) must be > 0, got {teleport}")  # before any work
    jump = None if teleport is None else float(teleport)
    groups = [
        [EvalCell(s, k, n, sd, clip_x0, grid, jump) for sd in seeds]
        for s in samplers
        for k in steps_list
    ]
    teleports: dict = {}
    bar = progress_bar(progress, total=len(groups) * len(seeds), desc="evaluate")
    for group in groups:
        stored = []
        for cell in group:
            stored.append(_cell_samples(run_dir, cfg, sde, model, cell, device, teleports))
            if bar is not None:
                bar.update(1)
        cell, first = group[0], stored[0]
        x = from_uint8(torch.cat([s["images"] for s in stored]))
        row = {
            "sampler": cell.sampler,
            "steps": cell.steps,
            "nfe": first["nfe"],
            "seconds": round(sum(s["seconds"] for s in stored), 2),
            "log_spectrum_rmse": round(log_spectrum_distance(x, ref[:2000]), 4),
        }
        if len(seeds) > 1:
            row["seeds"] = list(seeds)
        if cell.teleport is not None:
            row.update(teleport=cell.teleport, teleport_time=first.get("teleport_time"))
        if extract is not None:
            feats = _features(extract, x)
            stats = FeatureStats(feats.shape[1])
            stats.update(feats)
            g = torch.Generator().manual_seed(seeds[0])
            boot = frechet_distance_bootstrap(feats, ref_stats, n_boot=n_boot, generator=g)
            prec, rec = precision_recall(ref_feats[: max(len(x), 1000)], feats, k=3)
            row.update(
                fid=round(stats.frechet_distance(ref_stats), 3),
                fid_sd=round(float(boot.std()), 3),
                precision=round(prec, 3),
                recall=round(rec, 3),
            )
        rows.append(row)
        log.info("%s", row)
    if bar is not None:
        bar.close()
    summary = {
        "rows": rows,
        "features": feature_name,
        "samples_per_cell": n * len(seeds),
        "seed": seeds[0] if len(seeds) == 1 else list(seeds),
        "clip_x0": clip_x0,
        "grid": grid,
        "teleport": teleport,
        "bootstrap_resamples": n_boot,
    }
    if bpd_n > 0:
        t0 = time.perf_counter()
        images = test.images[:bpd_n].to(device)
        bpd, nfe = bits_per_dim(
            sde, model, images, generator=torch.Generator(device).manual_seed(seeds[0])
        )
        summary.update(
            test_bits_per_dim=round(float(bpd.mean()), 4),
            test_bits_per_dim_se=round(float(bpd.std() / bpd_n**0.5), 4),
            bpd_images=bpd_n,
            bpd_nfe=nfe,
            bpd_seconds=round(time.perf_counter() - t0, 1),
        )
    run_dir = Path(run_dir)
    (run_dir / f"{name}.json").write_text(json.dumps(summary, indent=2))
    (run_dir / f"{name}.md").write_text(_markdown(summary))
    return summary


def _markdown(summary: dict) -> str:
    rows = summary["rows"]
    keys = ["sampler", "steps", "nfe", "seconds", "fid", "fid_sd", "precision", "recall"]
    keys = [k for k in keys + ["log_spectrum_rmse"] if all(k in r for r in rows)]
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    if "test_bits_per_dim" in summary:
        lines.append(
            f"\ntest bits/dim ({summary['bpd_images']} images): "
            f"{summary['test_bits_per_dim']} ± {summary['test_bits_per_dim_se']}"
        )
    if summary["features"]:
        lines.append(
            f"\nfeatures: {summary['features']}; {summary['samples_per_cell']} samples per cell"
        )
    return "\n".join(lines) + "\n"
