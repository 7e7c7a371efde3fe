"""Losses, the UNet, exact resume, atomic checkpoints, sample grids."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import F64
from training_helpers import SHAPE, flat_params, make_trainer

from sdekit import NIVESDE, NIVPSDE, GFFCovariance
from sdekit.models import UNet
from sdekit.testing import GaussianOracle
from sdekit.training import denoising_loss, sample_training_times, save_image_grid


def test_unet_cifar10_configuration_has_35_7m_parameters():
    assert sum(p.numel() for p in UNet().parameters()) == 35_746_307


def test_unet_small_and_one_channel():
    m = UNet(
        in_channels=1,
        resolution=28,
        ch=16,
        ch_mult=(1, 2, 2),
        num_res_blocks=1,
        attn_resolutions=(7,),
        groups=8,
    )
    out = m(torch.randn(3, 1, 28, 28), torch.rand(3))
    assert out.shape == (3, 1, 28, 28)
    with pytest.raises(ValueError, match="divisible"):
        UNet(resolution=30)
    with pytest.raises(ValueError, match=r"x must have shape \(n, 1, H, W\)"):
        m(torch.randn(3, 3, 28, 28), torch.rand(3))


def test_loss_is_minimised_by_the_exact_model():
    """For Gaussian data the oracle's ε̂ = E[ε | x_t] minimises the expected loss: its
    loss is lower than any perturbed model's, and equals the analytic minimum."""
    sde = NIVPSDE(GFFCovariance(SHAPE, dtype=F64))
    oracle = GaussianOracle(sde, 0.2, GFFCovariance(SHAPE, alpha=1.5, dtype=F64))
    g = torch.Generator().manual_seed(0)
    x0 = oracle.sample_data(20000, g)
    t = sample_training_times(sde, 20000, generator=g)
    noise = torch.randn(x0.shape, generator=g, dtype=F64)
    best = denoising_loss(sde, oracle, x0, t, noise).mean()
    worse = denoising_loss(sde, lambda x, s: 1.05 * oracle(x, s), x0, t, noise).mean()
    assert best < worse
    # E‖ε - E[ε|x_t]‖²/d = 1 - E[(σ²/k) per mode]... estimated against the closed form
    alpha, sigma = sde.marginal(t)
    k = alpha[:, None] ** 2 * oracle.c_full.flatten()[None] + sigma[:, None] ** 2
    closed = (1 - sigma[:, None] ** 2 / k).mean()
    assert abs(float(best) - float(closed)) < 0.02


def test_training_times():
    sde = NIVESDE(GFFCovariance(SHAPE))
    t = sample_training_times(sde, 1000, generator=torch.Generator().manual_seed(0))
    assert float(t.min()) >= sde.default_eps and float(t.max()) <= 1
    d = sample_training_times(NIVPSDE(GFFCovariance(SHAPE)), 1000, discrete_steps=10)
    assert set((d * 10).round().long().tolist()) <= set(range(1, 11))


def test_likelihood_weighting_is_g2_over_sigma2():
    sde = NIVPSDE(GFFCovariance(SHAPE))
    x0 = torch.zeros(4, *SHAPE)
    t = torch.tensor([0.1, 0.3, 0.5, 0.9], dtype=F64)
    noise = torch.randn(4, *SHAPE)
    model = lambda x, s: torch.zeros_like(x)  # noqa: E731
    plain = denoising_loss(sde, model, x0, t, noise)
    weighted = denoising_loss(sde, model, x0, t, noise, likelihood_weighting=True)
    w = (sde.diffusion(t) ** 2 / sde.marginal(t)[1] ** 2).float()
    torch.testing.assert_close(weighted, plain * w)


def test_exact_resume(tmp_path):
    """k steps, checkpoint, resume to 2k == an uninterrupted 2k-step run (dropout on)."""
    straight = make_trainer(tmp_path / "a", steps=6)
    straight.fit()
    first = make_trainer(tmp_path / "b", steps=3)
    first.fit()
    resumed = make_trainer(tmp_path / "b", steps=6)
    assert resumed.resume_if_possible() and resumed.step == 3
    resumed.fit()
    torch.testing.assert_close(
        flat_params(resumed.model), flat_params(straight.model), rtol=0, atol=0
    )
    torch.testing.assert_close(flat_params(resumed.ema), flat_params(straight.ema), rtol=0, atol=0)
    rows = [json.loads(r) for r in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    ref = [json.loads(r) for r in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    by_step = {r["step"]: r["loss"] for r in rows}
    assert all(by_step[r["step"]] == r["loss"] for r in ref)


def test_resume_forgets_metrics_logged_after_the_checkpoint(tmp_path):
    tr = make_trainer(tmp_path, steps=4)
    tr.fit()
    with open(tmp_path / "metrics.jsonl", "a") as f:  # as if killed after logging step 6
        f.write(json.dumps({"step": 6, "loss": 1.0}) + "\n")
    again = make_trainer(tmp_path, steps=6)
    again.resume_if_possible()
    again.fit()
    steps = [json.loads(r)["step"] for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6]
    assert (tmp_path / "metrics.csv").read_text().count("\n") == 4


def test_killed_write_leaves_the_latest_checkpoint_intact(tmp_path, monkeypatch):
    tr = make_trainer(tmp_path, steps=2)
    tr.fit()
    latest = tmp_path / "checkpoints" / "latest.pt"
    before = latest.read_bytes()

    def dying_save(obj, f, *a, **k):
        f.write(b"partial garbage")
        raise KeyboardInterrupt("killed mid-write")

    monkeypatch.setattr(torch, "save", dying_save)
    tr.step += 1
    with pytest.raises(KeyboardInterrupt):
        tr.save_checkpoint()
    monkeypatch.undo()
    assert latest.read_bytes() == before
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))
    fresh = make_trainer(tmp_path, steps=2)
    assert fresh.resume_if_possible() and fresh.step == 2


def test_loading_a_mismatched_checkpoint_is_a_clear_error(tmp_path):
    tr = make_trainer(tmp_path, steps=1)
    tr.fit()
    state = tr.state_dict()
    state["model"]["extra.weight"] = torch.zeros(1)
    from sdekit.training import atomic_save

    bad = atomic_save(state, tmp_path / "bad.pt")
    with pytest.raises(
        ValueError,
        match=r"does not match the model: missing keys \[\], unexpected keys \['extra.weight'\]",
    ):
        make_trainer(tmp_path / "x").load_checkpoint(bad)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable sdekit checkpoint"):
        make_trainer(tmp_path / "y").load_checkpoint(tmp_path / "junk.pt")


def test_training_reduces_the_loss_and_writes_outputs(tmp_path):
    tr = make_trainer(
        tmp_path, steps=40, batch=16, lr=2e-3, sample_every=40, sample_n=4, sample_steps=3
    )
    tr.fit()
    rows = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert (tmp_path / "metrics.csv").read_text().startswith("step,loss,lr,steps_per_s")
    assert (tmp_path / "samples" / "step0000040.png").read_bytes()[:4] == b"\x89PNG"
    assert math.isfinite(tr.last_loss)


def test_image_grid(tmp_path):
    x = torch.linspace(-1, 1, 6 * 3 * 4 * 4).reshape(6, 3, 4, 4)
    p = save_image_grid(x, tmp_path / "g.png", nrow=3, scale=1)
    from PIL import Image

    img = Image.open(p)
    assert img.size == (3 * 6 + 2, 2 * 6 + 2)
