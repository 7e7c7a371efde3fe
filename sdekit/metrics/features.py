"""Feature extractors for Fréchet distance and precision/recall.

* :class:`FashionClassifier` — a small CNN trained on Fashion-MNIST by
  ``python recipes/train_fashion_classifier.py`` (minutes on a CPU), cached outside
  git; its 128-d penultimate layer is the feature space for CPU-scale experiments.
* :class:`InceptionFeatures` — Inception-v3 pool features (2048-d) through
  torch-fidelity (optional extra ``fid``), comparable with the literature's FID;
  torch-fidelity fetches its weights itself when online.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..files import load_checkpoint

__all__ = [
    "FashionClassifier",
    "default_classifier_path",
    "load_fashion_classifier",
    "weights_fingerprint",
    "InceptionFeatures",
    "FeatureExtractorUnavailable",
]


class FeatureExtractorUnavailable(RuntimeError):
    """A feature extractor's package or weights are missing; the message says how to get them."""


def default_classifier_path() -> Path:
    """``$SDEKIT_CACHE`` or ``~/.cache/sdekit``, then ``fashion_classifier.pt``."""
    root = os.environ.get("SDEKIT_CACHE") or Path.home() / ".cache" / "sdekit"
    return Path(root) / "fashion_classifier.pt"


class FashionClassifier(nn.Module):
    """conv(32) → conv(64) → pool → conv(128) → pool → linear(128) → linear(10), on 28×28.

    ``features(x)``: the 128-d penultimate activations; inputs in [-1, 1] of any
    square size are resized to 28×28 first.
    """

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(128 * 7 * 7, 128),
            nn.ReLU(),
        )
        self.head = nn.Linear(128, 10)

    def features(self, x: Tensor) -> Tensor:
        if x.shape[-1] != 28:
            x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def weights_fingerprint(state_dict) -> str:
    """The first 12 hex digits of the SHA-256 of a state dict (names, dtypes, shapes and
    bytes, in name order): two feature spaces are the same exactly when this is. The
    classifier's seed alone does not fix its weights — a retrain with another thread count
    reorders float reductions (seen: 90.13 %, 90.32 % and 90.42 % test accuracy from seed 0)
    — so FIDs compare only between summaries with one fingerprint."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:12]


def load_fashion_classifier(path=None, device="cpu") -> tuple[FashionClassifier, dict]:
    """The cached classifier and its record (test accuracy, epochs, and the
    :func:`weights_fingerprint` of its weights as ``fingerprint``), or a clear error."""
    path = Path(path) if path else default_classifier_path()
    if not path.exists():
        raise FeatureExtractorUnavailable(
            f"no Fashion-MNIST classifier at {path}; train it (a few minutes on a CPU) with "
            "'python recipes/train_fashion_classifier.py'"
        )
    state = load_checkpoint(path, map_location=device)
    model = FashionClassifier()
    model.load_state_dict(state["model"])
    record = {k: v for k, v in state.items() if k != "model"}
    record["fingerprint"] = weights_fingerprint(state["model"])
    return model.to(device).eval(), record


class InceptionFeatures:
    """Inception-v3 2048-d pool features via torch-fidelity ("inception-v3-compat").

    Images in [-1, 1], any size; 1-channel images are repeated to RGB.
    """

    def __init__(self, device="cpu", weights_path=None):
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as err:
            raise FeatureExtractorUnavailable(
                "Inception features need torch-fidelity: pip install 'sdekit[fid]' (it needs a "
                f"torchvision that matches your torch) — {err}"
            ) from None
        try:
            self.net = (
                FeatureExtractorInceptionV3(
                    "inception-v3-compat", ["2048"], feature_extractor_weights_path=weights_path
                )
                .to(device)
                .eval()
            )
        except Exception as err:
            raise FeatureExtractorUnavailable(
                "the Inception-v3 weights could not be loaded (offline?): download "
                "'weights-inception-2015-12-05-6726825d.pth' from torch-fidelity's releases on a "
                f"machine with internet and pass weights_path — {err}"
            ) from None
        self.device = device

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        img = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).to(self.device)
        return self.net(img)[0].double().cpu()
