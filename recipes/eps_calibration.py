"""How well a trained run's noise prediction is calibrated across t (a diagnostic).

    python recipes/eps_calibration.py runs/study/iso-s0 runs/study/gff-s0

For each run: on the first ``--n`` test images, one x_t per image and t, the MSE of ε̂,
and ratio = E⟨ε̂, ε⟩ / E‖ε̂‖², which is 1 for the exact E[ε | x_t] at every t
(:func:`sdekit.metrics.noise_prediction_calibration`). A ratio above 1 near t = T means
ε̂ is shrunk, and x̂₀ = (x − σ L ε̂)/α inherits that error times σ/α.

``--spectrum`` prints, instead, where the error of x̂₀ lands in pixel space: per band of
spatial frequency |k|, the model's error E|F(x̂₀ − x₀)|² over the error of the best
*affine* (Wiener) denoiser for the training set's mean image and dense covariance
(:func:`sdekit.metrics.denoising_error_spectrum`'s ``linear``; second moments only), and
after it the same over the *stationary* Gaussian's error (``ratio_stationary``, the
baseline of the earlier tables). Below 1 on the first the net beats second-moment
denoising; comparing runs at equal t shows which frequencies a model learned worse.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from sdekit.covariance import GaussianStatistics, statistics
from sdekit.experiments import load_dataset, load_trained
from sdekit.metrics import denoising_error_spectrum, noise_prediction_calibration

TIMES = (0.02, 0.1, 0.3, 0.6, 0.9, 1.0)
#: rings of |k| grouped into bands (28×28 images reach |k| = 20)
BANDS = ((0, 0), (1, 2), (3, 5), (6, 9), (10, 14), (15, 99))


def print_spectrum(run: Path, sde, model, x0, generator, gaussian=None) -> list[dict]:
    """One line per t: model error / affine error per band of |k|, then / stationary."""
    out = []
    rows = denoising_error_spectrum(sde, model, x0, TIMES, generator=generator, gaussian=gaussian)
    for row in rows:
        cells = {"linear": [], "stationary": []}
        for lo, hi in BANDS:
            ring = (row["radius"] >= lo) & (row["radius"] <= hi)
            if ring.any():
                for key, values in cells.items():
                    values.append(float(row["error"][ring].mean() / row[key][ring].mean()))
        line = " | ".join(f"{c:.3f}" for c in cells["linear"] + cells["stationary"])
        print(f"| {run.name} | {row['t']:g} | {line} |")
        out.append({"run": str(run), "t": row["t"], "band_ratio": cells["linear"],
                    "band_ratio_stationary": cells["stationary"],
                    "baseline": row["baseline"]})  # fmt: skip
    return out


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories (EMA weights)")
    p.add_argument("--n", type=int, default=200, help="test images")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise draws")
    p.add_argument(
        "--spectrum", action="store_true", help="x̂₀ error per frequency band vs linear denoiser"
    )
    args = p.parse_args(argv)
    if args.spectrum:
        bands = [f"|k| {lo}" if lo == hi else f"|k| {lo}–{hi}" for lo, hi in BANDS]
        head = [f"{b} (affine)" for b in bands] + [f"{b} (stationary)" for b in bands]
        print(f"| run | t | {' | '.join(head)} |")
        print("| --- | --- |" + " --- |" * len(head))
        out = []
        for run in args.runs:
            cfg, sde, model = load_trained(run)
            x0 = load_dataset(cfg, train=False).batch(torch.arange(args.n))
            train = load_dataset(cfg, train=True)
            images = train.batch(torch.arange(len(train))).to(torch.float64)
            gaussian = None
            if images[0].numel() <= statistics.DENSE_LIMIT:  # the training set's Gaussian
                gaussian = GaussianStatistics.from_images(images, "dense")
            g = torch.Generator().manual_seed(args.seed)
            out += print_spectrum(run, sde, model, x0, g, gaussian)
        return out
    print("| run | t | σ/α | MSE | E⟨ε̂,ε⟩/d | E‖ε̂‖²/d | ratio |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    out = []
    for run in args.runs:
        cfg, sde, model = load_trained(run)
        x0 = load_dataset(cfg, train=False).batch(torch.arange(args.n))
        g = torch.Generator().manual_seed(args.seed)
        for row in noise_prediction_calibration(sde, model, x0, TIMES, generator=g):
            alpha, sigma = (float(v) for v in sde.marginal(torch.tensor(row["t"])))
            print(
                f"| {run.name} | {row['t']:g} | {sigma / alpha:.1f} | {row['mse']:.4f} | "
                f"{row['projection']:.4f} | {row['energy']:.4f} | {row['ratio']:.4f} |"
            )
            out.append({"run": str(run), **row})
    return out


if __name__ == "__main__":
    main()
