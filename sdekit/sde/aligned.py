"""A VP noise schedule aligned to the noise covariance Σ and the data: per-mode SNR.

Take a basis in which Σ is diagonal (the Fourier basis for every stationary Σ: white
noise, GFF, :class:`~sdekit.covariance.FourierCovariance`). Mode k has data variance
P_k (the data's power spectrum) and noise variance λ_k, so x_t = α_t x₀ + σ_t L ε has
the per-mode signal-to-noise ratio

    SNR_k(t) = α_t² P_k / (σ_t² λ_k) = exp(ℓ(t)) · P_k / λ_k,   ℓ(t) = log(α_t² / σ_t²),

and mode k crosses SNR 1, where it "forms" in the reverse process, at
ℓ(t) = c_k = log(λ_k / P_k). White noise (λ ≡ 1) on natural images (P_k ∝ |k|⁻²)
spreads the c_k over ~ 10 nats, so DDPM's schedule forms the image over most of its
time axis. Noise shaped like the data (GFF: λ_k ∝ |k|⁻²) makes the c_k nearly equal:
on the same schedule every mode forms in a short stretch of time, and most training
times and sampling steps fall where nothing is formed.

:class:`AlignedLogSNR` fixes that with a monotone map g of log-SNRs: the aligned
schedule is ℓ_new(t) = g(ℓ_ref(t)), with g chosen so that the q-quantile of the
crossings under Σ falls at the time of the q-quantile under white noise on the
reference schedule ℓ_ref:

    g(Q_ref(q)) = Q_Σ(q),   Q_ref, Q_Σ the quantiles of c_k^ref = log(1/P_k), c_k = log(λ_k/P_k),

interpolated monotonically (PCHIP) between ``num_knots`` quantiles and pinned to the
identity at the reference chain's end points (``log_snr_range``), so the aligned chain
starts and ends at DDPM's log-SNRs and only redistributes the time in between. Everything
comes from the data's power spectrum and Σ's eigenvalues; the chain's β follow from
ᾱ_i = sigmoid(ℓ_new(t_i)) (:meth:`AlignedLogSNR.betas`), which
:meth:`sdekit.NIVPSDE.from_betas` embeds exactly, so every sampler runs unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator
from torch import Tensor

from ..covariance import CovarianceOperator
from ..errors import InputError, InputTypeError

__all__ = [
    "AlignedLogSNR",
    "crossing_log_snrs",
    "fourier_eigenvalues",
    "snr_crossing_times",
    "chain_log_snr",
]

F64 = torch.float64


def fourier_eigenvalues(covariance: CovarianceOperator) -> Tensor:
    """Σ's eigenvalues λ on the Fourier grid, broadcast to its event shape (float64, CPU):
    :meth:`~sdekit.covariance.CovarianceOperator.fourier_spectrum`, for an operator that has
    one (white noise, :class:`~sdekit.covariance.FourierCovariance` and GFF, a Kronecker
    product of uncorrelated channels and a Fourier spatial factor); ``TypeError`` for the
    others, which are not diagonal in the Fourier basis.
    """
    spectrum = covariance.fourier_spectrum()
    if spectrum is None:
        raise InputTypeError(
            "the per-mode SNR needs a covariance diagonal in the Fourier basis "
            "(IdentityCovariance or a FourierCovariance such as GFF), "
            f"got {type(covariance).__name__}"
        )
    return spectrum.to("cpu", F64).expand(tuple(covariance.event_shape)).clone()


def crossing_log_snrs(data_variances, noise_variances) -> Tensor:
    """c_k = log(λ_k / P_k): the log-SNR ℓ at which each mode's SNR crosses 1, flattened.

    ``data_variances`` P (e.g. :func:`sdekit.covariance.power_spectrum`, shape
    ``(C, H, W)``) and ``noise_variances`` λ must broadcast to one shape; both > 0.
    """
    p = torch.as_tensor(data_variances, dtype=F64)
    lam = torch.as_tensor(noise_variances, dtype=F64)
    for name, v in (("data_variances", p), ("noise_variances", lam)):
        if not (torch.isfinite(v).all() and (v > 0).all()):
            raise InputError(f"{name} must be finite and > 0 (a variance per mode)")
    p, lam = torch.broadcast_tensors(p, lam)
    return (lam.log() - p.log()).flatten()


def chain_log_snr(betas) -> Tensor:
    """ℓ_i = log(ᾱ_i / (1 - ᾱ_i)) of a DDPM chain, ᾱ_i = Π_{j≤i}(1 - β_j), i = 1..N."""
    b = torch.as_tensor(betas, dtype=F64)
    if b.ndim != 1 or b.numel() == 0 or not bool(((b > 0) & (b < 1)).all()):
        raise InputError(
            f"betas must be a non-empty 1-D sequence in (0, 1), got shape {tuple(b.shape)}"
        )
    log_abar = torch.cumsum(torch.log1p(-b), 0)
    return log_abar - torch.log(-torch.expm1(log_abar))


def snr_crossing_times(log_snr_chain: Tensor, crossings: Tensor) -> Tensor:
    """The time t ∈ [0, 1] at which a chain with log-SNRs ``log_snr_chain`` (at
    t_i = i/N, decreasing) passes each crossing log-SNR, by linear interpolation in ℓ;
    crossings above ℓ_1 give t ≤ 1/N, below ℓ_N give 1."""
    ell = torch.as_tensor(log_snr_chain, dtype=F64)
    if ell.ndim != 1 or ell.numel() < 2 or not bool((torch.diff(ell) < 0).all()):
        raise InputError("log_snr_chain must be a 1-D, strictly decreasing sequence (t = i/N)")
    crossings = torch.as_tensor(crossings, dtype=F64)
    n = ell.numel()
    t = torch.arange(1, n + 1, dtype=F64) / n
    # np.interp needs increasing x: reverse the (decreasing) chain
    out = np.interp(crossings.numpy(), ell.flip(0).numpy(), t.flip(0).numpy())
    return torch.from_numpy(out)


@dataclass(frozen=True)
class AlignedLogSNR:
    """The monotone log-SNR map g of the module docstring, given by its knots.

    ``reference`` and ``aligned``: increasing knot log-SNRs (Q_ref(q_j), Q_Σ(q_j)).
    Build with :meth:`fit`; store with :meth:`to_dict` (JSON-able) and :meth:`from_dict`.
    """

    reference: tuple[float, ...]
    aligned: tuple[float, ...]

    def __post_init__(self):
        r, a = np.asarray(self.reference, float), np.asarray(self.aligned, float)
        if r.ndim != 1 or r.shape != a.shape or r.size < 2:
            raise InputError("reference and aligned must be 1-D knot lists of equal length >= 2")
        if not (np.all(np.diff(r) > 0) and np.all(np.diff(a) > 0)):
            raise InputError("the knots must be strictly increasing (a monotone map)")

    @classmethod
    def fit(
        cls,
        data_variances,
        noise_variances,
        reference_noise_variances=1.0,
        *,
        num_knots: int = 17,
        min_slope: float = 0.1,
        log_snr_range: tuple[float, float] | None = None,
    ) -> AlignedLogSNR:
        """The map that moves the crossings under ``noise_variances`` λ to the times of
        the crossings under ``reference_noise_variances`` (white noise, 1, by default).

        ``num_knots`` quantiles q_j = j/(num_knots − 1) of both crossing sets are matched.
        Where Σ's crossings nearly coincide (noise shaped almost exactly like the data) the
        map would flatten; its slope is kept ≥ ``min_slope`` between knots, so the
        schedule stays strictly decreasing (every β > 0).

        ``log_snr_range`` = (ℓ_min, ℓ_max), the reference chain's log-SNRs at t = T and
        t = 1/N (:func:`chain_log_snr`), pins the map's ends: g(ℓ_min) = ℓ_min and
        g(ℓ_max) = ℓ_max, so the aligned chain starts and ends where the reference does
        (the same prior mismatch and the same final noise level) and only redistributes
        the time in between. Without it the map continues with slope 1 beyond the
        outer knots.
        """
        if num_knots < 2:
            raise InputError(f"num_knots must be >= 2, got {num_knots}")
        if not 0 < min_slope <= 1:
            raise InputError(f"min_slope must lie in (0, 1], got {min_slope}")
        q = torch.linspace(0, 1, num_knots, dtype=F64)
        ref = torch.quantile(crossing_log_snrs(data_variances, reference_noise_variances), q)
        new = torch.quantile(crossing_log_snrs(data_variances, noise_variances), q)
        ref, new = ref.tolist(), new.tolist()
        for j in range(1, num_knots):  # strictly increasing reference knots
            ref[j] = max(ref[j], ref[j - 1] + 1e-6)
        for j in range(1, num_knots):
            new[j] = max(new[j], new[j - 1] + min_slope * (ref[j] - ref[j - 1]))
        if log_snr_range is not None:
            lo, hi = (float(v) for v in log_snr_range)
            if not (lo < min(ref[0], new[0]) and hi > max(ref[-1], new[-1])):
                raise InputError(
                    f"log_snr_range ({lo:.3g}, {hi:.3g}) must enclose every crossing "
                    f"log-SNR (reference {ref[0]:.3g} … {ref[-1]:.3g}, "
                    f"aligned {new[0]:.3g} … {new[-1]:.3g})"
                )
            ref, new = [lo, *ref, hi], [lo, *new, hi]
        return cls(tuple(ref), tuple(new))

    def __call__(self, log_snr) -> Tensor:
        """g(ℓ): PCHIP through the knots, slope 1 beyond them. float64."""
        ell = torch.as_tensor(log_snr, dtype=F64)
        r, a = np.asarray(self.reference), np.asarray(self.aligned)
        x = ell.numpy()
        inside = PchipInterpolator(r, a, extrapolate=True)(np.clip(x, r[0], r[-1]))
        out = inside + np.where(x < r[0], x - r[0], 0.0) + np.where(x > r[-1], x - r[-1], 0.0)
        return torch.from_numpy(np.asarray(out, dtype=np.float64))

    def betas(self, reference_betas) -> Tensor:
        """The aligned chain's β_i, from ᾱ_i = sigmoid(g(ℓ_ref,i)) of the reference chain."""
        ell = self(chain_log_snr(reference_betas))
        log_abar = torch.nn.functional.logsigmoid(ell)
        log_ratio = torch.diff(log_abar, prepend=torch.zeros(1, dtype=F64))
        return -torch.expm1(log_ratio)

    def to_dict(self) -> dict:
        return {"reference": list(self.reference), "aligned": list(self.aligned)}

    @classmethod
    def from_dict(cls, d: dict) -> AlignedLogSNR:
        return cls(tuple(d["reference"]), tuple(d["aligned"]))
