"""Training: losses, the trainer (EMA, atomic checkpoints, exact resume, DDP), sample grids."""

from .checkpoint import atomic_save, load_checkpoint
from .images import image_grid, save_image_grid
from .losses import denoising_loss, sample_training_times
from .trainer import TrainConfig, Trainer

__all__ = [
    "denoising_loss",
    "sample_training_times",
    "TrainConfig",
    "Trainer",
    "atomic_save",
    "load_checkpoint",
    "image_grid",
    "save_image_grid",
]
