"""Restoration studies: trained runs as priors, scored per prior × task × measurement
noise × method.

Each cell measures the test set's first ``n`` images by a task of
:mod:`sdekit.experiments.restore` with white or GFF-correlated noise of per-pixel sd
``noise_std`` (noise from ``seed``) and restores them by DDPM ancestral sampling
(``steps``) of the posterior model of a :data:`~sdekit.experiments.restore.RESTORE_METHODS`
entry. Scores are per image on the saved 8-bit restorations: PSNR and SSIM to the truth
(mean ± sd over images), and classifier FID ± bootstrap sd against the test set — biased
upwards at small ``n``, so comparable only between rows of equal ``n``; the ``truth`` row of
each prior is the floor: the same ``n`` real images scored the same way. Restorations are
stored under ``<run>/restorations/study/``, named by every setting and the weights' identity,
so a rerun only scores.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..training.images import from_uint8
from .reports import merge_csv
from .restore import MEASUREMENT_NOISES, RESTORE_METHODS, RESTORE_TASKS, image_quality, restore_run
from .runs import open_run
from .scoring import reference_set, score_samples

__all__ = ["RESTORE_FIELDS", "restore_study", "restore_figure"]

RESTORE_FIELDS = ["prior", "task", "noise", "method", "psnr", "psnr_sd", "ssim", "ssim_sd",
                  "fid", "fid_sd", "n", "steps", "sampler", "noise_std", "seed",
                  "seconds"]  # fmt: skip
FIGURE_IMAGES = 6
SAMPLER = "ancestral"


def _stored(run_dir, task: str, noise: str, method: str, settings: Mapping) -> dict:
    """The arrays (truth, shown, restored) of one cell: read from its ``.npz`` if stored,
    else restored now (``seconds`` is then the time it took, else ``None``)."""
    run = open_run(run_dir)
    s = settings
    name = (f"{task}-{noise}{s['noise_std']:g}-{method}-{SAMPLER}{s['steps']}-n{s['n']}"
            f"-seed{s['seed']}-{run.identity}").replace(".", "p")  # fmt: skip
    stem = Path(run_dir) / "restorations" / "study" / name
    seconds = None
    if not stem.with_suffix(".npz").is_file():
        kind, options = RESTORE_METHODS[method]
        t0 = time.perf_counter()
        restore_run(run_dir, task=task, noise=noise, noise_std=s["noise_std"], method=kind,
                    method_options=dict(options), n=s["n"], seed=s["seed"], sampler=SAMPLER,
                    steps=s["steps"], out=stem)  # fmt: skip
        seconds = round(time.perf_counter() - t0, 1)
    with np.load(stem.with_suffix(".npz")) as f:
        arrays = {k: torch.from_numpy(f[k]) for k in ("truth", "shown", "restored")}
    return {"arrays": arrays, "seconds": seconds}


def _score(restored: torch.Tensor, truth: torch.Tensor, ref, seed: int) -> dict:
    """PSNR / SSIM (mean ± sd over images) and classifier FID ± bootstrap sd of uint8 images."""
    psnr, ssim = image_quality(from_uint8(restored), from_uint8(truth))
    row = {"psnr": round(float(psnr.mean()), 2), "psnr_sd": round(float(psnr.std()), 2),
           "ssim": round(float(ssim.mean()), 3),
           "ssim_sd": round(float(ssim.std()), 3)}  # fmt: skip
    scores = score_samples(from_uint8(restored), ref, 200, seed)
    row.update({k: scores[k] for k in ("fid", "fid_sd") if k in scores})
    return row


def restore_study(runs: Sequence[tuple[str, str]], tasks: Sequence[str] = RESTORE_TASKS,
                  noises: Sequence[str] = MEASUREMENT_NOISES,
                  methods: Sequence[str] = ("pigdm-alpha", "dps-normalized", "projection"),
                  n: int = 32, steps: int = 50, noise_std: float = 0.05, seed: int = 0,
                  out=None, figure=None) -> list[dict]:  # fmt: skip
    """Every prior × task × noise × method cell of the (prior, run_dir) pairs ``runs`` and
    each prior's ``truth`` floor row (module docstring); rows merged into the CSV ``out`` by
    (prior, task, noise, method) as they come, the figure written to ``figure``."""
    choices = {"tasks": (tasks, RESTORE_TASKS), "noises": (noises, MEASUREMENT_NOISES),
               "methods": (methods, RESTORE_METHODS)}  # fmt: skip
    for arg, (given, known) in choices.items():
        if set(given) - set(known):
            raise InputError(f"{arg}: unknown {sorted(set(given) - set(known))}; "
                             f"choose from {list(known)}")  # fmt: skip
    if figure and "gff" not in noises:
        raise InputError("figure (--figure) shows the GFF-noise cells: add 'gff' to noises")
    settings = {"n": n, "steps": steps, "noise_std": noise_std, "seed": seed}
    keys = ("prior", "task", "noise", "method")
    rows, cells = [], {}
    for prior, run_dir in runs:
        ref = reference_set(open_run(run_dir).cfg)
        common = {"prior": prior, "sampler": SAMPLER, **settings}
        truth = None
        for task in tasks:
            for noise in noises:
                for method in methods:
                    got = _stored(run_dir, task, noise, method, settings)
                    a = cells[(prior, task, noise, method)] = got["arrays"]
                    truth = a["truth"]
                    rows.append({**common, "task": task, "noise": noise, "method": method,
                                 "seconds": got["seconds"],
                                 **_score(a["restored"], a["truth"], ref, seed)})  # fmt: skip
                    if out:
                        merge_csv(out, rows, RESTORE_FIELDS, keys)
        if truth is not None:  # the floor: the same n real images, scored the same way
            floor = {k: v for k, v in _score(truth, truth, ref, seed).items()
                     if k.startswith("fid")}  # fmt: skip
            rows.append({**common, "task": "-", "noise": "-", "method": "truth", **floor})
    if out:
        merge_csv(out, rows, RESTORE_FIELDS, keys)
    if figure:
        restore_figure(cells, [p for p, _ in runs], methods, figure)
    return rows


def restore_figure(cells: Mapping, priors: Sequence[str], methods: Sequence[str], path) -> Path:
    """A panel per task (GFF measurement noise): rows truth, y, each prior × method's
    restorations of the first images; ``cells`` maps (prior, task, noise, method) to arrays."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in RESTORE_TASKS if any(k[1] == t and k[2] == "gff" for k in cells)]
    if not tasks:
        raise InputError("restore_figure needs cells with GFF measurement noise")
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path
