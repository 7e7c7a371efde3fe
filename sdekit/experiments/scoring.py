"""Scoring given samples against given reference features: FID with its bootstrap sd,
improved precision / recall (k = 3) and the RMSE of log radial power spectra.

:func:`reference_set` builds the reference once per evaluation (up to 10 000 test images
and their features in the dataset's feature space); :func:`score_samples` scores 8-bit
samples, as saved, against it — whoever drew them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from ..metrics import (
    FeatureStats,
    frechet_distance_bootstrap,
    log_spectrum_distance,
    precision_recall,
)
from .config import load_dataset

log = logging.getLogger(__name__)

__all__ = ["Reference", "feature_extractor", "reference_set", "score_samples"]


def feature_extractor(cfg: dict, device="cpu"):
    """The dataset's feature extractor (Fashion-MNIST classifier or Inception-v3) and its
    description — for the classifier its test accuracy and weights fingerprint
    (:func:`~sdekit.metrics.features.weights_fingerprint`), since FIDs in two feature spaces
    do not compare — or ``(None, None)`` with the reason logged when it is unavailable."""
    from ..metrics.features import (
        FeatureExtractorUnavailable,
        InceptionFeatures,
        load_fashion_classifier,
    )

    try:
        if cfg["dataset"] == "cifar10":
            return InceptionFeatures(device=device), "inception-v3"
        model, record = load_fashion_classifier(device=device)
        extract = lambda x: model.features(x.to(device)).double().cpu()  # noqa: E731
        extract.classify = lambda x: model(x.to(device)).argmax(1).cpu()  # predicted labels
        name = f"fashion-classifier (test accuracy {record['test_accuracy']:.4f}, "
        return extract, name + f"weights {record['fingerprint']})"
    except FeatureExtractorUnavailable as err:
        log.warning("no FID / precision / recall: %s", err)
        return None, None


@torch.no_grad()
def features(extract, x: Tensor, batch: int = 500) -> Tensor:
    return torch.cat([extract(chunk) for chunk in x.split(batch)])


@dataclass
class Reference:
    """Test images and, where an extractor is available, their features and statistics."""

    images: Tensor
    extract: object = None
    feature_name: str | None = None
    feats: Tensor | None = None
    stats: FeatureStats | None = None


def reference_set(cfg: dict, device="cpu", limit: int = 10_000) -> Reference:
    """The first ``limit`` test images of the run's dataset and their features."""
    test = load_dataset(cfg, train=False)
    ref = Reference(test.batch(torch.arange(min(len(test), limit))))
    ref.extract, ref.feature_name = feature_extractor(cfg, device)
    if ref.extract is not None:
        ref.feats = features(ref.extract, ref.images)
        ref.stats = FeatureStats(ref.feats.shape[1])
        ref.stats.update(ref.feats)
    return ref


def score_samples(
    x: Tensor, ref: Reference, n_boot: int = 200, seed: int = 0, labels: Tensor | None = None
) -> dict:
    """Scores of samples ``x`` (floats in [-1, 1], e.g. 8-bit images as saved) against
    ``ref``: ``log_spectrum_rmse`` (against 2000 test images) and, with features, ``fid``,
    ``fid_sd`` (bootstrap sd over the samples, ``n_boot`` resamples from ``seed``),
    ``precision`` and ``recall`` (k = 3, against max(len(x), 1000) test images). With the
    ``labels`` a conditional model was asked for and a classifier as the feature extractor
    (Fashion-MNIST), ``accuracy``: the fraction of samples it classifies as asked."""
    row = {"log_spectrum_rmse": round(log_spectrum_distance(x, ref.images[:2000]), 4)}
    if ref.extract is None:
        return row
    feats = features(ref.extract, x)
    stats = FeatureStats(feats.shape[1])
    stats.update(feats)
    g = torch.Generator().manual_seed(seed)
    boot = frechet_distance_bootstrap(feats, ref.stats, n_boot=n_boot, generator=g)
    prec, rec = precision_recall(ref.feats[: max(len(x), 1000)], feats, k=3)
    row.update(
        fid=round(stats.frechet_distance(ref.stats), 3),
        fid_sd=round(float(boot.std()), 3),
        precision=round(prec, 3),
        recall=round(rec, 3),
    )
    classify = getattr(ref.extract, "classify", None)
    if labels is not None and classify is not None:
        predicted = torch.cat([classify(chunk) for chunk in x.split(500)])
        row["accuracy"] = round(float((predicted == labels.cpu()).double().mean()), 4)
    return row
