"""GaussianStatistics: the data's Gaussian, dense or stationary, and its config record."""

from __future__ import annotations

import json

import pytest
import torch

from sdekit.covariance import (
    CholeskyCovariance,
    FourierCovariance,
    GaussianStatistics,
    power_spectrum,
    statistics,
)
from sdekit.errors import InputError, InputTypeError

F64 = torch.float64


def images(n=50, shape=(2, 3, 4), seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, *shape, generator=g, dtype=F64) + torch.arange(shape[-1], dtype=F64)


def test_dense_is_the_sample_covariance_plus_ridge():
    x = images()
    gaussian = GaussianStatistics.from_images(x.float(), "dense", ridge=1e-3)
    assert isinstance(gaussian.covariance, CholeskyCovariance)
    assert gaussian.event_shape == (2, 3, 4) and gaussian.mean.dtype == F64
    flat = x.float().to(F64).flatten(1)
    torch.testing.assert_close(gaussian.mean.flatten(), flat.mean(0))
    expected = torch.cov(flat.T) + 1e-3 * torch.eye(24, dtype=F64)
    torch.testing.assert_close(gaussian.covariance.to_dense(), expected, rtol=1e-10, atol=1e-12)


def test_stationary_is_the_power_spectrum_around_the_mean():
    x = images()
    gaussian = GaussianStatistics.from_images(x, "stationary", ridge=1e-3)
    assert isinstance(gaussian.covariance, FourierCovariance)
    mean = x.mean(0)
    assert torch.equal(gaussian.mean, mean)
    expected = power_spectrum(x - mean, center=False) + 1e-3
    assert torch.equal(gaussian.covariance.fourier_spectrum(), expected)
    # around each channel's mean: power_spectrum's own centring, exactly
    per_channel = GaussianStatistics.from_images(x, "stationary", ridge=0.0, mean="channel")
    assert torch.equal(per_channel.covariance.fourier_spectrum(), power_spectrum(x))
    channel_means = x.mean(dim=(0, 2, 3))
    assert torch.equal(per_channel.mean, channel_means[:, None, None].expand(2, 3, 4))


def test_dense_is_refused_above_the_limit(monkeypatch):
    x = images()
    monkeypatch.setattr(statistics, "DENSE_LIMIT", 23)
    with pytest.raises(InputError, match=r"d <= 23 \(got d=24\); use structure='stationary'"):
        GaussianStatistics.from_images(x, "dense")
    GaussianStatistics.from_images(x, "stationary")  # any d


@pytest.mark.parametrize("structure", ["dense", "stationary"])
def test_config_record_round_trips_exactly(structure):
    gaussian = GaussianStatistics.from_images(images(), structure)
    record = json.loads(json.dumps(gaussian.to_config()))
    assert set(record) == {"mean", "spectrum" if structure == "stationary" else "factor"}
    again = GaussianStatistics.from_config(record)
    assert torch.equal(again.mean, gaussian.mean)
    assert type(again.covariance) is type(gaussian.covariance)
    assert torch.equal(again.covariance.to_dense(), gaussian.covariance.to_dense())


def test_bad_input_is_named():
    x = images()
    cases = [
        (lambda: GaussianStatistics.from_images(x, "sparse"), "structure must be one of"),
        (lambda: GaussianStatistics.from_images(x, "dense", ridge=-1.0), "ridge must be"),
        (lambda: GaussianStatistics.from_images(x[:1], "dense"), r"images must .* \(n >= 2"),
        (lambda: GaussianStatistics.from_images(x.long(), "dense"), "float tensor"),
        (
            lambda: GaussianStatistics.from_images(x, "dense", mean="channel"),
            "mean='channel' is for structure='stationary'",
        ),
        (lambda: GaussianStatistics.from_images(x, "dense", mean="pixel"), "mean must be"),
        (
            lambda: GaussianStatistics.from_images(x[:, 0, 0], "stationary"),
            r"needs images \(n, C, H, W\)",
        ),
        (lambda: GaussianStatistics(torch.zeros(3), FourierCovariance(torch.ones(2, 2))), "mean"),
        (lambda: GaussianStatistics.from_config({"spectrum": [1.0]}), "'mean'"),
        (lambda: GaussianStatistics.from_config({"mean": [0.0]}), "'spectrum' or 'factor'"),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message):
            call()
    with pytest.raises(InputTypeError, match="covariance must be a CovarianceOperator"):
        GaussianStatistics(0.0, torch.eye(2))
