"""Guidance on Gaussian class-conditionals, where every prediction is exact: the mixture
oracle, the CFG identities, the guidance interval, CFG-rescale on whitened standard
deviations, classifier guidance in NI form (ε̂ − s σ Lᵀ ∇log p(c | x_t)), whitened
equivalence under GFF noise, and sampling the exact conditional to its class Gaussian."""

from __future__ import annotations

import pytest
import torch
from conftest import F64, random_spd

import sdekit
from sdekit import NIVPSDE, VPSDE, GFFCovariance
from sdekit.guidance import classifier, classifier_free
from sdekit.testing import GaussianMixtureOracle

SHAPE = (1, 4, 4)
D = 16
K = 3
TOL = dict(rtol=1e-10, atol=1e-10)


def _means():
    return [
        0.6 * torch.cos(torch.arange(D, dtype=F64) * (c + 1) / 3).reshape(SHAPE) for c in range(K)
    ]


def dense_mixture() -> GaussianMixtureOracle:
    """Three classes with dense covariances under GFF noise (the oracle's dense path)."""
    sde = NIVPSDE(GFFCovariance(SHAPE, dtype=F64))
    covs = [0.2 * random_spd(D, 20 + c, cond=10.0) for c in range(K)]
    return GaussianMixtureOracle(sde, _means(), covs, priors=[0.2, 0.3, 0.5])


def spectral_mixture() -> GaussianMixtureOracle:
    """Three classes with Fourier-diagonal covariances (exact population KL)."""
    sde = NIVPSDE(GFFCovariance(SHAPE, dtype=F64))
    covs = [GFFCovariance(SHAPE, alpha=0.5 + 0.5 * c, dtype=F64) for c in range(K)]
    return GaussianMixtureOracle(sde, _means(), covs, priors=[0.25, 0.25, 0.5])


@pytest.fixture(scope="module")
def mix():
    return dense_mixture()


def _point(mix, n=6, t=0.4, seed=0):
    x = mix.components[1].sample_marginal(n, t, torch.Generator().manual_seed(seed))
    return x, torch.full((n,), t, dtype=F64), torch.arange(n) % K


class Recorder:
    """A conditional model that records each call's batch and labels."""

    def __init__(self, model, num_classes):
        self.model, self.num_classes, self.calls = model, num_classes, []

    def __call__(self, x, t, y=None):
        self.calls.append((x.shape[0], None if y is None else y.clone()))
        return self.model(x, t, y=y)


class Whitened:
    """The whitened problem's model ε̂(L y, t, ...) (isotropic coordinates y = L⁻¹x)."""

    def __init__(self, model, sde, num_classes=K):
        self.model, self.L, self.num_classes = model, sde.covariance.sqrt_apply, num_classes

    def __call__(self, w, t, **kwargs):
        return self.model(self.L(w), t, **kwargs)


def test_the_mixture_oracle_is_exact(mix):
    """ε̂ of the mixture = −σ Lᵀ ∇log p_t (autograd of the exact density), the posterior
    weights sum to 1, and y picks each class's exact ε̂ (the null label K: the mixture)."""
    x, t, y = _point(mix)
    xg = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(mix.log_prob(xg, t).sum(), xg)
    sigma = mix.sde.marginal(t)[1].reshape(-1, 1, 1, 1)
    torch.testing.assert_close(mix(x, t), -sigma * mix.sde.covariance.sqrt_apply_t(grad), **TOL)
    torch.testing.assert_close(mix.log_posterior(x, t).exp().sum(-1), torch.ones(6, dtype=F64))
    out = mix(x, t, y=torch.cat([y[:4], torch.tensor([K, K])]))
    for i in range(4):
        torch.testing.assert_close(
            out[i], mix.components[int(y[i])].eps(x[i : i + 1], t[i : i + 1])[0]
        )
    torch.testing.assert_close(out[4:], mix.unconditional(x[4:], t[4:]), **TOL)


@pytest.mark.parametrize("scale", [0.0, 1.0, 2.5, -0.5])
def test_cfg_is_the_linear_combination_of_the_branches(mix, scale):
    """ε̂ = ε̂_u + s (ε̂_c − ε̂_u): s = 1 the conditional model, s = 0 the mixture."""
    x, t, y = _point(mix)
    eps_c, eps_u = mix(x, t, y=y), mix(x, t, y=torch.full_like(y, K))
    out = classifier_free(mix, scale, null_label=K)(x, t, y=y)
    torch.testing.assert_close(out, eps_u + scale * (eps_c - eps_u), **TOL)
    if scale in (0.0, 1.0):
        torch.testing.assert_close(out, eps_c if scale else eps_u, **TOL)


def test_cfg_runs_both_branches_in_one_batched_call(mix):
    """One call on 2n rows (labels, then null labels) at s ∉ {0, 1}; one pass of n rows at
    s = 1 and at s = 0 (rescale needs ε̂_c: both again)."""
    x, t, y = _point(mix)
    null = torch.full_like(y, K)
    for scale, rescale, batches, labels, passes in [
        (3.0, 0.0, [12], [torch.cat([y, null])], 2),
        (1.0, 0.0, [6], [y], 1),
        (0.0, 0.0, [6], [null], 1),
        (0.0, 0.5, [12], [torch.cat([y, null])], 2),
    ]:
        rec = Recorder(mix, K)
        g = classifier_free(rec, scale, null_label=K, rescale=rescale)
        g(x, t, y=y)
        assert [c[0] for c in rec.calls] == batches
        assert all(torch.equal(c[1], want) for c, want in zip(rec.calls, labels))
        assert g.passes(t) == g.passes_per_call == passes


def test_the_guidance_interval_guides_only_inside(mix):
    """Inside (t_lo, t_hi) the guided prediction, outside the conditional one (one pass);
    per-sample times are handled row by row."""
    x, _, y = _point(mix)
    g = classifier_free(mix, 2.0, null_label=K, interval=(0.3, 0.6))
    plain = classifier_free(mix, 2.0, null_label=K)
    t = torch.tensor([0.2, 0.3, 0.45, 0.6, 0.7, 0.45], dtype=F64)
    inside = torch.tensor([False, True, True, True, False, True])
    out = g(x, t, y=y)
    torch.testing.assert_close(out[inside], plain(x, t, y=y)[inside], **TOL)
    torch.testing.assert_close(out[~inside], mix(x, t, y=y)[~inside], **TOL)
    assert (g.passes(0.2), g.passes(0.45), g.passes(t)) == (1, 2, 2)
    rec = Recorder(mix, K)
    classifier_free(rec, 2.0, null_label=K, interval=(0.3, 0.6))(x, 0.8, y=y)
    assert [c[0] for c in rec.calls] == [6]


def test_cfg_rescale_uses_whitened_standard_deviations(mix):
    """φ = 0 is plain CFG; φ = 1 gives every sample the whitened std of ε̂_c; any φ is the
    blend φ ε̂·std(ε̂_c)/std(ε̂) + (1 − φ) ε̂, and measuring std on L ε̂ instead would differ."""
    x, t, y = _point(mix)
    eps_c, eps_u = mix(x, t, y=y), mix(x, t, y=torch.full_like(y, K))
    cfg = eps_u + 4.0 * (eps_c - eps_u)
    std = lambda e: e.flatten(1).std(1)  # noqa: E731
    torch.testing.assert_close(classifier_free(mix, 4.0, null_label=K, rescale=0.0)(x, t, y=y), cfg)
    full = classifier_free(mix, 4.0, null_label=K, rescale=1.0)(x, t, y=y)
    torch.testing.assert_close(std(full), std(eps_c), **TOL)
    blend = classifier_free(mix, 4.0, null_label=K, rescale=0.7)(x, t, y=y)
    ratio = (std(eps_c) / std(cfg)).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(blend, 0.7 * cfg * ratio + 0.3 * cfg, **TOL)
    L = mix.sde.covariance.sqrt_apply
    correlated = (std(L(eps_c)) / std(L(cfg))).reshape(-1, 1, 1, 1)
    assert (correlated - ratio).abs().max() > 1e-3  # the test tells the two apart


@pytest.mark.parametrize("scale", [0.0, 1.0, 2.5])
def test_classifier_guidance_with_the_exact_classifier_is_exact(mix, scale):
    """ε̂_u − s σ Lᵀ∇log p(c | x_t) = ε̂_u + s (ε̂_c − ε̂_u) under GFF noise: at s = 1 the exact
    conditional ε̂; the isotropic formula ε̂ − s σ ∇ is not."""
    x, t, y = _point(mix)
    eps_c, eps_u = mix(x, t, y=y), mix.unconditional(x, t)
    g = classifier(mix.unconditional, mix.classifier, scale, sde=mix.sde, num_classes=K)
    torch.testing.assert_close(g(x, t, y=y), eps_u + scale * (eps_c - eps_u), **TOL)
    if scale == 1.0:
        torch.testing.assert_close(g(x, t, y=y), eps_c, **TOL)
        sigma = mix.sde.marginal(t)[1].reshape(-1, 1, 1, 1)
        iso = eps_u - sigma * g.gradient(x, t, y)
        assert (iso - eps_c).abs().max() > 1e-2
    assert g.passes(t) == g.passes_per_call == 1


def test_classifier_guidance_of_a_conditional_model_passes_the_labels(mix):
    """A conditional model under classifier guidance is called with the labels; the
    interval switches the gradient term off outside it."""
    x, t, y = _point(mix)
    rec = Recorder(mix, K)
    g = classifier(rec, mix.classifier, 1.0, sde=mix.sde, num_classes=K, interval=(0.5, 1.0))
    torch.testing.assert_close(g(x, t, y=y), mix(x, t, y=y), **TOL)  # t = 0.4: outside
    assert torch.equal(rec.calls[0][1], y)


@pytest.mark.parametrize("kind", ["cfg", "classifier"])
@pytest.mark.parametrize("sampler", ["dpm_solver_2m", "ddim"])
def test_guidance_under_gff_equals_isotropic_guidance_in_whitened_coordinates(kind, sampler):
    """Sampling the guided model with Σ = GFF equals L times sampling the same guidance of
    the whitened problem (model ε̂(L y, t), classifier log p(c | L y)) with Σ = I."""
    mix = dense_mixture()
    sde, iso = mix.sde, VPSDE(SHAPE)
    L, Linv = sde.covariance.sqrt_apply, sde.covariance.inv_sqrt_apply
    white = Whitened(mix, sde)
    if kind == "cfg":
        kw = dict(null_label=K, interval=(0.05, 0.8), rescale=0.5)
        g, g_iso = classifier_free(mix, 2.5, **kw), classifier_free(white, 2.5, **kw)
    else:
        white_classifier = lambda w, t, c: mix.classifier(L(w), t, c)  # noqa: E731
        g = classifier(mix.unconditional, mix.classifier, 2.0, sde=sde, num_classes=K)
        white_u = Whitened(mix.unconditional, sde, num_classes=0)
        g_iso = classifier(white_u, white_classifier, 2.0, sde=iso, num_classes=K)
    x_T = sde.prior_sample(6, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6) % K
    opts = {"eta": 0.5} if sampler == "ddim" else {}
    run = lambda s, m, x: sdekit.sample(  # noqa: E731
        s,
        m,
        x_T=x,
        sampler=sampler,
        steps=8,
        model_kwargs={"y": y},
        generator=torch.Generator().manual_seed(1),
        **opts,
    )
    torch.testing.assert_close(
        run(sde, g, x_T), L(run(iso, g_iso, Linv(x_T))), rtol=1e-9, atol=1e-9
    )


@pytest.mark.parametrize("kind", ["cfg", "classifier"])
def test_sampling_the_exact_conditional_reaches_the_class_gaussian(kind):
    """Guidance at scale 1 of the exact models samples class c's Gaussian: the exact
    population KL of DPM-Solver-2M (20 NFE) to N(μ_c, C_c) is that of sampling class c's
    own oracle, and far below the KL to the other classes."""
    mix = spectral_mixture()
    if kind == "cfg":
        g = classifier_free(mix, 1.0, null_label=K)
    else:
        g = classifier(mix.unconditional, mix.classifier, 1.0, sde=mix.sde, num_classes=K)
    for c in range(K):
        y = torch.full((2,), c)  # affine_kl_per_dim runs the sampler on 2 draws
        out = {}

        def run(x, model=g, y=y):
            if "x" not in out:  # the same draws for every class's KL: sample once
                out["x"] = sdekit.sample(mix.sde, model, x_T=x, steps=20, model_kwargs={"y": y})
            return out["x"]

        own = mix.components[c].affine_kl_per_dim(
            lambda x, c=c: sdekit.sample(mix.sde, mix.components[c], x_T=x, steps=20)
        )
        kl = [mix.components[k].affine_kl_per_dim(run) for k in range(K)]
        assert kl[c] == pytest.approx(own, rel=1e-6, abs=1e-12) and kl[c] < 1e-3
        assert min(kl[k] for k in range(K) if k != c) > 100 * kl[c]
