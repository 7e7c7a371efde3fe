"""Restoring Fashion-MNIST test images with trained runs as priors: PSNR / SSIM to the truth
and classifier FID of the restorations, per prior × task × measurement noise × method.

    python recipes/restore_study.py isotropic=runs/study/iso-s0 gff=runs/study/gff-s0 \\
        --n 32 --out docs/results/restore.csv --figure docs/figures/restore.png

For each run (``fashion_mnist_nivp.py train --preset cpu``), each task (central-box
inpainting, 2× super-resolution, Gaussian deblurring), white and GFF-correlated measurement
noise (per-pixel sd ``--noise-std``) and each method (``--methods``), the test set's first
``--n`` images are measured with noise from ``--seed`` and restored by DDPM ancestral sampling
(``--steps``) of the posterior model; scored per image on the 8-bit restorations (PSNR, SSIM
mean ± sd; classifier FID ± bootstrap sd, with each prior's ``truth`` floor row). Stored
restorations are reused (:mod:`sdekit.experiments.restore_study`); the CSV merges rows by
(prior, task, noise, method); the figure shows, per task with GFF measurement noise, the
truth, y and each prior × method's restoration of the first 6 images.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from sdekit.errors import InputError
from sdekit.experiments.restore import MEASUREMENT_NOISES, RESTORE_METHODS, RESTORE_TASKS
from sdekit.experiments.restore_study import restore_study


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="prior=run_dir pairs (or a run folder alone)")
    ap.add_argument("--tasks", default=",".join(RESTORE_TASKS))
    ap.add_argument("--noises", default=",".join(MEASUREMENT_NOISES))
    ap.add_argument("--methods", default="pigdm-alpha,dps-normalized,projection",
                    help=f"from {', '.join(RESTORE_METHODS)}")  # fmt: skip
    ap.add_argument("--n", type=int, default=32, help="test images restored per cell")
    ap.add_argument("--steps", type=int, default=50, help="ancestral steps")
    ap.add_argument("--noise-std", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--figure", type=Path)
    args = ap.parse_args(argv)
    pairs = [tuple(p.split("=", 1)) if "=" in p else (Path(p).name, p) for p in args.runs]
    try:
        rows = restore_study(pairs, args.tasks.split(","), args.noises.split(","),
                             args.methods.split(","), n=args.n, steps=args.steps,
                             noise_std=args.noise_std, seed=args.seed, out=args.out,
                             figure=args.figure)  # fmt: skip
    except InputError as err:
        ap.error(str(err))
    for r in rows:
        fid = "–" if r.get("fid") is None or math.isnan(r["fid"]) else f"{r['fid']:.1f}"
        quality = (f"PSNR {r['psnr']:.2f} ± {r['psnr_sd']:.2f}  SSIM {r['ssim']:.3f}"
                   if "psnr" in r else "")  # fmt: skip
        print(f"{r['prior']:>10} {r['task']:>10} {r['noise']:>5} {r['method']:>15}  "
              f"{quality}  FID {fid}")
    return rows


if __name__ == "__main__":
    main()
