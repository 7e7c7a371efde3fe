"""The optimiser of :class:`~sdekit.training.Trainer`: Adam with a linear warm-up."""

from __future__ import annotations

import torch

__all__ = ["make_optimizer"]


def make_optimizer(
    model: torch.nn.Module, lr: float, warmup: int
) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam at ``lr`` on ``model``'s parameters and a scheduler that scales the rate of
    optimiser step s (from 0) by min(1, (s + 1)/``warmup``) (no warm-up when ``warmup`` ≤ 1)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    warm = max(warmup, 1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warm))
    return optimizer, scheduler
