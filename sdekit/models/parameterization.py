"""Network output conventions for non-isotropic noise.

sdekit's samplers take ``model(x, t) -> ε̂``, the *whitened* noise of
x_t = α_t x₀ + σ_t L ε. A convolutional network predicts the *correlated* noise
n = L ε far more easily: at high noise n ≈ x_t/σ_t is (nearly) the identity map,
whereas ε = L⁻¹ x_t/σ_t needs the global, strongly high-pass filter L⁻¹ (for GFF
noise at 32×32 it amplifies the highest frequencies ≈ 23×). (Voleti et al. train the
whitened ε, eq. 16; the correlated loss weights Fourier mode k by λ_k instead, see
docs/training.md.) :class:`CorrelatedNoiseModel` wraps such a network:
ε̂ = L⁻¹ net(x, t), so samplers, which use L ε̂ = net(x, t), never amplify its
errors, and the natural loss is the DDPM loss on n (``loss_space="correlated"``).
"""

from __future__ import annotations

from torch import Tensor, nn

from ..covariance import CovarianceOperator, IdentityCovariance

__all__ = ["CorrelatedNoiseModel"]


class CorrelatedNoiseModel(nn.Module):
    """ε̂(x, t) = L⁻¹ net(x, t) for a ``net`` that predicts the correlated noise L ε.

    The covariance is not a parameter; with ``IdentityCovariance`` this is ``net``.
    """

    def __init__(self, net: nn.Module, covariance: CovarianceOperator):
        super().__init__()
        self.net = net
        self.covariance = covariance

    def correlated(self, x: Tensor, t: Tensor) -> Tensor:
        """The network's own output, L ε̂."""
        return self.net(x, t)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        out = self.net(x, t)
        if isinstance(self.covariance, IdentityCovariance):
            return out
        cov = self.covariance
        if cov.device is not None and cov.device != out.device:
            cov = self.covariance = cov.to(device=out.device)
        return cov.inv_sqrt_apply(out.to(cov.dtype or out.dtype)).to(out.dtype)
