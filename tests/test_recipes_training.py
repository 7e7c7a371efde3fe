"""The training recipes end to end on tiny data (command line, resume, sample, evaluate)."""

from __future__ import annotations

import json

import pytest
from conftest import load_recipe as load
from test_data import write_cifar, write_fashion


def tiny(recipe, preset):
    """Shrink a preset further so the test takes seconds."""
    cfg = recipe.PRESETS[preset]
    cfg["train"].update(
        steps=4, batch_size=4, log_every=2, ckpt_every=2, sample_n=4, sample_steps=3
    )
    return recipe


def test_fashion_mnist_recipe_train_resume_sample_evaluate(tmp_path):
    data, run = tmp_path / "fm", tmp_path / "run"
    write_fashion(data, n=16)
    r = tiny(load("fashion_mnist_nivp"), "smoke")
    args = [
        "--preset",
        "smoke",
        "--data-dir",
        str(data),
        "--run-dir",
        str(run),
        "--no-progress",
        "--sample-n",
        "4",
        "--sample-steps",
        "3",
        "--sampler",
        "dpmpp_2m",
    ]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", ["all", *args]) == 0
    assert (run / "samples" / "dpmpp_2m_3steps.png").exists()
    assert (run / "samples" / "dpmpp_2m_3steps.npz").exists()
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["noise"] == "gff" and cfg["dataset"] == "fashion_mnist"
    # resume: more steps continue from step 4
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", ["train", *args, "--steps", "6"]) == 0
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 6 and steps.count(4) == 1
    assert (
        r.run_recipe(
            "t",
            r.PRESETS,
            "fashion_mnist",
            ["evaluate", *args, "--eval-steps", "3,2", "--eval-samplers", "ddim", "--eval-n", "4"],
        )
        == 0
    )
    rows = json.loads((run / "evaluation.json").read_text())["rows"]
    assert [(x["sampler"], x["steps"]) for x in rows] == [("ddim", 3), ("ddim", 2)]
    calibration = load("eps_calibration").main([str(run), "--n", "4"])
    assert [c["t"] for c in calibration] == [0.02, 0.1, 0.3, 0.6, 0.9, 1.0]
    assert all(c["mse"] >= 0 and c["energy"] > 0 for c in calibration)
    # evaluation after a Gaussian teleport: its own cells, hand-over time recorded
    tele = ["--teleport-snr", "1", "--eval-name", "tp", "--eval-n", "4"]
    assert (
        r.run_recipe(
            "t",
            r.PRESETS,
            "fashion_mnist",
            ["evaluate", *args, "--eval-steps", "3", "--eval-samplers", "ddim", *tele],
        )
        == 0
    )
    row = json.loads((run / "tp.json").read_text())["rows"][0]
    assert row["teleport"] == 1.0 and 0 < row["teleport_time"] < 1 and row["nfe"] == 3
    assert list((run / "evaluation" / "samples").glob("ddim_3nfe_teleport1_n4_seed0_*.pt"))
    bad = ["evaluate", *args, "--teleport-snr", "0"]  # SamplingSpec: "must be > 0"
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", bad) == 2
    bands = load("eps_calibration").main([str(run), "--n", "4", "--spectrum"])
    assert [b["t"] for b in bands] == [0.02, 0.1, 0.3, 0.6, 0.9, 1.0]
    assert all(len(b["band_ratio"]) >= 3 and min(b["band_ratio"]) > 0 for b in bands)
    assert all(b["baseline"] == "affine" and len(b["band_ratio_stationary"]) == len(b["band_ratio"])
               for b in bands)  # fmt: skip


def cifar_args(data_dir, tmp_path):
    """The smoke preset on ``data_dir``, run folder ``tmp_path/run``, no progress bars."""
    run = str(tmp_path / "run")
    return ["--preset", "smoke", "--data-dir", str(data_dir), "--run-dir", run, "--no-progress"]


def test_cifar10_recipe_isotropic_smoke(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py", n=8)
    r = tiny(load("cifar10_nivp"), "smoke")
    code = r.run_recipe(
        "t",
        r.PRESETS,
        "cifar10",
        ["train", *cifar_args(tmp_path, tmp_path), "--noise", "isotropic"],
    )
    assert code == 0 and (tmp_path / "run" / "checkpoints" / "latest.pt").exists()


def test_missing_dataset_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import sdekit.data.cifar10 as cifar10

    def offline(url, path):
        raise OSError("no network")

    monkeypatch.setattr(cifar10.urllib.request, "urlretrieve", offline)
    r = load("cifar10_nivp")
    (tmp_path / "empty").mkdir()
    code = r.run_recipe(
        "t",
        r.PRESETS,
        "cifar10",
        ["train", *cifar_args(tmp_path / "empty", tmp_path)],
    )
    out = capsys.readouterr().err  # errors go to stderr, one "error:" line
    assert code == 2
    assert "CIFAR-10" in out and "--data-dir" in out


def test_paper_preset_is_ddpm():
    p = load("cifar10_nivp").PRESETS["paper"]
    model = dict(p["model"])
    assert model.pop("target") == "whitened"  # the paper's objective (its eq. 16)
    assert model == {
        "ch": 128,
        "ch_mult": [1, 2, 2, 2],
        "num_res_blocks": 2,
        "attn_resolutions": [16],
        "dropout": 0.1,
    }
    t = p["train"]
    assert (t["batch_size"], t["lr"], t["warmup"], t["grad_clip"], t["ema_decay"], t["steps"]) == (
        128,
        2e-4,
        5000,
        1.0,
        0.9999,
        300_000,
    )
    assert (p["beta_start"], p["beta_end"], p["num_timesteps"]) == (1e-4, 0.02, 1000)


@pytest.mark.parametrize("recipe", ["cifar10_nivp", "fashion_mnist_nivp"])
def test_help_explains_every_option(recipe, capsys):
    r = load(recipe)
    with pytest.raises(SystemExit):
        r.run_recipe("t", r.PRESETS, "x", ["--help"])
    out = capsys.readouterr().out
    for opt in (
        "--preset",
        "--noise",
        "--run-dir",
        "--data-dir",
        "--steps",
        "--sampler",
        "--clip-x0",
    ):
        assert opt in out


def test_evaluate_reports_fid_precision_recall_and_bits_per_dim(tmp_path, monkeypatch):
    import torch

    from sdekit.metrics.features import FashionClassifier

    monkeypatch.setenv("SDEKIT_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    torch.manual_seed(0)
    torch.save(
        {"model": FashionClassifier().state_dict(), "test_accuracy": 0.5, "epochs": 0},
        tmp_path / "cache" / "fashion_classifier.pt",
    )
    data, run = tmp_path / "fm", tmp_path / "run"
    write_fashion(data, n=16)
    r = tiny(load("fashion_mnist_nivp"), "smoke")
    args = ["--preset", "smoke", "--data-dir", str(data), "--run-dir", str(run), "--no-progress"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", ["train", *args]) == 0
    cell = ["evaluate", *args, "--eval-steps", "3", "--eval-samplers", "dpmpp_2m", "--eval-n", "8"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", [*cell, "--eval-bpd-n", "2"]) == 0
    summary = json.loads((run / "evaluation.json").read_text())
    row = summary["rows"][0]
    assert {"fid", "precision", "recall"} <= set(row) and row["fid"] >= 0
    assert 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1
    assert summary["test_bits_per_dim"] > 0 and summary["bpd_images"] == 2
    assert "fashion-classifier" in summary["features"]
    assert "| fid |" in (run / "evaluation.md").read_text()
    assert row["fid_sd"] > 0 and summary["samples_per_cell"] == 8
    # the cell's 8-bit samples are stored: re-scoring under another name does not sample
    cells = list((run / "evaluation" / "samples").glob("*.pt"))
    assert len(cells) == 1 and cells[0].name.startswith("dpmpp_2m_3nfe_n8_seed0_")
    assert summary["model"] in cells[0].name and summary["model"].startswith("step4-")
    assert row["cells"] == [f"evaluation/samples/{cells[0].name}"]

    def no_sampling(*a, **k):
        raise AssertionError("the stored cell should have been reused")

    import sdekit.experiments.sampling as sampling
    from sdekit.sampling import SamplingSpec

    draw_samples = sampling.draw_samples
    monkeypatch.setattr(sampling, "draw_samples", no_sampling)
    again = [*cell, "--eval-name", "rescored"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", again) == 0
    rescored = json.loads((run / "rescored.json").read_text())["rows"][0]
    assert rescored == row
    # another sampling seed is another cell
    monkeypatch.setattr(sampling, "draw_samples", draw_samples)
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", [*cell, "--eval-seed", "1"]) == 0
    assert list((run / "evaluation" / "samples").glob("dpmpp_2m_3nfe_n8_seed1_*.pt"))
    assert json.loads((run / "evaluation.json").read_text())["seed"] == 1
    # several seeds pool the stored cells: 16 samples, no sampling
    monkeypatch.setattr(sampling, "draw_samples", no_sampling)
    pooled = [*cell, "--eval-seed", "0,1", "--eval-name", "pooled"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", pooled) == 0
    summary = json.loads((run / "pooled.json").read_text())
    assert summary["samples_per_cell"] == 16 and summary["seed"] == [0, 1]
    both = summary["rows"][0]
    assert both["seeds"] == [0, 1] and both["fid"] != row["fid"] and both["fid_sd"] > 0
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", [*cell, "--eval-seed", "1,1"]) == 2
    with pytest.raises(ValueError, match="distinct"):
        SamplingSpec(sampler="dpmpp_2m", steps=3, n=8, seed=(1, 1))


@pytest.mark.parametrize(
    "options",
    [
        ["--noise", "data", "--schedule", "aligned", "--target", "edm"],
        ["--noise", "gff", "--schedule", "aligned", "--target", "x0"],
        ["--noise", "isotropic", "--target", "v"],
        ["--noise", "gff", "--target", "gaussian-residual"],
    ],
    ids=["data-aligned-edm", "gff-aligned-x0", "iso-v", "gff-gaussian-residual"],
)
def test_noise_schedule_and_target_options_train_and_sample(tmp_path, options):
    """What the study uses: data-measured noise, schedule and σ_d go into config.json
    once, and the run reloads and samples from it without the data."""
    data, run = tmp_path / "fm", tmp_path / "run"
    write_fashion(data, n=16)
    r = tiny(load("fashion_mnist_nivp"), "smoke")
    args = ["--preset", "smoke", "--data-dir", str(data), "--run-dir", str(run), "--no-progress"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", ["train", *args, *options]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert ("schedule_params" in cfg) == ("aligned" in options)
    assert ("eigenvalues" in cfg.get("noise_params", {})) == ("data" in options)
    assert ("sigma_data" in cfg["model"]) == ("edm" in options)
    assert ("gaussian" in cfg["model"]) == ("gaussian-residual" in options)
    data.rename(tmp_path / "gone")  # sampling needs only the run
    sample = ["sample", *args[:2], "--run-dir", str(run), "--no-progress", *options]
    sample += ["--sample-n", "2", "--sample-steps", "3", "--sampler", "dpm_solver_2m"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", sample) == 0
    assert (run / "samples" / "dpm_solver_2m_3steps.png").exists()


def test_cli_exit_status_bad_input_vs_library_bug(tmp_path, capsys, monkeypatch):
    """Bad input: one ``error:`` line and status 2; a bug keeps its traceback (status 1)."""
    import sdekit.experiments.cli as cli

    r = load("fashion_mnist_nivp")
    args = ["sample", "--preset", "smoke", "--run-dir", str(tmp_path / "none"), "--no-progress"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: no checkpoint at") and "train first" in err[0]

    def bug(*a, **k):
        raise ZeroDivisionError("a library bug")

    monkeypatch.setattr(cli, "sample_run", bug)
    with pytest.raises(ZeroDivisionError, match="a library bug"):
        r.run_recipe("t", r.PRESETS, "fashion_mnist", args)
