"""This process's place in a ``torch.distributed`` job (one process: rank 0 of 1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo"]


@dataclass(frozen=True)
class DistInfo:
    """``rank`` and ``world_size`` of this process; ``enabled`` under an initialised group."""

    rank: int = 0
    world_size: int = 1
    enabled: bool = False

    @classmethod
    def current(cls) -> DistInfo:
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(), True)
        return cls()

    @staticmethod
    def default_device() -> torch.device:
        """This rank's CUDA device if there is one, else the CPU."""
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_gather(self, obj) -> list:
        """``[obj of rank 0, obj of rank 1, …]`` (collective under DDP; ``[obj]`` alone)."""
        if not self.enabled:
            return [obj]
        gathered = [None] * self.world_size
        dist.all_gather_object(gathered, obj)
        return gathered

    def any(self, flag: bool, device) -> bool:
        """True if ``flag`` is true on any rank (collective under DDP)."""
        if not self.enabled:
            return bool(flag)
        return bool(self.mean(torch.tensor([float(flag)], device=device)) > 0)

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of ``value`` over ranks (collective under DDP)."""
        if not self.enabled:
            return value
        value = value.clone()
        dist.all_reduce(value)
        return value / self.world_size
