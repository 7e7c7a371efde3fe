"""Fréchet distance against closed forms; streaming statistics; spectra."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import F64, random_spd

from sdekit.metrics import (
    FeatureStats,
    frechet_distance,
    frechet_distance_bootstrap,
    log_spectrum_distance,
)


def test_identical_and_shifted():
    C = random_spd(5, 0)
    mu = torch.arange(5, dtype=F64)
    assert frechet_distance(mu, C, mu, C) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(mu, C, mu + 2, C) == pytest.approx(4 * 5, rel=1e-10)


def test_commuting_covariances_closed_form():
    """Diagonal covariances: FD = Σ (√a_i − √b_i)²."""
    a = torch.tensor([1.0, 4.0, 0.25, 9.0], dtype=F64)
    b = torch.tensor([4.0, 1.0, 1.0, 9.0], dtype=F64)
    ref = float(((a.sqrt() - b.sqrt()) ** 2).sum())
    assert frechet_distance(
        torch.zeros(4), torch.diag(a), torch.zeros(4), torch.diag(b)
    ) == pytest.approx(ref, rel=1e-12)
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=F64))  # same in any rotated basis
    got = frechet_distance(
        torch.zeros(4), q @ torch.diag(a) @ q.T, torch.zeros(4), q @ torch.diag(b) @ q.T
    )
    assert got == pytest.approx(ref, rel=1e-9)


def test_near_singular_and_rank_deficient():
    """Rank-1 covariances: FD = (√a − √b)² along the shared direction, no NaN."""
    u = torch.tensor([1.0, 2.0, 2.0], dtype=F64) / 3
    c1, c2 = 4.0 * torch.outer(u, u), 1.0 * torch.outer(u, u)
    assert frechet_distance(torch.zeros(3), c1, torch.zeros(3), c2) == pytest.approx(1.0, abs=1e-7)
    tiny = c1 + 1e-14 * torch.eye(3, dtype=F64)
    assert math.isfinite(frechet_distance(torch.zeros(3), tiny, torch.zeros(3), c2))
    # orthogonal rank-1: FD = tr C1 + tr C2
    v = torch.tensor([2.0, -1.0, 0.0], dtype=F64) / math.sqrt(5)
    assert frechet_distance(torch.zeros(3), c1, torch.zeros(3), torch.outer(v, v)) == pytest.approx(
        5.0, abs=1e-7
    )


def test_streaming_statistics_match_batch_and_survive_offsets():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 6, generator=g, dtype=F64) @ random_spd(6, 1) + 1e6
    s = FeatureStats(6)
    for chunk in x.split(137):
        s.update(chunk)
    torch.testing.assert_close(s.mean, x.mean(0))
    torch.testing.assert_close(s.covariance, torch.cov(x.T), rtol=1e-8, atol=1e-6)
    t = FeatureStats(6)
    t.update(x)
    assert s.frechet_distance(t) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match=r"features must have shape \(n, 6\)"):
        s.update(torch.zeros(3, 5))


def test_bad_shapes():
    with pytest.raises(ValueError, match="cov2 must have shape"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(3), torch.eye(2))


def test_bootstrap_spread_matches_the_spread_over_independent_draws():
    """The bootstrap standard deviation of one sample's FID estimates the standard
    deviation of the FID over fresh samples from the same distribution."""
    g = torch.Generator().manual_seed(0)
    d, n = 4, 300
    A = torch.linalg.cholesky(random_spd(d, 2)).mT
    mu = torch.tensor([0.3, -0.2, 0.0, 0.1], dtype=F64)
    ref = FeatureStats(d)
    ref.update(torch.randn(20_000, d, generator=g, dtype=F64))

    def draw():
        return mu + torch.randn(n, d, generator=g, dtype=F64) @ A

    fids = []
    for _ in range(300):
        s = FeatureStats(d)
        s.update(draw())
        fids.append(s.frechet_distance(ref))
    true_sd = torch.tensor(fids).std()
    boot_sd = torch.stack(
        [frechet_distance_bootstrap(draw(), ref, n_boot=200, generator=g).std() for _ in range(10)]
    )
    assert boot_sd.mean() == pytest.approx(float(true_sd), rel=0.25)
    # one resample of the full data with identity indices reproduces the point estimate
    x = draw()
    s = FeatureStats(d)
    s.update(x)
    reps = frechet_distance_bootstrap(x, ref, n_boot=50, generator=g)
    assert reps.shape == (50,) and reps.dtype == F64 and (reps >= 0).all()
    assert abs(float(reps.median()) - s.frechet_distance(ref)) < 4 * float(reps.std())


def test_bootstrap_bad_input():
    ref = FeatureStats(3)
    ref.update(torch.randn(10, 3))
    with pytest.raises(ValueError, match=r"features must have shape \(n, 3\)"):
        frechet_distance_bootstrap(torch.zeros(5, 4), ref)
    with pytest.raises(ValueError, match="n_boot must be >= 2"):
        frechet_distance_bootstrap(torch.zeros(5, 3), ref, n_boot=1)


def test_log_spectrum_distance():
    a = torch.randn(256, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    b = torch.randn(256, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    assert log_spectrum_distance(a, b) < 0.1
    assert log_spectrum_distance(a, 3 * b) == pytest.approx(math.log(9), rel=0.05)


def test_precision_recall_known_answers():
    from sdekit.metrics import knn_radii, precision_recall

    g = torch.Generator().manual_seed(0)
    real = torch.randn(600, 4, generator=g, dtype=F64)
    assert precision_recall(real, real.clone()) == (1.0, 1.0)
    far = real + 100.0
    assert precision_recall(real, far) == (0.0, 0.0)
    # fakes that only cover the half x0 > 0 of the real data: precision 1, recall ≈ ½
    half = real[real[:, 0] > 0]
    p, r = precision_recall(real, half)
    assert p == 1.0 and 0.5 < r < 0.75  # balls at the cut reach a little past it
    # k-th neighbour radii on a line 0, 1, 2, ..., 9: interior points have 2nd-NN distance 1
    line = torch.arange(10, dtype=F64)[:, None]
    torch.testing.assert_close(knn_radii(line, k=2)[1:-1], torch.ones(8, dtype=F64))
    with pytest.raises(ValueError, match="k must satisfy"):
        knn_radii(line, k=10)
    with pytest.raises(ValueError, match="differ in dimension"):
        precision_recall(real, real[:, :3])


def test_noise_prediction_calibration_on_the_exact_model():
    """E⟨ε̂, ε⟩ = E‖ε̂‖² for ε̂ = E[ε | x_t]: ratio 1 at every t; a model that shrinks ε̂ by
    3 % reads 1/0.97, and its MSE grows by the known amount."""
    from sdekit import NIVPSDE, GFFCovariance
    from sdekit.metrics import noise_prediction_calibration
    from sdekit.testing import GaussianOracle

    shape = (1, 8, 8)
    sde = NIVPSDE(GFFCovariance(shape, dtype=F64))
    oracle = GaussianOracle(sde, 0.1, GFFCovariance(shape, alpha=1.5, dtype=F64))
    x0 = oracle.sample_data(4000, generator=torch.Generator().manual_seed(0))
    times = (0.05, 0.3, 0.7, 1.0)
    exact = noise_prediction_calibration(
        sde, oracle, x0, times, generator=torch.Generator().manual_seed(1)
    )
    for row in exact:
        assert row["ratio"] == pytest.approx(1.0, abs=0.01), row
        assert row["mse"] == pytest.approx(1 - row["energy"], abs=0.01), row
    assert exact[-1]["energy"] > 0.99 and exact[0]["energy"] < 0.9
    shrunk = noise_prediction_calibration(
        sde, lambda x, t: 0.97 * oracle(x, t), x0, times, generator=torch.Generator().manual_seed(1)
    )
    for a, b in zip(exact, shrunk, strict=True):
        assert b["ratio"] == pytest.approx(a["ratio"] / 0.97, rel=1e-12)
        assert b["energy"] == pytest.approx(0.97**2 * a["energy"], rel=1e-12)
    with pytest.raises(ValueError, match=r"t must lie in \[0, T"):
        noise_prediction_calibration(sde, oracle, x0, (1.5,))


def test_denoising_error_spectrum_on_the_exact_model():
    """For stationary Gaussian data the exact model is the Wiener denoiser: its pixel-space
    error per ring equals P σ²λ/(α²P + σ²λ) (ratio 1 within MC error) under white and GFF noise (a
    missing or wrong L in x̂₀ = (x − σLε̂)/α would break it under GFF); a shrunk ε̂ reads
    worse than linear."""
    from sdekit import NIVPSDE, GFFCovariance, IdentityCovariance
    from sdekit.metrics import denoising_error_spectrum
    from sdekit.testing import GaussianOracle

    shape = (1, 8, 8)
    data = GFFCovariance(shape, alpha=1.5, dtype=F64)
    for noise in (IdentityCovariance(shape), GFFCovariance(shape, dtype=F64)):
        sde = NIVPSDE(noise)
        oracle = GaussianOracle(sde, 0.0, data)
        x0 = oracle.sample_data(6000, generator=torch.Generator().manual_seed(0))
        rows = denoising_error_spectrum(
            sde, oracle, x0, (0.1, 0.4, 0.8), generator=torch.Generator().manual_seed(1)
        )
        for row in rows:  # stationary data: the affine and the stationary baseline agree
            assert row["ratio"].sub(1).abs().max() < 0.08, (noise, row["t"], row["ratio"])
            assert row["ratio_stationary"].sub(1).abs().max() < 0.08, (noise, row["t"])
            assert row["stationary"].le(row["data"] * (1 + 1e-9)).all()
        # the data's ring power is the generating spectrum's (within MC error)
        lam = data.eigenvalues.expand(shape)[0]
        assert rows[0]["data"][0] == pytest.approx(float(lam[0, 0]), rel=0.08)
        shrunk = denoising_error_spectrum(
            sde,
            lambda x, t: 0.8 * oracle(x, t),
            x0,
            (0.4,),
            generator=torch.Generator().manual_seed(1),
        )
        assert shrunk[0]["ratio"].min() > 1.0
    from sdekit import CholeskyCovariance

    chol = NIVPSDE(CholeskyCovariance(torch.eye(4, dtype=F64), (1, 2, 2)))
    with pytest.raises(TypeError, match="diagonal in the Fourier basis"):
        denoising_error_spectrum(chol, lambda x, t: x, torch.zeros(3, 1, 2, 2, dtype=F64), (0.5,))


def test_the_affine_baseline_is_the_exact_denoiser_of_non_stationary_gaussian_data():
    """For non-stationary Gaussian data (a dense C) the exact model is the affine Wiener
    denoiser μ + αCK⁻¹(x_t − αμ): ``linear`` (its error per mode, computed in closed form)
    matches the exact model's measured error in every band (ratio 1 within MC error), while
    the stationary baseline, which ignores where the variance sits, reads the exact model as
    beating "linear" (ratio_stationary < 1)."""
    from conftest import random_spd

    from sdekit import NIVPSDE, CholeskyCovariance, GFFCovariance
    from sdekit.covariance import GaussianStatistics
    from sdekit.metrics import denoising_error_spectrum
    from sdekit.testing import GaussianOracle

    shape = (1, 6, 6)
    scales = torch.linspace(0.1, 2.0, 36, dtype=F64)  # variances far from stationary
    C = scales.sqrt()[:, None] * random_spd(36, 5, cond=20.0) * scales.sqrt()[None, :]
    mean = torch.linspace(-0.5, 0.5, 36, dtype=F64).reshape(shape)
    sde = NIVPSDE(GFFCovariance(shape, dtype=F64))
    oracle = GaussianOracle(sde, mean, CholeskyCovariance(C, shape))
    x0 = oracle.sample_data(6000, generator=torch.Generator().manual_seed(0))
    exact = GaussianStatistics(mean, CholeskyCovariance(C, shape))
    for gaussian in (exact, None):  # None: the dense Gaussian of x0 itself
        rows = denoising_error_spectrum(sde, oracle, x0, (0.2, 0.5, 0.8), gaussian=gaussian,
                                        generator=torch.Generator().manual_seed(1))  # fmt: skip
        for row in rows:
            assert row["baseline"] == "affine"
            assert row["ratio"].sub(1).abs().max() < 0.08, (row["t"], row["ratio"])
    assert min(float(r["ratio_stationary"].min()) for r in rows) < 0.9
    with pytest.raises(ValueError, match="gaussian has event_shape"):
        wrong = GaussianStatistics(0.0, CholeskyCovariance(torch.eye(4, dtype=F64), (1, 2, 2)))
        denoising_error_spectrum(sde, oracle, x0[:4], (0.5,), gaussian=wrong)


def test_affine_error_per_mode_refuses_mismatched_and_oversized_inputs(monkeypatch):
    from sdekit import CholeskyCovariance, GFFCovariance
    from sdekit.covariance import GaussianStatistics, statistics
    from sdekit.metrics.calibration import affine_error_per_mode

    gaussian = GaussianStatistics(0.0, CholeskyCovariance(torch.eye(16, dtype=F64), (1, 4, 4)))
    with pytest.raises(ValueError, match=r"noise covariance has \(1, 2, 2\)"):
        affine_error_per_mode(gaussian, GFFCovariance((1, 2, 2), dtype=F64), 0.5, 0.8, 2)
    monkeypatch.setattr(statistics, "DENSE_LIMIT", 8)
    with pytest.raises(ValueError, match="limited to d <= 8"):
        affine_error_per_mode(gaussian, GFFCovariance((1, 4, 4), dtype=F64), 0.5, 0.8, 2)
    # white data under white noise: the Wiener error σ²/(α² + σ²) in every mode
    from sdekit import IdentityCovariance

    monkeypatch.setattr(statistics, "DENSE_LIMIT", 4096)
    err = affine_error_per_mode(gaussian, IdentityCovariance((1, 4, 4)), 0.6, 0.8, 2)
    torch.testing.assert_close(err, torch.full((1, 4, 4), 0.64 / (0.36 + 0.64), dtype=F64))


def test_classifier_fingerprint_names_its_weights(tmp_path):
    """The fingerprint is a function of the weights alone: the same weights saved twice share
    it, one changed float does not, and the loaded record carries it."""
    from sdekit.metrics.features import (
        FashionClassifier,
        load_fashion_classifier,
        weights_fingerprint,
    )

    torch.manual_seed(0)
    state = FashionClassifier().state_dict()
    same = {k: v.clone() for k, v in reversed(list(state.items()))}
    assert weights_fingerprint(state) == weights_fingerprint(same)
    name = next(k for k, v in state.items() if v.is_floating_point())
    same[name].view(-1)[0] += 1e-6
    assert weights_fingerprint(state) != weights_fingerprint(same)
    counters = {**state, "num_batches_tracked": torch.tensor(3), "empty": torch.zeros(0)}
    assert weights_fingerprint(counters) != weights_fingerprint(state)  # 0-dim and empty too
    path = tmp_path / "classifier.pt"
    torch.save({"model": state, "test_accuracy": 0.5, "epochs": 0}, path)
    _, record = load_fashion_classifier(path)
    assert record["fingerprint"] == weights_fingerprint(state) and len(record["fingerprint"]) == 12
