"""The paper's Table 1 at CPU scale: evaluated runs with different noise, side by side.

:func:`write_table1` reads evaluated run folders (:mod:`sdekit.experiments.reports`)
and writes ``table1.csv``, ``table1.md``, ``fid_vs_steps.png`` and one
``samples_<label>.png`` per run; ``recipes/table1_fashion_mnist.py`` is its command line.
Nothing is sampled here. The plot needs matplotlib.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import InputError
from ..sampling import resolve_sampler
from ..training.images import from_uint8, save_image_grid
from .reports import (
    collect,
    describe,
    difference,
    fid_ratio,
    find_row,
    format_fid,
    markdown_table,
    mean_over_seeds,
    mean_sd,
    row_images,
    sampler_label,
    train_wall_seconds,
    write_csv,
)

__all__ = [
    "plot_from_csv",
    "PAPER_STEPS",
    "PAPER_FID",
    "SAMPLERS",
    "REFERENCE",
    "is_deterministic",
    "best_deterministic",
    "noise_summary",
    "markdown",
    "plot",
    "sample_grid",
    "parse_extra",
    "write_table1",
]

#: Voleti, Oberman & Pal (2022), Table 1: CIFAR-10 FID (50 000 samples, Inception) of
#: DDPM ancestral sampling at 1000 / 100 / 50 / 20 / 10 steps.
PAPER_STEPS = (1000, 100, 50, 20, 10)
PAPER_FID = {
    "isotropic": (6.05, 12.25, 16.61, 26.35, 44.95),
    "gff": (6.95, 12.68, 16.91, 30.41, 60.32),
}
PAPER_NAME = {"isotropic": "DDPM", "gff": "NI-DDPM (GFF)"}
SAMPLER_NAME = {
    "ancestral": "DDPM ancestral",
    "ddim": "DDIM (η = 0)",
    "dpm_solver_2m": "DPM-Solver-2M",
    "dpmpp_2m": "DPM-Solver++(2M)",
    "dpmpp_2m_sde": "DPM-Solver++(2M) SDE",
    "ddim+teleport": "DDIM + Gaussian teleport",
    "dpm_solver_2m+teleport": "DPM-Solver-2M + Gaussian teleport",
    "ancestral+teleport": "DDPM ancestral + Gaussian teleport",
}
#: the default samplers, in table order
SAMPLERS = (
    "ancestral",
    "ddim",
    "dpm_solver_2m",
    "dpmpp_2m_sde",
    "ddim+teleport",
    "dpm_solver_2m+teleport",
)
REFERENCE = ("ancestral", 100)  # the cell every model is compared at
CSV_KEYS = ("model", "noise", "seed", "table", "sampler", "steps", "nfe", "n", "fid", "fid_sd")
CSV_KEYS += ("precision", "recall", "log_spectrum_rmse", "seconds", "teleport_time", "features")


def is_deterministic(sampler: str) -> bool:
    """Whether a sampler label (``name`` or ``name+teleport``) injects no noise, from the
    sampler registry (``not resolve_sampler(name).stochastic``)."""
    return not resolve_sampler(sampler.removesuffix("+teleport")).stochastic


def best_deterministic(rows, model: str, max_nfe: int = 20, table: str = "main"):
    """The deterministic cell of ``model`` in ``table`` with the lowest FID at ≤ ``max_nfe``
    NFE, or None."""
    cells = [
        r
        for r in rows
        if r["model"] == model
        and r["table"] == table
        and r["nfe"] <= max_nfe
        and is_deterministic(r["sampler"])
    ]
    return min(cells, key=lambda r: r["fid"]) if cells else None


def best_stochastic(rows, model: str, table: str = "main"):
    """The stochastic cell of ``model`` in ``table`` with the lowest FID at any step count,
    or None: the strongest baseline a deterministic cell can be held against."""
    cells = [
        r
        for r in rows
        if r["model"] == model and r["table"] == table and not is_deterministic(r["sampler"])
    ]
    return min(cells, key=lambda r: r["fid"]) if cells else None


def _ratio_cells(rows, model: str, table: str = "main", baseline=None) -> list[str] | None:
    """reference | best deterministic ≤ 20 NFE | ratio ± sd | within 1.3×, or None; the
    reference is ancestral at 100 steps, or ``baseline(rows, model, table)``'s cell (then
    named with its sampler and steps)."""
    if baseline is None:
        ref = find_row(rows, model, *REFERENCE, table)
    else:
        ref = baseline(rows, model, table)
    best = best_deterministic(rows, model, table=table)
    if ref is None or best is None:
        return None
    ratio, sd = fid_ratio(best["fid"], best["fid_sd"], ref["fid"], ref["fid_sd"])
    named = "" if baseline is None else f" ({ref['sampler']}, {ref['steps']})"
    return [
        format_fid(ref) + named,
        f"{format_fid(best)} ({best['sampler']}, {best['steps']})",
        mean_sd(ratio, sd, 2),
        "yes" if ratio <= 1.3 else "no",
    ]


def noise_summary(rows, runs, noise: str) -> tuple[float, float, int] | None:
    """(mean FID, its sd, seeds) of a noise at the reference cell
    (:func:`~sdekit.experiments.reports.mean_over_seeds` over its runs), or None."""
    found = [find_row(rows, r["model"], *REFERENCE) for r in runs if r["noise"] == noise]
    found = [f for f in found if f is not None]
    if not found:
        return None
    return mean_over_seeds([f["fid"] for f in found], [f["fid_sd"] for f in found])


def markdown(rows, samplers: Sequence[str], runs) -> str:
    """``table1.md``: FID per (sampler, steps) beside the paper, the best deterministic
    sampler against ancestral 100 steps (also in every extra table), each noise against
    isotropic, the subset cells, precision / recall, bits/dim and training time."""
    models = [r["model"] for r in runs]
    steps_all = sorted({r["steps"] for r in rows if r["table"] == "main"}, reverse=True)
    present = []  # (sampler, steps, the models' rows) where any model has the cell
    for s in samplers:
        for k in steps_all:
            found = [find_row(rows, m, s, k) for m in models]
            if any(f is not None for f in found):
                present.append((s, k, found))
    fid_rows = []
    for s, steps, found in present:
        paper = ["–", "–"]
        if s == "ancestral" and steps in PAPER_STEPS:
            i = PAPER_STEPS.index(steps)
            paper = [f"{PAPER_FID['isotropic'][i]:.2f}", f"{PAPER_FID['gff'][i]:.2f}"]
        fid_rows.append([SAMPLER_NAME.get(s, s), steps, *paper, *map(format_fid, found)])
    ns = sorted({r["n"] for r in rows if r["table"] == "main"})
    blocks = [
        "### FID (ours: Fashion-MNIST, classifier features, mean ± bootstrap sd over samples; "
        "paper: CIFAR-10, Inception, sampler not stated — beside our ancestral rows)",
        markdown_table(["sampler", "steps", "paper DDPM", "paper NI-DDPM", *models], fid_rows),
        f"Samples per cell: {', '.join(map(str, ns))}.",
        "### Best deterministic sampler at ≤ 20 NFE vs ancestral at 100 steps (same model)",
    ]
    ratio_head = ["ancestral, 100 steps", "best deterministic ≤ 20 NFE", "ratio ± sd"]
    ratio_head += ["within 1.3×"]
    cells = [(m, _ratio_cells(rows, m)) for m in models]
    blocks.append(markdown_table(["model", *ratio_head], [[m, *c] for m, c in cells if c]))
    cells = [(m, _ratio_cells(rows, m, baseline=best_stochastic)) for m in models]
    if any(c for _, c in cells):
        head = ["best stochastic cell (any steps)", *ratio_head[1:]]
        helped = any(r["sampler"].endswith("+teleport") and not is_deterministic(r["sampler"])
                     for r in rows)  # fmt: skip
        help_note = (
            "stochastic cells after the same teleport are candidates too"
            if helped
            else "no stochastic cell gets that help (a stochastic sampler + teleport is not "
            "measured here)"
        )
        blocks += [
            "### Best deterministic sampler at ≤ 20 NFE vs the best stochastic cell (same model)",
            "The deterministic cells include DDIM / DPM-Solver-2M after the Gaussian teleport, "
            f"which replaces the network for t > t_s by the training set's Gaussian; {help_note}."
            " The stochastic cells are every stochastic sampler at every step count measured.",
            markdown_table(["model", *head], [[m, *c] for m, c in cells if c]),
        ]
    extra = [t for t in dict.fromkeys(r["table"] for r in rows) if t not in ("main", "subset")]
    if extra:
        cells = [(t, m, _ratio_cells(rows, m, t)) for t in extra for m in models]
        table = [[t, find_row(rows, m, *REFERENCE, t)["n"], m, *c] for t, m, c in cells if c]
        blocks += [
            "### The same comparison in other evaluations (e.g. other sampling seeds)",
            markdown_table(["evaluation", "samples", "model", *ratio_head], table),
        ]
    iso, table = noise_summary(rows, runs, "isotropic"), []
    for noise in dict.fromkeys(r["noise"] for r in runs):
        if (s := noise_summary(rows, runs, noise)) is None:
            continue
        delta = "–"
        if iso is not None and noise != "isotropic":
            d, sd = difference(s[0], s[1], iso[0], iso[1])
            delta = mean_sd(d, sd, sign=True) + (" *" if abs(d) > 2 * sd else "")
        table.append([noise, s[2], mean_sd(s[0], s[1]), delta])
    blocks += [
        "### Each noise against isotropic, DDPM ancestral 100 steps",
        "One seed: ± the bootstrap sd over samples; several seeds: ± the sd of the seeds' "
        "FIDs / √seeds (training-seed and sample spread together). `*`: |Δ| > 2 combined sd.",
        markdown_table(["noise", "seeds", "FID", "Δ vs isotropic"], table),
    ]
    subset = [r for r in rows if r["table"] == "subset"]
    if subset:
        subset.sort(key=lambda r: (r["model"], r["sampler"], -r["steps"]))
        table = [
            [r["model"], r["sampler"], r["steps"], r["n"], format_fid(r)]
            + [f"{r['precision']:.3f}", f"{r['recall']:.3f}"]
            for r in subset
        ]
        head = ["model", "sampler", "steps", "samples", "FID", "precision", "recall"]
        blocks += [
            "### Subset cells (fewer samples; compare only within this table)",
            markdown_table(head, table),
        ]
    table = [
        [s, k] + ["–" if f is None else f"{f['precision']:.2f} / {f['recall']:.2f}" for f in found]
        for s, k, found in present
    ]
    blocks += [
        "### Precision / recall (k = 3, classifier features)",
        markdown_table(["sampler", "steps", *(f"{m} P / R" for m in models)], table),
    ]
    table = []
    for run in runs:
        main = run["summaries"]["main"]
        bpd = "–"
        if "test_bits_per_dim" in main:
            bpd = mean_sd(main["test_bits_per_dim"], main["test_bits_per_dim_se"], 3)
        minutes = train_wall_seconds(run["dir"]) / 60
        table.append(
            [run["model"], bpd, main.get("bpd_images", "–"), main.get("bpd_nfe", "–")]
            + [run["cfg"]["train"]["steps"], f"≈ {minutes:.1f} min"]
        )
    head = ["model", "test bits/dim", "images", "ODE NFE", "training steps"]
    blocks += [
        "### Test bits/dim and training",
        markdown_table(head + ["training wall time"], table),
    ]
    return "\n\n".join(blocks) + "\n"


def plot(rows, samplers: Sequence[str], runs, path) -> None:
    """``fid_vs_steps.png``: FID against steps, a panel per sampler (± 2 bootstrap sd; seed
    0 solid, other seeds dotted), and a panel of the paper's curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [s for s in samplers if any(r["sampler"] == s for r in rows)]
    panels = len(present) + 1
    cols = min(panels, 4)
    nrows = math.ceil(panels / cols)
    fig, grid = plt.subplots(
        nrows, cols, figsize=(3.6 * cols, 3.6 * nrows), layout="constrained", squeeze=False
    )
    for ax in grid.flat[panels:]:
        ax.set_visible(False)
    axes = list(grid.flat[: panels - 1]) + [grid.flat[panels - 1]]
    noises = list(dict.fromkeys(r["noise"] for r in runs))
    colors = {n: f"C{i}" for i, n in enumerate(noises)}
    for ax, s in zip(axes, present, strict=False):
        for i, run in enumerate(runs):
            pts = sorted(
                (
                    r
                    for r in rows
                    if r["model"] == run["model"] and r["sampler"] == s and r["table"] == "main"
                ),
                key=lambda r: r["steps"],
            )
            if pts:
                ax.errorbar(
                    [r["steps"] * (1 + 0.02 * i) for r in pts],
                    [r["fid"] for r in pts],
                    yerr=[2 * r["fid_sd"] for r in pts],
                    fmt="-o" if run["seed"] == 0 else ":s",
                    color=colors[run["noise"]],
                    capsize=2,
                    label=run["model"],
                )
        ax.set(title=SAMPLER_NAME.get(s, s), ylabel="FID (classifier features, ± 2 sd)")
    for noise, style in (("isotropic", "-o"), ("gff", "--s")):
        axes[-1].plot(PAPER_STEPS, PAPER_FID[noise], style, color="k", label=PAPER_NAME[noise])
    axes[-1].set(title="paper, CIFAR-10 (Table 1; sampler not stated)", ylabel="FID (Inception)")
    for ax in axes:
        ax.set(xscale="log", xlabel="steps (= NFE)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_from_csv(csv_path, path, samplers: Sequence[str] = SAMPLERS) -> Path:
    """Redraw ``fid_vs_steps.png`` (:func:`plot`) from a ``table1.csv`` alone, with no run
    folders: the models, their noise and seed in the CSV's order."""
    import csv

    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"csv_path: {csv_path} is not a file (a table1.csv)")
    rows = []
    for r in csv.DictReader(csv_path.open()):
        rows.append({**r, "steps": int(r["steps"]), "seed": int(r["seed"]),
                     "fid": float(r["fid"]), "fid_sd": float(r["fid_sd"])})  # fmt: skip
    if not rows:
        raise InputError(f"csv_path: {csv_path} has no rows")
    runs = list({r["model"]: {"model": r["model"], "noise": r["noise"], "seed": r["seed"]}
                 for r in rows}.values())  # fmt: skip
    plot(rows, samplers, runs, path)
    return Path(path)


def sample_grid(run: Mapping, steps: int = 100, n: int = 64):
    """The first ``n`` uint8 samples of a run's ancestral ``steps``-step row (main
    summary), from the sample files the row lists in ``cells``; None, with a line on stderr
    naming the run, when the row, its ``cells`` or one of their files is missing."""
    rows = run["summaries"]["main"]["rows"]
    row = next((r for r in rows if (sampler_label(r), r["steps"]) == ("ancestral", steps)), None)
    if row is None:
        why = f"its summaries have no ancestral {steps}-step row (see --grid-steps)"
    elif not row.get("cells"):
        why = (
            f"its ancestral {steps}-step row lists no sample files ('cells'; the summary "
            "predates them: evaluate the run again to record them)"
        )
    else:
        try:
            return row_images(run["dir"], row, n)
        except FileNotFoundError as err:
            why = f"a sample file of its ancestral {steps}-step row is gone ({err})"
    print(f"{run['dir']}: no samples_*.png: {why}", file=sys.stderr)
    return None


def parse_extra(items: Sequence[str]) -> dict[str, list[str]]:
    """``["LABEL=NAME[,NAME]", ...]`` as {label: names}; :class:`InputError` otherwise."""
    extra = {}
    for item in items:
        label, sep, names = item.partition("=")
        if not (sep and label.strip() and names.strip()) or label in ("main", "subset"):
            raise InputError(f"--extra must be LABEL=NAME[,NAME] with a new label, got {item!r}")
        extra[label.strip()] = [n for n in names.split(",") if n]
    return extra


def write_table1(
    run_dirs: Sequence,
    out,
    samplers: Sequence[str] = SAMPLERS,
    grid_steps: int = 100,
    summaries: Sequence[str] = ("evaluation",),
    extra: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """Write ``table1.csv``, ``table1.md``, ``fid_vs_steps.png`` and the sample grids of
    ``run_dirs`` into ``out``; returns the Markdown. ``summaries``: the evaluation names
    merged into each run's main table (the first one's rows winning); ``extra``: table
    label → evaluation names, for the ratio in other evaluations.

    **Raises:** :class:`InputError` for a run without ``config.json`` or the first summary,
    or two runs with one (noise, seed) label; ``ValueError`` for summaries of one run that
    differ in samples, seed or clamp.
    """
    names = list(summaries)
    for run_dir in map(Path, run_dirs):
        if not (run_dir / "config.json").exists() or not any(
            (run_dir / f"{n}.json").exists() for n in names
        ):
            raise InputError(
                f"{run_dir}: config.json or {names[0]}.json not found; train and run "
                "`python recipes/fashion_mnist_nivp.py evaluate ...` first"
            )
    runs = [describe(Path(d), names, extra) for d in run_dirs]
    models = [r["model"] for r in runs]
    if len(set(models)) != len(models):
        raise InputError(f"two runs share a (noise, seed) label: {models}")
    rows = collect(runs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "table1.csv", rows, CSV_KEYS)
    text = markdown(rows, samplers, runs)
    (out / "table1.md").write_text(text)
    plot(rows, samplers, runs, out / "fid_vs_steps.png")
    for run in runs:
        images = sample_grid(run, grid_steps)
        if images is not None:
            name = run["model"].replace(" ", "-")
            save_image_grid(from_uint8(images), out / f"samples_{name}.png")
    return text
