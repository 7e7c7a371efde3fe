"""Image datasets held in memory, with reproducible sharded batches for (distributed) training."""

from __future__ import annotations

import torch
from torch import Tensor

from ..errors import InputError

__all__ = ["DatasetError", "ImageDataset", "BatchStream"]


class DatasetError(InputError, RuntimeError):
    """A dataset is missing, truncated or corrupt; the message says how to fix it."""


class ImageDataset:
    """uint8 images ``(n, C, H, W)`` with labels; batches are floats in [-1, 1].

    ``flip``: random horizontal flips at batch time (CIFAR-10).
    ``to(device)`` keeps the whole dataset on the device (no loader bottleneck).
    """

    def __init__(self, images: Tensor, labels: Tensor | None = None, flip: bool = False):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise InputError(
                f"images must be uint8 (n, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        self.images, self.labels, self.flip = images, labels, flip

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def to(self, device) -> ImageDataset:
        labels = None if self.labels is None else self.labels.to(device)
        return ImageDataset(self.images.to(device), labels, self.flip)

    def batch(self, index: Tensor, flips: Tensor | None = None) -> Tensor:
        """Images ``index`` scaled to [-1, 1], flipped where ``flips`` is True."""
        x = self.images[index.to(self.images.device)].float().div_(127.5).sub_(1.0)
        if self.flip and flips is not None:
            f = flips.to(x.device)
            x = torch.where(f[:, None, None, None], x.flip(-1), x)
        return x


class BatchStream:
    """An endless, reproducible stream of global batches, sharded over ranks.

    Every rank draws the same global permutation from ``seed`` and epoch, takes the
    next ``global_batch`` indices, and keeps its contiguous shard; flips are drawn
    from the same global stream. The position (epoch, offset) is the whole state,
    so a checkpoint resumes the stream exactly.
    """

    def __init__(
        self,
        dataset: ImageDataset,
        global_batch: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if global_batch % world_size:
            raise InputError(
                f"global batch {global_batch} is not divisible by world size {world_size}"
            )
        if global_batch > len(dataset):
            raise InputError(f"global batch {global_batch} exceeds the dataset size {len(dataset)}")
        self.dataset, self.global_batch, self.seed = dataset, global_batch, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.offset = 0, 0
        self._perm = self._flips = None

    def _epoch_tables(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.dataset)
        return torch.randperm(n, generator=g), torch.rand(n, generator=g) < 0.5

    def next(self) -> Tensor:
        """The next global batch's shard of images, floats in [-1, 1]."""
        return self.dataset.batch(*self._next_indices())

    def next_labelled(self) -> tuple[Tensor, Tensor]:
        """The next shard of images and their labels (the same stream as :meth:`next`)."""
        if self.dataset.labels is None:
            raise InputError("the dataset has no labels: a class-conditional model needs them")
        index, flips = self._next_indices()
        labels = self.dataset.labels[index.to(self.dataset.labels.device)].long()
        return self.dataset.batch(index, flips), labels

    def _next_indices(self) -> tuple[Tensor, Tensor]:
        if self._perm is None:
            self._perm, self._flips = self._epoch_tables()
        if self.offset + self.global_batch > len(self.dataset):  # drop the last partial batch
            self.epoch, self.offset = self.epoch + 1, 0
            self._perm, self._flips = self._epoch_tables()
        idx = self._perm[self.offset : self.offset + self.global_batch]
        flips = self._flips[self.offset : self.offset + self.global_batch]
        self.offset += self.global_batch
        per = self.global_batch // self.world_size
        lo = self.rank * per
        return idx[lo : lo + per], flips[lo : lo + per]

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "offset": self.offset}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.offset = int(state["epoch"]), int(state["offset"])
        self._perm = self._flips = None
