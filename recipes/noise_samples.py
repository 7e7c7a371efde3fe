"""White vs Gaussian-Free-Field noise, side by side (the paper's Figure 1).

    python recipes/noise_samples.py --out noise_samples.png

Draws RGB samples of N(0, I) and N(0, Σ_GFF) at the same per-pixel variance and
plots their radially averaged power spectra. Needs the ``recipes`` extra
(matplotlib).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import torch
from einops import rearrange

from sdekit import GFFCovariance, IdentityCovariance
from sdekit.metrics import radial_power_spectrum

log = logging.getLogger("noise_samples")


def to_image(x: torch.Tensor) -> torch.Tensor:
    """(C, H, W) noise with unit variance to an (H, W, C) image in [0, 1]."""
    return rearrange((x / 3 + 0.5).clamp(0, 1), "c h w -> h w c")


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("noise_samples.png"), help="PNG path")
    parser.add_argument("--size", type=int, default=32, help="image height and width (pixels)")
    parser.add_argument("--n", type=int, default=4, help="samples per row")
    parser.add_argument("--alpha", type=float, default=1.0, help="GFF exponent: λ_k ∝ |k|^(-2α)")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args(argv)
    if args.size < 2 or args.n < 1:
        parser.error("--size must be >= 2 and --n >= 1")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shape = (3, args.size, args.size)
    rows = {
        "white noise  N(0, I)": IdentityCovariance(shape),
        f"GFF noise  N(0, Σ), α={args.alpha:g}": GFFCovariance(shape, alpha=args.alpha),
    }
    fig = plt.figure(figsize=(2.2 * args.n + 3.6, 4.6), layout="constrained")
    grid = fig.add_gridspec(2, args.n + 2)
    ax_spec = fig.add_subplot(grid[:, args.n :])
    for r, (title, cov) in enumerate(rows.items()):
        g = torch.Generator().manual_seed(args.seed)
        samples = cov.sample(256, generator=g)
        for c in range(args.n):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(to_image(samples[c]).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(title.split("  ")[0], fontsize=11)
        k, p = radial_power_spectrum(samples)
        ax_spec.loglog(k[1:], p[1:], "o-", ms=3, label=title)
        log.info("%s: pixel variance %.3f", title, float(samples.var()))
    ax_spec.set_xlabel("spatial frequency |k|")
    ax_spec.set_ylabel("power  E|F x|²")
    ax_spec.set_title("radially averaged spectrum")
    ax_spec.legend(fontsize=8)
    fig.suptitle(f"Noise samples, {args.size}×{args.size} RGB, unit per-pixel variance")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    plt.close(fig)
    print(f"wrote {args.out}")
    return args.out


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    main()
