"""Few-step sampling of trained Fashion-MNIST runs: classifier FID (± bootstrap sd) per model,
configuration and budget, against the model's own 100-step ODE solution.

    python recipes/few_step_fid.py isotropic=runs/study/iso-s0 gff=runs/study/gff-s0 \\
        --nfe 5,10,20 --n 500 --out docs/results/few_step.csv

Configurations (``--configs``; deterministic unless named otherwise):

- ``ode-100``: the reference, ``dpm_solver_2m`` at 100 model calls;
- ``dpm_solver_2m``: sdekit's default sampler on its own grid;
- ``ipndm3-afs``: iPNDM of order 3 with the analytic first step (the best fixed
  configuration at 5 and 10 NFE on exact scores, docs/samplers.md);
- ``dpm_solver_2m-calibrated`` / ``ipndm3-afs-calibrated``: the same on a grid fitted by
  :func:`sdekit.sampling.optimize_grid` to the model's own trajectories — 8 prior draws, their
  400-step third-order solve as the target, no data (as DMN / GITS / LD3 calibrate); the fit
  is cached in ``<run>/few_step_grids.json`` keyed by the weights' identity, the sampler,
  the budget and the search settings, with its cost in model calls (per sample summed over the
  draws) and seconds;
- ``ancestral``, ``ddim``: DDPM ancestral and DDIM on their own grids, for reference.

Every cell draws ``--n`` samples from ``--seed`` with the x̂₀ clamp of docs/results.md; the
deterministic samplers start from the same prior draws, so ``dist`` — the root-mean-square
pixel distance (model units, [−1, 1]) of each sample to the ``ode-100`` sample from the same
draw, mean ± sd over samples — says how far a configuration's ODE solve is from the model's
converged one, with no classifier. Cells are stored in each run's cell store (a rerun only
scores); the CSV merges new rows by (model, config, nfe).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch

from sdekit.experiments import evaluate_run
from sdekit.experiments.reports import format_fid, markdown_table, row_images
from sdekit.experiments.runs import open_run
from sdekit.experiments.sampling import run_context
from sdekit.files import write_text_safely
from sdekit.sampling import SamplingSpec, optimize_grid
from sdekit.training.images import IMAGE_RANGE, from_uint8

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "ode-100"
#: configuration → (sampler, sampler options, calibrated)
CONFIGS = {
    REFERENCE: ("dpm_solver_2m", {}, False),
    "dpm_solver_2m": ("dpm_solver_2m", {}, False),
    "ipndm3-afs": ("ipndm", {"order": 3, "afs": True}, False),
    "dpm_solver_2m-calibrated": ("dpm_solver_2m", {}, True),
    "ipndm3-afs-calibrated": ("ipndm", {"order": 3, "afs": True}, True),
    "ancestral": ("ancestral", {}, False),
    "ddim": ("ddim", {}, False),
}
DEFAULT_CONFIGS = "ode-100,dpm_solver_2m,ipndm3-afs,dpm_solver_2m-calibrated"
FIELDS = ["model", "config", "nfe", "fid", "fid_sd", "dist", "dist_sd", "precision", "recall",
          "calibration_calls", "calibration_seconds", "seconds", "n", "seed", "run"]  # fmt: skip


def calibrated_grid(run_dir, run, sampler: str, options: dict, nfe: int, fit: dict) -> dict:
    """The fitted grid of ``sampler`` at ``nfe`` calls for the run's weights, from the cache
    ``<run>/few_step_grids.json`` or fitted now (and cached), with its cost."""
    path = Path(run_dir) / "few_step_grids.json"
    cache = json.loads(path.read_text()) if path.is_file() else {}
    key = json.dumps({"model": run.identity, "sampler": sampler, "options": options,
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


def spec_of(config: str, nfe: int, n: int, seed: int, grid=None) -> SamplingSpec:
    sampler, options, _ = CONFIGS[config]
    steps = 100 if config == REFERENCE else nfe
    return SamplingSpec(sampler=sampler, steps=steps, n=n, seed=seed, clip_x0=IMAGE_RANGE,
                        options=options, grid=None if grid is None else tuple(grid))  # fmt: skip


def distance(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Per-sample RMS distance of two uint8 image batches in model units: mean, sd."""
    d = (from_uint8(a) - from_uint8(b)).flatten(1).square().mean(1).sqrt()
    return round(float(d.mean()), 4), round(float(d.std()), 4)


def study_run(model: str, run_dir, configs, budgets, n: int, seed: int, fit: dict) -> list[dict]:
    """Every configuration × budget of one run (the reference once), scored and measured."""
    run = open_run(run_dir)
    cells, extra = [], []
    for config in configs:
        for nfe in [100] if config == REFERENCE else budgets:
            sampler, options, calibrated = CONFIGS[config]
            info = calibrated_grid(run_dir, run, sampler, options, nfe, fit) if calibrated else {}
            cells.append((config, spec_of(config, nfe, n, seed, info.get("grid"))))
            extra.append({"calibration_calls": info.get("calls"),
                          "calibration_seconds": info.get("seconds")})  # fmt: skip
    summary = evaluate_run(run_dir, [s for _, s in cells], name="few_step", progress=False)
    rows = []
    ref = None
    if REFERENCE in configs:
        ref = row_images(run_dir, summary["rows"][[c for c, _ in cells].index(REFERENCE)])
    for (config, spec), more, r in zip(cells, extra, summary["rows"], strict=True):
        scores = {k: r.get(k) for k in ("fid", "fid_sd", "precision", "recall", "seconds")}
        row = {"model": model, "config": config, "nfe": r["nfe"], "run": str(run_dir),
               "n": spec.n, "seed": seed, **more, **scores}  # fmt: skip
        if ref is not None and CONFIGS[config][0] != "ancestral":
            row["dist"], row["dist_sd"] = distance(row_images(run_dir, r), ref)
        rows.append(row)
    return rows


def merge_csv(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` into the CSV at ``path``, replacing rows of the same (model, config, nfe)."""
    key = lambda r: (r["model"], r["config"], str(r["nfe"]))  # noqa: E731
    old = list(csv.DictReader(path.open())) if path.is_file() else []
    new = {key(r): r for r in rows}
    merged = [r for r in old if key(r) not in new] + rows
    merged.sort(key=lambda r: (r["model"], list(CONFIGS).index(r["config"]), int(r["nfe"])))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(merged)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="model=run_dir pairs (or a run folder alone)")
    p.add_argument("--nfe", default="5,10,20", help="comma-separated budgets")
    p.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"from {', '.join(CONFIGS)}")
    p.add_argument("--n", type=int, default=500, help="samples per cell")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-evaluations", type=int, default=150,
                   help="optimize_grid's search budget (objective evaluations)")
    p.add_argument("--out", type=Path, help="CSV to merge the rows into")
    args = p.parse_args(argv)
    configs = args.configs.split(",")
    unknown = sorted(set(configs) - set(CONFIGS))
    if unknown:
        p.error(f"unknown configs {unknown}; choose from {list(CONFIGS)}")
    budgets = [int(v) for v in args.nfe.split(",")]
    fit = {"n": 8, "seed": args.seed + 1, "max_evaluations": args.max_evaluations,
           "reference_steps": 400}  # fmt: skip
    rows = []
    for pair in args.runs:
        model, _, run_dir = pair.rpartition("=")
        rows += study_run(model or Path(run_dir).name, run_dir, configs, budgets, args.n,
                          args.seed, fit)  # fmt: skip
        if args.out:
            merge_csv(args.out, rows)
    table = [[r["model"], r["config"], r["nfe"], format_fid(r) if r.get("fid") else "–",
              "–" if r.get("dist") is None else f"{r['dist']:.3f} ± {r['dist_sd']:.3f}",
              r["calibration_calls"] or "–"] for r in rows]  # fmt: skip
    print(markdown_table(["model", "config", "NFE", "FID ± sd", "dist to ode-100",
                          "calibration calls"], table))  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
