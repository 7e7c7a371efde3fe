"""The study recipes on a tiny trained run: recipes/few_step_fid.py (rows per configuration ×
budget, the distance to the model's own 100-step ODE solve, the calibrated grid cached by what
made it) and recipes/restore_study.py (rows per task × noise × method, the floor row, the
figure, restorations reused on a rerun)."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from conftest import load_recipe as load
from test_data import write_fashion
from test_recipes_training import tiny

from sdekit.metrics.features import FashionClassifier


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny trained run, and a (random-weight) cached classifier for its FID."""
    tmp = tmp_path_factory.mktemp("study")
    cache = tmp / "cache"
    cache.mkdir()
    torch.manual_seed(0)
    torch.save({"model": FashionClassifier().state_dict(), "test_accuracy": 0.5, "epochs": 0},
               cache / "fashion_classifier.pt")  # fmt: skip
    data, run = tmp / "fm", tmp / "run"
    write_fashion(data, n=16)
    r = tiny(load("fashion_mnist_nivp"), "smoke")
    args = ["--preset", "smoke", "--data-dir", str(data), "--run-dir", str(run), "--no-progress"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", ["train", *args]) == 0
    return run, cache


def test_few_step_rows_distance_and_cached_calibration(run, tmp_path, monkeypatch):
    run_dir, cache = run
    monkeypatch.setenv("SDEKIT_CACHE", str(cache))
    study = load("few_step_fid")
    out = tmp_path / "few_step.csv"
    argv = [f"tiny={run_dir}", "--nfe", "3,4", "--n", "6", "--max-evaluations", "3",
            "--configs", "ode-100,dpm_solver_2m,dpm_solver_2m-calibrated", "--out", str(out)]
    rows = study.main(argv)
    csv_rows = list(csv.DictReader(out.open()))
    assert [(r["config"], r["nfe"]) for r in csv_rows] == [
        ("ode-100", "100"), ("dpm_solver_2m", "3"), ("dpm_solver_2m", "4"),
        ("dpm_solver_2m-calibrated", "3"), ("dpm_solver_2m-calibrated", "4")]  # fmt: skip
    assert all(r["fid"] and r["fid_sd"] and r["model"] == "tiny" for r in csv_rows)
    by = {(r["config"], r["nfe"]): r for r in rows}
    assert by[("ode-100", 100)]["dist"] == 0.0  # the reference against itself
    assert all(r["dist"] > 0 for k, r in by.items() if k[0] != "ode-100")
    calibrated = [r for r in rows if r["config"].endswith("calibrated")]
    assert all(r["calibration_calls"] > 0 and r["calibration_seconds"] >= 0 for r in calibrated)
    grids = json.loads((run_dir / "few_step_grids.json").read_text())
    assert len(grids) == 2 and all(len(v["grid"]) >= 3 for v in grids.values())
    before = (run_dir / "few_step_grids.json").read_text()
    again = study.main(argv)  # cells and grids come from the run folder: the same rows
    assert (run_dir / "few_step_grids.json").read_text() == before
    assert [(r["fid"], r["dist"]) for r in again] == [(r["fid"], r["dist"]) for r in rows]


def test_restore_study_rows_floor_figure_and_reuse(run, tmp_path, monkeypatch):
    run_dir, cache = run
    monkeypatch.setenv("SDEKIT_CACHE", str(cache))
    study = load("restore_study")
    out, fig = tmp_path / "restore.csv", tmp_path / "restore.png"
    argv = [f"tiny={run_dir}", "--tasks", "inpainting,deblur", "--methods",
            "pigdm-alpha,projection", "--n", "4", "--steps", "3", "--out", str(out),
            "--figure", str(fig)]  # fmt: skip
    rows = study.main(argv)
    csv_rows = list(csv.DictReader(out.open()))
    assert len(csv_rows) == 2 * 2 * 2 + 1  # task × noise × method, and the truth floor
    cells = [r for r in csv_rows if r["method"] != "truth"]
    assert all(r["psnr"] and r["ssim"] and r["fid"] and r["prior"] == "tiny" for r in cells)
    assert {r["task"] for r in cells} == {"inpainting", "deblur"}
    floor = next(r for r in csv_rows if r["method"] == "truth")
    assert floor["fid"] and not floor["psnr"]
    assert fig.is_file()
    stored = sorted((run_dir / "restorations" / "study").glob("*.npz"))
    assert len(stored) == 8
    again = study.main(argv)  # restorations are read back, not redrawn
    assert sorted((run_dir / "restorations" / "study").glob("*.npz")) == stored
    assert [r.get("psnr") for r in again] == [r.get("psnr") for r in rows]
    assert all(r["seconds"] is None for r in again if r["method"] != "truth")


def test_studies_refuse_unknown_names_before_any_work(tmp_path):
    from sdekit.errors import InputError
    from sdekit.experiments.few_step import few_step_study
    from sdekit.experiments.restore_study import restore_study

    missing = [("m", str(tmp_path / "no-run"))]  # never opened: the names are checked first
    with pytest.raises(InputError, match="configs: unknown \\['ode-1000'\\]"):
        few_step_study(missing, ["ode-1000"], [5])
    with pytest.raises(InputError, match="budgets"):
        few_step_study(missing, ["dpm_solver_2m"], [0])
    with pytest.raises(InputError, match="methods: unknown \\['ddrm'\\]"):
        restore_study(missing, methods=["ddrm"])
    with pytest.raises(InputError, match="tasks: unknown"):
        restore_study(missing, tasks=["colorize"])


def test_merge_csv_replaces_rows_by_key_and_keeps_the_rest(tmp_path):
    from sdekit.experiments.reports import merge_csv

    path = tmp_path / "rows.csv"
    fields = ["model", "nfe", "fid", "note"]
    merge_csv(path, [{"model": "a", "nfe": 5, "fid": 9.5}, {"model": "b", "nfe": 5, "fid": 3.0}],
              fields, ("model", "nfe"))  # fmt: skip
    merge_csv(path, [{"model": "a", "nfe": 5, "fid": 8.25, "extra": 1}], fields, ("model", "nfe"),
              order=lambda r: r["model"])  # fmt: skip
    rows = list(csv.DictReader(path.open()))
    assert rows == [{"model": "a", "nfe": "5", "fid": "8.25", "note": ""},
                    {"model": "b", "nfe": "5", "fid": "3.0", "note": ""}]  # fmt: skip


def test_teleport_configurations_start_after_the_gaussian_jump(run, tmp_path, monkeypatch):
    from sdekit.experiments.few_step import FEW_STEP_CONFIGS, TELEPORT_SNR, few_step_study

    run_dir, cache = run
    monkeypatch.setenv("SDEKIT_CACHE", str(cache))
    assert FEW_STEP_CONFIGS["ipndm3-teleport"].teleport == TELEPORT_SNR
    rows = few_step_study([("tiny", str(run_dir))], ["ode-100", "dpm_solver_2m",
                          "dpm_solver_2m-teleport"], [4], n=6, out=tmp_path / "fs.csv")  # fmt: skip
    by = {r["config"]: r for r in rows}
    assert by["dpm_solver_2m-teleport"]["nfe"] == 4  # the jump costs no model call
    assert by["dpm_solver_2m-teleport"]["dist"] != by["dpm_solver_2m"]["dist"]
    summary = json.loads((run_dir / "few_step.json").read_text())
    jumped = [r for r in summary["rows"] if r.get("teleport") == TELEPORT_SNR]
    assert len(jumped) == 1 and 0 < jumped[0]["teleport_time"] < 1
