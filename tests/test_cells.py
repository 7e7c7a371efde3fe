"""The cell store: samples keyed by the spec *and* the weights that drew them, validated
before they are scored."""

from __future__ import annotations

import pytest
import torch

import sdekit
from sdekit import NIVPSDE, GFFCovariance
from sdekit.experiments.cells import CellStore
from sdekit.files import CheckpointError, atomic_save, load_checkpoint
from sdekit.sampling import SamplingSpec
from sdekit.testing import GaussianOracle


class Draws:
    """A stand-in sampler: counts its calls, returns n images in [-1, 1]."""

    def __init__(self):
        self.calls = 0

    def __call__(self, spec):
        self.calls += 1
        grid = sdekit.sampling.Grid.from_times(NIVPSDE(GFFCovariance((1, 2, 2))),
                                               torch.tensor([1.0, 0.5]))  # fmt: skip
        info = sdekit.sampling.SampleInfo(nfe=spec.steps, grid=grid, sampler=spec.sampler)
        return torch.zeros(spec.n, 1, 4, 4), info


def test_a_cell_is_drawn_once_per_spec_and_weights(tmp_path):
    spec = SamplingSpec(sampler="ddim", steps=3, n=2, seed=0)
    draws = Draws()
    old = CellStore(tmp_path, "step10-aaaa")
    first = old.get(spec, draws)
    assert draws.calls == 1 and old.get(spec, draws)["nfe"] == first["nfe"] == 3
    assert draws.calls == 1  # reused
    new = CellStore(tmp_path, "step50-bbbb")  # more training: other weights, other cell
    new.get(spec, draws)
    assert draws.calls == 2 and new.path(spec) != old.path(spec)
    old.get(spec.replace(seed=1), draws)  # another seed, another cell
    assert draws.calls == 3
    assert old.relative(spec) == f"evaluation/samples/{old.path(spec).name}"


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda c: c.update(images=c["images"][:1]), "1 images for n = 2"),
        (lambda c: c.update(nfe="lots"), "nfe 'lots'"),
        (lambda c: c.update(model="step1-other"), "drawn by model 'step1-other'"),
        (lambda c: c["spec"].update(steps=4), "its spec differs"),
        (lambda c: c.pop("images"), "no uint8 images"),
    ],
)
def test_a_stored_cell_that_is_not_what_its_spec_says_is_refused(tmp_path, tamper, message):
    spec = SamplingSpec(sampler="ddim", steps=3, n=2, seed=0)
    store = CellStore(tmp_path, "step10-aaaa")
    store.get(spec, Draws())
    cell = load_checkpoint(store.path(spec))
    tamper(cell)
    atomic_save(cell, store.path(spec))
    with pytest.raises(CheckpointError, match=message):
        store.get(spec, Draws())


def test_a_grid_that_does_not_start_at_T_needs_its_own_x_T():
    sde = NIVPSDE(GFFCovariance((1, 4, 4), dtype=torch.float64))
    oracle = GaussianOracle(sde, 0.0, GFFCovariance((1, 4, 4), alpha=1.3, dtype=torch.float64))
    grid = torch.linspace(0.5, 1e-3, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"starts at t = 0.5, not at T = 1.*give x_T"):
        sdekit.sample(sde, oracle, n=2, sampler="ddim", grid=grid)
    x_T = sde.perturb(torch.zeros(2, 1, 4, 4, dtype=torch.float64), torch.tensor(0.5))[0]
    assert sdekit.sample(sde, oracle, x_T=x_T, sampler="ddim", grid=grid).shape == x_T.shape
    with pytest.raises(ValueError, match="at least one sample"):
        sdekit.sample(sde, oracle, x_T=x_T[:0], sampler="ddim", grid=grid)


def test_run_folder_writes_never_follow_a_symlink(tmp_path):
    """A dangling link at a sample grid's name is skipped (never overwritten, never
    followed); a link at an evaluation summary is refused; nothing appears outside."""
    from sdekit.experiments.evaluation import write_summary
    from sdekit.experiments.runs import unused_stem

    outside = tmp_path / "outside"
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    (run / "samples" / "ddim_3steps.png").symlink_to(outside / "grid.png")
    assert unused_stem(run / "samples" / "ddim_3steps").name == "ddim_3steps-2"
    (run / "evaluation.json").symlink_to(outside / "summary.json")
    summary = {"rows": [], "features": None, "samples_per_cell": 2}
    with pytest.raises(ValueError, match="symbolic link"):
        write_summary(run, "evaluation", summary)
    with pytest.raises(ValueError, match="stay inside"):
        write_summary(run, "../escaped", summary)
    assert not outside.exists() and not (tmp_path / "escaped.json").exists()
