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

    # seeded: the DC bin averages 512 values of a χ²₁, sd ≈ 0.06, so an unseeded draw
    # crossed the tolerance now and then
    noise = torch.randn(512, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    k, p = radial_power_spectrum(noise)
    assert k[0] == 0 and torch.allclose(p, torch.ones_like(p, dtype=p.dtype), atol=0.15)


def test_snr_crossings_prints_the_quantile_table(tmp_path, capsys):
    from test_data import write_fashion

    write_fashion(tmp_path / "fm", n=16)
    load("snr_crossings").main(["--data-dir", str(tmp_path / "fm")])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| noise | 0 % |") and len(lines) == 2 + 5
    white = [float(v) for v in lines[2].strip("| ").split(" | ")[1:]]
    aligned = [float(v) for v in lines[5].strip("| ").split(" | ")[1:]]
    assert lines[5].startswith("| GFF, aligned chain")
    assert white == sorted(white, reverse=True) and abs(white[0] - aligned[0]) < 0.01


def test_snr_crossings_takes_registry_noises(tmp_path, capsys):
    """--noises: one row per registry name, white noise's row as in the default table, a
    coloured noise's not; an unknown name is refused."""
    from test_data import write_fashion

    write_fashion(tmp_path / "fm", n=16)
    recipe = load("snr_crossings")
    recipe.main(["--data-dir", str(tmp_path / "fm"), "--noises", "isotropic,pink,blue",
                 "--no-aligned"])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| white", "| pink", "| blue"]
    recipe.main(["--data-dir", str(tmp_path / "fm")])
    default = capsys.readouterr().out.splitlines()
    assert lines[2] == default[2] and lines[3] != lines[2]
    with pytest.raises(SystemExit):
        recipe.main(["--data-dir", str(tmp_path / "fm"), "--noises", "bogus"])
    assert "--noises: unknown ['bogus']" in capsys.readouterr().err
