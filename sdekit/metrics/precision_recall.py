"""Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN manifolds."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError

__all__ = ["knn_radii", "precision_recall"]


def _as_features(x, name: str) -> Tensor:
    x = torch.as_tensor(x).detach().to(torch.float64)
    if x.ndim != 2:
        raise InputError(f"{name} must have shape (n, d), got {tuple(x.shape)}")
    return x


def knn_radii(features: Tensor, k: int = 3, chunk: int = 1024) -> Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    f = _as_features(features, "features")
    if not (1 <= k < f.shape[0]):
        raise InputError(f"k must satisfy 1 <= k < n = {f.shape[0]}, got {k}")
    out = []
    for block in f.split(chunk):
        d = torch.cdist(block, f)
        out.append(d.kthvalue(k + 1, dim=1).values)  # the 0 distance to itself is the 1st
    return torch.cat(out)


def _coverage(points: Tensor, centres: Tensor, radii: Tensor, chunk: int) -> Tensor:
    """Fraction of ``points`` inside at least one ball (centre, radius)."""
    inside = []
    for block in points.split(chunk):
        d = torch.cdist(block, centres)
        inside.append((d <= radii[None]).any(dim=1))
    return torch.cat(inside).double().mean()


def precision_recall(real, fake, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    """(precision, recall): the fraction of generated samples inside the real k-NN
    manifold, and of real samples inside the generated one."""
    r, g = _as_features(real, "real"), _as_features(fake, "fake")
    if r.shape[1] != g.shape[1]:
        raise InputError(
            f"real and fake features differ in dimension: {r.shape[1]} vs {g.shape[1]}"
        )
    precision = _coverage(g, r, knn_radii(r, k, chunk), chunk)
    recall = _coverage(r, g, knn_radii(g, k, chunk), chunk)
    return float(precision), float(recall)
