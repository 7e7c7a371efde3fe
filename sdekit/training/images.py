"""8-bit image conversion and PNG sample grids."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from einops import rearrange
from torch import Tensor

from ..files import atomic_write

#: images live in [-IMAGE_RANGE, IMAGE_RANGE] (:func:`from_uint8`): the x̂₀ clamp that
#: sampling images uses by default (``clip_x0``)
IMAGE_RANGE = 1.0


def to_uint8(x: Tensor) -> Tensor:
    """Images in [-1, 1] → uint8 0..255 (clamped, rounded), as a PNG stores them."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def from_uint8(images: Tensor) -> Tensor:
    """uint8 0..255 → float32 in [-1, 1] (the inverse of :func:`to_uint8` on its grid)."""
    return images.float() / 127.5 - 1


def image_grid(x: Tensor, nrow: int | None = None, pad: int = 2) -> Tensor:
    """Tile images (n, C, H, W) in [-1, 1] into one uint8 (H', W', C) array: ``nrow``
    images per row, ``pad`` white pixels around each, white where the last row is short."""
    n, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    tiles = torch.ones(nrow * ncol, c, h + pad, w + pad)
    tiles[:n, :, pad:, pad:] = x.detach().float().cpu().clamp(-1, 1)
    grid = rearrange(tiles, "(r q) c h w -> c (r h) (q w)", r=ncol, q=nrow)
    grid = torch.nn.functional.pad(grid, (0, pad, 0, pad), value=1.0)
    return to_uint8(grid).permute(1, 2, 0)


def save_image_grid(x: Tensor, path, nrow: int | None = None, scale: int = 2) -> Path:
    """Write a PNG grid of images in [-1, 1] (nearest-neighbour upscaled by ``scale``),
    atomically and never through a symlink (:func:`sdekit.files.atomic_write`)."""
    from PIL import Image

    arr = image_grid(x, nrow).numpy()
    img = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    return atomic_write(path, lambda f: img.save(f, format=fmt))
