"""Few-step sampling of trained runs against the model's own converged ODE solve.

A *configuration* is a sampler with its options, on its own grid or on a grid calibrated to
the trained model (:func:`calibrated_grid`), started from the prior or — the ``-teleport``
configurations — after a Gaussian teleport to SNR :data:`TELEPORT_SNR` (the closed-form flow
of the training set's Gaussian replaces the network above it: help from the data that the
other configurations do not get). :func:`few_step_study` evaluates every
configuration × budget (model calls, NFE) of each run through the cell store of
:func:`~sdekit.experiments.evaluate_run` — classifier FID ± bootstrap sd, precision, recall —
and measures, with no classifier, how far each deterministic configuration's samples are from
the reference ``ode-100`` (``dpm_solver_2m`` at 100 calls) started from the same prior draws:

    dist = ‖x_config − x_ode-100‖₂ / √d   per sample (model units, [−1, 1]), mean ± sd.

Calibration fits the grid by :func:`sdekit.sampling.optimize_grid` to the model's own
trajectories — ``fit["n"]`` prior draws, their ``fit["reference_steps"]``-step third-order
solve as the target, no data, as DMN / GITS / LD3 calibrate — and caches it in
``<run>/few_step_grids.json`` keyed by the weights' identity, the sampler, its options, the
budget and the search settings, with its cost in model calls (per sample, summed over the
draws) and seconds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from ..errors import InputError
from ..files import write_text_safely
from ..sampling import SamplingSpec, optimize_grid
from ..training.images import IMAGE_RANGE, from_uint8
from .evaluation import evaluate_run
from .reports import format_fid, markdown_table, merge_csv, row_images
from .runs import open_run
from .sampling import run_context

__all__ = [
    "REFERENCE",
    "TELEPORT_SNR",
    "FewStepConfig",
    "FEW_STEP_CONFIGS",
    "FEW_STEP_FIELDS",
    "calibrated_grid",
    "few_step_rows",
    "few_step_study",
    "few_step_table",
]

REFERENCE = "ode-100"
#: the hand-over SNR of the ``-teleport`` configurations (docs/results.md's ``--teleport-snr 1``)
TELEPORT_SNR = 1.0


class FewStepConfig(NamedTuple):
    """A sampler with its options, on a grid calibrated to the model or on its own, started
    after a :class:`~sdekit.sampling.GaussianTeleport` to SNR ``teleport`` or from the prior."""

    sampler: str
    options: Mapping = {}
    calibrated: bool = False
    teleport: float | None = None


_IPNDM3_AFS = {"order": 3, "afs": True}
#: configuration name → :class:`FewStepConfig`
FEW_STEP_CONFIGS = {
    REFERENCE: FewStepConfig("dpm_solver_2m"),
    "dpm_solver_2m": FewStepConfig("dpm_solver_2m"),
    "ipndm3-afs": FewStepConfig("ipndm", _IPNDM3_AFS),
    "dpm_solver_2m-calibrated": FewStepConfig("dpm_solver_2m", calibrated=True),
    "ipndm3-afs-calibrated": FewStepConfig("ipndm", _IPNDM3_AFS, calibrated=True),
    "dpm_solver_2m-teleport": FewStepConfig("dpm_solver_2m", teleport=TELEPORT_SNR),
    # no afs after a teleport: the analytic first step holds only at the prior
    "ipndm3-teleport": FewStepConfig("ipndm", {"order": 3}, teleport=TELEPORT_SNR),
    "ancestral": FewStepConfig("ancestral"),
    "ddim": FewStepConfig("ddim"),
}
FEW_STEP_FIELDS = ["model", "config", "nfe", "fid", "fid_sd", "dist", "dist_sd", "precision",
                   "recall", "calibration_calls", "calibration_seconds", "seconds", "n", "seed",
                   "run"]  # fmt: skip
REFERENCE_NFE = 100


def calibrated_grid(run_dir, run, sampler: str, options: Mapping, nfe: int, fit: Mapping) -> dict:
    """The grid of ``sampler`` at ``nfe`` calls fitted to the run's weights, from the cache
    ``<run>/few_step_grids.json`` or fitted now and cached: ``grid``, ``calls``, ``seconds``,
    ``start_error``, ``error`` (module docstring)."""
    path = Path(run_dir) / "few_step_grids.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    key = json.dumps({"model": run.identity, "sampler": sampler, "options": dict(options),
                      "nfe": nfe, "clip_x0": IMAGE_RANGE, **fit}, sort_keys=True)  # fmt: skip
    if key not in cache:
        context = run_context(run.cfg, run.sde, run.model)
        gen = torch.Generator().manual_seed(fit["seed"])
        t0 = time.perf_counter()
        info = optimize_grid(
            run.sde, run.model, sampler=sampler, steps=nfe, n=fit["n"], generator=gen,
            max_evaluations=fit["max_evaluations"], reference_steps=fit["reference_steps"],
            clip_x0=IMAGE_RANGE, return_info=True, dtype=context.dtype, **options,
        )  # fmt: skip
        cache[key] = {
            "grid": [float(v) for v in info.grid],
            "calls": int(info.reference_nfe + info.search_nfe),
            "seconds": round(time.perf_counter() - t0, 1),
            "start_error": info.start_error, "error": info.error,
        }  # fmt: skip
        write_text_safely(path, json.dumps(cache, indent=1))
    return cache[key]


def _spec(config: str, nfe: int, n: int, seed: int, grid=None) -> SamplingSpec:
    c = FEW_STEP_CONFIGS[config]
    return SamplingSpec(sampler=c.sampler, steps=REFERENCE_NFE if config == REFERENCE else nfe,
                        n=n, seed=seed, clip_x0=IMAGE_RANGE, options=dict(c.options),
                        teleport=c.teleport,
                        grid=None if grid is None else tuple(grid))  # fmt: skip


def _distance(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Per-sample RMS distance of two uint8 image batches in model units: mean, sd."""
    d = (from_uint8(a) - from_uint8(b)).flatten(1).square().mean(1).sqrt()
    return round(float(d.mean()), 4), round(float(d.std()), 4)


def few_step_rows(model: str, run_dir, configs: Sequence[str], budgets: Sequence[int], n: int,
                  seed: int, fit: Mapping) -> list[dict]:  # fmt: skip
    """Every configuration × budget of one run (the reference once, at 100 calls), scored,
    with ``dist`` to the reference where it is among ``configs``."""
    run = open_run(run_dir)
    cells, extra = [], []
    for config in configs:
        for nfe in [REFERENCE_NFE] if config == REFERENCE else budgets:
            c = FEW_STEP_CONFIGS[config]
            info = {}
            if c.calibrated:
                info = calibrated_grid(run_dir, run, c.sampler, c.options, nfe, fit)
            cells.append((config, _spec(config, nfe, n, seed, info.get("grid"))))
            extra.append({"calibration_calls": info.get("calls"),
                          "calibration_seconds": info.get("seconds")})  # fmt: skip
    summary = evaluate_run(run_dir, [s for _, s in cells], name="few_step", progress=False)
    ref = None
    if REFERENCE in configs:
        ref = row_images(run_dir, summary["rows"][[c for c, _ in cells].index(REFERENCE)])
    rows = []
    for (config, spec), more, r in zip(cells, extra, summary["rows"], strict=True):
        scores = {k: r.get(k) for k in ("fid", "fid_sd", "precision", "recall", "seconds")}
        row = {"model": model, "config": config, "nfe": r["nfe"], "run": str(run_dir),
               "n": spec.n, "seed": seed, **more, **scores}  # fmt: skip
        if ref is not None and FEW_STEP_CONFIGS[config].sampler != "ancestral":
            row["dist"], row["dist_sd"] = _distance(row_images(run_dir, r), ref)
        rows.append(row)
    return rows


def few_step_study(runs: Sequence[tuple[str, str]], configs: Sequence[str],
                   budgets: Sequence[int], n: int = 500, seed: int = 0,
                   max_evaluations: int = 150, out=None) -> list[dict]:  # fmt: skip
    """:func:`few_step_rows` of each (model, run_dir) pair, merged after each run into the
    CSV ``out`` by (model, config, nfe). The calibration fits on 8 prior draws of seed
    ``seed + 1`` against their 400-step solve with ``max_evaluations`` objective
    evaluations."""
    unknown = sorted(set(configs) - set(FEW_STEP_CONFIGS))
    if unknown:
        raise InputError(f"configs: unknown {unknown}; choose from {list(FEW_STEP_CONFIGS)}")
    if not budgets or any(int(b) < 1 for b in budgets):
        raise InputError(f"budgets (--nfe) must be positive model-call counts, got {list(budgets)}")
    fit = {"n": 8, "seed": seed + 1, "max_evaluations": max_evaluations,
           "reference_steps": 400}  # fmt: skip
    order = lambda r: (r["model"], list(FEW_STEP_CONFIGS).index(r["config"]), int(r["nfe"]))  # noqa: E731
    rows = []
    for model, run_dir in runs:
        rows += few_step_rows(model, run_dir, configs, [int(b) for b in budgets], n, seed, fit)
        if out:
            merge_csv(out, rows, FEW_STEP_FIELDS, ("model", "config", "nfe"), order)
    return rows


def few_step_table(rows: Sequence[Mapping]) -> str:
    """The rows as a Markdown table: FID ± sd, the distance to ode-100, calibration calls."""
    table = [[r["model"], r["config"], r["nfe"], format_fid(r) if r.get("fid") else "–",
              "–" if r.get("dist") is None else f"{r['dist']:.3f} ± {r['dist_sd']:.3f}",
              r.get("calibration_calls") or "–"] for r in rows]  # fmt: skip
    return markdown_table(["model", "config", "NFE", "FID ± sd", "dist to ode-100",
                           "calibration calls"], table)  # fmt: skip
