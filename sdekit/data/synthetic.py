"""Synthetic image data for tests and smoke runs: Gaussian fields quantised to uint8."""

from __future__ import annotations

import torch

from ..covariance import GFFCovariance
from .common import ImageDataset


def gaussian_field_dataset(
    n: int, shape=(1, 16, 16), alpha: float = 1.5, seed: int = 0
) -> ImageDataset:
    """n smooth random images (GFF with exponent ``alpha``) as uint8, for tests, labelled
    by the sign of their mean brightness (class 1: brighter than mid-grey, else 0)."""
    g = torch.Generator().manual_seed(seed)
    x = GFFCovariance(shape, alpha=alpha).sample(n, generator=g)
    x = (x / 3).clamp(-1, 1)
    images = ((x + 1) * 127.5).round().to(torch.uint8)
    labels = (images.double().flatten(1).mean(1) > 127.5).long()
    return ImageDataset(images, labels)
