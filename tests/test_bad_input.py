"""Bad input never fails silently: the command line, the SDE, covariances, samplers."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import load_recipe as load
from test_data import write_fashion

import sdekit
from sdekit import (
    NIVESDE,
    NIVPSDE,
    CholeskyCovariance,
    DiagonalCovariance,
    FourierCovariance,
    GFFCovariance,
    IdentityCovariance,
    KroneckerCovariance,
    NISubVPSDE,
)
from sdekit.sampling import NonFiniteModelOutput
from sdekit.testing import GaussianOracle

# ------------------------------------------------------------------ command line


def _run(argv, capsys):
    """(exit status, stdout, stderr) of the Fashion-MNIST recipe."""
    r = load("fashion_mnist_nivp")
    try:
        code = r.run_recipe("t", r.PRESETS, "fashion_mnist", argv)
    except SystemExit as exit_:
        code = exit_.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--steps", "0"], "--steps, --batch-size, --lr, --seed, --ckpt-every, --label-dropout: steps must be >= 1, got 0"),
        (["--batch-size", "0"], "batch_size must be >= 1, got 0"),
        (["--sample-steps", "0"], "--sample-steps, --sample-n, --sample-seed, --clip-x0, --teleport-snr, --class, --guidance, --guidance-interval: steps must be an int >= 1, got 0"),
        (["--lr", "-1"], "lr must be a finite number > 0"),
        (["--steps", "1.5"], "argument --steps: invalid int value: '1.5'"),
        (["--sampler", "bogus"], "--sampler, --sample-steps, --sample-n, --sample-seed, --clip-x0, --teleport-snr, --class, --guidance, --guidance-interval: unknown sampler 'bogus'"),
        (["--eval-samplers", "ddim,nope"], "--eval-samplers, --eval-steps, --eval-n, --eval-seed, --clip-x0, --teleport-snr, --class, --guidance, --guidance-interval: unknown sampler 'nope'"),
        (["--eval-steps", "10,0"], "steps must be an int >= 1, got 0"),
        (["--eval-seed", "1,1"], "seed: the sampling seeds must be distinct"),
        (["--teleport-snr", "0"], "teleport (a max SNR) must be > 0 and finite, got 0.0"),
        (["--eval-samplers", ","], "argument --eval-samplers: expected comma-separated values"),
        (["--data-dir", "/nonexistent/fmnist"], "/nonexistent/fmnist does not exist"),
        (["--device", "tpu7"], "argument --device"),
    ],
)
def test_bad_values_end_in_one_error_line_and_status_2(argv, expected, capsys):
    code, out, err = _run(["train", *argv], capsys)
    assert code == 2
    assert expected in err
    assert "Traceback" not in err + out
    assert [line for line in err.splitlines() if "error:" in line] != []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_on_a_cpu_machine_is_one_line_with_the_fix(capsys):
    code, _, err = _run(["sample", "--device", "cuda"], capsys)
    assert code == 2 and "no usable CUDA device" in err and "--device cpu" in err


def test_help_shows_the_presets_real_defaults(capsys):
    r = load("fashion_mnist_nivp")
    for preset in ("smoke", "cpu"):
        with pytest.raises(SystemExit):
            r.run_recipe("t", r.PRESETS, "fashion_mnist", ["--preset", preset, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: None)" not in text
        train = r.PRESETS[preset]["train"]
        assert f"training steps (default: {train['steps']})" in text
        noise = r.PRESETS[preset]["noise"]
        names = "isotropic,gff,pink,blue,offset,pyramid,data"
        assert f"--noise {{{names}}} forward-noise covariance" in text
        assert f"training set's power spectrum (default: {noise})" in text
        target = r.PRESETS[preset]["model"]["target"]
        assert f"docs/training.md (default: {target})" in text


def test_a_damaged_latest_is_reported_with_the_intact_file(tmp_path, capsys):
    """Training on a run whose checkpoints are all unreadable stops with rc 2 naming them."""
    data, run = tmp_path / "fm", tmp_path / "run"
    write_fashion(data, n=8)
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest.pt").write_bytes(b"")
    code, _, err = _run(
        ["train", "--data-dir", str(data), "--run-dir", str(run), "--batch-size", "4"], capsys
    )
    assert code == 2 and "latest.pt" in err and "--no-resume" in err
    assert "weights_only=False" not in err


def test_config_records_what_was_used_and_sample_never_overwrites(tmp_path, capsys):
    data, run = tmp_path / "fm", tmp_path / "run"
    write_fashion(data, n=8)
    r = load("fashion_mnist_nivp")
    r.PRESETS["smoke"]["train"].update(steps=2, batch_size=4, ckpt_every=2)
    common = ["--data-dir", str(data), "--run-dir", str(run), "--no-progress"]
    small = ["--sample-n", "4", "--sample-steps", "2"]
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", ["all", *common, *small]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["sample_n"] == 4 and cfg["train"]["sample_steps"] == 2
    assert cfg["data_dir"] == str(data) and cfg["device"] == "cpu"
    assert r.run_recipe("t", r.PRESETS, "fashion_mnist", ["sample", *common, *small]) == 0
    grids = sorted(p.name for p in (run / "samples").glob("*.png"))
    name = cfg["train"]["sample_sampler"]
    assert grids == [f"{name}_2steps-2.png", f"{name}_2steps.png"]


# ------------------------------------------------------------------ library


@pytest.mark.parametrize("make", [NIVPSDE, NISubVPSDE, lambda c: NIVESDE(c, 0.01, 10.0)])
def test_times_outside_0_T_raise_everywhere(make):
    sde = make(IdentityCovariance((1, 2, 2)))
    x = torch.zeros(1, 1, 2, 2)
    for bad in (2.0, -0.1, torch.tensor([0.5, 1.5]), math.nan):
        for call in (
            lambda t: sde.marginal(t),
            lambda t: sde.drift_coef(t),
            lambda t: sde.diffusion(t),
            lambda t: sde.log_snr(t),
            lambda t: sde.perturb(x.expand(2, 1, 2, 2) if isinstance(t, torch.Tensor) else x, t),
        ):
            with pytest.raises(ValueError, match=r"t must (lie in \[0, T=1.0\]|be finite)"):
                call(bad)
    sde.marginal(1.0), sde.marginal(0.0)  # the ends are fine


def _families():
    spd = torch.tensor([[2.0, 0.5], [0.5, 1.0]])
    return [
        IdentityCovariance((1, 4, 4)),
        DiagonalCovariance(torch.ones(1, 4, 4)),
        FourierCovariance(torch.ones(4, 4)),
        GFFCovariance((1, 4, 4)),
        CholeskyCovariance(torch.eye(16), (1, 4, 4)),
        KroneckerCovariance(spd, GFFCovariance((1, 4, 4))),
    ]


@pytest.mark.parametrize("cov", _families(), ids=lambda c: type(c).__name__)
def test_n_zero_gives_an_empty_batch(cov):
    x = cov.sample(0)
    assert x.shape == (0, *cov.event_shape)
    assert cov.inv_sqrt_apply(x).shape == x.shape and cov.log_prob(x).shape == (0,)


def _oracle_problem():
    sde = NIVPSDE(GFFCovariance((1, 4, 4)))
    return sde, GaussianOracle(sde, 0.0, GFFCovariance((1, 4, 4), alpha=1.5))


@pytest.mark.parametrize("sampler", ["ancestral", "ddim", "dpmpp_2m", "unipc", "heun", "pc"])
@pytest.mark.parametrize("clip", [None, 1.0])
def test_a_non_finite_model_output_stops_sampling_with_where(sampler, clip):
    sde, oracle = _oracle_problem()
    calls = []

    def model(x, t):
        calls.append(1)
        eps = oracle(x, t).to(x.dtype)
        return eps * math.nan if len(calls) == 3 else eps

    with pytest.raises(NonFiniteModelOutput, match=rf"sampler '{sampler}'.*evaluation 3, t = "):
        sdekit.sample(sde, model, n=2, sampler=sampler, steps=6, clip_x0=clip)


def test_the_model_output_dtype_is_blamed_not_x():
    sde, oracle = _oracle_problem()
    with pytest.raises(TypeError, match="model\\(x, t\\) returned ε̂ of dtype torch.float64"):
        sdekit.sample(sde, lambda x, t: oracle(x, t).double(), n=2, steps=3, clip_x0=1.0)


def test_an_evaluation_name_cannot_leave_the_run_folder(tmp_path, capsys):
    argv = ["evaluate", "--run-dir", str(tmp_path), "--eval-name", "../../elsewhere"]
    code, _, err = _run(argv, capsys)
    assert code == 2 and "name must stay inside" in err
    assert not (tmp_path.parent.parent / "elsewhere.json").exists()
