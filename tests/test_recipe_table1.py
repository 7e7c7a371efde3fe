"""The Table 1 report reads two evaluated runs and writes the table, CSV, plot and grids."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import load_recipe as load

from sdekit.training import atomic_save


def fake_run(run_dir, fids, fid_sd, bpd, steps_per_s, noise="isotropic", seed=0, **cfg):
    """A run folder as `train` + `evaluate` leave it, with chosen numbers: ancestral and
    DDIM at 100 / 10 steps with FIDs ``fids``; DDIM 20 % worse."""
    run_dir.mkdir()
    config = {"noise": noise, "model": {"target": "whitened"}, "train": {"steps": 100, "seed": seed}}
    config.update(cfg)
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "metrics.jsonl").write_text(
        "\n".join(json.dumps({"step": s, "steps_per_s": steps_per_s}) for s in (50, 100))
    )
    rows = [
        {
            "sampler": s,
            "steps": k,
            "nfe": k,
            "seconds": 1.0,
            "fid": fid * (1.2 if s == "ddim" else 1.0),
            "fid_sd": fid_sd,
            "precision": 0.5,
            "recall": 0.25,
            "log_spectrum_rmse": 0.1,
        }
        for s in ("ancestral", "ddim")
        for k, fid in zip((100, 10), fids, strict=True)
    ]
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    path = run_dir / "evaluation" / "samples" / "ancestral_100nfe_n8_seed0_0123456789abcdef.pt"
    path.parent.mkdir(parents=True)
    atomic_save({"images": images}, path)
    rows[0]["cells"] = [str(path.relative_to(run_dir))]  # as evaluate_run lists them
    summary = {
        "rows": rows,
        "features": "f",
        "samples_per_cell": 8,
        "seed": 0,
        "clip_x0": 1.0,
        "test_bits_per_dim": bpd,
        "test_bits_per_dim_se": 0.1,
        "bpd_images": 4,
        "bpd_nfe": 50,
    }
    (run_dir / "evaluation.json").write_text(json.dumps(summary))
    subset = dict(
        summary, samples_per_cell=4, rows=[dict(rows[0], steps=1000, nfe=1000, fid=fids[0] / 2)]
    )
    (run_dir / "subset.json").write_text(json.dumps(subset))


def test_table1_report(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    fake_run(tmp_path / "iso0", fids=(10.0, 30.0), fid_sd=1.0, bpd=3.5, steps_per_s=2.0)
    fake_run(tmp_path / "iso1", fids=(12.0, 30.0), fid_sd=1.0, bpd=3.5, steps_per_s=2.0, seed=1)
    fake_run(tmp_path / "gff", fids=(20.0, 40.0), fid_sd=1.0, bpd=3.4, steps_per_s=1.0, noise="gff")
    fake_run(
        tmp_path / "al",
        fids=(11.0, 40.0),
        fid_sd=1.0,
        bpd=3.4,
        steps_per_s=1.0,
        noise="gff",
        schedule="aligned",
    )
    out = tmp_path / "out"
    report = load("table1_fashion_mnist")
    runs = [str(tmp_path / name) for name in ("iso0", "iso1", "gff", "al")]
    report.main([*runs, "--out", str(out), "--samplers", "ancestral,ddim"])
    for name in (
        "table1.csv",
        "table1.md",
        "fid_vs_steps.png",
        "samples_isotropic-s0.png",
        "samples_isotropic-s1.png",
        "samples_gff-s0.png",
        "samples_gff-aligned-s0.png",
    ):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(out / "table1.csv")))
    assert len(rows) == 4 * (4 + 1)
    assert {r["model"] for r in rows} == {
        "isotropic s0",
        "isotropic s1",
        "gff s0",
        "gff-aligned s0",
    }
    md = (out / "table1.md").read_text()
    head = "| sampler | steps | paper DDPM | paper NI-DDPM | isotropic s0 | isotropic s1 |"
    assert head in md
    assert "| DDPM ancestral | 100 | 12.25 | 12.68 | 10.0 ± 1.0 | 12.0 ± 1.0 | 20.0 ± 1.0 |" in md
    # best deterministic ≤ 20 NFE: DDIM at 10 steps = 1.2 × 30 = 36 vs 10 at 100 ancestral
    assert "| isotropic s0 | 10.0 ± 1.0 | 36.0 ± 1.0 (ddim, 10) | 3.60 ± 0.37 | no |" in md
    # and against the best stochastic cell at any step count, named (here ancestral at 100)
    assert "vs the best stochastic cell (same model)" in md
    line = "| isotropic s0 | 10.0 ± 1.0 (ancestral, 100) | 36.0 ± 1.0 (ddim, 10) | 3.60 ± 0.37 | no |"
    assert line in md
    assert "no stochastic cell gets that help" in md  # no ancestral + teleport cell here
    # two isotropic seeds: mean 11, sd(10, 12)/√2 = 1; GFF one seed: 20 ± 1; Δ 9 ± 1.4
    assert "| isotropic | 2 | 11.0 ± 1.0 | – |" in md
    assert "| gff | 1 | 20.0 ± 1.0 | +9.0 ± 1.4 * |" in md
    assert "| gff-aligned | 1 | 11.0 ± 1.0 | +0.0 ± 1.4 |" in md
    # wall time Σ Δstep / (steps/s): 50/2 + 50/2 = 50 s, 100 s
    assert "| isotropic s0 | 3.500 ± 0.100 | 4 | 50 | 100 | ≈ 0.8 min |" in md
    assert "| gff s0 | 3.400 ± 0.100 | 4 | 50 | 100 | ≈ 1.7 min |" in md
    assert md in capsys.readouterr().out


def test_table1_report_names_the_missing_run(tmp_path, capsys):
    report = load("table1_fashion_mnist")
    with pytest.raises(SystemExit):
        report.main([str(tmp_path / "nope")])
    assert "nope: config.json or evaluation.json not found" in capsys.readouterr().err


def test_table1_report_refuses_two_runs_with_one_label(tmp_path, capsys):
    fake_run(tmp_path / "a", fids=(1.0, 2.0), fid_sd=1.0, bpd=3.0, steps_per_s=1.0)
    fake_run(tmp_path / "b", fids=(1.0, 2.0), fid_sd=1.0, bpd=3.0, steps_per_s=1.0)
    with pytest.raises(SystemExit):
        load("table1_fashion_mnist").main([str(tmp_path / "a"), str(tmp_path / "b")])
    assert "share a (noise, seed) label" in capsys.readouterr().err


def test_table1_report_merges_staged_summaries(tmp_path):
    pytest.importorskip("matplotlib")
    run = tmp_path / "iso"
    fake_run(run, fids=(10.0, 30.0), fid_sd=1.0, bpd=3.5, steps_per_s=2.0)
    summary = json.loads((run / "evaluation.json").read_text())
    (run / "evaluation.json").unlink()
    first = dict(summary, rows=summary["rows"][:1])
    second = dict(summary, rows=summary["rows"][:1] + summary["rows"][2:])
    second["rows"][0] = dict(second["rows"][0], fid=99.0)  # the first name wins
    (run / "stage1.json").write_text(json.dumps(first))
    (run / "stage2.json").write_text(json.dumps(second))
    out = tmp_path / "out"
    load("table1_fashion_mnist").main(
        [str(run), "--out", str(out), "--summaries", "evaluation,stage1,stage2"]
    )
    rows = [r for r in csv.DictReader(open(out / "table1.csv")) if r["table"] == "main"]
    cells = {(r["sampler"], int(r["steps"])): float(r["fid"]) for r in rows}
    assert cells == {("ancestral", 100): 10.0, ("ddim", 100): 12.0, ("ddim", 10): 36.0}
    (run / "stage2.json").write_text(json.dumps(dict(second, samples_per_cell=4)))
    with pytest.raises(ValueError, match="differ in samples_per_cell"):
        load("table1_fashion_mnist").main([str(run), "--summaries", "stage1,stage2"])
    # scored by another classifier (another feature space): not one table
    other = dict(second, features="fashion-classifier (test accuracy 0.9032, weights 0123456789ab)")
    (run / "stage2.json").write_text(json.dumps(other))
    with pytest.raises(ValueError, match="differ in features"):
        load("table1_fashion_mnist").main([str(run), "--summaries", "stage1,stage2"])


def test_table1_report_keeps_teleported_cells_apart(tmp_path):
    """Cells sampled after a GaussianTeleport are their own sampler (``+teleport``), merge
    beside the plain cells of the same (sampler, steps) and count as deterministic; a
    correlated-target run is labelled ``gff-correlated``."""
    pytest.importorskip("matplotlib")
    run = tmp_path / "gff"
    fake_run(run, fids=(20.0, 40.0), fid_sd=1.0, bpd=3.4, steps_per_s=1.0, noise="gff")
    cfg = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**cfg, "model": {"target": "correlated"}}))
    tele = {
        "rows": [
            {
                "sampler": "ddim",
                "steps": 10,
                "nfe": 10,
                "seconds": 1.0,
                "fid": 25.0,
                "fid_sd": 1.0,
                "precision": 0.5,
                "recall": 0.5,
                "log_spectrum_rmse": 0.1,
                "teleport": 1.0,
                "teleport_time": 0.45,
            }
        ],
        "samples_per_cell": 8,
        "seed": 0,
        "clip_x0": 1.0,
        "features": "f",
    }
    (run / "teleport1.json").write_text(json.dumps(tele))
    out = tmp_path / "out"
    load("table1_fashion_mnist").main(
        [str(run), "--out", str(out), "--summaries", "evaluation,teleport1"]
    )
    rows = list(csv.DictReader(open(out / "table1.csv")))
    cells = {(r["sampler"], r["steps"]): r for r in rows if r["table"] == "main"}
    assert cells[("ddim", "10")]["fid"] == "48.0"  # the plain cell is kept
    assert cells[("ddim+teleport", "10")]["teleport_time"] == "0.45"
    md = (out / "table1.md").read_text()
    assert "| DDIM + Gaussian teleport | 10 | – | – | 25.0 ± 1.0 |" in md
    assert (
        "| gff-correlated s0 | 20.0 ± 1.0 | 25.0 ± 1.0 (ddim+teleport, 10) | 1.25 ± 0.08 | yes |"
        in md
    )


def test_table1_report_adds_other_evaluations_of_the_ratio(tmp_path, capsys):
    """``--extra LABEL=NAMES`` reads another evaluation (e.g. two sampling seeds pooled) and
    reports its best-deterministic ratio beside the main one; runs without it are skipped."""
    pytest.importorskip("matplotlib")
    fake_run(tmp_path / "iso", fids=(10.0, 30.0), fid_sd=1.0, bpd=3.5, steps_per_s=2.0)
    fake_run(tmp_path / "gff", fids=(20.0, 40.0), fid_sd=1.0, bpd=3.4, steps_per_s=1.0, noise="gff")
    summary = json.loads((tmp_path / "iso" / "evaluation.json").read_text())
    rows = [dict(r, fid=r["fid"] * 0.8) for r in summary["rows"]]
    pooled = dict(summary, rows=rows, samples_per_cell=16, seed=[0, 1])
    (tmp_path / "iso" / "pooled.json").write_text(json.dumps(pooled))
    out = tmp_path / "out"
    runs = [str(tmp_path / "iso"), str(tmp_path / "gff")]
    report = load("table1_fashion_mnist")
    report.main([*runs, "--out", str(out), "--extra", "seeds 0+1=pooled"])
    md = (out / "table1.md").read_text()
    # 0.8 × (10, 36): the ratio is unchanged, its sd grows with the smaller FIDs
    line = (
        "| seeds 0+1 | 16 | isotropic s0 | 8.0 ± 1.0 | 28.8 ± 1.0 (ddim, 10) | 3.60 ± 0.47 | no |"
    )
    assert line in md
    assert "| seeds 0+1 | 16 | gff s0 |" not in md
    csv_rows = list(csv.DictReader(open(out / "table1.csv")))
    assert {r["table"] for r in csv_rows} == {"main", "subset", "seeds 0+1"}
    with pytest.raises(SystemExit):
        report.main([*runs, "--out", str(out), "--extra", "pooled"])
    assert "--extra must be LABEL=NAME" in capsys.readouterr().err


def test_table1_report_finds_the_grid_of_pooled_teleported_summaries(tmp_path):
    """The sample grid comes from the files the reference row lists in ``cells`` (one per
    sampling seed, concatenated), not from a file name rebuilt from summary fields: with
    pooled seeds the summary's ``seed`` is a list and ``samples_per_cell`` is n · seeds."""
    pytest.importorskip("matplotlib")
    from sdekit.experiments.table1 import sample_grid

    run, n = tmp_path / "gff", 40
    fake_run(run, fids=(20.0, 40.0), fid_sd=1.0, bpd=3.4, steps_per_s=1.0, noise="gff")
    summary = json.loads((run / "evaluation.json").read_text())
    samples = run / "evaluation" / "samples"
    rows = []
    for r in summary["rows"]:
        tele = {"teleport": 1.0, "teleport_time": 0.45} if r["sampler"] == "ddim" else {}
        cells = []
        for seed, value in ((0, 0), (1, 255)):
            cell = samples / f"{r['sampler']}_{r['steps']}steps_n{n}_seed{seed}_clip1.pt"
            cells.append(str(cell.relative_to(run)))
            images = torch.full((n, 1, 28, 28), value, dtype=torch.uint8)
            atomic_save({"images": images}, cell)
        rows.append(dict(r, seeds=[0, 1], cells=cells, **tele))
    pooled = dict(summary, rows=rows, samples_per_cell=2 * n, seed=[0, 1], teleport=1.0)
    (run / "evaluation.json").write_text(json.dumps(pooled))
    out = tmp_path / "out"
    load("table1_fashion_mnist").main([str(run), "--out", str(out)])
    assert (out / "samples_gff-s0.png").stat().st_size > 0
    report = {"dir": run, "summaries": {"main": pooled}}
    grid = sample_grid(report, steps=100)
    assert grid.shape == (64, 1, 28, 28) and grid.dtype == torch.uint8
    assert (grid[:n] == 0).all() and (grid[n:] == 255).all()  # seed 0's cell, then seed 1's


def test_table1_report_names_a_run_whose_summary_lists_no_cells(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    run = tmp_path / "iso"
    fake_run(run, fids=(10.0, 30.0), fid_sd=1.0, bpd=3.5, steps_per_s=2.0)
    summary = json.loads((run / "evaluation.json").read_text())
    rows = [{k: v for k, v in r.items() if k != "cells"} for r in summary["rows"]]
    (run / "evaluation.json").write_text(json.dumps(dict(summary, rows=rows)))
    out = tmp_path / "out"
    load("table1_fashion_mnist").main([str(run), "--out", str(out)])
    assert (out / "table1.md").exists() and not (out / "samples_isotropic-s0.png").exists()
    err = capsys.readouterr().err
    assert f"{run}: no samples_*.png" in err and "lists no sample files" in err
    from sdekit.experiments.reports import describe
    from sdekit.experiments.table1 import sample_grid

    assert sample_grid(describe(run), steps=50) is None  # --grid-steps 50: no such row
    err = capsys.readouterr().err
    assert f"{run}: no samples_*.png: its summaries have no ancestral 50-step row" in err


def test_the_figure_redraws_from_the_csv_alone(tmp_path):
    from sdekit.errors import InputError
    from sdekit.experiments.table1 import plot_from_csv

    path = tmp_path / "table1.csv"
    path.write_text(
        "model,noise,seed,table,sampler,steps,nfe,n,fid,fid_sd\n"
        "isotropic s0,isotropic,0,main,ancestral,100,100,500,27.7,4.8\n"
        "isotropic s0,isotropic,0,main,ancestral,50,50,500,18.7,3.5\n"
        "gff s1,gff,1,main,ddim,20,20,500,60.1,5.0\n"
    )
    png = plot_from_csv(path, tmp_path / "fid_vs_steps.png")
    assert png.is_file() and png.stat().st_size > 10_000
    with pytest.raises(InputError, match="csv_path"):
        plot_from_csv(tmp_path / "missing.csv", tmp_path / "x.png")


@pytest.mark.parametrize(
    ("cfg", "label"),
    [
        ({"noise": "gff", "model": {"target": "whitened"}}, "gff"),
        ({"noise": "pink", "schedule": "aligned", "model": {"target": "whitened"}}, "pink-aligned"),
        ({"noise": "gff", "model": {"target": "correlated"}}, "gff-correlated"),
        ({"noise": "gff", "model": {"target": "gaussian-residual"}}, "gff-gaussian-residual"),
        (
            {"noise": "gff", "model": {"target": "gaussian-residual", "gaussian_structure": "dense"}},
            "gff-gaussian-residual-dense",
        ),
    ],
)
def test_a_run_is_labelled_by_noise_schedule_target_and_gaussian(cfg, label):
    from sdekit.experiments.reports import noise_label

    assert noise_label(cfg) == label


def test_an_ancestral_teleport_cell_is_a_stochastic_baseline(tmp_path):
    """Ancestral + teleport (the help the deterministic cells get) is a stochastic
    candidate, and the report says the baseline had that help."""
    pytest.importorskip("matplotlib")
    fake_run(tmp_path / "iso0", fids=(10.0, 30.0), fid_sd=1.0, bpd=3.5, steps_per_s=2.0)
    summary = json.loads((tmp_path / "iso0" / "evaluation.json").read_text())
    helped = dict(summary["rows"][0], fid=8.0, teleport=1.0, teleport_time=0.66, cells=[])
    summary["rows"].append(helped)
    (tmp_path / "iso0" / "evaluation.json").write_text(json.dumps(summary))
    out = tmp_path / "out"
    load("table1_fashion_mnist").main([str(tmp_path / "iso0"), "--out", str(out)])
    md = (out / "table1.md").read_text()
    assert "stochastic cells after the same teleport are candidates too" in md
    line = "| isotropic s0 | 8.0 ± 1.0 (ancestral+teleport, 100) | 36.0 ± 1.0 (ddim, 10) |"
    assert line in md
