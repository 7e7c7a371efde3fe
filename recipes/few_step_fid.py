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
  :func:`sdekit.sampling.optimize_grid` to the model's own trajectories (no data), cached in
  ``<run>/few_step_grids.json`` with its cost in model calls and seconds;
- ``dpm_solver_2m-teleport`` / ``ipndm3-teleport``: the same (iPNDM-3 without afs, which
  holds only at the prior) after a Gaussian teleport to SNR 1 (the training set's
  Gaussian, not the network, above it; docs/samplers.md);
- ``ancestral``, ``ddim``: DDPM ancestral and DDIM on their own grids, for reference.

Every cell draws ``--n`` samples from ``--seed`` with the x̂₀ clamp of docs/results.md; the
deterministic samplers start from the same prior draws, so ``dist`` — the RMS pixel distance
of each sample to the ``ode-100`` sample of the same draw — measures the solve with no
classifier (:mod:`sdekit.experiments.few_step`). Cells are stored in each run's cell store (a
rerun only scores); the CSV merges new rows by (model, config, nfe).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sdekit.errors import InputError
from sdekit.experiments.few_step import FEW_STEP_CONFIGS, few_step_study, few_step_table

DEFAULT_CONFIGS = "ode-100,dpm_solver_2m,ipndm3-afs,dpm_solver_2m-calibrated"


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="model=run_dir pairs (or a run folder alone)")
    p.add_argument("--nfe", default="5,10,20", help="comma-separated budgets")
    p.add_argument("--configs", default=DEFAULT_CONFIGS,
                   help=f"from {', '.join(FEW_STEP_CONFIGS)}")  # fmt: skip
    p.add_argument("--n", type=int, default=500, help="samples per cell")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-evaluations", type=int, default=150,
                   help="optimize_grid's search budget (objective evaluations)")
    p.add_argument("--out", type=Path, help="CSV to merge the rows into")
    args = p.parse_args(argv)
    runs = []
    for pair in args.runs:
        model, _, run_dir = pair.rpartition("=")
        runs.append((model or Path(run_dir).name, run_dir))
    try:
        budgets = [int(v) for v in args.nfe.split(",")]
    except ValueError:
        p.error(f"--nfe: comma-separated positive integers, got {args.nfe!r}")
    try:
        rows = few_step_study(runs, args.configs.split(","), budgets, n=args.n, seed=args.seed,
                              max_evaluations=args.max_evaluations, out=args.out)  # fmt: skip
    except InputError as err:
        p.error(str(err))
    print(few_step_table(rows))
    return rows


if __name__ == "__main__":
    main()
