"""Helpers for reports over evaluated run folders: Markdown tables, FID with its spread,
the evaluation summaries of a run, the stored samples of a summary row, CSV.

A run folder, as ``train`` and ``evaluate`` leave it, holds ``config.json``,
``metrics.jsonl`` and one evaluation summary ``<name>.json`` per ``--eval-name``
(:func:`~sdekit.experiments.evaluation.evaluate_run`): its ``rows`` hold one (sampler,
steps) cell each, with ``fid`` and ``fid_sd`` (the bootstrap sd over the samples) and,
in newer summaries, ``cells``: the stored sample files of the row, relative to the run
folder, one per sampling seed.

Nothing here samples or scores; it only reads what the runs hold.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch

from ..files import write_text_safely
from ..training.checkpoint import load_checkpoint
from .config import model_target

__all__ = [
    "markdown_table",
    "mean_sd",
    "format_fid",
    "fid_ratio",
    "difference",
    "mean_over_seeds",
    "sampler_label",
    "noise_label",
    "merged_summary",
    "describe",
    "collect",
    "find_row",
    "plot_fid_accuracy",
    "train_wall_seconds",
    "row_images",
    "write_csv",
    "merge_csv",
]


# ------------------------------------------------------------------ formatting
def markdown_table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    """A Markdown table: ``| h1 | h2 |``, ``| --- | --- |``, then ``| c1 | c2 |`` per row
    (cells through ``str``); no trailing newline."""
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def mean_sd(value: float, sd: float, digits: int = 1, sign: bool = False) -> str:
    """``"value ± sd"`` with ``digits`` decimals (``sign``: ``+`` before a positive value)."""
    return f"{value:{'+' if sign else ''}.{digits}f} ± {sd:.{digits}f}"


def format_fid(row: Mapping | None, digits: int = 1) -> str:
    """A row's ``"fid ± fid_sd"``, or ``"–"`` for no row."""
    return "–" if row is None else mean_sd(row["fid"], row["fid_sd"], digits)


def fid_ratio(fid: float, fid_sd: float, ref: float, ref_sd: float) -> tuple[float, float]:
    """(r, sd) of r = fid / ref, the sd by first-order error propagation of two independent
    estimates: sd_r = r · √((fid_sd / fid)² + (ref_sd / ref)²)."""
    ratio = fid / ref
    return ratio, ratio * math.hypot(fid_sd / fid, ref_sd / ref)


def difference(a: float, sd_a: float, b: float, sd_b: float) -> tuple[float, float]:
    """(d, sd) of d = a − b for two independent estimates: sd = √(sd_a² + sd_b²)."""
    return a - b, math.hypot(sd_a, sd_b)


def mean_over_seeds(values: Sequence[float], sds: Sequence[float]) -> tuple[float, float, int]:
    """(mean, sd, seeds) of one quantity measured once per training seed.

    One seed: its value and its own sd (e.g. the bootstrap sd over samples). Several:
    the mean and the standard error s / √m, s the sample sd of the m values (it holds
    the training-seed and the sample spread together; the per-seed ``sds`` are unused).
    """
    if len(values) != len(sds) or not values:
        raise ValueError(f"need one sd per value and at least one, got {len(values)}, {len(sds)}")
    if len(values) == 1:
        return values[0], sds[0], 1
    m = len(values)
    return statistics.mean(values), statistics.stdev(values) / math.sqrt(m), m


# ------------------------------------------------------------------ run folders
def sampler_label(row: Mapping) -> str:
    """The row's sampler, ``+teleport`` when it started with a GaussianTeleport."""
    return row["sampler"] + ("+teleport" if row.get("teleport") is not None else "")


def noise_label(cfg: Mapping) -> str:
    """``isotropic``, ``gff``, ``data``, with ``-aligned`` for the aligned schedule and
    ``-<target>`` for a training target other than the paper's whitened ε (e.g.
    ``gff-correlated``), and ``-dense`` for a Gaussian residual to the dense Gaussian
    (``gff-gaussian-residual-dense``)."""
    aligned = "-aligned" if cfg.get("schedule", "linear") == "aligned" else ""
    model = cfg.get("model") or {}
    target = model_target({**cfg, "model": model})  # the library's default
    dense = "-dense" if model.get("gaussian_structure") == "dense" else ""
    return f"{cfg['noise']}{aligned}" + ("" if target == "whitened" else f"-{target}{dense}")


def merged_summary(run_dir, names: Sequence[str]) -> dict:
    """The first summary among ``names`` (``<run>/<name>.json``) that exists, with the rows
    of the later ones added where a (sampler label, steps) cell is missing; all must score
    the same number of samples from the same seed(s) with the same clamp, in the same
    feature space.

    **Raises:** ``FileNotFoundError`` if none exists; ``ValueError`` if two differ in
    ``samples_per_cell``, ``seed``, ``clip_x0`` or ``features`` (the extractor, e.g. a
    retrained classifier: its FIDs are on another scale).
    """
    run_dir = Path(run_dir)
    found = [
        json.loads((run_dir / f"{n}.json").read_text())
        for n in names
        if (run_dir / f"{n}.json").exists()
    ]
    if not found:
        raise FileNotFoundError(f"{run_dir}: none of {', '.join(n + '.json' for n in names)}")
    merged = dict(found[0], rows=list(found[0]["rows"]))
    for other in found[1:]:
        for key in ("samples_per_cell", "seed", "clip_x0", "features"):
            if other.get(key) != merged.get(key):
                raise ValueError(
                    f"{run_dir}: summaries differ in {key} ({merged.get(key)!r} vs "
                    f"{other.get(key)!r}); re-run `evaluate` for the older one (stored "
                    "cells are re-scored, not re-sampled)"
                )
        have = {(sampler_label(r), r["steps"]) for r in merged["rows"]}
        merged["rows"] += [r for r in other["rows"] if (sampler_label(r), r["steps"]) not in have]
    return merged


def describe(run_dir, names: Sequence[str] = ("evaluation",), extra: Mapping | None = None) -> dict:
    """One run: ``dir``, ``noise`` (:func:`noise_label`), training ``seed``, ``model``
    (``"<noise> s<seed>"``), ``cfg`` and ``summaries``: ``"main"`` (``names`` merged by
    :func:`merged_summary`), ``"subset"`` (``subset.json``) where present, and one per
    ``extra`` label (table label → summary names, merged alike) where the run has any."""
    run_dir = Path(run_dir)
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


def collect(runs: Iterable[Mapping]) -> list[dict]:
    """Every summary row of every run (:func:`describe`), flat: the row's fields with
    ``model``, ``noise``, ``seed``, ``table`` (the summary's label), ``n`` (samples per
    cell), ``features`` (the feature space the summary was scored in) and ``sampler`` as
    its :func:`sampler_label`."""
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
                        "features": summary.get("features"),
                        **r,
                        "sampler": sampler_label(r),
                    }
                )
    return rows


def find_row(rows: Iterable[Mapping], model: str, sampler: str, steps: int, table="main"):
    """The first :func:`collect` row of (model, sampler label, steps, table), or None."""
    for r in rows:
        if (r["model"], r["sampler"], r["steps"], r["table"]) == (model, sampler, steps, table):
            return r
    return None


def train_wall_seconds(run_dir) -> float:
    """Training wall time from ``metrics.jsonl``: Σ Δsteps / (steps/s) over log records."""
    total, last = 0.0, 0
    for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        total += (rec["step"] - last) / rec["steps_per_s"]
        last = rec["step"]
    return total


def row_images(run_dir, row: Mapping, limit: int | None = None) -> torch.Tensor:
    """The stored uint8 samples of a summary row: its ``cells`` (paths relative to
    ``run_dir``) loaded in order and concatenated, stopping once ``limit`` images are in.

    **Raises:** ``KeyError`` if the row lists no ``cells`` (a summary written before
    evaluation recorded them); ``FileNotFoundError`` for a listed file that is gone.
    """
    cells = row.get("cells")
    if not cells:
        raise KeyError("cells")
    images = []
    for cell in cells:
        images.append(load_checkpoint(Path(run_dir) / cell)["images"])
        if limit is not None and sum(len(x) for x in images) >= limit:
            break
    return torch.cat(images)[:limit]


def write_csv(path, rows: Iterable[Mapping], keys: Sequence[str]) -> Path:
    """``rows`` as CSV with the columns ``keys`` (other fields left out, missing ones
    empty)."""
    path = Path(path)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(keys), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def merge_csv(path, rows: Sequence[Mapping], keys: Sequence[str], key: Sequence[str],
              order=None) -> Path:
    """Merge ``rows`` into the CSV at ``path`` (columns ``keys``): a stored row whose fields
    ``key`` equal a new row's is replaced by it in place, new keys are appended (the last of
    equal new rows wins); the result is sorted by ``order`` (a function of a row) where
    given, and written atomically. Key fields compare as their CSV text (``None`` as "")."""
    path = Path(path)
    text = lambda v: "" if v is None else str(v)  # noqa: E731
    ident = lambda r: tuple(text(r.get(k)) for k in key)  # noqa: E731
    merged = {}
    if path.is_file():
        with path.open(newline="") as f:
            merged = {ident(r): r for r in csv.DictReader(f)}
    merged.update((ident(r), r) for r in rows)
    out = list(merged.values())
    if order is not None:
        out.sort(key=order)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(keys), extrasaction="ignore")
    w.writeheader()
    w.writerows(out)
    write_text_safely(path, buf.getvalue())
    return path


def plot_fid_accuracy(rows: Sequence[Mapping], path) -> Path:
    """FID (± sd) against the samples' classifier accuracy, a line per (noise, sampler,
    interval) through its guidance scales (each point labelled with its scale); rows carry
    ``noise``, ``sampler``, ``interval``, ``scale``, ``fid``, ``fid_sd``, ``accuracy``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    groups = sorted({(r["noise"], r["sampler"], bool(r["interval"])) for r in rows})
    for (noise, sampler, interval), marker in zip(groups, "osD^v<>p*", strict=False):
        sel = sorted((r for r in rows if (r["noise"], r["sampler"], bool(r["interval"]))
                      == (noise, sampler, interval)), key=lambda r: float(r["scale"]))  # fmt: skip
        ax.errorbar([float(r["accuracy"]) for r in sel], [float(r["fid"]) for r in sel],
                    yerr=[float(r["fid_sd"]) for r in sel], marker=marker, capsize=2,
                    label=f"{noise}, {sampler}{', interval' if interval else ''}")  # fmt: skip
        for r in sel:
            ax.annotate(f"{float(r['scale']):g}", (float(r["accuracy"]), float(r["fid"])),
                        fontsize=7, xytext=(3, 3), textcoords="offset points")  # fmt: skip
    ax.set(xlabel="classifier accuracy on samples (asked label)",
           ylabel="classifier FID (± bootstrap sd)")  # fmt: skip
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
