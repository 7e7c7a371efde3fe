"""Few-step samplers on a trained Fashion-MNIST run: classifier FID (± bootstrap sd) of
DDPM ancestral, DDIM, DPM-Solver-2M and DPM-Solver-2M on a grid from ``optimize_grid``.

    python recipes/few_step_fid.py runs/fashion_mnist-gff-smoke --nfe 10,20 --n 500

The grid is fitted once per budget on 8 prior draws of the run's EMA model (no data); its
model calls are reported. Every cell draws ``n`` samples from the same seed.
"""

from __future__ import annotations

import argparse
import time

import torch

import sdekit
from sdekit.experiments import load_dataset, load_trained
from sdekit.metrics import FeatureStats, frechet_distance_bootstrap
from sdekit.metrics.features import load_fashion_classifier
from sdekit.training.images import from_uint8, to_uint8


def fid(clf, ref_stats, x, seed: int) -> tuple[float, float]:
    with torch.no_grad():
        feats = clf.features(from_uint8(to_uint8(x))).double()
    stats = FeatureStats(feats.shape[1])
    stats.update(feats)
    g = torch.Generator().manual_seed(seed)
    boot = frechet_distance_bootstrap(feats, ref_stats, n_boot=200, generator=g)
    return stats.frechet_distance(ref_stats), float(boot.std())


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--nfe", default="10,20", help="comma-separated budgets")
    p.add_argument("--n", type=int, default=500, help="samples per cell")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-evaluations", type=int, default=600, help="optimize_grid's search budget")
    args = p.parse_args(argv)
    cfg, sde, model = load_trained(args.run_dir)
    clf, _ = load_fashion_classifier()
    test = load_dataset({**cfg, "resolution": 28}, train=False)
    ref = FeatureStats(128)
    with torch.no_grad():
        ref.update(clf.features(test.batch(torch.arange(len(test)))).double())
    rows = []
    for nfe in (int(v) for v in args.nfe.split(",")):
        t0 = time.perf_counter()
        fitted = sdekit.optimize_grid(
            sde,
            model,
            sampler="dpm_solver_2m",
            steps=nfe,
            n=8,
            generator=torch.Generator().manual_seed(args.seed + 1),
            max_evaluations=args.max_evaluations,
            return_info=True,
        )
        fit_s = time.perf_counter() - t0
        cells = {
            "ancestral": dict(sampler="ancestral"),
            "ddim": dict(sampler="ddim"),
            "dpm_solver_2m": dict(sampler="dpm_solver_2m"),
            "dpm_solver_2m + optimize_grid": dict(sampler="dpm_solver_2m", grid=fitted.grid),
        }
        for label, kw in cells.items():
            g = torch.Generator().manual_seed(args.seed)
            with torch.no_grad():
                x, info = sdekit.sample(
                    sde, model, n=args.n, steps=nfe, generator=g, clip_x0=1.0,
                    return_info=True, **kw,
                )  # fmt: skip
            value, sd = fid(clf, ref, x, args.seed)
            row = {"config": label, "nfe": info.nfe, "fid": round(value, 1), "fid_sd": round(sd, 1)}
            if "grid" in kw:
                row["fit"] = (
                    f"{fitted.search_nfe + fitted.reference_nfe} model calls "
                    f"({fitted.evaluations} evaluations on 8 draws), {fit_s:.0f} s"
                )
            rows.append(row)
            print(row, flush=True)
    print("\n| config | NFE | FID ± sd | grid fit |\n| --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['config']} | {r['nfe']} | {r['fid']} ± {r['fid_sd']} | {r.get('fit', '')} |")
    return rows


if __name__ == "__main__":
    main()
