"""MatrixFreeCovariance against a dense Cholesky factor of the same Σ, side by side, at
d = 1024 (1×32×32) and d = 4096 (1×64×64): the graph-Laplacian GFF (Δ_G + m²)⁻¹, free
boundaries, m = 0.1, float64, batch 8.

    pytest benchmarks/test_matrix_free_bench.py --benchmark-only

Groups: ``setup-<d>`` (building the operator: the dense path forms Σ = P⁻¹ and factors it,
O(d³); the matrix-free path checks symmetry and positivity, a few matvecs) and
``sqrt-<d>`` / ``inv_sqrt-<d>`` (L x and L⁻¹ x on a batch of 8).
"""

from __future__ import annotations

import pytest
import torch

from sdekit import CholeskyCovariance
from sdekit.covariance.matrix_free import graph_laplacian_gff

SIZES = {1024: (1, 32, 32), 4096: (1, 64, 64)}
F64 = torch.float64


def dense_of(cov) -> CholeskyCovariance:
    """Σ = P⁻¹ formed from the precision's matvec and factored."""
    d = cov.dim
    P = cov.matvec(torch.eye(d, dtype=F64).reshape(d, *cov.event_shape)).reshape(d, d)
    return CholeskyCovariance(torch.linalg.inv(0.5 * (P + P.T)), cov.event_shape)


@pytest.fixture(scope="module", params=list(SIZES), ids=lambda d: f"d{d}")
def pair(request):
    shape = SIZES[request.param]
    free = graph_laplacian_gff(shape, mass=0.1)
    x = torch.randn(8, *shape, dtype=F64, generator=torch.Generator().manual_seed(0))
    return request.param, free, dense_of(free), x


def test_setup_dense(benchmark, pair):
    d, free, _, _ = pair
    benchmark.group = f"setup-{d}"
    benchmark.pedantic(dense_of, args=(free,), rounds=1, iterations=1)


def test_setup_matrix_free(benchmark, pair):
    d, free, _, _ = pair
    benchmark.group = f"setup-{d}"
    benchmark.pedantic(graph_laplacian_gff, args=(free.event_shape,), kwargs={"mass": 0.1},
                       rounds=1, iterations=1)  # fmt: skip


@pytest.mark.parametrize("kind", ["dense", "matrix_free"])
@pytest.mark.parametrize("op", ["sqrt_apply", "inv_sqrt_apply"])
def test_apply(benchmark, pair, kind, op):
    d, free, dense, x = pair
    cov = dense if kind == "dense" else free
    benchmark.group = f"{op.removesuffix('_apply')}-{d}"
    benchmark.pedantic(getattr(cov, op), args=(x,), rounds=3, iterations=1)
