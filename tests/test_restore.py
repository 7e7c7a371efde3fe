"""The recipes' restore command: a tiny trained run as the prior, every task and method, the
outputs it writes, and its bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import load_recipe as load
from test_data import write_fashion
from test_recipes_training import tiny

from sdekit.errors import InputError
from sdekit.experiments.restore import RESTORE_TASKS, image_quality, task_measurement


def printed_json(capsys) -> dict:
    out = capsys.readouterr().out
    return json.loads(out[out.index("{") :])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("restore")
    data, run = tmp / "fm", tmp / "run"
    write_fashion(data, n=16)
    r = tiny(load("fashion_mnist_nivp"), "smoke")
    base = ["--preset", "smoke", "--data-dir", str(data), "--run-dir", str(run), "--no-progress"]

    def main(argv):
        return r.run_recipe("t", r.PRESETS, "fashion_mnist", argv)

    assert main(["train", *base]) == 0
    return main, base, run


@pytest.mark.parametrize("task", RESTORE_TASKS)
@pytest.mark.parametrize("noise", ["white", "gff"])
def test_task_measurements_act_on_the_image(task, noise):
    m = task_measurement(task, (1, 28, 28), noise, 0.05)
    x = torch.randn(2, 1, 28, 28)
    y = m.simulate(x, torch.Generator().manual_seed(0))
    assert y.shape == (2, *m.y_shape) and y.dtype == torch.float32
    assert m.pinv(m.forward(x)).shape == x.shape


@pytest.mark.parametrize("method", ["pigdm", "dps", "projection"])
def test_restore_writes_grid_and_npz_with_psnr_and_ssim(trained, method, capsys):
    recipe, base, run = trained
    args = ["restore", *base, "--task", "superres", "--measurement-noise", "gff",
            "--method", method, "--restore-n", "3", "--sample-steps", "3",
            "--sampler", "dpm_solver_2m", "--cg-iters", "3"]  # fmt: skip
    assert recipe(args) == 0
    summary = printed_json(capsys)
    assert summary["n"] == 3 and summary["method"] == method
    assert 0 < summary["psnr"] < 100 and -1 <= summary["ssim"] <= 1
    pngs = sorted((run / "restorations").glob(f"superres-gff0p05-{method}-*.png"))
    assert pngs, list((run / "restorations").iterdir())
    with np.load(pngs[-1].with_suffix(".npz")) as f:
        assert f["truth"].shape == f["restored"].shape == (3, 1, 28, 28)
        assert f["restored"].dtype == np.uint8


def test_restore_reports_json_and_refuses_bad_input(trained, capsys):
    recipe, base, run = trained
    args = ["restore", *base, "--task", "inpainting", "--restore-n", "2", "--sample-steps", "3",
            "--sampler", "ddim", "--method", "projection"]  # fmt: skip
    assert recipe(args) == 0
    assert printed_json(capsys)["task"] == "inpainting"
    assert recipe([*args, "--noise-std", "-1"]) == 2
    assert "noise_std" in capsys.readouterr().err
    assert recipe([*args, "--restore-n", "100"]) == 2
    assert "test set" in capsys.readouterr().err


def test_image_quality_is_psnr_and_ssim_on_unit_range():
    truth = torch.rand(2, 1, 16, 16) * 2 - 1
    noisy = (truth + 0.1 * torch.randn(2, 1, 16, 16)).clamp(-1, 1)
    psnr, ssim = image_quality(noisy, truth)
    mse = (((noisy + 1) / 2 - (truth + 1) / 2) ** 2).mean(dim=(1, 2, 3))
    torch.testing.assert_close(psnr, -10 * torch.log10(mse), rtol=1e-4, atol=1e-4)
    assert torch.all(ssim < 1) and torch.all(image_quality(truth, truth)[1] > 0.999)
    with pytest.raises(InputError, match="task"):
        task_measurement("denoise", (1, 8, 8))
