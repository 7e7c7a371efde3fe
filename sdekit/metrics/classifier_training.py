"""Training the Fashion-MNIST feature classifier (for recipes/train_fashion_classifier.py)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data import ImageDataset
from .features import FashionClassifier, default_classifier_path

log = logging.getLogger(__name__)


@torch.no_grad()
def accuracy(model: FashionClassifier, data: ImageDataset, batch: int = 1000) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(data), batch):
        idx = torch.arange(start, min(start + batch, len(data)))
        correct += int((model(data.batch(idx)).argmax(1) == data.labels[idx]).sum())
    return correct / len(data)


def train_fashion_classifier(
    train: ImageDataset,
    test: ImageDataset,
    epochs: int = 2,
    batch: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    out=None,
) -> tuple[FashionClassifier, float, Path]:
    """Adam on cross-entropy with random horizontal flips; saves weights and test accuracy."""
    torch.manual_seed(seed)
    model = FashionClassifier()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(len(train), generator=g)
        for start in range(0, len(train) - batch + 1, batch):
            idx = perm[start : start + batch]
            flips = torch.rand(batch, generator=g) < 0.5
            x = train.batch(idx)
            x = torch.where(flips[:, None, None, None], x.flip(-1), x)
            loss = F.cross_entropy(model(x), train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        log.info(
            "epoch %d done (%.0f s), loss %.3f", epoch + 1, time.perf_counter() - t0, loss.item()
        )
    acc = accuracy(model, test)
    path = Path(out) if out else default_classifier_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": model.state_dict(),
            "test_accuracy": acc,
            "epochs": epochs,
            "seconds": time.perf_counter() - t0,
        },
        path,
    )
    return model, acc, path
