"""When does each Fourier mode of the data form? Per-mode SNR crossings on a noise schedule.

    python recipes/snr_crossings.py                  # Fashion-MNIST, 28×28
    python recipes/snr_crossings.py --dataset cifar10 --resolution 32

Prints, as a markdown table, the times t ∈ [0, 1] at which quantiles of the modes'
SNR_k(t) = e^ℓ(t) P_k / λ_k cross 1 (P the training set's power spectrum, λ the noise's
eigenvalues) for white, GFF and data-shaped noise on DDPM's chain, and for GFF and
data-shaped noise on the chain aligned by :class:`sdekit.AlignedLogSNR`
(docs/training.md, "A schedule aligned to the noise").
"""

from __future__ import annotations

import argparse

import torch

from sdekit import AlignedLogSNR, FourierCovariance, GFFCovariance
from sdekit.covariance import power_spectrum
from sdekit.data import DATASETS, load_dataset_by_name
from sdekit.sde import chain_log_snr, crossing_log_snrs, fourier_eigenvalues, snr_crossing_times

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


def crossing_table(images, betas) -> list[tuple[str, list[float]]]:
    """(row label, crossing times at :data:`QUANTILES`) for each noise and chain."""
    power = power_spectrum(images)
    shape = tuple(images.shape[1:])
    noises = {
        "white": torch.ones(shape, dtype=torch.float64),
        "GFF": fourier_eigenvalues(GFFCovariance(shape)),
        "data-shaped": fourier_eigenvalues(FourierCovariance.from_data(images)).expand(shape),
    }
    q = torch.tensor(QUANTILES, dtype=torch.float64)
    rows = []
    for aligned in (False, True):
        for name, lam in noises.items():
            if aligned and name == "white":
                continue
            ends = chain_log_snr(betas)[[-1, 0]].tolist()
            fit = AlignedLogSNR.fit(power, lam, log_snr_range=ends)
            chain = fit.betas(betas) if aligned else betas
            crossings = torch.quantile(crossing_log_snrs(power, lam), q)
            times = snr_crossing_times(chain_log_snr(chain), crossings)
            label = f"{name}, aligned chain" if aligned else name
            rows.append((label, times.tolist()))
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fashion_mnist", choices=list(DATASETS))
    p.add_argument("--resolution", type=int, default=28)
    p.add_argument("--data-dir", default=None)
    args = p.parse_args(argv)
    ds = load_dataset_by_name(args.dataset, args.data_dir, True, args.resolution)
    images = ds.batch(torch.arange(len(ds)))
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    head = ["noise"] + [f"{100 * q:g} %" for q in QUANTILES]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for label, times in crossing_table(images, betas):
        print("| " + " | ".join([label] + [f"{t:.3f}" for t in times]) + " |")


if __name__ == "__main__":
    main()
