"""When does each Fourier mode of the data form? Per-mode SNR crossings on a noise schedule.

    python recipes/snr_crossings.py                  # Fashion-MNIST, 28×28
    python recipes/snr_crossings.py --dataset cifar10 --resolution 32
    python recipes/snr_crossings.py --noises isotropic,gff,pink,blue,offset,pyramid --no-aligned

Prints, as a markdown table, the times t ∈ [0, 1] at which quantiles of the modes'
SNR_k(t) = e^ℓ(t) P_k / λ_k cross 1 (P the training set's power spectrum, λ the noise's
eigenvalues) for each noise of ``--noises`` (names of the covariance registry, as
``--noise`` of the training recipe takes them, or ``data`` for noise shaped like the
training set; default white, GFF and data-shaped) on DDPM's chain, and for each non-white
noise on the chain aligned by :class:`sdekit.AlignedLogSNR` (docs/training.md, "A schedule
aligned to the noise"). Every noise must be diagonal in the Fourier basis.
"""

from __future__ import annotations

import argparse

import torch

from sdekit import AlignedLogSNR, FourierCovariance
from sdekit.covariance import NOISE_NAMES, make_covariance, power_spectrum
from sdekit.data import DATASETS, load_dataset_by_name
from sdekit.sde import chain_log_snr, crossing_log_snrs, fourier_eigenvalues, snr_crossing_times

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
DEFAULT_NOISES = ("isotropic", "gff", "data")
LABELS = {"isotropic": "white", "gff": "GFF", "data": "data-shaped"}


def noise_eigenvalues(name: str, images) -> torch.Tensor:
    """The Fourier eigenvalues of the noise ``name`` (a registry name or ``"data"``) over the
    images' event shape."""
    shape = tuple(images.shape[1:])
    if name == "data":
        return fourier_eigenvalues(FourierCovariance.from_data(images)).expand(shape)
    return fourier_eigenvalues(make_covariance(name, shape))


def crossing_table(images, betas, noises=DEFAULT_NOISES, aligned_rows=True):
    """(row label, crossing times at :data:`QUANTILES`) for each noise on DDPM's chain, then
    (``aligned_rows``) each non-white noise on its aligned chain."""
    power = power_spectrum(images)
    lams = {LABELS.get(n, n): noise_eigenvalues(n, images) for n in noises}
    q = torch.tensor(QUANTILES, dtype=torch.float64)
    ends = chain_log_snr(betas)[[-1, 0]].tolist()  # DDPM's first and last noise levels
    rows = []
    for aligned in (False, True) if aligned_rows else (False,):
        for name, lam in lams.items():
            if aligned and bool((lam == lam.flatten()[0]).all()):
                continue  # white noise: its aligned chain is DDPM's
            chain = betas
            if aligned:  # the fit is needed for the aligned rows only
                fit = AlignedLogSNR.fit(power, lam, log_snr_range=ends)
                chain = fit.betas(betas)
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
    p.add_argument(
        "--noises",
        default=",".join(DEFAULT_NOISES),
        help="comma-separated noise names (the training recipe's --noise)",
    )
    p.add_argument("--no-aligned", action="store_true", help="leave out the aligned chains")
    args = p.parse_args(argv)
    noises = [n for n in args.noises.split(",") if n]
    known = dict.fromkeys([*NOISE_NAMES, "data"])  # the families that need only the shape
    unknown = [n for n in noises if n not in known]
    if not noises or unknown:
        p.error(f"--noises: unknown {unknown or 'none given'}; choose from {', '.join(known)}")
    ds = load_dataset_by_name(args.dataset, args.data_dir, True, args.resolution)
    images = ds.batch(torch.arange(len(ds)))
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    head = ["noise"] + [f"{100 * q:g} %" for q in QUANTILES]
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for label, times in crossing_table(images, betas, noises, not args.no_aligned):
        print("| " + " | ".join([label] + [f"{t:.3f}" for t in times]) + " |")


if __name__ == "__main__":
    main()
