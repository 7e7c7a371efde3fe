"""The runnable recipes work end to end (small sizes)."""

from __future__ import annotations

import pytest
from conftest import load_recipe as load


def test_noise_samples_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    out = load("noise_samples").main(["--out", str(tmp_path / "n.png"), "--size", "16", "--n", "2"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_radial_power_of_white_noise_is_flat():
    import torch

    from sdekit.metrics import radial_power_spectrum

    k, p = radial_power_spectrum(torch.randn(512, 1, 16, 16))
    assert k[0] == 0 and torch.allclose(p, torch.ones_like(p, dtype=p.dtype), atol=0.15)
