"""The paper's Table 1 at CPU scale: isotropic VP vs NI-VP (GFF) on Fashion-MNIST.

    python recipes/table1_fashion_mnist.py --out docs/results

Collects what ``python recipes/fashion_mnist_nivp.py evaluate`` wrote for the two runs
(``evaluation.json``, and ``subset.json`` for the 1000-step cells on fewer samples) and
writes into ``--out``:

- ``table1.csv``: one row per (noise, table, sampler, steps) with NFE, samples, FID, its
  bootstrap standard deviation, precision, recall and sampling seconds;
- ``table1.md``: the FID table side by side with the paper's Table 1, the GFF − isotropic
  differences marked where they exceed sample noise, precision / recall, bits/dim and
  training wall times;
- ``fid_vs_steps.png``: FID against steps for every (noise, sampler), ± 2 bootstrap
  standard deviations, next to the paper's curves;
- ``samples_<noise>.png``: the first 64 samples of each model (DDPM ancestral, 100 steps)
  from the stored evaluation cells.

Nothing is sampled here; it only reads the runs. Needs the ``recipes`` extra (matplotlib).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
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
    "dpmpp_2m_sde": "DPM-Solver++(2M) SDE",
}


def load_summaries(run_dir: Path) -> dict:
    """``{"main": evaluation.json, "subset": subset.json (if present)}`` of one run."""
    out = {"main": json.loads((run_dir / "evaluation.json").read_text())}
    if (run_dir / "subset.json").exists():
        out["subset"] = json.loads((run_dir / "subset.json").read_text())
    return out


def train_wall_seconds(run_dir: Path) -> float:
    """Training wall time from ``metrics.jsonl``: Σ Δsteps / (steps/s) over log records."""
    total, last = 0.0, 0
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        total += (rec["step"] - last) / rec["steps_per_s"]
        last = rec["step"]
    return total


def collect(runs: dict[str, Path]) -> list[dict]:
    rows = []
    for noise, run_dir in runs.items():
        for table, summary in load_summaries(run_dir).items():
            for r in summary["rows"]:
                rows.append({"noise": noise, "table": table, "n": summary["samples_per_cell"], **r})
    return rows


def find(rows, noise, sampler, steps, table="main"):
    for r in rows:
        if (r["noise"], r["sampler"], r["steps"], r["table"]) == (noise, sampler, steps, table):
            return r
    return None


def pair(rows, sampler, steps):
    """(isotropic row, GFF row, mark) of a cell: the main table's, else the subset's (†)."""
    for table, mark in (("main", ""), ("subset", " †")):
        a, b = (
            find(rows, "isotropic", sampler, steps, table),
            find(rows, "gff", sampler, steps, table),
        )
        if a is not None or b is not None:
            return a, b, mark
    return None, None, ""


def fmt(r) -> str:
    return "–" if r is None else f"{r['fid']:.1f} ± {r['fid_sd']:.1f}"


def difference(a, b) -> str:
    """GFF − isotropic FID with its combined bootstrap standard deviation; ``*`` marks a
    difference beyond two standard deviations (not explained by sample noise)."""
    if a is None or b is None:
        return "–"
    d, sd = b["fid"] - a["fid"], math.hypot(a["fid_sd"], b["fid_sd"])
    return f"{d:+.1f} ± {sd:.1f}" + (" *" if abs(d) > 2 * sd else "")


def markdown(rows, samplers, runs, summaries) -> str:
    lines = [
        "### FID vs steps (ours: Fashion-MNIST, classifier features, mean ± bootstrap sd; "
        "paper: CIFAR-10, Inception, DDPM ancestral)",
        "",
    ]
    head = ["steps", "paper DDPM", "paper NI-DDPM", "paper Δ"]
    for s in samplers:
        head += [f"{SAMPLER_NAME.get(s, s)}: iso", "GFF", "Δ GFF − iso"]
    lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    steps_all = sorted({r["steps"] for r in rows}, reverse=True)
    for steps in steps_all:
        cells = [str(steps)]
        if steps in PAPER_STEPS:
            i = PAPER_STEPS.index(steps)
            p_iso, p_gff = PAPER_FID["isotropic"][i], PAPER_FID["gff"][i]
            cells += [f"{p_iso:.2f}", f"{p_gff:.2f}", f"{p_gff - p_iso:+.2f}"]
        else:
            cells += ["–"] * 3
        for s in samplers:
            a, b, mark = pair(rows, s, steps)
            cells += [fmt(a) + mark * (a is not None), fmt(b) + mark * (b is not None)]
            cells.append(difference(a, b))
        lines.append("| " + " | ".join(cells) + " |")
    ns = sorted({(r["table"], r["n"]) for r in rows})
    lines += [
        "",
        "Samples per cell: "
        + ", ".join(f"{n} ({'main table' if t == 'main' else '1000-step subset'})" for t, n in ns)
        + " (†). `*`: |Δ| > 2 combined bootstrap sd.",
    ]
    subset = [r for r in rows if r["table"] == "subset"]
    if subset:
        lines += [
            "",
            "### 1000-step subset (same sample count in every cell, so FIDs compare)",
            "",
            "| noise | sampler | steps | samples | FID | precision | recall |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in sorted(subset, key=lambda r: (r["noise"], r["sampler"], -r["steps"])):
            lines.append(
                f"| {r['noise']} | {r['sampler']} | {r['steps']} | {r['n']} | {fmt(r)} | "
                f"{r['precision']:.3f} | {r['recall']:.3f} |"
            )
    lines += [
        "",
        "### Precision / recall (k = 3, classifier features)",
        "",
        "| sampler | steps | iso precision | GFF precision | iso recall | GFF recall |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for s in samplers:
        for steps in steps_all:
            a, b = find(rows, "isotropic", s, steps), find(rows, "gff", s, steps)
            if a and b:
                lines.append(
                    f"| {s} | {steps} | {a['precision']:.3f} | {b['precision']:.3f} | "
                    f"{a['recall']:.3f} | {b['recall']:.3f} |"
                )
    lines += [
        "",
        "### Test bits/dim and training",
        "",
        "| noise | test bits/dim | images | ODE NFE | training steps | training wall time |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for noise, run_dir in runs.items():
        main = summaries[noise]["main"]
        cfg = json.loads((run_dir / "config.json").read_text())
        bpd = (
            f"{main['test_bits_per_dim']:.3f} ± {main['test_bits_per_dim_se']:.3f}"
            if "test_bits_per_dim" in main
            else "–"
        )
        lines.append(
            f"| {noise} | {bpd} | {main.get('bpd_images', '–')} | {main.get('bpd_nfe', '–')} | "
            f"{cfg['train']['steps']} | ≈ {train_wall_seconds(run_dir) / 60:.1f} min |"
        )
    return "\n".join(lines) + "\n"


def plot(rows, samplers, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_paper) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    colors = {s: f"C{i}" for i, s in enumerate(samplers)}
    for noise, style in (("isotropic", "-o"), ("gff", "--s")):
        for s in samplers:
            pts = sorted(
                (r for r in rows if r["noise"] == noise and r["sampler"] == s),
                key=lambda r: r["steps"],
            )
            pts = [r for r in pts if r["table"] == "main"]
            if not pts:
                continue
            ax.errorbar(
                [r["steps"] for r in pts],
                [r["fid"] for r in pts],
                yerr=[2 * r["fid_sd"] for r in pts],
                fmt=style,
                color=colors[s],
                capsize=3,
                label=f"{'GFF' if noise == 'gff' else 'isotropic'} · {SAMPLER_NAME.get(s, s)}",
            )
    for noise, style in (("isotropic", "-o"), ("gff", "--s")):
        ax_paper.plot(PAPER_STEPS, PAPER_FID[noise], style, color="k", label=PAPER_NAME[noise])
    for a, ylabel, title in (
        (ax, "FID (Fashion-MNIST classifier features)", "sdekit, Fashion-MNIST 28×28 (± 2 sd)"),
        (ax_paper, "FID (Inception)", "paper, CIFAR-10 (Table 1, DDPM ancestral)"),
    ):
        a.set(xscale="log", xlabel="sampling steps (= NFE)", ylabel=ylabel, title=title)
        a.legend(fontsize=8)
        a.grid(alpha=0.3, which="both")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--iso", type=Path, default=Path("runs/fmnist-iso-cpu"), help="isotropic run")
    p.add_argument("--gff", type=Path, default=Path("runs/fmnist-gff-cpu"), help="GFF run")
    p.add_argument("--out", type=Path, default=Path("docs/results"), help="output folder")
    p.add_argument(
        "--samplers", default="ancestral,ddim,dpmpp_2m_sde", help="samplers, in table order"
    )
    p.add_argument("--grid-steps", type=int, default=100, help="ancestral steps of the grids")
    args = p.parse_args(argv)
    runs = {"isotropic": args.iso, "gff": args.gff}
    for noise, run_dir in runs.items():
        if not (run_dir / "evaluation.json").exists():
            p.error(
                f"--{'iso' if noise == 'isotropic' else 'gff'}: {run_dir}/evaluation.json not "
                "found; run `python recipes/fashion_mnist_nivp.py evaluate ...` first"
            )
    samplers = args.samplers.split(",")
    summaries = {noise: load_summaries(d) for noise, d in runs.items()}
    rows = collect(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    keys = ["noise", "table", "sampler", "steps", "nfe", "n", "fid", "fid_sd"]
    keys += ["precision", "recall", "log_spectrum_rmse", "seconds"]
    with open(args.out / "table1.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    (args.out / "table1.md").write_text(markdown(rows, samplers, runs, summaries))
    plot(rows, samplers, args.out / "fid_vs_steps.png")
    for noise, run_dir in runs.items():
        main_summary = summaries[noise]["main"]
        cell = cell_path(
            run_dir,
            "ancestral",
            args.grid_steps,
            main_summary["samples_per_cell"],
            main_summary["seed"],
            main_summary["clip_x0"],
        )
        images = load_checkpoint(cell)["images"][:64]
        save_image_grid(from_uint8(images), args.out / f"samples_{noise}.png")
    print((args.out / "table1.md").read_text())
    return args.out


if __name__ == "__main__":
    main()
