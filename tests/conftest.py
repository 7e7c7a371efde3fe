"""Shared fixtures: every covariance family at small shapes, with an independent dense Σ."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch

from sdekit import (
    CholeskyCovariance,
    DiagonalCovariance,
    FourierCovariance,
    GFFCovariance,
    IdentityCovariance,
    KroneckerCovariance,
    OffsetNoiseCovariance,
    ScaledCovariance,
)

F64 = torch.float64


def dft2_matrix(h: int, w: int) -> np.ndarray:
    """The orthonormal 2-D DFT on row-major flattened (h, w) grids, as a dense matrix."""
    return np.kron(scipy.linalg.dft(h, scale="sqrtn"), scipy.linalg.dft(w, scale="sqrtn"))


def dense_fourier(lam: np.ndarray) -> np.ndarray:
    """Σ = blockdiag_c(F^H diag(λ_c) F), built without sdekit."""
    *lead, h, w = lam.shape
    F = dft2_matrix(h, w)
    blocks = [(F.conj().T @ np.diag(l.ravel()) @ F).real for l in lam.reshape(-1, h, w)]
    return scipy.linalg.block_diag(*blocks)


def gff_spectrum_reference(h: int, w: int, alpha: float = 1.0, dc: float = 1.0) -> np.ndarray:
    """|k|^(-2α) with |k_i| = min(i, n - i): the integer frequency magnitude, by hand."""
    lam = np.empty((h, w))
    for i in range(h):
        for j in range(w):
            k2 = min(i, h - i) ** 2 + min(j, w - j) ** 2
            lam[i, j] = (dc**2 if k2 == 0 else k2) ** (-alpha)
    return lam / lam.mean()


def random_spd(d: int, seed: int, cond: float = 30.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    ev = torch.logspace(0, np.log10(cond), d, dtype=F64)
    return (q * ev) @ q.T


def symmetric_spectrum(shape, seed: int) -> torch.Tensor:
    """A random positive spectrum with λ[-k] = λ[k]."""
    from sdekit.covariance import mirror_frequencies

    g = torch.Generator().manual_seed(seed)
    a = torch.randn(shape, generator=g, dtype=F64)
    return torch.exp(0.5 * (a + mirror_frequencies(a)))


def make_case(name: str, shape: tuple[int, ...]):
    """(operator in float64, independent dense Σ as a float64 tensor)."""
    d = int(np.prod(shape))
    if name == "identity":
        return IdentityCovariance(shape), torch.eye(d, dtype=F64)
    if name == "diagonal":
        g = torch.Generator().manual_seed(1)
        v = torch.rand(shape, generator=g, dtype=F64) + 0.2
        return DiagonalCovariance(v), torch.diag(v.flatten())
    if name == "fourier":
        lam = symmetric_spectrum(shape, seed=2)
        return FourierCovariance(lam), torch.from_numpy(dense_fourier(lam.numpy()))
    if name == "fourier_shared":
        lam = symmetric_spectrum(shape[-2:], seed=3)
        full = lam.expand(shape).numpy()
        return FourierCovariance(lam, shape), torch.from_numpy(dense_fourier(full))
    if name == "gff":
        lam = gff_spectrum_reference(*shape[-2:])
        full = np.broadcast_to(lam, shape)
        return GFFCovariance(shape, dtype=F64), torch.from_numpy(dense_fourier(full))
    if name == "cholesky":
        S = random_spd(d, seed=4)
        return CholeskyCovariance(S, shape), S
    if name == "kronecker":
        C, H, W = shape
        Sc = random_spd(C, seed=5, cond=5.0)
        lam = gff_spectrum_reference(H, W)
        Ss = torch.from_numpy(dense_fourier(lam[None]))
        op = KroneckerCovariance(Sc, GFFCovariance((1, H, W), dtype=F64))
        return op, torch.kron(Sc, Ss)
    if name == "blue":
        lam = gff_spectrum_reference(*shape[-2:], alpha=-0.5)
        full = np.broadcast_to(lam, shape)
        return GFFCovariance(shape, alpha=-0.5, dtype=F64), torch.from_numpy(dense_fourier(full))
    if name == "offset":  # I + s² 11ᵀ per channel, built by hand
        c, n = shape[0], int(np.prod(shape[1:]))
        block = torch.eye(n, dtype=F64) + 0.3**2 * torch.ones(n, n, dtype=F64)
        return OffsetNoiseCovariance(shape, 0.3, dtype=F64), torch.block_diag(*[block] * c)
    if name == "scaled":
        S = random_spd(d, seed=6)
        return ScaledCovariance(CholeskyCovariance(S, shape), 0.7), 0.49 * S
    raise KeyError(name)


FAMILIES = ["identity", "diagonal", "fourier", "fourier_shared", "gff", "cholesky", "kronecker",
            "blue", "offset", "scaled"]  # fmt: skip
SHAPES = [(1, 4, 4), (2, 5, 6), (3, 7, 5), (3, 8, 8)]


@pytest.fixture(params=[(f, s) for f in FAMILIES for s in SHAPES], ids=lambda p: f"{p[0]}-{p[1]}")
def case(request):
    family, shape = request.param
    return make_case(family, shape)


def load_recipe(name: str):
    """Import ``recipes/<name>.py`` as a module (the recipes are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "recipes" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_experiment(**model) -> dict:
    """An experiment config on synthetic 8×8 data with a tiny U-Net (``model`` keys added)."""
    net = {"ch": 8, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "groups": 4}
    return {
        "dataset": "synthetic",
        "resolution": 8,
        "noise": "gff",
        "beta_start": 1e-4,
        "beta_end": 0.02,
        "num_timesteps": 1000,
        "model": {**net, **model},
    }
