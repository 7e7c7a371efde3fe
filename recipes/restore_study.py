"""Restoring Fashion-MNIST test images with trained runs as priors: PSNR / SSIM to the truth
and classifier FID of the restorations, per prior × task × measurement noise × method.

    python recipes/restore_study.py isotropic=runs/study/iso-s0 gff=runs/study/gff-s0 \\
        --n 32 --out docs/results/restore.csv --figure docs/figures/restore.png

For each run (``fashion_mnist_nivp.py train --preset cpu``), each task of
:mod:`sdekit.experiments.restore` (central-box inpainting, 2× super-resolution, Gaussian
deblurring), white and GFF-correlated measurement noise (per-pixel sd ``--noise-std``) and
each method (``--methods``, names of :data:`METHODS`), the test set's first ``--n`` images
are measured with noise from ``--seed`` and restored by DDPM ancestral sampling
(``--steps``) of the posterior model. Scores are per image on the saved 8-bit restorations
(mean ± sd over images; FID ± bootstrap sd over them, classifier features, against the test
set; at this ``n`` it is biased upwards — compare it only between rows of equal ``n``; the
``truth`` row gives the floor: the same ``n`` real images scored the same way).
Restorations are stored under ``<run>/restorations/study/``, keyed by the weights'
identity and every setting, so a rerun only scores. The CSV merges rows by
(prior, task, noise, method); the figure shows, per task with GFF measurement noise, the
truth, y and each prior × method's restoration of the first 6 images.
"""

from __future__ import annotations

import argparse
import csv
import math
import time
from pathlib import Path

import numpy as np
import torch

from sdekit.experiments.restore import (
    MEASUREMENT_NOISES,
    RESTORE_METHODS,
    RESTORE_TASKS,
    image_quality,
    restore_run,
)
from sdekit.experiments.runs import open_run
from sdekit.experiments.scoring import reference_set, score_samples
from sdekit.training.images import from_uint8

ROOT = Path(__file__).resolve().parents[1]
#: the study's method names → (restore method, options)
METHODS = {
    "pigdm-alpha": ("pigdm", {"covariance": "isotropic", "weight": "alpha"}),
    "dps-normalized": RESTORE_METHODS["dps-normalized"],
    "projection": RESTORE_METHODS["projection"],
    "pigdm-isotropic": RESTORE_METHODS["pigdm-isotropic"],
}
FIELDS = ["prior", "task", "noise", "method", "psnr", "psnr_sd", "ssim", "ssim_sd", "fid",
          "fid_sd", "n", "steps", "sampler", "noise_std", "seed", "seconds"]  # fmt: skip
FIGURE_IMAGES = 6


def stored_restoration(run_dir, prior, task, noise, method, args) -> dict:
    """The restoration of one cell: loaded from its stem if stored, else restored now."""
    run = open_run(run_dir)
    name = (f"{task}-{noise}{args.noise_std:g}-{method}-ancestral{args.steps}-n{args.n}"
            f"-seed{args.seed}-{run.identity}").replace(".", "p")  # fmt: skip
    stem = Path(run_dir) / "restorations" / "study" / name
    seconds = None
    if not stem.with_suffix(".npz").is_file():
        kind, options = METHODS[method]
        t0 = time.perf_counter()
        restore_run(run_dir, task=task, noise=noise, noise_std=args.noise_std, method=kind,
                    method_options=dict(options), n=args.n, seed=args.seed,
                    sampler="ancestral", steps=args.steps, out=stem)  # fmt: skip
        seconds = round(time.perf_counter() - t0, 1)
    with np.load(stem.with_suffix(".npz")) as f:
        arrays = {k: torch.from_numpy(f[k]) for k in ("truth", "shown", "restored")}
    return {"arrays": arrays, "seconds": seconds}


def score(restored: torch.Tensor, truth: torch.Tensor, ref, seed: int) -> dict:
    """PSNR / SSIM (mean ± sd over images) and classifier FID ± bootstrap sd of uint8 images."""
    x, y = from_uint8(restored), from_uint8(truth)
    psnr, ssim = image_quality(x, y)
    row = {"psnr": round(float(psnr.mean()), 2), "psnr_sd": round(float(psnr.std()), 2),
           "ssim": round(float(ssim.mean()), 3),
           "ssim_sd": round(float(ssim.std()), 3)}  # fmt: skip
    scores = score_samples(x, ref, 200, seed)
    row.update({k: scores[k] for k in ("fid", "fid_sd") if k in scores})
    return row


def figure(cells: dict, priors, methods, path: Path) -> Path:
    """Per task (GFF measurement noise): truth, y, each prior × method's restorations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in RESTORE_TASKS if any(k[1] == t and k[2] == "gff" for k in cells)]
    rows = 2 + len(priors) * len(methods)
    fig, axes = plt.subplots(1, len(tasks), figsize=(2.6 * len(tasks), 0.42 * rows + 0.6),
                             squeeze=False)  # fmt: skip
    for ax, task in zip(axes[0], tasks, strict=True):
        first = next(v for k, v in cells.items() if k[1] == task and k[2] == "gff")
        strips = [("truth", first["truth"]), ("y", first["shown"])]
        strips += [(f"{p}, {m}", cells[(p, task, "gff", m)]["restored"])
                   for p in priors for m in methods if (p, task, "gff", m) in cells]  # fmt: skip
        k = min(FIGURE_IMAGES, len(first["truth"]))
        tiles = torch.cat([s[:k] for _, s in strips]).float() / 255
        _, c, h, w = tiles.shape
        grid = tiles.reshape(len(strips), k, c, h, w).permute(0, 3, 1, 4, 2)
        ax.imshow(grid.reshape(len(strips) * h, k * w, c).squeeze(-1).numpy(),
                  cmap="gray", vmin=0, vmax=1)  # fmt: skip
        ax.set_yticks([h * (i + 0.5) for i in range(len(strips))], [s for s, _ in strips],
                      fontsize=6)  # fmt: skip
        ax.set_xticks([])
        ax.set_title(f"{task}, GFF noise", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def merge_csv(path: Path, rows: list[dict]) -> None:
    key = lambda r: (r["prior"], r["task"], r["noise"], r["method"])  # noqa: E731
    old = list(csv.DictReader(path.open())) if path.is_file() else []
    new = {key(r) for r in rows}
    merged = [r for r in old if key(r) not in new] + rows
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(merged)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="prior=run_dir pairs")
    ap.add_argument("--tasks", default=",".join(RESTORE_TASKS))
    ap.add_argument("--noises", default=",".join(MEASUREMENT_NOISES))
    ap.add_argument("--methods", default="pigdm-alpha,dps-normalized,projection",
                    help=f"from {', '.join(METHODS)}")  # fmt: skip
    ap.add_argument("--n", type=int, default=32, help="test images restored per cell")
    ap.add_argument("--steps", type=int, default=50, help="ancestral steps")
    ap.add_argument("--noise-std", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--figure", type=Path)
    args = ap.parse_args(argv)
    methods, tasks = args.methods.split(","), args.tasks.split(",")
    if set(methods) - set(METHODS):
        ap.error(f"unknown methods {sorted(set(methods) - set(METHODS))}; from {list(METHODS)}")
    pairs = [p.split("=", 1) for p in args.runs]
    rows, cells = [], {}
    for prior, run_dir in pairs:
        ref = reference_set(open_run(run_dir).cfg)
        common = {"prior": prior, "n": args.n, "steps": args.steps, "sampler": "ancestral",
                  "noise_std": args.noise_std, "seed": args.seed}  # fmt: skip
        truth = None
        for task in tasks:
            for noise in args.noises.split(","):
                for method in methods:
                    got = stored_restoration(run_dir, prior, task, noise, method, args)
                    a = got["arrays"]
                    cells[(prior, task, noise, method)] = a
                    truth = a["truth"]
                    rows.append({**common, "task": task, "noise": noise, "method": method,
                                 "seconds": got["seconds"],
                                 **score(a["restored"], a["truth"], ref, args.seed)})  # fmt: skip
                    if args.out:
                        merge_csv(args.out, rows)
        if truth is not None:  # the floor: the same n real images, scored the same way
            floor = {k: v for k, v in score(truth, truth, ref, args.seed).items()
                     if k.startswith("fid")}  # fmt: skip
            rows.append({**common, "task": "-", "noise": "-", "method": "truth", **floor})
    if args.out:
        merge_csv(args.out, rows)
    if args.figure:
        figure(cells, [p for p, _ in pairs], methods, args.figure)
    for r in rows:
        fid = "–" if r.get("fid") is None or math.isnan(r["fid"]) else f"{r['fid']:.1f}"
        quality = (f"PSNR {r['psnr']:.2f} ± {r['psnr_sd']:.2f}  SSIM {r['ssim']:.3f}"
                   if "psnr" in r else "")  # fmt: skip
        print(f"{r['prior']:>10} {r['task']:>10} {r['noise']:>5} {r['method']:>15}  "
              f"{quality}  FID {fid}")
    return rows


if __name__ == "__main__":
    main()
