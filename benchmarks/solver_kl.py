"""Exact population KL per dimension of deterministic sampler configurations at 5 / 10 / 20
model calls (no Monte Carlo floor), and of the model-calibrated grid (``optimize_grid``).

    python benchmarks/solver_kl.py      # table to stdout; docs/results/solver_kl.csv and
                                        # docs/figures/solver_kl.png
    python benchmarks/solver_kl.py --only ipndm,deis,afs   # just the configurations whose
                                        # label contains one of these; their rows replace
                                        # (or join) those in the CSV, the figure is redrawn

Two KLs per configuration: ``kl`` to the data law N(μ, C) — what a user gets, including the
start at N(0, σ_T² Σ) and the stop at eps, so even an exact solve scores ≈ 1.2e-7 — and
``kl_solver`` to the law the exact PF-ODE map delivers over the same span with the same final
step (``reference="exact_flow"``): the solver's own error, 0 for an exact solve. A fitted grid
can score *below* the exact solve on ``kl`` (its error cancels part of the start/stop gap),
never on ``kl_solver``. ``optimize_grid`` is reported fitted per problem and, as
"transfer", fitted on one spectrum and scored on the other two (geometric mean of the six
off-diagonal pairs).

Problem (``sdekit.testing.score_sampler``'s defaults): 1×16×16 Gaussian data with three
spectra — smooth (|k|^-3), rough (|k|^-1) and nearly white — under ``NIVPSDE`` (β 0.1 → 20)
with GFF noise; the exact model; each configuration is scored by the geometric mean of the
three KLs, one configuration for all problems. ``optimize_grid`` is fitted per problem (it
calibrates the steps to the model, from 8 prior draws, no data) and reported the same way.
The "official DPM-Solver configuration" is sdekit's ``dpm_solver_2m`` as the official code
runs it: noise prediction, multistep order 2, time-quadratic steps, no lower-order final
step at >= 10 steps, no final denoising step.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import torch

from sdekit import NIVPSDE, GFFCovariance, optimize_grid
from sdekit.testing import (
    DEFAULT_SPECTRA,
    data_spectrum,
    fourier_gaussian_problem,
    population_kl,
    score_sampler,
)

NFES = (5, 10, 20)
ROOT = Path(__file__).resolve().parents[1]

#: label → (sampler, grid, denoise, options)
CONFIGS = {
    "ddim [time]": ("ddim", "time", True, {}),
    "dpmpp_2m [logsnr] (diffusers defaults)": ("dpmpp_2m", "logsnr", True, {}),
    "dpmpp_2m [logsnr] no denoise": ("dpmpp_2m", "logsnr", False, {}),
    "dpmpp_3m [logsnr]": ("dpmpp_3m", "logsnr", True, {}),
    "unipc-3 [logsnr] (lower-order final)": ("unipc", "logsnr", False, {"order": 3}),
    "unipc-3 [logsnr] no lower-order final": (
        "unipc",
        "logsnr",
        False,
        {"order": 3, "lower_order_final": False},
    ),
    "unipc-3 noise [time_quadratic]": (
        "unipc",
        "time_quadratic",
        False,
        {"order": 3, "prediction": "noise", "lower_order_final": False},
    ),
    "dpm_solver_3m [time_quadratic]": ("dpm_solver_3m", "time_quadratic", False, {}),
    "dpm_solver_2m [time_quadratic] (= official DPM-Solver; sample() default)": (
        "dpm_solver_2m",
        "time_quadratic",
        False,
        {},
    ),
    "dpm_solver_2m [time_quadratic] + afs": (
        "dpm_solver_2m", "time_quadratic", False, {"afs": True}
    ),
    "ipndm-4 [time_quadratic]": ("ipndm", "time_quadratic", False, {}),
    "ipndm-4 [time_quadratic] + afs": ("ipndm", "time_quadratic", False, {"afs": True}),
    "ipndm-3 [time_quadratic]": ("ipndm", "time_quadratic", False, {"order": 3}),
    "ipndm-3 [time_quadratic] + afs": ("ipndm", "time_quadratic", False, {"order": 3, "afs": True}),
    "deis-tAB3 [time_quadratic]": ("deis", "time_quadratic", False, {}),
    "deis-tAB3 [time_quadratic] + afs": ("deis", "time_quadratic", False, {"afs": True}),
    "deis-log_rho-3 [time_quadratic] (diffusers' DEIS)": (
        "deis",
        "time_quadratic",
        False,
        {"variable": "log_rho"},
    ),
    "deis-log_rho-3 [time_quadratic] + afs": (
        "deis",
        "time_quadratic",
        False,
        {"variable": "log_rho", "afs": True},
    ),
}
OPTIMIZED = {"dpm_solver_2m + optimize_grid": ("dpm_solver_2m", False, {})}


def _geomean(values):
    return math.exp(sum(math.log(max(v, 1e-300)) for v in values) / len(values))


def _selected(label: str, only) -> bool:
    return only is None or any(word in label for word in only)


def run(only=None) -> list[dict]:
    rows = []
    for label, (sampler, grid, denoise, opts) in CONFIGS.items():
        if not _selected(label, only):
            continue
        for nfe in NFES:
            s = score_sampler(sampler, nfe, grid=grid, denoise=denoise, **opts)
            e = score_sampler(sampler, nfe, grid=grid, denoise=denoise, reference="exact_flow",
                              **opts)  # fmt: skip
            rows.append({"config": label, "nfe": s.nfe, "kl": s.kl, "kl_solver": e.kl,
                         **s.per_problem})  # fmt: skip
            print(f"{label:70s} {s.nfe:3d} {s.kl:.3g} {e.kl:.3g}", flush=True)
    sde = NIVPSDE(GFFCovariance((1, 16, 16), dtype=torch.float64))
    for label, (sampler, denoise, opts) in OPTIMIZED.items():
        if not _selected(label, only):
            continue
        for nfe in NFES:
            oracles = {
                name: fourier_gaussian_problem(sde, data_spectrum(sde.event_shape, *spec))
                for name, spec in DEFAULT_SPECTRA.items()
            }
            grids = {
                name: optimize_grid(
                    sde,
                    oracle,
                    sampler=sampler,
                    steps=nfe,
                    denoise=denoise,
                    n=8,
                    generator=torch.Generator().manual_seed(0),
                    dtype=torch.float64,
                    **opts,
                )
                for name, oracle in oracles.items()
            }

            def kl(oracle, t, reference="data", sampler=sampler, nfe=nfe, denoise=denoise,
                   opts=opts):  # fmt: skip
                return population_kl(oracle, sampler=sampler, steps=nfe, grid=t,
                                     denoise=denoise, reference=reference, **opts)  # fmt: skip

            per, solver, transfer, transfer_solver = {}, [], [], []
            for name, oracle in oracles.items():
                per[name], used = kl(oracle, grids[name])
                solver.append(kl(oracle, grids[name], "exact_flow")[0])
                for fitted_on, t in grids.items():
                    if fitted_on != name:
                        transfer.append(kl(oracle, t)[0])
                        transfer_solver.append(kl(oracle, t, "exact_flow")[0])
            rows.append({"config": label, "nfe": used, "kl": _geomean(per.values()),
                         "kl_solver": _geomean(solver), **per})  # fmt: skip
            rows.append({"config": f"{label} (transfer)", "nfe": used, "kl": _geomean(transfer),
                         "kl_solver": _geomean(transfer_solver)})  # fmt: skip
            for r in rows[-2:]:
                print(f"{r['config']:70s} {used:3d} {r['kl']:.3g} {r['kl_solver']:.3g}",
                      flush=True)  # fmt: skip
    return rows


def _merged(rows: list[dict], out: Path) -> list[dict]:
    """The CSV's rows with those of the configurations in ``rows`` replaced, in CONFIGS'
    order (configurations no longer listed are dropped)."""
    fresh = {r["config"] for r in rows}
    old = []
    if out.exists():
        with open(out, newline="") as f:
            old = [r for r in csv.DictReader(f) if r["config"] not in fresh]
        for r in old:
            r["nfe"], r["kl"] = int(r["nfe"]), float(r["kl"])
            r["kl_solver"] = float(r["kl_solver"]) if r.get("kl_solver") else ""
    labels = [*CONFIGS, *(f"{o}{t}" for o in OPTIMIZED for t in ("", " (transfer)"))]
    order = {label: i for i, label in enumerate(labels)}
    every = [r for r in old + rows if r["config"] in order]
    return sorted(every, key=lambda r: (order[r["config"]], r["nfe"]))


def write(rows: list[dict]) -> None:
    out = ROOT / "docs" / "results" / "solver_kl.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = _merged(rows, out)
    keys = ["config", "nfe", "kl", "kl_solver", *DEFAULT_SPECTRA]
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.4g}" if isinstance(r.get(k), float) else r.get(k, ""))
                        for k in keys})  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for label in dict.fromkeys(r["config"] for r in rows):
        pts = [(r["nfe"], r["kl"]) for r in rows if r["config"] == label]
        if "transfer" in label:
            continue
        style = "-o" if "optimize_grid" in label else "--."
        ax.plot(*zip(*pts, strict=True), style, label=label)
    ax.set(xscale="log", yscale="log", xlabel="model calls (NFE)", ylabel="population KL / dim")
    ax.set_xticks(NFES, [str(n) for n in NFES])
    ax.set_title("Exact KL of deterministic samplers (geometric mean of 3 spectra)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(ROOT / "docs" / "figures" / "solver_kl.png", dpi=120)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated words: run the configurations whose "
                        "label contains one of them")  # fmt: skip
    args = parser.parse_args()
    write(run(None if args.only is None else args.only.split(",")))
