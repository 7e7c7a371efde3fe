"""The paper's Table 1 at CPU scale: models with different noise on Fashion-MNIST, side by side.

    python recipes/table1_fashion_mnist.py runs/study/iso-s0 runs/study/gff-s0 \\
        runs/study/gff-aligned-s0 --out docs/results

Reads what ``python recipes/fashion_mnist_nivp.py evaluate`` wrote into each run
(``evaluation.json``; ``subset.json`` for cells on fewer samples where present) and labels
each run from its ``config.json``: the noise (``isotropic``, ``gff``, ``data``), ``-aligned``
for the aligned schedule, ``-<target>`` for a target other than the whitened ε, and the
training seed. Writes into ``--out``:

- ``table1.csv``: one row per (model, table, sampler, steps): noise label, seed, NFE,
  samples, FID, its bootstrap sd, precision, recall, log-spectrum RMSE, sampling seconds;
- ``table1.md``: FID per (sampler, steps) for every model beside the paper's Table 1; the
  best deterministic sampler at ≤ 20 NFE against ancestral at 100 steps on the same model
  (the ratio ± its sd; also for every ``--extra`` evaluation, e.g. two sampling seeds
  pooled with ``evaluate --eval-seed 0,1``); each noise against isotropic at 100
  ancestral steps with sample and training-seed spread; precision / recall, bits/dim and
  training wall times;
- ``fid_vs_steps.png``: FID against steps, a panel per sampler, ± 2 bootstrap sd, and the
  paper's curves;
- ``samples_<label>.png``: the first 64 samples of each model (DDPM ancestral, 100 steps).

Nothing is sampled here; it only reads the runs. Needs the ``recipes`` extra (matplotlib).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from pathlib import Path

from sdekit.experiments.evaluation import cell_path
from sdekit.training.checkpoint import load_checkpoint
from sdekit.training.images import from_uint8, save_image_grid

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
}
#: samplers without injected noise: candidates for "best deterministic"
DETERMINISTIC = ("ddim", "dpm_solver_2m", "dpm_solver_3m", "dpmpp_2m", "dpmpp_3m", "unipc")
DETERMINISTIC += tuple(f"{s}+teleport" for s in DETERMINISTIC)


def sampler_label(row: dict) -> str:
    """The row's sampler, ``+teleport`` when it started with a GaussianTeleport."""
    return row["sampler"] + ("+teleport" if row.get("teleport") is not None else "")


REFERENCE = ("ancestral", 100)  # the cell every model is compared at


def noise_label(cfg: dict) -> str:
    """``isotropic``, ``gff``, ``data``, with ``-aligned`` for the aligned schedule and
    ``-<target>`` for a training target other than the paper's whitened ε (e.g.
    ``gff-correlated``)."""
    aligned = "-aligned" if cfg.get("schedule", "linear") == "aligned" else ""
    target = cfg.get("model", {}).get("target", "whitened")
    return f"{cfg['noise']}{aligned}" + ("" if target == "whitened" else f"-{target}")


def merged_summary(run_dir: Path, names: list[str]) -> dict:
    """The first summary among ``names`` (``<run>/<name>.json``) that exists, with the rows
    of the later ones added where a (sampler, steps) cell is missing; all must score the
    same number of samples from the same seed."""
    found = [
        json.loads((run_dir / f"{n}.json").read_text())
        for n in names
        if (run_dir / f"{n}.json").exists()
    ]
    if not found:
        raise FileNotFoundError(f"{run_dir}: none of {', '.join(n + '.json' for n in names)}")
    merged = dict(found[0], rows=list(found[0]["rows"]))
    for other in found[1:]:
        for key in ("samples_per_cell", "seed", "clip_x0"):
            if other[key] != merged[key]:
                raise ValueError(f"{run_dir}: summaries differ in {key}")
        have = {(sampler_label(r), r["steps"]) for r in merged["rows"]}
        merged["rows"] += [r for r in other["rows"] if (sampler_label(r), r["steps"]) not in have]
    return merged


def describe(run_dir: Path, names: list[str] = ("evaluation",), extra: dict | None = None) -> dict:
    """Label, seed, config and evaluation summaries of one run; ``extra`` maps a table
    label to summary names (merged like ``names``) read where the run has any of them."""
    cfg = json.loads((run_dir / "config.json").read_text())
    summaries = {"main": merged_summary(run_dir, list(names))}
    if (run_dir / "subset.json").exists():
        summaries["subset"] = json.loads((run_dir / "subset.json").read_text())
    for label, extra_names in (extra or {}).items():
        if any((run_dir / f"{n}.json").exists() for n in extra_names):
            summaries[label] = merged_summary(run_dir, list(extra_names))
    noise, seed = noise_label(cfg), cfg["train"].get("seed", 0)
    return {
        "dir": run_dir,
        "noise": noise,
        "seed": seed,
        "model": f"{noise} s{seed}",
        "cfg": cfg,
        "summaries": summaries,
    }


def train_wall_seconds(run_dir: Path) -> float:
    """Training wall time from ``metrics.jsonl``: Σ Δsteps / (steps/s) over log records."""
    total, last = 0.0, 0
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        total += (rec["step"] - last) / rec["steps_per_s"]
        last = rec["step"]
    return total


def collect(runs: list[dict]) -> list[dict]:
    rows = []
    for run in runs:
        for table, summary in run["summaries"].items():
            for r in summary["rows"]:
                rows.append(
                    {
                        "model": run["model"],
                        "noise": run["noise"],
                        "seed": run["seed"],
                        "table": table,
                        "n": summary["samples_per_cell"],
                        **r,
                        "sampler": sampler_label(r),
                    }
                )
    return rows


def find(rows, model, sampler, steps, table="main"):
    for r in rows:
        if (r["model"], r["sampler"], r["steps"], r["table"]) == (model, sampler, steps, table):
            return r
    return None


def fmt(r) -> str:
    return "–" if r is None else f"{r['fid']:.1f} ± {r['fid_sd']:.1f}"


def noise_summary(rows, runs, noise) -> tuple[float, float, int] | None:
    """(mean FID, its sd, seeds) of a noise at the reference cell. One seed: the bootstrap
    sd; several: the sd of the seeds' FIDs over √seeds (training-seed and sample spread
    together)."""
    fids = [find(rows, r["model"], *REFERENCE) for r in runs if r["noise"] == noise]
    fids = [f for f in fids if f is not None]
    if not fids:
        return None
    if len(fids) == 1:
        return fids[0]["fid"], fids[0]["fid_sd"], 1
    values = [f["fid"] for f in fids]
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(len(values)), len(values)


def best_deterministic(rows, model, max_nfe=20, table="main"):
    """The deterministic cell with the lowest FID at ≤ ``max_nfe`` NFE, or None."""
    cells = [
        r
        for r in rows
        if r["model"] == model
        and r["table"] == table
        and r["sampler"] in DETERMINISTIC
        and r["nfe"] <= max_nfe
    ]
    return min(cells, key=lambda r: r["fid"]) if cells else None


def ratio_row(rows, model, table="main") -> str | None:
    """``| ancestral 100 | best deterministic ≤ 20 NFE | ratio ± sd | within 1.3× |`` of a
    model in ``table``; the ratio's sd from the two bootstrap sds (first-order error
    propagation: ratio · √((sd_a/a)² + (sd_b/b)²))."""
    ref, best = find(rows, model, *REFERENCE, table), best_deterministic(rows, model, table=table)
    if ref is None or best is None:
        return None
    ratio = best["fid"] / ref["fid"]
    sd = ratio * math.hypot(ref["fid_sd"] / ref["fid"], best["fid_sd"] / best["fid"])
    return (
        f"{fmt(ref)} | {fmt(best)} ({best['sampler']}, {best['steps']}) | "
        f"{ratio:.2f} ± {sd:.2f} | {'yes' if ratio <= 1.3 else 'no'} |"
    )


def markdown(rows, samplers, runs) -> str:
    models = [r["model"] for r in runs]
    lines = [
        "### FID (ours: Fashion-MNIST, classifier features, mean ± bootstrap sd over samples; "
        "paper: CIFAR-10, Inception, DDPM ancestral)",
        "",
    ]
    head = ["sampler", "steps", "paper DDPM", "paper NI-DDPM", *models]
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    steps_all = sorted({r["steps"] for r in rows if r["table"] == "main"}, reverse=True)
    for s in samplers:
        for steps in steps_all:
            cells = [SAMPLER_NAME.get(s, s), str(steps)]
            if s == "ancestral" and steps in PAPER_STEPS:
                i = PAPER_STEPS.index(steps)
                cells += [f"{PAPER_FID['isotropic'][i]:.2f}", f"{PAPER_FID['gff'][i]:.2f}"]
            else:
                cells += ["–", "–"]
            found = [find(rows, m, s, steps) for m in models]
            if all(f is None for f in found):
                continue
            lines.append("| " + " | ".join(cells + [fmt(f) for f in found]) + " |")
    ns = sorted({r["n"] for r in rows if r["table"] == "main"})
    lines += ["", f"Samples per cell: {', '.join(map(str, ns))}."]

    lines += [
        "",
        "### Best deterministic sampler at ≤ 20 NFE vs ancestral at 100 steps (same model)",
        "",
        "| model | ancestral, 100 steps | best deterministic ≤ 20 NFE | ratio ± sd | within 1.3× |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {m} | {row}" for m in models if (row := ratio_row(rows, m)) is not None]
    extra = [t for t in dict.fromkeys(r["table"] for r in rows) if t not in ("main", "subset")]
    if extra:
        lines += [
            "",
            "### The same comparison in other evaluations (e.g. other sampling seeds)",
            "",
            "| evaluation | samples | model | ancestral, 100 steps | best deterministic ≤ 20 NFE "
            "| ratio ± sd | within 1.3× |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for table in extra:
            for m in models:
                row = ratio_row(rows, m, table)
                if row is not None:
                    n = find(rows, m, *REFERENCE, table)["n"]
                    lines.append(f"| {table} | {n} | {m} | {row}")

    lines += [
        "",
        "### Each noise against isotropic, DDPM ancestral 100 steps",
        "",
        "One seed: ± the bootstrap sd over samples; several seeds: ± the sd of the seeds' "
        "FIDs / √seeds (training-seed and sample spread together). `*`: |Δ| > 2 combined sd.",
        "",
        "| noise | seeds | FID | Δ vs isotropic |",
        "| --- | --- | --- | --- |",
    ]
    iso = noise_summary(rows, runs, "isotropic")
    for noise in dict.fromkeys(r["noise"] for r in runs):
        s = noise_summary(rows, runs, noise)
        if s is None:
            continue
        delta = "–"
        if iso is not None and noise != "isotropic":
            d, sd = s[0] - iso[0], math.hypot(s[1], iso[1])
            delta = f"{d:+.1f} ± {sd:.1f}" + (" *" if abs(d) > 2 * sd else "")
        lines.append(f"| {noise} | {s[2]} | {s[0]:.1f} ± {s[1]:.1f} | {delta} |")

    subset = [r for r in rows if r["table"] == "subset"]
    if subset:
        lines += [
            "",
            "### Subset cells (fewer samples; compare only within this table)",
            "",
            "| model | sampler | steps | samples | FID | precision | recall |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in sorted(subset, key=lambda r: (r["model"], r["sampler"], -r["steps"])):
            lines.append(
                f"| {r['model']} | {r['sampler']} | {r['steps']} | {r['n']} | {fmt(r)} | "
                f"{r['precision']:.3f} | {r['recall']:.3f} |"
            )

    lines += [
        "",
        "### Precision / recall (k = 3, classifier features)",
        "",
        "| sampler | steps | " + " | ".join(f"{m} P / R" for m in models) + " |",
        "|" + " --- |" * (2 + len(models)),
    ]
    for s in samplers:
        for steps in steps_all:
            found = [find(rows, m, s, steps) for m in models]
            if all(f is None for f in found):
                continue
            pr = ["–" if f is None else f"{f['precision']:.2f} / {f['recall']:.2f}" for f in found]
            lines.append(f"| {s} | {steps} | " + " | ".join(pr) + " |")

    lines += [
        "",
        "### Test bits/dim and training",
        "",
        "| model | test bits/dim | images | ODE NFE | training steps | training wall time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        main = run["summaries"]["main"]
        bpd = (
            f"{main['test_bits_per_dim']:.3f} ± {main['test_bits_per_dim_se']:.3f}"
            if "test_bits_per_dim" in main
            else "–"
        )
        lines.append(
            f"| {run['model']} | {bpd} | {main.get('bpd_images', '–')} | "
            f"{main.get('bpd_nfe', '–')} | {run['cfg']['train']['steps']} | "
            f"≈ {train_wall_seconds(run['dir']) / 60:.1f} min |"
        )
    return "\n".join(lines) + "\n"


def plot(rows, samplers, runs, path: Path) -> None:
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
        ax.set(title=SAMPLER_NAME.get(s, s), ylabel="FID (classifier features)")
    for noise, style in (("isotropic", "-o"), ("gff", "--s")):
        axes[-1].plot(PAPER_STEPS, PAPER_FID[noise], style, color="k", label=PAPER_NAME[noise])
    axes[-1].set(title="paper, CIFAR-10 (Table 1, ancestral)", ylabel="FID (Inception)")
    for ax in axes:
        ax.set(xscale="log", xlabel="steps (= NFE)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", type=Path, nargs="+", help="evaluated run folders")
    p.add_argument("--out", type=Path, default=Path("docs/results"), help="output folder")
    p.add_argument(
        "--samplers",
        default="ancestral,ddim,dpm_solver_2m,dpmpp_2m_sde,ddim+teleport,dpm_solver_2m+teleport",
        help="samplers, in table order",
    )
    p.add_argument("--grid-steps", type=int, default=100, help="ancestral steps of the grids")
    p.add_argument(
        "--summaries",
        default="evaluation",
        help="comma-separated evaluation names (--eval-name) whose cells are merged, "
        "the first one's rows winning",
    )
    p.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="LABEL=NAMES",
        help="another evaluation of the runs, e.g. 'seeds 0+1=pooled' (summaries scored with "
        "--eval-seed 0,1): its ratio of best deterministic to ancestral is reported beside "
        "the main one (repeatable)",
    )
    args = p.parse_args(argv)
    names = args.summaries.split(",")
    extra = {}
    for item in args.extra:
        label, sep, extra_names = item.partition("=")
        if not (sep and label.strip() and extra_names.strip()) or label in ("main", "subset"):
            p.error(f"--extra must be LABEL=NAME[,NAME] with a new label, got {item!r}")
        extra[label.strip()] = [n for n in extra_names.split(",") if n]
    for run_dir in args.runs:
        if not (run_dir / "config.json").exists() or not any(
            (run_dir / f"{n}.json").exists() for n in names
        ):
            p.error(
                f"{run_dir}: config.json or {names[0]}.json not found; train and run "
                "`python recipes/fashion_mnist_nivp.py evaluate ...` first"
            )
    runs = [describe(d, names, extra) for d in args.runs]
    models = [r["model"] for r in runs]
    if len(set(models)) != len(models):
        p.error(f"two runs share a (noise, seed) label: {models}")
    samplers = args.samplers.split(",")
    rows = collect(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    keys = ["model", "noise", "seed", "table", "sampler", "steps", "nfe", "n", "fid", "fid_sd"]
    keys += ["precision", "recall", "log_spectrum_rmse", "seconds", "teleport_time"]
    with open(args.out / "table1.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (args.out / "table1.md").write_text(markdown(rows, samplers, runs))
    plot(rows, samplers, runs, args.out / "fid_vs_steps.png")
    for run in runs:
        main_summary = run["summaries"]["main"]
        cell = cell_path(
            run["dir"],
            "ancestral",
            args.grid_steps,
            main_summary["samples_per_cell"],
            main_summary["seed"],
            main_summary["clip_x0"],
            main_summary.get("grid", "own"),
        )
        if cell.exists():
            images = load_checkpoint(cell)["images"][:64]
            name = run["model"].replace(" ", "-")
            save_image_grid(from_uint8(images), args.out / f"samples_{name}.png")
    print((args.out / "table1.md").read_text())
    return args.out


if __name__ == "__main__":
    main()
