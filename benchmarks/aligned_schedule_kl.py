"""Does the aligned schedule help the solver itself? Exact population KL on Fashion-MNIST's
own spectrum, with the exact model (no training, no Monte Carlo).

    python benchmarks/aligned_schedule_kl.py   # table; docs/results/aligned_schedule_kl.csv

Data: Gaussian with the Fashion-MNIST training set's power spectrum (28×28, centred,
`sdekit.covariance.power_spectrum`) — the second-order statistics the models learn. Noise:
white or GFF on DDPM's chain (β 1e-4 → 0.02, 1000 steps, `NIVPSDE.from_betas`), or GFF on
the chain `AlignedLogSNR` fits to that spectrum (ends pinned to DDPM's), on its own
time grid or on DDPM's grid moved to it (`sdekit.sampling.transfer_grid`: the same
log-SNRs, so the same steps as on DDPM's chain). Samplers: DDIM (η = 0) and DPM-Solver-2M
(sdekit's default) at 10 / 20 / 50 steps on their default grids; the score is the exact
KL(samples ‖ data) per dimension of `sdekit.testing.population_kl`. What the table
isolates is the discretisation error each schedule causes; the trained models' errors
come on top (docs/results.md).
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from sdekit import NIVPSDE, AlignedLogSNR, GFFCovariance, IdentityCovariance
from sdekit.covariance import power_spectrum
from sdekit.data import load_dataset_by_name
from sdekit.sampling import SamplingContext, SamplingSpec, resolve
from sdekit.sde import chain_log_snr, fourier_eigenvalues
from sdekit.testing import fourier_gaussian_problem, population_kl

F64 = torch.float64
STEPS = (10, 20, 50)
SAMPLERS = ("ddim", "dpm_solver_2m")
ROOT = Path(__file__).resolve().parents[1]


def problems(images) -> dict[str, NIVPSDE]:
    power = power_spectrum(images)[0]
    shape = (1, *power.shape)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=F64)
    gff = GFFCovariance(shape, dtype=F64)
    ends = chain_log_snr(betas)[[-1, 0]].tolist()
    aligned = AlignedLogSNR.fit(power, fourier_eigenvalues(gff)[0], log_snr_range=ends)
    sdes = {
        "white, DDPM chain": NIVPSDE.from_betas(IdentityCovariance(shape), betas),
        "GFF, DDPM chain": NIVPSDE.from_betas(gff, betas),
        "GFF, aligned chain": NIVPSDE.from_betas(gff, aligned.betas(betas)),
    }
    return {name: fourier_gaussian_problem(sde, power, scale=1.0) for name, sde in sdes.items()}


def ddpm_grid_on(oracle, ddpm_oracle, sampler: str, steps: int):
    """The sampler's own grid on DDPM's chain, moved to ``oracle``'s chain (same λ's): the
    ``"reference"`` grid rule of :class:`~sdekit.sampling.SamplingSpec`."""
    spec = SamplingSpec(sampler=sampler, steps=steps, grid="reference")
    context = SamplingContext(reference_sde=ddpm_oracle.sde)
    return resolve(spec, oracle.sde, context).grid.t


def main() -> list[dict]:
    ds = load_dataset_by_name("fashion_mnist", None, True, 28)
    oracles = problems(ds.batch(torch.arange(len(ds))))
    runs = [(name, oracle, None) for name, oracle in oracles.items()]
    runs.append(("GFF, aligned chain, DDPM's grid", oracles["GFF, aligned chain"], "ddpm"))
    rows = []
    for name, oracle, grid in runs:
        for sampler in SAMPLERS:
            for steps in STEPS:
                times = None
                if grid == "ddpm":
                    times = ddpm_grid_on(oracle, oracles["GFF, DDPM chain"], sampler, steps)
                kl, nfe = population_kl(oracle, sampler=sampler, steps=steps, grid=times)
                rows.append(
                    {
                        "problem": name,
                        "sampler": sampler,
                        "steps": steps,
                        "nfe": nfe,
                        "kl_per_dim": kl,
                    }
                )
    out = ROOT / "docs" / "results" / "aligned_schedule_kl.csv"
    with open(out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    head = ["problem"] + [f"{s} {k}" for s in SAMPLERS for k in STEPS]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for name, _, _ in runs:
        cells = [f"{r['kl_per_dim']:.2e}" for r in rows if r["problem"] == name]
        print("| " + " | ".join([name, *cells]) + " |")
    return rows


if __name__ == "__main__":
    main()
