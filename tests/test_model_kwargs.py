"""model_kwargs reach every model evaluation of every path with the batch's own rows; the
spec's conditioning (classes, guidance); network passes in info; bad labels and models."""

from __future__ import annotations

import pytest
import torch
from conftest import F64

import sdekit
from sdekit import NIVPSDE, GFFCovariance, IdentityCovariance
from sdekit.errors import InputError, InputTypeError
from sdekit.guidance import classifier, classifier_free
from sdekit.models import UNet
from sdekit.sampling import SAMPLERS, GaussianTeleport, SamplingSpec
from sdekit.testing import GaussianMixtureOracle, GaussianOracle

SHAPE = (1, 4, 4)
LABELS = torch.tensor([3, 0, 4, 1, 2])  # a permutation: row i ↔ label LABELS[i]
N = LABELS.numel()
PATHS = sorted(SAMPLERS) + [
    "torchsde:euler",
    "torchsde:srk",
    "torchdiffeq:euler",
    "torchdiffeq:rk4",
    "torchdiffeq:dopri5",
]


class Recorder:
    """A conditional model (N classes) recording, at every call, whether it got the labels,
    the per-sample weights ``w`` and the non-tensor ``tag`` of its own rows. x's rows carry
    their label in their mean (row i starts at 10·(y_i + 1) and every path maps all rows by
    the same scalar factor plus small noise), so the ordering of the rows' |mean| must be
    the ordering of the labels."""

    num_classes = N

    def __init__(self, check_rows: bool = True):
        self.calls, self.bad, self.check_rows = 0, [], check_rows

    def __call__(self, x, t, y=None, w=None, tag=None):
        self.calls += 1
        ok = y is not None and y.shape == (x.shape[0],) and tag == "kept"
        ok = ok and w is not None and torch.equal(w, y.to(F64) / 10)
        if ok and self.check_rows:
            ok = torch.equal(x.flatten(1).mean(1).abs().argsort(), y.argsort())
        if not ok:
            self.bad.append(self.calls)
        return 0.05 * x


def _kwargs(y=LABELS):
    return {"y": y, "w": y.to(F64) / 10, "tag": "kept"}


@pytest.fixture(scope="module")
def sde():
    return NIVPSDE(IdentityCovariance(SHAPE))


def _x_T(sde, labels=LABELS):
    z = sde.prior_sample(labels.numel(), generator=torch.Generator().manual_seed(0), dtype=F64)
    return 0.1 * z + 10.0 * (labels.to(F64) + 1).reshape(-1, 1, 1, 1)


@pytest.mark.parametrize("name", PATHS)
def test_model_kwargs_reach_every_evaluation_of_every_sampler(sde, name):
    rec = Recorder()
    steps = None if name == "torchdiffeq:dopri5" else 6
    _, info = sdekit.sample(
        sde, rec, x_T=_x_T(sde), sampler=name, steps=steps, model_kwargs=_kwargs(),
        generator=torch.Generator().manual_seed(1), return_info=True,
    )  # fmt: skip
    assert rec.calls == info.nfe > 0 and rec.bad == []
    assert info.network_passes == info.nfe


def test_model_kwargs_with_a_teleport_and_a_clamp(sde):
    data = torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(2), dtype=F64)
    jump = GaussianTeleport.from_data(sde, data, max_snr=1.0)
    rec = Recorder()
    _, info = sdekit.sample(
        sde, rec, x_T=_x_T(sde), steps=5, teleport=jump, clip_x0=1e3, model_kwargs=_kwargs(),
        return_info=True,
    )  # fmt: skip
    assert float(info.grid.t[0]) < sde.T and rec.calls == info.nfe == 5 and rec.bad == []


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_model_kwargs_reach_the_likelihood(sde, trace):
    rec = Recorder()
    x0 = _x_T(sde) * 0.05
    logp, nfe = sdekit.log_likelihood(
        sde, rec, x0, method="rk4", trace=trace, probes=2, model_kwargs=_kwargs(),
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert logp.shape == (N,) and rec.calls >= nfe == 4 and rec.bad == []
    images = torch.randint(0, 256, (N, *SHAPE), generator=torch.Generator().manual_seed(0)).byte()
    rec = Recorder(check_rows=False)  # dequantized images: rows carry no label
    bpd, _ = sdekit.bits_per_dim(sde, rec, images, method="euler", model_kwargs=_kwargs())
    assert bpd.shape == (N,) and rec.calls > 0 and rec.bad == []


def test_model_kwargs_reach_optimize_grid(sde):
    """The n prior draws are optimize_grid's own (their rows carry no label): every call of
    the reference solve and of the search gets the labels and weights of those n rows."""
    rec = Recorder(check_rows=False)
    fit = sdekit.optimize_grid(
        sde, rec, sampler="ddim", steps=4, n=N, reference_steps=8, max_evaluations=3,
        model_kwargs=_kwargs(), return_info=True, dtype=F64,
    )  # fmt: skip
    assert fit.evaluations >= 1 and rec.calls > 8 and rec.bad == []


# ------------------------------------------------------------------ the spec's conditioning
def _mixture():
    sde = NIVPSDE(GFFCovariance(SHAPE, dtype=F64))
    means = [0.5 * c * torch.ones(SHAPE, dtype=F64) for c in range(3)]
    covs = [GFFCovariance(SHAPE, alpha=1.0 + 0.3 * c, dtype=F64) for c in range(3)]
    return GaussianMixtureOracle(sde, means, covs)


def test_the_spec_classes_and_guidance_are_the_wrapper_with_block_labels():
    """classes → labels in blocks (a row per class), guidance → classifier_free with the
    null label K; info counts two network passes per guided evaluation."""
    mix = _mixture()
    x_T = mix.sde.prior_sample(6, generator=torch.Generator().manual_seed(0))
    spec = SamplingSpec(steps=6, classes="all", guidance=2.0, guidance_interval=(0.2, 1.0))
    x, info = sdekit.sample(mix.sde, mix, x_T=x_T, spec=spec, return_info=True)
    g = classifier_free(mix, 2.0, null_label=3, interval=(0.2, 1.0))
    labels = {"y": torch.tensor([0, 0, 1, 1, 2, 2])}
    want, winfo = sdekit.sample(mix.sde, g, x_T=x_T, steps=6, model_kwargs=labels, return_info=True)
    torch.testing.assert_close(x, want, rtol=1e-12, atol=1e-12)
    inside = int((info.grid.t >= 0.2).sum())
    assert info.network_passes == winfo.network_passes == info.nfe + inside
    one = SamplingSpec(steps=6, classes=(2, 0))
    x1 = sdekit.sample(mix.sde, mix, x_T=x_T[:4], spec=one)
    y = {"y": torch.tensor([2, 2, 0, 0])}
    torch.testing.assert_close(
        x1, sdekit.sample(mix.sde, mix, x_T=x_T[:4], steps=6, model_kwargs=y)
    )


def test_an_optimized_grid_is_fitted_to_the_conditioned_model():
    from sdekit.sampling import SamplingContext, resolve

    """The "optimized" grid rule fits the grid with the spec's labels and guidance (both
    branches: labels then null labels) on its n draws."""
    mix = _mixture()
    calls = []
    spec = SamplingSpec(
        sampler="ddim", steps=4, grid="optimized", classes=1, guidance=1.5,
        grid_options={"n": 2, "max_evaluations": 2, "reference_steps": 8},
    )  # fmt: skip

    class Model:
        num_classes = 3

        def __call__(self, x, t, y=None):
            calls.append(y.clone())
            return mix(x, t, y=y)

    plan = resolve(spec, mix.sde, SamplingContext(model=Model(), dtype=F64))
    assert plan.grid.num_intervals == 3 and calls  # 4 calls: 3 intervals + denoising
    assert all(torch.equal(y, torch.tensor([1, 1, 3, 3])) for y in calls)  # labels, null labels


# ------------------------------------------------------------------------------- bad input
def _tiny_unet(num_classes):
    return UNet(
        in_channels=1, resolution=4, ch=8, ch_mult=(1,), num_res_blocks=1,
        attn_resolutions=(), groups=4, num_classes=num_classes,
    ).double()  # fmt: skip


@pytest.mark.parametrize(
    "labels, error, match",
    [
        (torch.tensor([[0], [1], [2]]), InputError, r"model_kwargs\['y'\] must have shape \(3,\)"),
        (torch.tensor([0, 1]), InputError, r"model_kwargs\['y'\] must have first dimension 3"),
        (torch.tensor([0.0, 1.0, 2.0]), InputTypeError, "integer class labels"),
        (torch.tensor([0, 1, 4]), InputError, r"labels in 0 … 2, or 3 \(the null label\)"),
        (torch.tensor([0, -1, 2]), InputError, r"labels in 0 … 2"),
        ([0, 1, 2], InputTypeError, r"model_kwargs\['y'\] must be a tensor"),
    ],
)
def test_bad_labels_are_refused_naming_the_argument(sde, labels, error, match):
    net = _tiny_unet(3)
    x_T = sde.prior_sample(3, dtype=F64)
    with pytest.raises(error, match=match):
        sdekit.sample(sde, net, x_T=x_T, steps=2, model_kwargs={"y": labels})


def test_bad_model_kwargs_and_models(sde):
    x_T = sde.prior_sample(3, dtype=F64)
    with pytest.raises(InputTypeError, match="model_kwargs must be a dict"):
        sdekit.sample(sde, _tiny_unet(3), x_T=x_T, steps=2, model_kwargs=[1, 2])
    with pytest.raises(InputError, match=r"class-conditional \(3 classes\): give its labels"):
        sdekit.sample(sde, _tiny_unet(3), x_T=x_T, steps=2)
    with pytest.raises(InputError, match="unconditional"):
        sdekit.sample(sde, _tiny_unet(0), x_T=x_T, steps=2, model_kwargs={"y": torch.arange(3)})
    with pytest.raises(InputError, match=r"class-conditional \(3 classes\)"):
        sdekit.log_likelihood(sde, _tiny_unet(3), x_T, method="euler")
    spec = SamplingSpec(steps=2, classes=1, guidance=2.0)
    with pytest.raises(InputError, match="unconditional"):
        sdekit.sample(sde, _tiny_unet(0), x_T=x_T, spec=spec)
    with pytest.raises(InputError, match="label in 0 … 2"):
        sdekit.sample(sde, _tiny_unet(3), x_T=x_T, spec=spec.replace(classes=3))
    with pytest.raises(InputError, match="give the labels once"):
        sdekit.sample(sde, _tiny_unet(3), x_T=x_T, spec=spec, model_kwargs={"y": torch.arange(3)})


def test_bad_guidance_arguments():
    oracle = GaussianOracle(NIVPSDE(IdentityCovariance(SHAPE)), 0.0, IdentityCovariance(SHAPE))
    net = _tiny_unet(3)
    with pytest.raises(InputError, match="needs a class-conditional model"):
        classifier_free(oracle, 2.0, null_label=0)
    with pytest.raises(InputError, match="needs a class-conditional model"):
        classifier_free(_tiny_unet(0), 2.0, null_label=0)
    with pytest.raises(InputError, match=r"null_label must be .* in 0 … 3"):
        classifier_free(net, 2.0, null_label=4)
    for bad in (dict(scale=float("nan")), dict(rescale=1.5), dict(interval=(0.5, 0.1))):
        with pytest.raises(InputError, match=next(iter(bad))):
            classifier_free(net, **{"scale": 2.0, "null_label": 3, **bad})
    x, t = torch.zeros(2, *SHAPE, dtype=F64), torch.full((2,), 0.5, dtype=F64)
    with pytest.raises(InputError, match=r"needs the labels .* g\(x, t, y=labels\)"):
        classifier_free(net, 2.0, null_label=3)(x, t)
    sde = oracle.sde
    with pytest.raises(InputError, match="num_classes must be"):
        classifier(oracle, lambda x, t, y: x.sum((1, 2, 3)), 1.0, sde=sde, num_classes=0)
    g = classifier(oracle, lambda x, t, y: x.sum(), 1.0, sde=sde, num_classes=2)
    with pytest.raises(InputError, match=r"log p\(y \| x_t\) per sample, shape \(2,\)"):
        g(x, t, y=torch.tensor([0, 1]))
    with pytest.raises(InputError, match=r"labels in 0 … 1; got"):
        g(x, t, y=torch.tensor([0, 2]))  # the null label is no class of a classifier
