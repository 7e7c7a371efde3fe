"""Training: losses, the trainer (EMA, atomic checkpoints, exact resume, DDP), sample grids."""

from .checkpoint import atomic_save, load_checkpoint, load_state_strict
from .images import from_uint8, image_grid, save_image_grid, to_uint8
from .losses import denoising_loss, sample_training_times
from .trainer import TrainConfig, Trainer

__all__ = [
    "denoising_loss",
    "sample_training_times",
    "TrainConfig",
    "Trainer",
    "atomic_save",
    "load_checkpoint",
    "load_state_strict",
    "image_grid",
    "save_image_grid",
    "to_uint8",
    "from_uint8",
]
