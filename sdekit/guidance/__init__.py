"""Guidance as model wrappers, so every sampler works unchanged (docs/guidance.md):
classifier-free guidance (with a guidance interval and CFG-rescale on whitened standard
deviations) and classifier guidance in the non-isotropic form ε̂ − s σ_t Lᵀ ∇ log p(c | x_t)."""

from .classifier import ClassifierGuidance, classifier
from .classifier_free import ClassifierFreeGuidance, classifier_free, rescale_guided
from .interval import check_interval

__all__ = [
    "classifier_free",
    "classifier",
    "ClassifierFreeGuidance",
    "ClassifierGuidance",
    "rescale_guided",
    "check_interval",
]
