"""Few-step samplers on a trained Fashion-MNIST run: classifier FID (± bootstrap sd) of
DDPM ancestral, DDIM, DPM-Solver-2M and DPM-Solver-2M on a grid from ``optimize_grid``.

    python recipes/few_step_fid.py runs/fashion_mnist-gff-smoke --nfe 10,20 --n 500

The grid is fitted once per budget on 8 prior draws of the run's EMA model (no data; the
``"optimized"`` grid rule of :class:`sdekit.sampling.SamplingSpec`). Every cell draws ``n``
samples from the same seed and is stored in the run's cell store, so a second call only
scores; the table goes to ``<run>/few_step.json`` and ``.md``.
"""

from __future__ import annotations

import argparse

from sdekit.experiments import evaluate_run
from sdekit.experiments.reports import format_fid, markdown_table
from sdekit.sampling import SamplingSpec
from sdekit.training.images import IMAGE_RANGE

CELLS = {
    "ancestral": {"sampler": "ancestral"},
    "ddim": {"sampler": "ddim"},
    "dpm_solver_2m": {"sampler": "dpm_solver_2m"},
    "dpm_solver_2m + optimize_grid": {"sampler": "dpm_solver_2m", "grid": "optimized"},
}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--nfe", default="10,20", help="comma-separated budgets")
    p.add_argument("--n", type=int, default=500, help="samples per cell")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-evaluations", type=int, default=600, help="optimize_grid's search budget")
    args = p.parse_args(argv)
    fit = {"n": 8, "seed": args.seed + 1, "max_evaluations": args.max_evaluations}
    labels, specs = [], []
    for nfe in (int(v) for v in args.nfe.split(",")):
        for label, cell in CELLS.items():
            options = fit if cell.get("grid") == "optimized" else {}
            specs.append(
                SamplingSpec(**cell, steps=nfe, n=args.n, seed=args.seed, clip_x0=IMAGE_RANGE,
                             grid_options=options)  # fmt: skip
            )
            labels.append(label)
    summary = evaluate_run(args.run_dir, specs, name="few_step", progress=True)
    rows = [{"config": label, **row} for label, row in zip(labels, summary["rows"], strict=True)]
    table = [[r["config"], r["nfe"], format_fid(r) if "fid" in r else "–"] for r in rows]
    print(markdown_table(["config", "NFE", "FID ± sd"], table))
    return rows


if __name__ == "__main__":
    main()
