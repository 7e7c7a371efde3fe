"""The Table 1 report reads two evaluated runs and writes the table, CSV, plot and grids."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import load_recipe as load

from sdekit.experiments.evaluation import cell_path
from sdekit.training import atomic_save


def fake_run(run_dir, fids, fid_sd, bpd, steps_per_s):
    """A run folder as `train` + `evaluate` leave it, with chosen numbers."""
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({"train": {"steps": 100}}))
    (run_dir / "metrics.jsonl").write_text(
        "\n".join(json.dumps({"step": s, "steps_per_s": steps_per_s}) for s in (50, 100))
    )
    rows = [
        {
            "sampler": s,
            "steps": k,
            "nfe": k,
            "seconds": 1.0,
            "fid": fid,
            "fid_sd": fid_sd,
            "precision": 0.5,
            "recall": 0.25,
            "log_spectrum_rmse": 0.1,
        }
        for s in ("ancestral", "ddim")
        for k, fid in zip((100, 10), fids, strict=True)
    ]
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
    images = torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8)
    path = cell_path(run_dir, "ancestral", 100, 8, 0, 1.0)
    path.parent.mkdir(parents=True)
    atomic_save({"images": images}, path)


def test_table1_report(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    fake_run(tmp_path / "iso", fids=(10.0, 30.0), fid_sd=1.0, bpd=3.5, steps_per_s=2.0)
    fake_run(tmp_path / "gff", fids=(11.0, 40.0), fid_sd=1.0, bpd=3.4, steps_per_s=1.0)
    out = tmp_path / "out"
    report = load("table1_fashion_mnist")
    report.main(
        [
            "--iso",
            str(tmp_path / "iso"),
            "--gff",
            str(tmp_path / "gff"),
            "--out",
            str(out),
            "--samplers",
            "ancestral,ddim",
        ]
    )
    for name in (
        "table1.csv",
        "table1.md",
        "fid_vs_steps.png",
        "samples_isotropic.png",
        "samples_gff.png",
    ):
        assert (out / name).stat().st_size > 0, name
    rows = list(csv.DictReader(open(out / "table1.csv")))
    assert len(rows) == 2 * (4 + 1)
    md = (out / "table1.md").read_text()
    # Δ = GFF − iso with combined sd √2; +1 is noise, +10 is not
    assert "| 10 | 44.95 | 60.32 | +15.37 | 30.0 ± 1.0 | 40.0 ± 1.0 | +10.0 ± 1.4 * |" in md
    assert "| 100 | 12.25 | 12.68 | +0.43 | 10.0 ± 1.0 | 11.0 ± 1.0 | +1.0 ± 1.4 |" in md
    assert "| 1000 | 6.05 | 6.95 | +0.90 | 5.0 ± 1.0 † | 5.5 ± 1.0 † | +0.5 ± 1.4 |" in md
    # wall time Σ Δstep / (steps/s): 50/2 + 50/2 = 50 s, 100 s
    assert "| isotropic | 3.500 ± 0.100 | 4 | 50 | 100 | ≈ 0.8 min |" in md
    assert "| gff | 3.400 ± 0.100 | 4 | 50 | 100 | ≈ 1.7 min |" in md
    assert md in capsys.readouterr().out


def test_table1_report_names_the_missing_run(tmp_path, capsys):
    report = load("table1_fashion_mnist")
    with pytest.raises(SystemExit):
        report.main(["--iso", str(tmp_path / "nope"), "--gff", str(tmp_path / "nope")])
    assert "--iso: " in capsys.readouterr().err
