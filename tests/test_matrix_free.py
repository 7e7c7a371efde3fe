"""MatrixFreeCovariance against dense linear algebra (L, L⁻¹ to 1e-6, log det within its
stated error), its precision form on a graph-Laplacian GFF that samples and trains, the
practitioners' noises (offset, pink, blue) by name, and bad matvecs refused."""

from __future__ import annotations

import pytest
import torch
from conftest import F64, random_spd

from sdekit import NIVPSDE, InputError, MatrixFreeCovariance, OffsetNoiseCovariance, sample
from sdekit.covariance import make_covariance
from sdekit.covariance.matrix_free import graph_laplacian_gff


def dense_matvec(S, shape):
    return lambda x: (x.reshape(x.shape[0], -1) @ S).reshape(x.shape)


def powers(S):
    ev, U = torch.linalg.eigh(S)
    return (U * ev.sqrt()) @ U.T, (U * ev.rsqrt()) @ U.T


def rel(a, b):
    return float(
        ((a - b).reshape(a.shape[0], -1).norm(dim=1) / b.reshape(b.shape[0], -1).norm(dim=1)).max()
    )


@pytest.mark.parametrize("d", [64, 256])
def test_matrix_free_matches_dense(d):
    S = random_spd(d, seed=d, cond=100.0)
    shape = (2, d // 2)
    cov = MatrixFreeCovariance(dense_matvec(S, shape), shape)
    sq, isq = powers(S)
    x = torch.randn(3, *shape, dtype=F64, generator=torch.Generator().manual_seed(0))
    flat = x.reshape(3, -1)
    assert rel(cov.sqrt_apply(x), (flat @ sq).reshape(x.shape)) < 1e-6
    assert rel(cov.inv_sqrt_apply(x), (flat @ isq).reshape(x.shape)) < 1e-6
    assert rel(cov.apply(x), (flat @ S).reshape(x.shape)) < 1e-12
    assert rel(cov.solve(x), torch.linalg.solve(S, flat.T).T.reshape(x.shape)) < 1e-6
    est, err = cov.logdet_with_error()
    assert 0 < err and abs(float(est) - float(torch.logdet(S))) < 4 * err


def test_precision_form_is_the_inverse_and_the_graph_gff_samples_and_trains():
    shape = (1, 6, 6)
    cov = graph_laplacian_gff(shape, mass=0.3)
    P = torch.stack([cov.solve(e.reshape(1, *shape)).reshape(-1) for e in torch.eye(36, dtype=F64)])
    torch.testing.assert_close(P, P.T)
    S = torch.linalg.inv(P)
    assert abs(float(S.diagonal().mean()) - 1) < 0.2  # scaled to a mean variance of about 1
    sq, isq = powers(S)
    x = torch.randn(2, *shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    assert rel(cov.sqrt_apply(x), (x.reshape(2, -1) @ sq).reshape(x.shape)) < 1e-6
    assert rel(cov.inv_sqrt_apply(x), (x.reshape(2, -1) @ isq).reshape(x.shape)) < 1e-6
    est, err = cov.logdet_with_error()
    assert abs(float(est) - float(torch.logdet(S))) < 4 * err
    # not Fourier-diagonal (free boundaries): the dense Σ is not circulant
    assert cov.fourier_spectrum() is None and float((S[0, 0] - S[14, 14]).abs()) > 1e-3
    # samples: the covariance of many draws is Σ
    draws = cov.sample(1500, generator=torch.Generator().manual_seed(2)).reshape(1500, -1)
    assert float((torch.cov(draws.T) - S).abs().max()) < 0.25  # sd of an entry ≈ 0.04
    # trains: a few steps of the denoising loss on an NI-VP SDE with this Σ, then sampling
    from sdekit.training import denoising_loss

    sde = NIVPSDE(cov)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 36, dtype=F64))
    model = lambda x, t: net(x).reshape(x.shape)  # noqa: E731
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    x0 = 0.5 * torch.randn(16, *shape, dtype=F64, generator=torch.Generator().manual_seed(3))
    losses = []
    g = torch.Generator().manual_seed(5)
    for _ in range(10):
        t = 0.05 + 0.9 * torch.rand(16, generator=g, dtype=F64)
        noise = torch.randn(16, *shape, generator=g, dtype=F64)
        loss = denoising_loss(sde, model, x0, t, noise).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]
    with torch.no_grad():
        out = sample(sde, model, n=2, steps=5, generator=torch.Generator().manual_seed(4))
    assert out.shape == (2, *shape) and bool(torch.isfinite(out).all())


def test_bad_matvecs_are_refused():
    S = random_spd(16, seed=1)
    asym = S + 0.1 * torch.triu(torch.ones(16, 16, dtype=F64), 1)
    with pytest.raises(InputError, match="not symmetric"):
        MatrixFreeCovariance(dense_matvec(asym, (16,)), (16,))
    indefinite = S - 2 * float(torch.linalg.eigvalsh(S).max()) * torch.eye(16, dtype=F64) * 0.7
    with pytest.raises(InputError, match="not positive-definite"):
        MatrixFreeCovariance(dense_matvec(indefinite, (16,)), (16,))
    with pytest.raises(InputError, match="mass"):
        graph_laplacian_gff((1, 4, 4), mass=0.0)
    cov = MatrixFreeCovariance(dense_matvec(S, (16,)), (16,))
    with pytest.raises(InputError, match="must have shape"):
        cov.sqrt_apply(torch.zeros(2, 15, dtype=F64))


def test_practitioners_noises_by_name():
    off = make_covariance("offset", (3, 8, 8), strength=0.1)
    assert isinstance(off, OffsetNoiseCovariance)
    # diffusers' noise_offset draws randn + s·randn(b, C, 1, 1): its covariance is this Σ
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20000, 1, 4, 4, generator=g, dtype=F64) + 0.5 * torch.randn(
        20000, 1, 1, 1, generator=g, dtype=F64
    )
    dense = OffsetNoiseCovariance((1, 4, 4), 0.5, dtype=F64).to_dense()
    assert float((torch.cov(z.reshape(20000, -1).T) - dense).abs().max()) < 0.06
    with pytest.raises(InputError, match="strength"):
        OffsetNoiseCovariance((1, 4, 4), -0.1)
    pink, blue = make_covariance("pink", (1, 8, 8)), make_covariance("blue", (1, 8, 8))
    lp, lb = pink.fourier_spectrum()[0], blue.fourier_spectrum()[0]
    assert float(lp[0, 1]) > float(lp[4, 4]) and float(lb[0, 1]) < float(lb[4, 4])
    assert abs(float(lp.mean()) - 1) < 1e-6 and abs(float(lb.mean()) - 1) < 1e-6


def test_pyramid_noise_exact_and_its_stationary_equivalent():
    """The exact covariance is the generating process's; the stationary one is its diagonal in
    the Fourier basis; the gap between them is measured (and small)."""
    import torch.nn.functional as F

    from sdekit.covariance.pyramid import pyramid_covariance, pyramid_stationarity_gap

    h, d, n = 8, 64, 40000
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, h, h, generator=g, dtype=F64)
    for i in range(1, 4):
        z = torch.randn(n, 1, h >> i, h >> i, generator=g, dtype=F64)
        x = x + 0.8**i * F.interpolate(z, size=(h, h), mode="bilinear", align_corners=False)
    emp = torch.cov(x.reshape(n, -1).T)
    exact = pyramid_covariance((1, h, h), 0.8, exact=True)
    S = exact.matvec(torch.eye(d, dtype=F64).reshape(d, 1, h, h)).reshape(d, d)
    assert float(S.diagonal().mean()) == pytest.approx(1.0, abs=1e-12)
    assert float((emp / emp.diagonal().mean() - S).abs().max()) < 0.03  # 40k draws
    stationary = pyramid_covariance((1, h, h), 0.8)
    from conftest import dft2_matrix

    Fm = torch.from_numpy(dft2_matrix(h, h))
    diag = (Fm @ S.to(torch.complex128) @ Fm.conj().T).diagonal().real.reshape(h, h)
    torch.testing.assert_close(stationary.fourier_spectrum()[0], diag, rtol=1e-10, atol=1e-12)
    gap = pyramid_stationarity_gap((1, h, h), 0.8)
    assert 0 < gap < 0.05
    assert make_covariance("pyramid", (1, 8, 8)).fourier_spectrum() is not None
