"""One sampling specification: a frozen JSON value, validated once, resolved once; ``steps``
is the model-evaluation budget of every sampler."""

from __future__ import annotations

import json

import pytest
import torch

import sdekit
from sdekit import NIVPSDE, GFFCovariance
from sdekit.sampling import GaussianTeleport, SamplingSpec, resolve, resolve_sampler
from sdekit.testing import GaussianOracle

F64 = torch.float64
SHAPE = (1, 6, 6)
SINGLESTEP = ("dpm_solver_2s", "dpm_solver_3s", "dpmpp_2s", "dpmpp_3s")
NAMES = [s for s in sdekit.available_samplers() if ":" not in s]
NAMES += ["torchdiffeq:euler", "torchdiffeq:midpoint", "torchdiffeq:rk4"]
NAMES += ["torchsde:euler", "torchsde:srk"]


@pytest.fixture(scope="module")
def oracle():
    sde = NIVPSDE(GFFCovariance(SHAPE, dtype=F64))
    return GaussianOracle(sde, 0.1, GFFCovariance(SHAPE, alpha=1.4, dtype=F64))


@pytest.mark.parametrize("name", NAMES)
def test_steps_is_the_model_evaluation_budget(oracle, name):
    """nfe <= steps, and as many as the sampler's structure allows: every call of a
    one-call-per-interval sampler, the remainder of a k-call one left unspent, and
    singlestep DPM-Solver's mixed orders spend the budget exactly."""
    entry = resolve_sampler(name)
    for steps in (5, 10, 20):
        _, info = sdekit.sample(
            oracle.sde, oracle, n=2, sampler=name, steps=steps, dtype=F64, return_info=True
        )
        denoise = int(info.grid.denoise)
        budget = steps - denoise
        k = entry.evals_per_step or 2  # pc: one corrector + one predictor call
        expected = budget if name in SINGLESTEP else k * (budget // k)
        assert info.nfe <= steps
        assert info.nfe == expected + denoise, (steps, info.nfe)


@pytest.mark.parametrize("name", [n for n in NAMES if not resolve_sampler(n).stochastic])
def test_the_analytic_first_step_keeps_the_budget(oracle, name):
    """With afs=True the grid is the one steps + 1 calls buy and one call is free: nfe is
    what steps + 1 would spend, less one."""
    entry = resolve_sampler(name)
    for steps in (5, 10):
        _, info = sdekit.sample(oracle.sde, oracle, n=2, sampler=name, steps=steps, afs=True,
                                dtype=F64, return_info=True)  # fmt: skip
        denoise = int(info.grid.denoise)
        budget = steps - denoise + 1
        k = entry.evals_per_step
        expected = budget if name in SINGLESTEP else k * (budget // k)
        assert info.nfe == expected - 1 + denoise <= steps, (steps, info.nfe)


def test_an_adaptive_solver_takes_no_budget(oracle):
    with pytest.raises(ValueError, match="chooses its own steps"):
        sdekit.sample(oracle.sde, oracle, n=2, sampler="torchdiffeq:dopri5", steps=10)
    _, info = sdekit.sample(
        oracle.sde, oracle, n=2, sampler="torchdiffeq:dopri5", dtype=F64, return_info=True
    )
    assert info.nfe > 0 and info.spec.steps is None


def test_the_spec_is_a_frozen_json_value_with_a_stable_key():
    spec = SamplingSpec(
        sampler="ddim", steps=10, grid=(1.0, 0.5, 1e-3), options={"eta": 0.5}, clip_x0=1.0,
        teleport=1.0, n=4, seed=(0, 1),
    )  # fmt: skip
    again = SamplingSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec and again.key() == spec.key() and hash(again) == hash(spec)
    assert spec.replace(seed=(0, 2)).key() != spec.key()
    assert [s.seed for s in spec.per_seed()] == [0, 1]
    with pytest.raises(AttributeError):
        spec.steps = 3
    assert SamplingSpec(clip_x0=0).clip_x0 is None  # 0: off


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(sampler="nope"), "unknown sampler 'nope'"),
        (dict(steps=0), "steps must be an int >= 1"),
        (dict(steps=2.5), "steps must be an int"),
        (dict(grid="cosine"), "unknown grid 'cosine'"),
        (dict(clip_x0=-1.0), "clip_x0 must be > 0"),
        (dict(teleport=float("nan")), "teleport"),
        (dict(seed=(1, 1)), "distinct"),
        (dict(options={"eta": object()}), "options"),
        (dict(denoise="yes"), "denoise must be"),
    ],
)
def test_a_bad_field_is_refused_when_the_spec_is_built(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SamplingSpec(**kwargs)


def test_an_explicit_grid_must_be_what_the_budget_buys(oracle):
    t = torch.tensor([1.0, 0.6, 0.3, 0.1, 1e-3], dtype=F64)
    _, info = sdekit.sample(oracle.sde, oracle, n=2, sampler="ddim", grid=t, return_info=True)
    assert info.nfe == 5  # 4 intervals and the final denoising step
    with pytest.raises(ValueError, match="steps=7 buys 6 intervals of 'ddim' but the grid has 4"):
        sdekit.sample(oracle.sde, oracle, n=2, sampler="ddim", steps=7, grid=t)


def test_an_optimized_grid_composes_with_a_teleport(oracle):
    sde = oracle.sde
    jump = GaussianTeleport(sde, 0.1, GFFCovariance(SHAPE, alpha=1.4, dtype=F64))
    t = sdekit.optimize_grid(sde, oracle, sampler="heun", steps=7, n=2, teleport=jump,
                             max_evaluations=8, reference_steps=40, dtype=F64)  # fmt: skip
    assert float(t[0]) == jump.time and t.numel() == 4  # 3 Heun intervals + denoising
    _, info = sdekit.sample(sde, oracle, n=2, sampler="heun", steps=7, grid=t, teleport=jump,
                            dtype=F64, return_info=True)  # fmt: skip
    assert info.nfe == 7
    spec = SamplingSpec(sampler="heun", steps=7, teleport=jump.max_snr)
    plan = resolve(spec, sde, teleport=jump)
    assert float(plan.grid.t[0]) == jump.time and plan.grid.budget == 6


def test_conditioning_fields_keep_the_old_keys_and_are_validated():
    """Unset conditioning fields are absent from to_dict() and key(): the keys of specs
    without them are those computed before the fields existed."""
    assert SamplingSpec().key() == "55438cb0430abf07"
    old = SamplingSpec(
        sampler="ddim", steps=10, grid=(1.0, 0.5, 1e-3), options={"eta": 0.5}, clip_x0=1.0,
        teleport=1.0, n=4, seed=(0, 1),
    )  # fmt: skip
    assert old.key() == "0716c17657968a50" and "classes" not in old.to_dict()
    spec = SamplingSpec(
        steps=20, classes=[3, 1], guidance=1.5, guidance_interval=[0.1, 0.7],
        guidance_rescale=0.7,
    )  # fmt: skip
    d = json.loads(json.dumps(spec.to_dict()))
    assert d["classes"] == [3, 1] and d["guidance"] == 1.5 and d["guidance_interval"] == [0.1, 0.7]
    assert SamplingSpec.from_dict(d) == spec and spec.classes == (3, 1)
    assert len({spec.key(), spec.replace(guidance=2.0).key(), spec.replace(classes="all").key(),
                SamplingSpec(steps=20).key()}) == 4  # fmt: skip
    assert spec.label() == "dpm_solver_2m_20nfe_classes3-1_cfg1.5_interval0.1-0.7_rescale0.7"
    assert SamplingSpec(classes=2).label() == "dpm_solver_2m_class2"
    assert SamplingSpec(guidance=1.0, guidance_rescale=0).guidance_rescale is None
    for bad, match in [
        (dict(classes=-1), "classes must be"),
        (dict(classes=[]), "classes must be"),
        (dict(classes=[1, 1]), "distinct"),
        (dict(classes="some"), "classes must be"),
        (dict(guidance=float("inf")), "guidance"),
        (dict(guidance_interval=(0.1, 0.5)), "need guidance"),
        (dict(guidance=2.0, guidance_interval=(0.5, 0.1)), "t_lo <= t_hi"),
        (dict(guidance=2.0, guidance_rescale=1.5), r"\[0, 1\]"),
    ]:
        with pytest.raises(ValueError, match=match):
            SamplingSpec(**bad)
