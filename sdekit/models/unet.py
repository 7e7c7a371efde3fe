"""The DDPM U-Net (Ho et al. 2020), as an ε-prediction model ``model(x, t) -> ε̂``.

CIFAR-10 configuration (the defaults): base channels 128, channel multipliers
(1, 2, 2, 2), 2 residual blocks per level, self-attention at 16×16, dropout 0.1,
sinusoidal time embedding, GroupNorm(32) and SiLU — 35.7M parameters. Every size
is configurable down to tiny CPU models and 1-channel 28×28 input.
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError
from .labels import check_labels

__all__ = ["UNet", "timestep_embedding"]


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding [sin(t ω_j), cos(t ω_j)], ω_j = max_period^(-2j/dim) (Vaswani)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


def _norm(ch: int, groups: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(groups, ch), ch, eps=1e-6)


class ResBlock(nn.Module):
    """GN → SiLU → conv3×3 (+ time projection) → GN → SiLU → dropout → conv3×3, plus a skip."""

    def __init__(self, cin: int, cout: int, tdim: int, dropout: float, groups: int):
        super().__init__()
        self.norm1, self.conv1 = _norm(cin, groups), nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, cout)
        self.norm2, self.conv2 = _norm(cout, groups), nn.Conv2d(cout, cout, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels, with a residual connection."""

    def __init__(self, ch: int, groups: int):
        super().__init__()
        self.norm = _norm(ch, groups)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, stride=2, padding=1)

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


def _run(unit, h: Tensor, temb: Tensor) -> Tensor:
    for block in unit if isinstance(unit, nn.ModuleList) else (unit,):
        h = block(h, temb)
    return h


#: the widest level a U-Net may have (``ch × max(ch_mult)`` channels): a config from a
#: file cannot make sdekit allocate gigabytes of weights
MAX_UNET_WIDTH = 4096
#: the most levels (``len(ch_mult)``) and residual blocks per level a U-Net may have
MAX_UNET_LEVELS, MAX_UNET_RES_BLOCKS = 8, 16
#: the most classes a conditional U-Net may have (its label embedding has one row each)
MAX_UNET_CLASSES = 100_000


def check_unet_kwargs(kwargs: dict, where: str = "the model config") -> dict:
    """``kwargs`` if they are :class:`UNet` parameters, else an
    :class:`~sdekit.errors.InputError` naming the unknown key(s) and ``where`` they
    came from (e.g. a checkpoint's config); the values are checked by :class:`UNet`."""
    known = set(inspect.signature(UNet.__init__).parameters) - {"self"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise InputError(
            f"{where} has unknown U-Net parameter(s) {', '.join(map(repr, unknown))}; "
            f"the U-Net takes {', '.join(sorted(known))}"
        )
    return kwargs


def _check_sizes(in_channels, resolution, ch, ch_mult, num_res_blocks, groups) -> None:
    """Positive ints within the documented bounds (before any weight is allocated)."""

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    for name, v in (
        ("in_channels", in_channels),
        ("resolution", resolution),
        ("ch", ch),
        ("groups", groups),
    ):
        if not (is_int(v) and v >= 1):
            raise InputError(f"{name} must be a positive int, got {v!r}")
    if not (is_int(num_res_blocks) and 1 <= num_res_blocks <= MAX_UNET_RES_BLOCKS):
        raise InputError(
            f"num_res_blocks must be an int in [1, {MAX_UNET_RES_BLOCKS}], got {num_res_blocks!r}"
        )
    mult = tuple(ch_mult) if isinstance(ch_mult, (list, tuple)) else None
    if not mult or len(mult) > MAX_UNET_LEVELS or not all(is_int(m) and m >= 1 for m in mult):
        raise InputError(f"ch_mult must be 1 to {MAX_UNET_LEVELS} positive ints, got {ch_mult!r}")
    if ch * max(mult) > MAX_UNET_WIDTH:
        raise InputError(
            f"ch × max(ch_mult) = {ch} × {max(mult)} = {ch * max(mult)} channels is more than "
            f"the {MAX_UNET_WIDTH} a U-Net may have (sdekit.models.unet.MAX_UNET_WIDTH)"
        )


class UNet(nn.Module):
    """DDPM U-Net predicting ε from (x_t, t).

    **Arguments:**
    - ``in_channels``: image channels (3 for CIFAR-10, 1 for Fashion-MNIST).
    - ``resolution``: input height = width (attention levels are chosen by it).
    - ``ch``: base channels; ``ch_mult``: per-level multipliers (one level per entry,
      each but the last followed by a 2× downsampling).
    - ``num_res_blocks``: residual blocks per level; ``attn_resolutions``:
      resolutions with self-attention; ``dropout``; ``groups`` for GroupNorm.
    - ``time_scale``: the continuous t ∈ [0, 1] is embedded as ``time_scale · t``
      (1000 ≈ DDPM's integer timesteps).
    - ``num_classes``: K > 0 makes the net class-conditional, ``net(x, t, y=labels)``: a
      learned embedding of the label (K + 1 rows, the last the null label K that label
      dropout trains and classifier-free guidance calls) is added to the time embedding.
      0 (the default): unconditional, ``net(x, t)``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        resolution: int = 32,
        ch: int = 128,
        ch_mult: tuple[int, ...] = (1, 2, 2, 2),
        num_res_blocks: int = 2,
        attn_resolutions: tuple[int, ...] = (16,),
        dropout: float = 0.1,
        groups: int = 32,
        time_scale: float = 1000.0,
        num_classes: int = 0,
    ):
        super().__init__()
        _check_sizes(in_channels, resolution, ch, ch_mult, num_res_blocks, groups)
        if not (isinstance(num_classes, int) and not isinstance(num_classes, bool)
                and 0 <= num_classes <= MAX_UNET_CLASSES):
            raise InputError(f"num_classes must be an int in [0, {MAX_UNET_CLASSES}] "
                             f"(0: unconditional), got {num_classes!r}")  # fmt: skip
        factor = 2 ** (len(ch_mult) - 1)
        if resolution % factor:
            raise InputError(f"resolution {resolution} must be divisible by {factor}")
        self.in_channels, self.resolution, self.time_scale = in_channels, resolution, time_scale
        self.ch, tdim = ch, 4 * ch
        self.temb = nn.Sequential(nn.Linear(ch, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.num_classes = num_classes
        self.label_emb = nn.Embedding(num_classes + 1, tdim) if num_classes else None
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)

        self.down = nn.ModuleList()
        chans, cur, res = [ch], ch, resolution
        for level, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                unit = nn.ModuleList([ResBlock(cur, ch * mult, tdim, dropout, groups)])
                cur = ch * mult
                if res in attn_resolutions:
                    unit.append(AttnBlock(cur, groups))
                self.down.append(unit)
                chans.append(cur)
            if level != len(ch_mult) - 1:
                self.down.append(Downsample(cur))
                chans.append(cur)
                res //= 2
        self.mid = nn.ModuleList(
            [
                ResBlock(cur, cur, tdim, dropout, groups),
                AttnBlock(cur, groups),
                ResBlock(cur, cur, tdim, dropout, groups),
            ]
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(ch_mult))):
            for _ in range(num_res_blocks + 1):
                unit = nn.ModuleList(
                    [ResBlock(cur + chans.pop(), ch * mult, tdim, dropout, groups)]
                )
                cur = ch * mult
                if res in attn_resolutions:
                    unit.append(AttnBlock(cur, groups))
                self.up.append(unit)
            if level != 0:
                self.up.append(Upsample(cur))
                res *= 2
        self.norm_out = _norm(cur, groups)
        self.conv_out = nn.Conv2d(cur, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise InputError(
                f"x must have shape (n, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        if t.ndim == 0:
            t = t.expand(x.shape[0])
        temb = self.temb(timestep_embedding(t * self.time_scale, self.ch).to(x.dtype))
        if self.label_emb is not None:
            if y is None:
                raise InputError(
                    f"this U-Net is class-conditional ({self.num_classes} classes): call it "
                    f"as net(x, t, y=labels) — model_kwargs={{'y': labels}} when sampling; "
                    f"y = {self.num_classes} is the null (unconditional) label"
                )
            labels = check_labels(y, x.shape[0], self.num_classes)
            temb = temb + self.label_emb(labels).to(temb.dtype)
        elif y is not None:
            raise InputError("this U-Net is unconditional (num_classes = 0): it takes no y; "
                             "train it with num_classes > 0 to condition on labels")  # fmt: skip
        h = self.conv_in(x)
        skips = [h]
        for unit in self.down:  # (ResBlock[, Attn]) units and Downsamples; skip after each
            h = _run(unit, h, temb)
            skips.append(h)
        h = _run(self.mid, h, temb)
        for unit in self.up:
            if isinstance(unit, nn.ModuleList):
                h = torch.cat([h, skips.pop()], dim=1)
            h = _run(unit, h, temb)
        return self.conv_out(F.silu(self.norm_out(h)))
