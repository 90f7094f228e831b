r"""Fully digital solvers of paper 000 and its hybrid baselines with predetermined analog beams.

Every solver works on what the BS knows (``task.known(instance)``): the ESTIMATED channel,
the power budget and the (unit) noise variance; none reads the true channel. The same agent
classes serve three environments:

* ``beamgym/FullyDigitalFDD-v0`` (paper 000 Sec. II-III): the beamformer
  :math:`\mathbf W \in \mathbb C^{N \times KM}` under :math:`\|\mathbf W\|_F^2 \le P`
  (eq. (8)), designed on :math:`\tilde{\mathbf H}`;
* ``beamgym/FarFieldHybrid-v0`` with ``analog="steering"`` (paper 000 Sec. IV-A) and
  ``beamgym/NearFieldHybrid-v0`` (TTD+PS, paper 000 Sec. IV-B): the analog precoder
  :math:`\mathbf W^a` is predetermined (eq. (18) / eq. (30)-(31), known at the BS) and the
  solvers design the digital precoder :math:`\mathbf W^D` on the estimated EFFECTIVE channel
  :math:`\tilde{\mathbf G} = \mathbf H\mathbf W^a + \Delta\mathbf G` under the hybrid power
  constraint :math:`\|\mathbf W^a\mathbf W^D\|_F^2 \le P` (eq. (23)/(34)), whose
  normalization is eq. (24).

Power handling, common to all solvers. The hybrid power is the weighted norm
:math:`\mathrm{tr}(\mathbf W^{DH}\mathbf Q\mathbf W^D)` with the Hermitian positive definite
weight :math:`\mathbf Q = (\mathbf W^a)^H\mathbf W^a` (far field) or its average over the
subcarriers :math:`\frac1F\sum_f(\mathbf W^a_f)^H\mathbf W^a_f` (near field, wideband
option); fully digital is :math:`\mathbf Q = \mathbf I`. The closed-form precoders (MRT,
ZF, RZF, MMSE) are designed on the (effective) channel as in the fully digital case; the
iterative ones (gradient ascent, WMMSE) optimize under the exact weighted constraint. Every
output is scaled to FULL power,
:math:`\mathbf W \leftarrow \sqrt{P}\,\mathbf W/\sqrt{\mathrm{tr}(\mathbf W^H\mathbf Q
\mathbf W)}` (total-power scaling; eq. (24), and the normalization layer of Sec. III-A3 for
:math:`\mathbf Q = \mathbf I`): a common scaling :math:`c > 1` raises every SINR, so the
sum-rate optimum lies on the power sphere.

Channels. A solver's channel ``H`` is ``[B, K, N]`` (MISO, rows :math:`\mathbf h_k^H`),
``[B, K, M, N]`` (MIMO, blocks :math:`\mathbf H_k`) or ``[B, F, K, M, N]`` (``F`` subcarriers
sharing one precoder; the objective is the band-averaged sum-rate, NearFieldHybrid's wideband
option). ``N`` is the number of antennas (fully digital) or RF chains (hybrid). All channels
are normalized (unit noise, ``noise_var`` = 1 in the three envs).

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
    [4]   Q. Shi, M. Razaviyayn, Z.-Q. Luo, C. He, "An iteratively weighted MMSE approach to
          distributed sum-utility maximization for a MIMO interfering broadcast channel",
          IEEE Trans. Signal Process. 59(9), 2011 (paper 000's ref. [4]).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from agents.base import Agent, register_agent
from beamgym._validation import check_int, check_positive, check_tensor
from beamgym.physics.metrics import (
    as_noise,
    mimo_rates,
    miso_rates,
    mmse_beamformer,
    sum_rate_gradient,
)
from beamgym.structures import HybridBeamformer, TensorDataclass

__all__ = [
    "ENV_IDS",
    "GA_INITS",
    "WMMSE_INITS",
    "ETA_RULES",
    "DEFAULT_ETA",
    "DEFAULT_ETA_RULE",
    "SolverProblem",
    "WMMSEResult",
    "band_sum_rate",
    "weighted_power",
    "normalize_power",
    "mrt_beamformer",
    "zf_beamformer",
    "rzf_beamformer",
    "gradient_ascent",
    "wmmse",
    "problem_from_known",
    "MRTAgent",
    "ZFAgent",
    "RZFAgent",
    "MMSEAgent",
    "GAAgent",
    "MMSEGAAgent",
    "WMMSEAgent",
]

#: Environments the agents of this module support (FarFieldHybrid: ``analog="steering"``).
ENV_IDS: tuple[str, ...] = (
    "beamgym/FullyDigitalFDD-v0",
    "beamgym/FarFieldHybrid-v0",
    "beamgym/NearFieldHybrid-v0",
)
#: Initial beamformers of the ``ga`` agent.
GA_INITS: tuple[str, ...] = ("mmse", "mrt", "zf", "rzf", "random")
#: Initial beamformers of the ``wmmse`` agent (its random restarts come on top).
WMMSE_INITS: tuple[str, ...] = ("mmse", "random")
#: Step-size rules of :func:`gradient_ascent`: ``"fixed"`` (eq. (9) as printed, one
#: :math:`\eta` for every instance) or ``"normalized"`` (:math:`\eta/\bar e` with the mean
#: per-user energy :math:`\bar e = \|\tilde{\mathbf H}\|_F^2/(KF)` of the channel the ascent
#: uses, known at the BS).
ETA_RULES: tuple[str, ...] = ("fixed", "normalized")
#: Default step rule of the ``ga`` / ``mmse_ga`` agents.
DEFAULT_ETA_RULE = "normalized"
#: Default (normalized) step :math:`\bar\eta` of the ``ga`` / ``mmse_ga`` agents, tuned on
#: training seeds only (the ``tuning`` section of ``benchmarks/fdd_solvers.py``): the largest
#: value of the grid {0.05, 0.1, ..., 0.4} whose 10 steps raise the mean true-channel sum-rate
#: of MMSE at every SNR of 5-20 dB on FullyDigitalFDD-v0 defaults (paper CSI error).
DEFAULT_ETA = 0.2

_LN2 = math.log(2.0)


# ---- the solver's view of a problem ------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class SolverProblem(TensorDataclass):
    r"""A batch of beamforming problems as the solvers see them (what the BS knows).

    Attributes:
        H: Complex ``[B, F, K, M, N]`` estimated (effective) channels, ``F`` subcarriers
            sharing one precoder (``F = M = 1`` for the paper's MISO settings).
        power: Real ``[B]`` power budget :math:`P`.
        noise_var: Real ``[B]`` noise variance (1 for the normalized channels).
        Q: Complex ``[B, N, N]`` power weight :math:`\mathbf Q` (hybrid:
            :math:`(\mathbf W^a)^H\mathbf W^a`), or ``None`` for the identity (fully
            digital).
    """

    H: torch.Tensor
    power: torch.Tensor
    noise_var: torch.Tensor
    Q: torch.Tensor | None = None

    def repeat(self, r: int) -> SolverProblem:
        """The batch repeated ``r`` times (``[r * B, ...]``, copy ``i`` at ``i*B:(i+1)*B``)."""
        return SolverProblem(
            H=self.H.repeat(r, 1, 1, 1, 1),
            power=self.power.repeat(r),
            noise_var=self.noise_var.repeat(r),
            Q=None if self.Q is None else self.Q.repeat(r, 1, 1),
        )

    @property
    def linear_channel(self) -> torch.Tensor:
        """``[B, K, N]`` (MISO) or ``[B, K, M, N]`` channel of the closed-form precoders.

        The first subcarrier (the carrier when ``F = 1``), as the env's MMSE helper uses.
        """
        H = self.H[:, 0]
        return H[:, :, 0] if H.shape[2] == 1 else H


def _canonical(H: torch.Tensor) -> torch.Tensor:
    """``[B, K, N]`` / ``[B, K, M, N]`` / ``[B, F, K, M, N]`` -> ``[B, F, K, M, N]``."""
    check_tensor(H, "H", min_ndim=3, complex_=True)
    if H.ndim == 3:
        return H[:, None, :, None, :]
    if H.ndim == 4:
        return H[:, None]
    if H.ndim == 5:
        return H
    raise ValueError(
        f"H must be [B, K, N] (MISO), [B, K, M, N] (MIMO) or [B, F, K, M, N] (subcarriers), "
        f"got shape {tuple(H.shape)}"
    )


def _budget(power: float | torch.Tensor, b: int, like: torch.Tensor) -> torch.Tensor:
    p = torch.as_tensor(power, dtype=like.real.dtype, device=like.device)
    if p.ndim == 0:
        p = p.expand(b)
    if p.shape != (b,) or not bool(torch.isfinite(p).all()) or bool((p <= 0).any()):
        raise ValueError(f"power must be a positive number or a positive [B]={b} tensor")
    return p


def _check_weight(Q: torch.Tensor | None, b: int, n: int, like: torch.Tensor) -> torch.Tensor:
    """The power weight as a ``[B, N, N]`` tensor (identity for ``None``)."""
    if Q is None:
        return torch.eye(n, dtype=like.dtype, device=like.device).expand(b, n, n)
    check_tensor(Q, "power_weight", complex_=True)
    if Q.ndim == 2:
        Q = Q.expand(b, *Q.shape)
    if Q.shape != (b, n, n):
        raise ValueError(
            f"power_weight must be [N, N] or [B, N, N] = [{b}, {n}, {n}], got {tuple(Q.shape)}"
        )
    return Q.to(like.dtype)


def weighted_power(W: torch.Tensor, power_weight: torch.Tensor | None = None) -> torch.Tensor:
    r"""Transmit power :math:`\mathrm{tr}(\mathbf W^H\mathbf Q\mathbf W)`, paper 000 eq. (8)/(23).

    With :math:`\mathbf Q = (\mathbf W^a)^H\mathbf W^a` this is the hybrid power
    :math:`\|\mathbf W^a\mathbf W\|_F^2`; ``None`` means :math:`\mathbf Q = \mathbf I`
    (:math:`\|\mathbf W\|_F^2`).

    Args:
        W: Complex ``[B, N, S]`` (digital) beamformer.
        power_weight: ``None`` or complex ``[N, N]`` / ``[B, N, N]`` Hermitian PSD
            :math:`\mathbf Q`.

    Returns:
        Real ``[B]`` power (linear), computed in double precision when ``power_weight`` is
        given.
    """
    check_tensor(W, "W", ndim=3, complex_=True)
    if power_weight is None:
        return torch.view_as_real(W.resolve_conj()).flatten(1).square().sum(-1)
    Q = _check_weight(power_weight, W.shape[0], W.shape[1], W)
    # in double precision: with an ill-conditioned Q the quadratic form cancels heavily
    W64, Q64 = W.to(torch.complex128), Q.to(torch.complex128)
    pw = torch.einsum("bns,bnm,bms->b", W64.conj(), Q64, W64).real.clamp_min(0.0)
    return pw.to(W.real.dtype)


def normalize_power(
    W: torch.Tensor, power: float | torch.Tensor, power_weight: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Full-power scaling, paper 000 Sec. III-A3 (:math:`\mathbf Q = \mathbf I`) and eq. (24).

    .. math:: \mathbf W \leftarrow \sqrt P\,\frac{\mathbf W}{\sqrt{\mathrm{tr}(\mathbf W^H
              \mathbf Q\mathbf W)}}

    This is the projection of every solver onto the power sphere :math:`\mathrm{tr}(\mathbf
    W^H\mathbf Q\mathbf W) = P` (for :math:`\mathbf Q = \mathbf I` the Euclidean projection
    onto :math:`\|\mathbf W\|_F^2 = P`). A zero ``W`` stays zero (no NaN).

    Args:
        W: Complex ``[B, N, S]`` beamformer.
        power: Budget :math:`P`: a positive number or a real ``[B]`` tensor.
        power_weight: ``None`` (identity) or :math:`\mathbf Q` (``[N, N]`` or ``[B, N, N]``).

    Returns:
        Complex ``[B, N, S]`` beamformer at full power.
    """
    pw = weighted_power(W, power_weight)
    p = _budget(power, W.shape[0], W)
    nz = pw > 0
    scale = torch.where(nz, torch.sqrt(p / torch.where(nz, pw, torch.ones_like(pw))), 0.0 * pw)
    return W * scale.to(W.dtype)[:, None, None]


def band_sum_rate(
    H: torch.Tensor, W: torch.Tensor, noise_var: float | torch.Tensor = 1.0
) -> torch.Tensor:
    r"""Sum-rate in bit/s/Hz, paper 000 eq. (4) (MISO) / (2) (MIMO), band-averaged.

    .. math:: R(\mathbf W) = \frac1F\sum_{f=1}^F\sum_{k=1}^K \log_2\big|\mathbf I_M +
              \boldsymbol\Sigma_{k,f}^{-1}\mathbf H_{k,f}\mathbf W_k\mathbf W_k^H
              \mathbf H_{k,f}^H\big|

    (``F = 1``: eq. (2)/(4); NearFieldHybrid's wideband option averages eq. (33) over
    subcarriers).

    Args:
        H: Complex ``[B, K, N]``, ``[B, K, M, N]`` or ``[B, F, K, M, N]`` channel.
        W: Complex ``[B, N, K*M]`` beamformer shared by all subcarriers.
        noise_var: Scalar or ``[B]`` noise variance.

    Returns:
        Real ``[B]`` sum-rate.
    """
    H5 = _canonical(H)
    b, f, k, m, n = H5.shape
    Wf = W.unsqueeze(1).expand(b, f, *W.shape[1:]).reshape(b * f, *W.shape[1:])
    s2 = as_noise(noise_var, b, 1, H5)[:, 0].repeat_interleave(f)
    if m == 1:
        rates = miso_rates(H5[:, :, :, 0].reshape(b * f, k, n), Wf, s2)
    else:
        rates = mimo_rates(H5.reshape(b * f, k, m, n), Wf, s2)
    return rates.sum(-1).reshape(b, f).mean(-1)


def _band_gradient(H5: torch.Tensor, W: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    """Steepest-ascent direction of :func:`band_sum_rate` (mean of eq. (9)'s gradients)."""
    b, f, k, m, n = H5.shape
    Wf = W.unsqueeze(1).expand(b, f, *W.shape[1:]).reshape(b * f, *W.shape[1:])
    Hf = H5[:, :, :, 0].reshape(b * f, k, n) if m == 1 else H5.reshape(b * f, k, m, n)
    g = sum_rate_gradient(Hf, Wf, s2.repeat_interleave(f), form="ascent")
    return g.reshape(b, f, *W.shape[1:]).mean(1)


# ---- closed-form linear precoders ---------------------------------------------------------------
def _stack_rows(H: torch.Tensor) -> torch.Tensor:
    """``[B, K, N]`` or ``[B, K, M, N]`` -> ``[B, K*M, N]`` (one row per stream)."""
    check_tensor(H, "H", min_ndim=3, complex_=True)
    if H.ndim == 3:
        return H
    if H.ndim == 4:
        return H.reshape(H.shape[0], -1, H.shape[-1])
    raise ValueError(f"H must be [B, K, N] or [B, K, M, N], got shape {tuple(H.shape)}")


def _cholesky_jitter(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cholesky of Hermitian PD ``[B, n, n]``; singular ones get a small diagonal load.

    Returns:
        ``(L, loaded)`` with ``loaded`` a ``[B]`` bool flag.
    """
    A = 0.5 * (A + A.mH)
    L, info = torch.linalg.cholesky_ex(A)
    bad = info != 0
    if bool(bad.any()):
        n = A.shape[-1]
        eye = torch.eye(n, dtype=A.dtype, device=A.device)
        scale = torch.diagonal(A, dim1=-2, dim2=-1).real.mean(-1).clamp_min(1e-30)
        eps = 1e-6 if A.real.dtype == torch.float32 else 1e-12
        L2, _ = torch.linalg.cholesky_ex(A + (eps * scale)[:, None, None].to(A.dtype) * eye)
        L = torch.where(bad[:, None, None], L2, L)
    return L, bad


def mrt_beamformer(
    H: torch.Tensor, power: float | torch.Tensor, *, power_weight: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Maximum ratio transmission (matched filter), paper 000 Sec. I ref. [6].

    .. math:: \mathbf W = c\,\mathbf H^H

    with the ``K M`` stream rows of :math:`\mathbf H` stacked and one common factor
    :math:`c > 0` to full power (total-power scaling).
    The precoder is designed on the given (effective) channel as if its power were
    :math:`\|\mathbf W\|_F^2` and then scaled to full power under ``power_weight``
    (:func:`normalize_power`: total-power scaling, eq. (24) for hybrid), as paper 000 does
    with its MMSE baseline on the effective channel (Sec. IV-C).

    Args:
        H: Complex ``[B, K, N]`` or ``[B, K, M, N]`` (estimated) channel.
        power: Budget :math:`P`: a number or a real ``[B]`` tensor.
        power_weight: ``None`` or :math:`\mathbf Q` (``[N, N]`` / ``[B, N, N]``).

    Returns:
        Complex ``[B, N, K*M]`` beamformer with :math:`\mathrm{tr}(\mathbf W^H\mathbf Q
        \mathbf W) = P`.
    """
    return normalize_power(_stack_rows(H).mH, power, power_weight)


def zf_beamformer(
    H: torch.Tensor, power: float | torch.Tensor, *, power_weight: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Zero-forcing precoder (channel inversion), total-power scaling.

    .. math:: \mathbf W = c\,\mathbf H^H(\mathbf H\mathbf H^H)^{-1}

    with the ``K M`` stream rows of :math:`\mathbf H` stacked (MIMO: plain channel
    inversion, :math:`\mathbf H_k\mathbf W_i = \mathbf 0` for :math:`i \ne k` and
    :math:`\mathbf H_k\mathbf W_k = c\,\mathbf I`): the minimum-norm right inverse, scaled by
    one common factor :math:`c` to full power (total-power scaling, not equal power per
    user). Needs ``K M <= N``. Rank-deficient channels (:math:`\mathbf H\mathbf H^H` not
    positive definite) fall back to the Moore-Penrose pseudo-inverse and are flagged.
    The precoder is designed on the given (effective) channel as if its power were
    :math:`\|\mathbf W\|_F^2` and then scaled to full power under ``power_weight``
    (:func:`normalize_power`: total-power scaling, eq. (24) for hybrid), as paper 000 does
    with its MMSE baseline on the effective channel (Sec. IV-C).

    Args:
        H: Complex ``[B, K, N]`` or ``[B, K, M, N]`` (estimated) channel.
        power: Budget :math:`P`: a number or a real ``[B]`` tensor.
        power_weight: ``None`` or :math:`\mathbf Q` (``[N, N]`` / ``[B, N, N]``).

    Returns:
        ``(W, rank_deficient)``: complex ``[B, N, K*M]`` beamformer and a ``[B]`` bool flag
        (True where the pseudo-inverse was used: interference is then not nulled).
    """
    Hs = _stack_rows(H)
    gram = Hs @ Hs.mH  # [B, S, S]
    Lg, info = torch.linalg.cholesky_ex(0.5 * (gram + gram.mH))
    bad = info != 0
    if bool(bad.any()):
        eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
        Lg = torch.where(bad[:, None, None], eye, Lg)
    W = Hs.mH @ torch.cholesky_inverse(Lg)
    if bool(bad.any()):
        W = W.index_put((bad,), torch.linalg.pinv(Hs[bad]))
    return normalize_power(W, power, power_weight), bad


def rzf_beamformer(
    H: torch.Tensor,
    power: float | torch.Tensor,
    noise_var: float | torch.Tensor = 1.0,
    *,
    power_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Regularized zero-forcing with the MMSE regularization, total-power scaling.

    .. math:: \mathbf W = c\,(\mathbf H^H\mathbf H + \alpha\mathbf I)^{-1}\mathbf H^H
              = c\,\mathbf H^H(\mathbf H\mathbf H^H + \alpha\mathbf I)^{-1}, \qquad
              \alpha = \frac{S\sigma^2}{P}

    with :math:`S = KM` streams (:math:`\alpha = K\sigma^2/P` for MISO users: the
    regularization that maximizes the SINR of RZF when all streams get equal power, the
    "MMSE-optimal" RZF or transmit Wiener filter). Paper 000's MMSE teacher (Sec. III-B2) is
    the same matrix with :math:`\alpha = K\sigma^2/P` but normalizes each user's column
    block to power :math:`P/K`; this RZF instead scales all columns by one common factor
    :math:`c` to full power (total-power scaling).
    The precoder is designed on the given (effective) channel as if its power were
    :math:`\|\mathbf W\|_F^2` and then scaled to full power under ``power_weight``
    (:func:`normalize_power`: total-power scaling, eq. (24) for hybrid), as paper 000 does
    with its MMSE baseline on the effective channel (Sec. IV-C).

    Args:
        H: Complex ``[B, K, N]`` or ``[B, K, M, N]`` (estimated) channel.
        power: Budget :math:`P`: a number or a real ``[B]`` tensor.
        noise_var: Noise variance :math:`\sigma^2`: a number or a real ``[B]`` tensor.
        power_weight: ``None`` or :math:`\mathbf Q` (``[N, N]`` / ``[B, N, N]``).

    Returns:
        Complex ``[B, N, K*M]`` beamformer at full power.
    """
    Hs = _stack_rows(H)
    b, s, _ = Hs.shape
    p = _budget(power, b, Hs)
    s2 = as_noise(noise_var, b, 1, Hs)[:, 0]
    alpha = (s * s2 / p).to(Hs.dtype)[:, None, None]
    eye = torch.eye(s, dtype=Hs.dtype, device=Hs.device)
    A = Hs @ Hs.mH + alpha * eye
    L = torch.linalg.cholesky(0.5 * (A + A.mH))
    return normalize_power(Hs.mH @ torch.cholesky_inverse(L), p, power_weight)


# ---- gradient ascent, paper 000 eq. (9) ---------------------------------------------------------
def gradient_ascent(
    H: torch.Tensor,
    W0: torch.Tensor,
    power: float | torch.Tensor,
    steps: int,
    eta: float,
    noise_var: float | torch.Tensor = 1.0,
    *,
    eta_rule: str = "fixed",
    power_weight: torch.Tensor | None = None,
    return_trace: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
    r"""Projected gradient ascent on the sum-rate, paper 000 eq. (9) (the "MMSE" baseline's GA).

    For :math:`q = 1, \dots, Q_i` (``steps``):

    .. math:: \mathbf W_q = \Pi\big(\mathbf W_{q-1} + \eta\,\nabla_{\mathbf W}
              R_{\rm sum}(\mathbf H, \mathbf W_{q-1})\big), \qquad
              \Pi(\mathbf W) = \sqrt P\,\frac{\mathbf W}{\sqrt{\mathrm{tr}(\mathbf W^H
              \mathbf Q\mathbf W)}}

    with the closed-form steepest-ascent gradient
    :math:`\nabla_{\mathbf W} R = 2\,\partial R/\partial\mathbf W^*` of eq. (2)/(4)
    (:func:`beamgym.physics.metrics.sum_rate_gradient`, paper 000 Appendix: :math:`[\nabla_{
    \mathbf w}L]_a = 2\,\partial L/\partial\bar{\mathbf w}(a)`), in bit/s/Hz. Eq. (9) prints
    no projection; paper 000's network output is full power (Sec. III-A3) and the sum-rate
    optimum lies on the power sphere, so each step is re-normalized onto
    :math:`\mathrm{tr}(\mathbf W^H\mathbf Q\mathbf W) = P` (:func:`normalize_power`: the
    Euclidean projection onto :math:`\|\mathbf W\|_F^2 = P` for :math:`\mathbf Q =
    \mathbf I`; eq. (24) for hybrid). With several subcarriers (``H`` 5-D) the gradient is
    that of the band-averaged rate.

    Step size. Eq. (9) uses one fixed :math:`\eta` (``eta_rule="fixed"``); the paper does not
    print its value (its :math:`\eta = 10^{-4}` of eq. (13) is the network learning rate).
    The curvature of the sum-rate grows with the channel energy, which for paper 000's
    normalized channel :math:`\mathbf H = \bar{\mathbf H}/\sigma` grows with the SNR, so a
    fixed :math:`\eta` that helps at 5 dB diverges at 20 dB (on FullyDigitalFDD-v0 defaults
    the largest stable fixed step falls from about 1e-3 at 5 dB to 3e-5 at 20 dB).
    ``eta_rule="normalized"`` (beamgym option) takes :math:`\eta = \bar\eta/\bar e` per
    instance with :math:`\bar e = \frac{1}{KF}\sum_{k,f}\|\mathbf H_{k,f}\|_F^2` (known at
    the BS), which keeps one :math:`\bar\eta` stable across SNRs and array sizes. Either
    way a fixed step is not guaranteed monotone.

    Args:
        H: Complex ``[B, K, N]``, ``[B, K, M, N]`` or ``[B, F, K, M, N]`` channel the ascent
            uses (the ESTIMATED channel for a baseline).
        W0: Complex ``[B, N, K*M]`` initial beamformer (any power; it is projected first).
        power: Budget :math:`P`: a number or a real ``[B]`` tensor.
        steps: Number of steps :math:`Q_i \ge 0`.
        eta: Step size :math:`\eta > 0` (``"fixed"``: in units of :math:`\mathbf W` per
            bit/s/Hz of gradient) or :math:`\bar\eta` (``"normalized"``).
        noise_var: Noise variance: scalar or ``[B]`` (1 for normalized channels).
        eta_rule: ``"fixed"`` (eq. (9) as printed) or ``"normalized"``.
        power_weight: ``None`` or :math:`\mathbf Q` (hybrid power).
        return_trace: Also return the iterates :math:`[\mathbf W_0, \dots, \mathbf W_{Q_i}]`.

    Returns:
        The final beamformer ``[B, N, K*M]`` (and the list of iterates).
    """
    steps = check_int(steps, "steps", minimum=0)
    eta = check_positive(eta, "eta")
    if eta_rule not in ETA_RULES:
        raise ValueError(f"eta_rule must be one of {ETA_RULES}, got {eta_rule!r}")
    H5 = _canonical(H)
    b, _, k, m, n = H5.shape
    check_tensor(W0, "W0", ndim=3, complex_=True)
    if W0.shape != (b, n, k * m) or W0.dtype != H5.dtype:
        raise ValueError(
            f"W0 must be [B, N, K*M] = [{b}, {n}, {k * m}] with H's dtype {H5.dtype}, got "
            f"{tuple(W0.shape)} {W0.dtype}"
        )
    p = _budget(power, b, H5)
    s2 = as_noise(noise_var, b, 1, H5)[:, 0]
    Q = None if power_weight is None else _check_weight(power_weight, b, n, H5)
    W = normalize_power(W0, p, Q)
    if eta_rule == "fixed":
        step = torch.full((b,), eta, dtype=p.dtype, device=p.device)
    else:
        energy = (H5.real.square() + H5.imag.square()).sum((1, 2, 3, 4)) / (k * H5.shape[1])
        step = eta / energy.clamp_min(torch.finfo(p.dtype).tiny)
    step = step.to(H5.dtype)[:, None, None]
    trace = [W]
    for _ in range(steps):
        W = normalize_power(W + step * _band_gradient(H5, W, s2), p, Q)
        if return_trace:
            trace.append(W)
    return (W, trace) if return_trace else W


# ---- WMMSE (Shi et al. 2011, paper 000 ref. [4]) ------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WMMSEResult:
    r"""Output of :func:`wmmse`.

    Attributes:
        W: Complex ``[B, N, K*M]`` final beamformer, at full power.
        rate: Real ``[B]`` band-averaged sum-rate (bit/s/Hz) of ``W`` on the channel used.
        iterations: Int ``[B]`` transmit updates performed until convergence.
        converged: Bool ``[B]``: relative sum-rate change below ``tol`` within ``max_iter``.
        history: Real ``[T + 1, B]`` sum-rate of every iterate :math:`\mathbf W_0, \dots,
            \mathbf W_T` before the final full-power scaling (the WMMSE objective is
            :math:`\sum_k M - R` at these points, so ``history`` is non-decreasing).
        trace: The iterates (scaled to full power) if requested, else ``None``.
    """

    W: torch.Tensor
    rate: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    history: torch.Tensor
    trace: list[torch.Tensor] | None = None


def _wmmse_receivers(
    H5: torch.Tensor, W: torch.Tensor, s2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""MMSE receivers and weights of Shi et al. 2011, Table I steps 4-5.

    .. math:: \mathbf U_k = \Big(\sigma^2\mathbf I + \sum_j \mathbf H_k\mathbf W_j\mathbf
              W_j^H\mathbf H_k^H\Big)^{-1}\mathbf H_k\mathbf W_k, \qquad
              \mathbf E_k = \mathbf I - \mathbf U_k^H\mathbf H_k\mathbf W_k, \qquad
              \boldsymbol\Omega_k = \mathbf E_k^{-1}

    per subcarrier, returned through the factor :math:`\boldsymbol\Omega_k = \mathbf S_k
    \mathbf S_k^H` (:math:`\mathbf S_k = \mathbf L_k^{-H}` with the Cholesky factor
    :math:`\mathbf E_k = \mathbf L_k\mathbf L_k^H`). Also returns the band-averaged sum-rate
    of ``W`` in bits, :math:`-\frac1F\sum_{k,f}\log_2|\mathbf E_{k,f}|` (the MMSE-rate
    identity :math:`R_k = -\log|\mathbf E_k^{\rm mmse}|`).

    Returns:
        ``(R, S_h, rate)``: :math:`\mathbf U_k\mathbf S_k` and :math:`\mathbf S_k^H`,
        complex ``[B, F, K, M, M]``, and the real ``[B]`` rate.
    """
    b, f, k, m, n = H5.shape
    Wk = W.reshape(b, n, k, m).permute(0, 2, 1, 3)  # [B, K, N, M]
    E = torch.einsum("bfkmn,bjno->bfkjmo", H5, Wk)  # H_k W_j  [B, F, K, K, M, M]
    own = torch.diagonal(E, dim1=2, dim2=3).permute(0, 1, 4, 2, 3)  # [B, F, K, M, M]
    eye = torch.eye(m, dtype=H5.dtype, device=H5.device)
    cov = torch.einsum("bfkjmo,bfkjpo->bfkmp", E, E.conj())
    cov = cov + s2.to(H5.dtype)[:, None, None, None, None] * eye
    L, _ = torch.linalg.cholesky_ex(0.5 * (cov + cov.mH))
    U = torch.cholesky_solve(own, L)  # [B, F, K, M, M]
    mse = eye - U.mH @ own
    Lm, _ = torch.linalg.cholesky_ex(0.5 * (mse + mse.mH))
    S_h = torch.linalg.solve_triangular(Lm, eye.expand_as(Lm), upper=False)  # L^-1 = S^H
    logdet = 2.0 * torch.log(torch.diagonal(Lm, dim1=-2, dim2=-1).real).sum(-1)  # log|E|
    rate = -logdet.sum(-1).mean(-1) / _LN2
    return U @ S_h.mH, S_h, rate


def _wmmse_transmit(
    H5: torch.Tensor,
    R: torch.Tensor,
    S_h: torch.Tensor,
    LQ: torch.Tensor | None,
    p: torch.Tensor,
    newton_steps: int,
) -> torch.Tensor:
    r"""Transmit update of Shi et al. 2011 (Table I step 6) under the weighted power budget.

    .. math:: \mathbf W = (\mathbf A + \mu\mathbf Q)^{-1}\mathbf B, \qquad \mathbf A =
              \frac1F\sum_{k,f}\mathbf H_{k,f}^H\mathbf U_{k,f}\boldsymbol\Omega_{k,f}
              \mathbf U_{k,f}^H\mathbf H_{k,f}, \qquad \mathbf B_k = \frac1F\sum_f
              \mathbf H_{k,f}^H\mathbf U_{k,f}\boldsymbol\Omega_{k,f}

    with the Lagrange multiplier :math:`\mu \ge 0` of :math:`\mathrm{tr}(\mathbf W^H\mathbf
    Q\mathbf W) \le P`. With :math:`\boldsymbol\Omega = \mathbf S\mathbf S^H` the stacked
    rows :math:`\mathbf Z = [\mathbf S_{k,f}^H\mathbf U_{k,f}^H\mathbf H_{k,f}]/\sqrt F`
    give :math:`\mathbf A = \mathbf Z^H\mathbf Z` and :math:`\mathbf B = \mathbf Z^H\mathbf T`
    (:math:`\mathbf T` holds :math:`\mathbf S_{k,f}^H/\sqrt F` in column block ``k``); after
    whitening :math:`\mathbf Q = \mathbf L\mathbf L^H` (:math:`\mathbf Z \leftarrow \mathbf
    Z\mathbf L^{-H}`) the eigendecomposition of the smaller of :math:`\mathbf Z\mathbf Z^H`
    (streams) and :math:`\mathbf Z^H\mathbf Z` (antennas) makes the power
    :math:`p(\mu) = \sum_i a_i/(\lambda_i + \mu)^2` explicit and decreasing in :math:`\mu`.
    :math:`\mu = 0` if :math:`p(0) \le P`, else :math:`p(\mu) = P` is solved, for every
    instance at once, by Newton's method on the secular equation :math:`p(\mu)^{-1/2} =
    P^{-1/2}` (Moré and Sorensen 1983: the left side is concave and increasing, so the
    iterates rise monotonically from :math:`\mu = 0` to the root; at most ``newton_steps``,
    until :math:`p(\mu) \le P(1 + 10^{-13})`, or :math:`10^{-6}` in single precision; the
    rounding left is removed by a final scaling). This is the exact minimizer of the convex
    weighted-MSE subproblem, so WMMSE is monotone (Shi et al. Theorem 3). Zero eigenvalues
    (rank-deficient :math:`\mathbf Z`) are dropped (pseudo-inverse). Computed in double
    precision whatever the input precision (an ill-conditioned analog Gram matrix makes the
    whitened problem too ill-conditioned for a float32 eigensolver) and cast back.
    """
    out_dtype = H5.dtype
    H5, R, S_h, p = (
        H5.to(torch.complex128),
        R.to(torch.complex128),
        S_h.to(torch.complex128),
        p.double(),
    )
    LQ = None if LQ is None else LQ.to(torch.complex128)
    b, f, k, m, n = H5.shape
    scale = 1.0 / math.sqrt(f)
    Z = (torch.einsum("bfkmo,bfkmn->bfkon", R.conj(), H5) * scale).reshape(b, f * k * m, n)
    eye_k = torch.eye(k, dtype=H5.dtype, device=H5.device)
    T = torch.einsum("bfkmo,kj->bfkmjo", S_h * scale, eye_k).reshape(b, f * k * m, k * m)
    if LQ is not None:  # whiten: Z <- Z L^-H
        Z = torch.linalg.solve_triangular(LQ, Z.mH, upper=False).mH
    streams = Z.shape[1] <= n
    if streams:  # eig of Z Z^H: W = Z^H V (L + mu)^-1 V^H T, a_i = lam_i |V^H T|_i^2
        lam, V = _eigh(Z @ Z.mH)
        C = V.mH @ T
    else:  # eig of Z^H Z: W = V (L + mu)^-1 V^H Z^H T, a_i = |V^H Z^H T|_i^2
        lam, V = _eigh(Z.mH @ Z)
        C = V.mH @ (Z.mH @ T)
    thr = lam.amax(-1, keepdim=True) * (lam.shape[-1] * 10.0 * torch.finfo(lam.dtype).eps)
    keep = lam > thr
    lam = torch.where(keep, lam, torch.ones_like(lam))
    c = torch.where(keep, C.real.square().sum(-1) + C.imag.square().sum(-1), 0.0)
    a = lam * c if streams else c

    # Moré-Sorensen Newton on phi(mu) = p(mu)^(-1/2) - P^(-1/2): concave and increasing, so
    # from mu = 0 (phi <= 0 where the budget binds) the iterates increase to the root
    # without overshooting; instances whose budget does not bind keep mu = 0.
    mu = torch.zeros_like(p)
    rtol = 1e-13 if p.dtype == torch.float64 else 1e-6
    for _ in range(newton_steps):
        d = lam + mu[:, None]
        pw = (a / d.square()).sum(-1)
        over = pw > p * (1.0 + rtol)
        if not bool(over.any()):
            break
        dp = -2.0 * (a / (d.square() * d)).sum(-1)  # p'(mu) < 0
        step = (1.0 - torch.sqrt(pw / p)) * 2.0 * pw / dp  # -phi / phi'
        mu = torch.where(over, mu + step.clamp_min(0.0), mu)
    D = torch.where(keep, 1.0 / (lam + mu[:, None]), 0.0)
    Ww = V @ (D.to(C.dtype)[..., None] * C)
    if streams:
        Ww = Z.mH @ Ww
    W = Ww if LQ is None else torch.linalg.solve_triangular(LQ.mH, Ww, upper=True)
    # the Newton iterates approach the root from the over-budget side: clip the rounding
    pw = (a / (lam + mu[:, None]).square()).sum(-1)
    return (W * torch.sqrt(p / pw.clamp_min(p)).to(W.dtype)[:, None, None]).to(out_dtype)


def _eigh(A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh`` of Hermitian PSD ``[B, n, n]``, robust to non-convergence.

    If LAPACK does not converge the decomposition is retried with a tiny diagonal load, which
    shifts every eigenvalue by the same amount (removed again) and keeps the eigenvectors.
    """
    A = 0.5 * (A + A.mH)
    try:
        return torch.linalg.eigh(A)
    except torch.linalg.LinAlgError:
        scale = torch.diagonal(A, dim1=-2, dim2=-1).real.amax(-1).clamp_min(1e-300)
        eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
        lam, V = torch.linalg.eigh(A + (1e-12 * scale)[:, None, None].to(A.dtype) * eye)
        return lam - (1e-12 * scale)[:, None], V


def wmmse(
    H: torch.Tensor,
    W0: torch.Tensor,
    power: float | torch.Tensor,
    noise_var: float | torch.Tensor = 1.0,
    *,
    tol: float = 1e-5,
    max_iter: int = 500,
    power_weight: torch.Tensor | None = None,
    newton_steps: int = 50,
    return_trace: bool = False,
) -> WMMSEResult:
    r"""WMMSE sum-rate maximization, Shi, Razaviyayn, Luo, He 2011 (paper 000 ref. [4]), batched.

    Block-coordinate descent on the weighted-MSE problem (Shi et al. eq. (9)/Table I, with
    :math:`\alpha_k = 1` and :math:`d = M` streams per user, MISO and MIMO users):

    .. math:: \min_{\mathbf W,\mathbf U,\boldsymbol\Omega}\ \sum_{k}\Big[\mathrm{tr}
              (\boldsymbol\Omega_k\mathbf E_k(\mathbf U_k,\mathbf W)) - \log|\boldsymbol
              \Omega_k|\Big]\quad\text{s.t.}\quad\mathrm{tr}(\mathbf W^H\mathbf Q\mathbf W)
              \le P

    alternating the MMSE receivers :math:`\mathbf U_k`, the weights :math:`\boldsymbol
    \Omega_k = \mathbf E_k^{-1}` (:func:`_wmmse_receivers`) and the transmit update with the
    Lagrange multiplier found by batched Newton iterations (:func:`_wmmse_transmit`). At optimal
    :math:`(\mathbf U, \boldsymbol\Omega)` the objective equals :math:`\sum_k M - R
    \ln 2`, so the sum-rate of the iterates is non-decreasing (Shi et al. Theorem 3). The
    power weight :math:`\mathbf Q` gives the hybrid constraint eq. (23)/(34); with several
    subcarriers the objective is summed over them (shared precoder, band-averaged rate).

    Each instance stops once the relative change of its sum-rate
    :math:`|R_t - R_{t-1}| \le \mathrm{tol}\,|R_{t-1}|`, or after ``max_iter`` transmit
    updates; converged instances are frozen, so the result of an instance does not depend
    on the rest of the batch. The returned ``W`` is then scaled to full power
    (:func:`normalize_power`; a common scaling :math:`c \ge 1` never lowers the sum-rate).

    Args:
        H: Complex ``[B, K, N]``, ``[B, K, M, N]`` or ``[B, F, K, M, N]`` channel (the
            ESTIMATED channel for a baseline).
        W0: Complex ``[B, N, K*M]`` initial beamformer (projected to full power first).
        power: Budget :math:`P`: a number or a real ``[B]`` tensor.
        noise_var: Noise variance :math:`\sigma^2`: scalar or ``[B]``.
        tol: Relative sum-rate tolerance (> 0).
        max_iter: Maximum number of transmit updates (>= 1).
        power_weight: ``None`` (:math:`\|\mathbf W\|_F^2 \le P`) or :math:`\mathbf Q`.
        newton_steps: Maximum Newton iterations for the multiplier per update.
        return_trace: Also keep every iterate (full-power scaled) in ``result.trace``.

    Returns:
        :class:`WMMSEResult`.
    """
    tol = check_positive(tol, "tol")
    max_iter = check_int(max_iter, "max_iter")
    newton_steps = check_int(newton_steps, "newton_steps")
    H5 = _canonical(H)
    b, _, k, m, n = H5.shape
    check_tensor(W0, "W0", ndim=3, complex_=True)
    if W0.shape != (b, n, k * m) or W0.dtype != H5.dtype:
        raise ValueError(
            f"W0 must be [B, N, K*M] = [{b}, {n}, {k * m}] with H's dtype {H5.dtype}, got "
            f"{tuple(W0.shape)} {W0.dtype}"
        )
    p = _budget(power, b, H5)
    s2 = as_noise(noise_var, b, 1, H5)[:, 0]
    Qb = None if power_weight is None else _check_weight(power_weight, b, n, H5)
    LQ = None if Qb is None else _cholesky_jitter(Qb)[0]
    W = normalize_power(W0, p, Qb)
    trace = [W] if return_trace else None
    active = torch.ones(b, dtype=torch.bool, device=H5.device)
    converged = torch.zeros_like(active)
    iterations = torch.zeros(b, dtype=torch.long, device=H5.device)
    R, S_h, rate = _wmmse_receivers(H5, W, s2)
    history = [rate]
    for _ in range(max_iter):
        # update the active instances only (gathered, then scattered back)
        idx = active.nonzero().squeeze(-1)
        H_a, LQ_a = H5[idx], None if LQ is None else LQ[idx]
        W_a = _wmmse_transmit(H_a, R[idx], S_h[idx], LQ_a, p[idx], newton_steps)
        R_a, S_a, rate_a = _wmmse_receivers(H_a, W_a, s2[idx])
        W, R, S_h = (
            W.index_copy(0, idx, W_a),
            R.index_copy(0, idx, R_a),
            S_h.index_copy(0, idx, S_a),
        )
        iterations = iterations + active.long()
        prev = rate
        rate = rate.index_copy(0, idx, rate_a)
        history.append(rate)
        if trace is not None:
            trace.append(normalize_power(W, p, Qb))
        done = active & ((rate - prev).abs() <= tol * prev.abs())
        converged = converged | done
        active = active & ~done
        if not bool(active.any()):
            break
    W = normalize_power(W, p, Qb)
    return WMMSEResult(
        W=W,
        rate=band_sum_rate(H5, W, s2),
        iterations=iterations,
        converged=converged,
        history=torch.stack(history, 0),
        trace=trace,
    )


# ---- the environments, seen by the solvers ------------------------------------------------------
def _known_classes() -> dict[str, type]:
    from beamgym.envs.far_field_hybrid import FarFieldHybridKnown, FarFieldHybridTask
    from beamgym.envs.fully_digital_fdd import FullyDigitalFDDKnown, FullyDigitalFDDTask
    from beamgym.envs.near_field_hybrid import NearFieldHybridKnown, NearFieldHybridTask

    return {
        "fdd": (FullyDigitalFDDTask, FullyDigitalFDDKnown),
        "far": (FarFieldHybridTask, FarFieldHybridKnown),
        "near": (NearFieldHybridTask, NearFieldHybridKnown),
    }


def _env_kind(task: Any) -> str:
    for kind, (task_cls, _) in _known_classes().items():
        if isinstance(task, task_cls):
            if kind == "far" and not getattr(task, "steering", False):
                raise ValueError(
                    "FarFieldHybrid-v0 with analog='phase-shifter' designs the analog precoder "
                    "too (paper 003); these solvers need predetermined analog beams: use "
                    "analog='steering', or the paper-003 agents (e.g. 'pga')"
                )
            return kind
    raise ValueError(
        f"{type(task).__name__} is not supported by the fully digital solvers; they support "
        f"{ENV_IDS} (FarFieldHybrid with analog='steering')"
    )


def problem_from_known(task: Any, known: TensorDataclass) -> SolverProblem:
    r"""The solvers' view of a batch: estimated (effective) channel, budget, noise, weight.

    * FullyDigitalFDD: ``H_est`` (MISO or MIMO), :math:`\mathbf Q = \mathbf I`;
    * FarFieldHybrid (steering): ``H_est`` :math:`= \tilde{\mathbf G}` ``[B, K, N_RF]``,
      :math:`\mathbf Q = (\mathbf W^a)^H\mathbf W^a` with ``task.analog_precoder``
      (eq. (18)), noise ``known.noise_var``;
    * NearFieldHybrid: ``G_est`` ``[B, F, K, K]`` (all subcarriers), :math:`\mathbf Q =
      \frac1F\sum_f` ``known.gram[:, f]`` (eq. (24)/(34), band-averaged power).

    Args:
        task: The env's task (:func:`agents.base.task_of`).
        known: ``task.known(instance)`` / ``task.decode_observation(obs)``.

    Returns:
        :class:`SolverProblem`.
    """
    kind = _env_kind(task)
    known_cls = _known_classes()[kind][1]
    if not isinstance(known, known_cls):
        raise ValueError(
            f"solve() takes what the BS knows, a {known_cls.__name__} "
            f"(task.known(instance) or task.decode_observation(obs)), got "
            f"{type(known).__name__}"
        )
    b = known.batch_size
    if kind == "fdd":
        return SolverProblem(
            H=_canonical(known.H_est),
            power=known.power,
            noise_var=torch.ones_like(known.power),
        )
    if kind == "far":
        H = _canonical(known.H_est)
        F = task.analog_precoder.to(H.device)
        Q = (F.mH @ F).expand(b, -1, -1)
        noise = known.noise_var
    else:
        H = known.G_est.unsqueeze(-2)  # [B, F, K, 1, K]
        Q = known.gram.mean(1)
        noise = torch.ones_like(known.power)
    return SolverProblem(H=H, power=known.power, noise_var=noise, Q=0.5 * (Q + Q.mH))


# ---- agents -------------------------------------------------------------------------------------
class _Base000Agent(Agent):
    """Shared plumbing: env checks, the solver view, and wrapping the (digital) beamformer."""

    def __init__(self, env: Any, **hparams: Any) -> None:
        super().__init__(env, **hparams)
        self.kind = _env_kind(self.task)
        #: Per-instance diagnostics of the last :meth:`solve` (``[B]`` tensors), e.g.
        #: ``rank_deficient`` (ZF), ``iterations`` / ``converged`` (WMMSE).
        self.last_info: dict[str, torch.Tensor] = {}

    @property
    def _streams_and_dim(self) -> tuple[int, int]:
        c = self.task.config
        if self.kind == "fdd":
            return c.K * c.M, c.N
        if self.kind == "far":
            return c.K, c.N_RF
        return c.K, c.K

    def _wrap(self, known: TensorDataclass, W: torch.Tensor) -> Any:
        """The env's beamformer; hybrid: rescaled by the env's own eq. (24) normalization.

        The final scaling goes through ``action_to_beamformer(beamformer_to_action(.))``
        (exactly what ``env.step`` applies), so the env's power and feasibility check, which
        it computes in the task's precision, agrees with the design even when the analog Gram
        matrix is ill-conditioned (a quadratic form that cancels in float32).
        """
        if self.kind == "fdd":
            return W
        b = W.shape[0]
        if self.kind == "far":
            F = self.task.analog_precoder
            bf = HybridBeamformer(analog=F.expand(b, *F.shape), digital=W)
        else:
            bf = HybridBeamformer(analog=known.analog, digital=W)
        return self.task.action_to_beamformer(self.task.beamformer_to_action(bf, known), known)[0]

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        raise NotImplementedError

    def _design_trace(self, prob: SolverProblem) -> list[torch.Tensor]:
        return [self._design(prob)]

    def solve(self, known: TensorDataclass) -> Any:
        """Beamformers from what the BS knows (the env's structured beamformer, full power)."""
        prob = problem_from_known(self.task, known)
        with torch.no_grad():
            W = self._design(prob)
        return self._wrap(known, W)

    def solve_trace(self, known: TensorDataclass) -> list[Any]:
        """Iterates ``[W_0, ..., W_final]`` (one element for closed-form solvers)."""
        prob = problem_from_known(self.task, known)
        with torch.no_grad():
            Ws = self._design_trace(prob)
        return [self._wrap(known, W) for W in Ws]


def _initial(
    init: str, prob: SolverProblem, seed: int = 0, n_random: int = 1
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Initial beamformer(s) ``[B, N, S]`` (``random``: ``[n_random * B, N, S]``)."""
    H, p, s2, Q = prob.linear_channel, prob.power, prob.noise_var, prob.Q
    info: dict[str, torch.Tensor] = {}
    if init == "mmse":
        return normalize_power(mmse_beamformer(H, p, s2), p, Q), info
    if init == "mrt":
        return mrt_beamformer(H, p, power_weight=Q), info
    if init == "zf":
        W, bad = zf_beamformer(H, p, power_weight=Q)
        info["rank_deficient"] = bad
        return W, info
    if init == "rzf":
        return rzf_beamformer(H, p, s2, power_weight=Q), info
    if init == "random":
        b, n = prob.H.shape[0], prob.H.shape[-1]
        s = prob.H.shape[2] * prob.H.shape[3]
        gen = torch.Generator(device="cpu").manual_seed(seed)
        g = torch.randn((n_random * b, n, s, 2), generator=gen, dtype=torch.float64)
        W = torch.view_as_complex(g).to(device=prob.H.device, dtype=prob.H.dtype)
        rep = prob.repeat(n_random)
        return normalize_power(W, rep.power, rep.Q), info
    raise ValueError(f"unknown init {init!r}")


def _reject_unknown(agent: Any, unknown: dict[str, Any], valid: tuple[str, ...]) -> None:
    if unknown:
        name = type(agent).registry_name or type(agent).__name__
        raise ValueError(
            f"agent {name!r} has no hyperparameter(s) {sorted(unknown)}; valid: "
            f"{list(valid) or 'none'}"
        )


def _check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


_DESC_ENVS = "FDD, FarField steering, NearField TTD+PS (eq. (24) power)"


@register_agent(
    "mrt",
    env_ids=ENV_IDS,
    description=f"MRT on the estimated (effective) channel, full power, 000 ref. [6]; {_DESC_ENVS}",
)
class MRTAgent(_Base000Agent):
    """Maximum ratio transmission on the estimated channel (:func:`mrt_beamformer`)."""

    def __init__(self, env: Any, **unknown: Any) -> None:
        _reject_unknown(self, unknown, ())
        super().__init__(env)

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        return mrt_beamformer(prob.linear_channel, prob.power, power_weight=prob.Q)


@register_agent(
    "zf",
    env_ids=ENV_IDS,
    description=f"zero-forcing on the estimated channel, total-power scaling ({_DESC_ENVS})",
)
class ZFAgent(_Base000Agent):
    """Zero-forcing on the estimated channel (:func:`zf_beamformer`); needs ``K M <= N``.

    ``last_info["rank_deficient"]`` flags instances solved with the pseudo-inverse.
    """

    def __init__(self, env: Any, **unknown: Any) -> None:
        _reject_unknown(self, unknown, ())
        super().__init__(env)
        s, n = self._streams_and_dim
        if s > n:
            raise ValueError(
                f"zero-forcing needs at most as many streams as transmit dimensions, got "
                f"K*M = {s} streams and {n} antennas/RF chains; use 'rzf' or 'mmse'"
            )

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        W, bad = zf_beamformer(prob.linear_channel, prob.power, power_weight=prob.Q)
        self.last_info = {"rank_deficient": bad}
        return W


@register_agent(
    "rzf",
    env_ids=ENV_IDS,
    description=f"RZF, MMSE-optimal regularization K sigma^2/P, total-power scaling; {_DESC_ENVS}",
)
class RZFAgent(_Base000Agent):
    r"""Regularized ZF with :math:`\alpha = KM\sigma^2/P` (:func:`rzf_beamformer`)."""

    def __init__(self, env: Any, **unknown: Any) -> None:
        _reject_unknown(self, unknown, ())
        super().__init__(env)

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        return rzf_beamformer(prob.linear_channel, prob.power, prob.noise_var, power_weight=prob.Q)


@register_agent(
    "mmse",
    env_ids=ENV_IDS,
    description=f"000 Sec. III-B2 MMSE (KD teacher) on the estimated channel ({_DESC_ENVS})",
)
class MMSEAgent(_Base000Agent):
    r"""Paper 000's "MMSE" beamformer, Sec. III-B2, on the ESTIMATED (effective) channel.

    :math:`\mathbf M = (\mathbf I + \frac PK\sum_i\tilde{\mathbf H}_i^H\tilde{\mathbf H}_i)
    ^{-1}`, :math:`\mathbf W_k = \sqrt{P/K}\,\mathbf M\tilde{\mathbf H}_k^H/\|\mathbf M
    \tilde{\mathbf H}_k^H\|` (:func:`beamgym.physics.metrics.mmse_beamformer`, equal power
    per user), then the hybrid normalization eq. (24) (a no-op for fully digital). Identical
    to the env's teacher ``task.mmse_beamformer`` (near field: first subcarrier).
    """

    def __init__(self, env: Any, **unknown: Any) -> None:
        _reject_unknown(self, unknown, ())
        super().__init__(env)

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        return _initial("mmse", prob)[0]


@register_agent(
    "ga",
    env_ids=ENV_IDS,
    description="000 eq. (9): Q_i projected gradient-ascent steps on the estimated channel "
    "from an initial beamformer (mmse/mrt/zf/rzf/random)",
    init="mrt",
    steps=10,
    eta=DEFAULT_ETA,
    eta_rule=DEFAULT_ETA_RULE,
    seed=0,
)
class GAAgent(_Base000Agent):
    r"""Gradient-ascent refinement (:func:`gradient_ascent`) of an initial beamformer.

    Args:
        env: The env or task.
        init: Initial beamformer, one of :data:`GA_INITS`.
        steps: Number of steps :math:`Q_i \ge 0`.
        eta: Step size (:math:`\bar\eta` for ``eta_rule="normalized"``), > 0.
        eta_rule: ``"normalized"`` (default) or ``"fixed"`` (eq. (9) as printed), see
            :func:`gradient_ascent`.
        seed: Seed of the ``random`` start (a fresh CPU generator per ``solve``).
    """

    def __init__(
        self,
        env: Any,
        init: str = "mrt",
        steps: int = 10,
        eta: float = DEFAULT_ETA,
        eta_rule: str = DEFAULT_ETA_RULE,
        seed: int = 0,
        **unknown: Any,
    ) -> None:
        _reject_unknown(self, unknown, ("init", "steps", "eta", "eta_rule", "seed"))
        _check_choice(init, "init", GA_INITS)
        check_int(steps, "steps", minimum=0)
        check_positive(eta, "eta")
        _check_choice(eta_rule, "eta_rule", ETA_RULES)
        check_int(seed, "seed", minimum=0)
        super().__init__(env, init=init, steps=steps, eta=float(eta), eta_rule=eta_rule, seed=seed)
        if init == "zf":
            s, n = self._streams_and_dim
            if s > n:
                raise ValueError(f"init='zf' needs K*M = {s} <= {n} transmit dimensions")

    def _run(self, prob: SolverProblem, trace: bool) -> Any:
        h = self.hparams
        W0, info = _initial(h.get("init", "mmse"), prob, h.get("seed", 0))
        self.last_info = info
        return gradient_ascent(
            prob.H,
            W0,
            prob.power,
            h["steps"],
            h["eta"],
            prob.noise_var,
            eta_rule=h["eta_rule"],
            power_weight=prob.Q,
            return_trace=trace,
        )

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        return self._run(prob, False)

    def _design_trace(self, prob: SolverProblem) -> list[torch.Tensor]:
        return self._run(prob, True)[1]


@register_agent(
    "mmse_ga",
    env_ids=ENV_IDS,
    description="000 Sec. III-D1/IV-C 'MMSE' baseline: MMSE then Q_i GA steps of eq. (9) on "
    "the estimated channel",
    steps=10,
    eta=DEFAULT_ETA,
    eta_rule=DEFAULT_ETA_RULE,
)
class MMSEGAAgent(GAAgent):
    r"""Paper 000's "MMSE" baseline: the MMSE beamformer refined by :math:`Q_i` GA steps.

    Sec. III-D1: "starting from :math:`W_0 = \tilde W`, it performs :math:`Q_i` steps of
    gradient ascent as in (9) by using :math:`\tilde H`" (:math:`Q_i = 10`); Sec. IV-C: the
    same on the estimated effective channel :math:`\tilde G` with the hybrid normalization.

    Args:
        env: The env or task.
        steps: :math:`Q_i` (paper: 10).
        eta: Step size (the paper does not print the GA step; its :math:`\eta = 10^{-4}` of
            eq. (13) is the network learning rate). Default :data:`DEFAULT_ETA` with the
            ``"normalized"`` rule, tuned on training seeds only.
        eta_rule: ``"normalized"`` (default) or ``"fixed"`` (eq. (9) as printed).
    """

    def __init__(
        self,
        env: Any,
        steps: int = 10,
        eta: float = DEFAULT_ETA,
        eta_rule: str = DEFAULT_ETA_RULE,
        **unknown: Any,
    ) -> None:
        _reject_unknown(self, unknown, ("steps", "eta", "eta_rule"))
        check_int(steps, "steps", minimum=0)
        check_positive(eta, "eta")
        _check_choice(eta_rule, "eta_rule", ETA_RULES)
        _Base000Agent.__init__(self, env, steps=steps, eta=float(eta), eta_rule=eta_rule)


@register_agent(
    "wmmse",
    env_ids=ENV_IDS,
    description="WMMSE (Shi et al. 2011, 000 ref. [4]) on the estimated channel, to a relative "
    "tolerance; MMSE start + random restarts",
    init="mmse",
    restarts=0,
    tol=1e-5,
    max_iter=500,
    seed=0,
)
class WMMSEAgent(_Base000Agent):
    """WMMSE (:func:`wmmse`) from the MMSE (or a random) start, best of random restarts.

    The designs from the main start (``init``) and from ``restarts`` extra random starts run
    as one batch; each instance keeps the design with the highest sum-rate on the ESTIMATED
    channel. ``last_info`` holds ``iterations`` and ``converged`` of the kept run and
    ``start`` (0 = ``init``, ``r >= 1`` = random restart ``r``).

    Args:
        env: The env or task.
        init: ``"mmse"`` (paper 000's MMSE beamformer) or ``"random"``.
        restarts: Extra random starts (>= 0).
        tol: Relative sum-rate tolerance of the stopping rule.
        max_iter: Maximum transmit updates per run.
        seed: Seed of the random starts (a fresh CPU generator per ``solve``).
    """

    def __init__(
        self,
        env: Any,
        init: str = "mmse",
        restarts: int = 0,
        tol: float = 1e-5,
        max_iter: int = 500,
        seed: int = 0,
        **unknown: Any,
    ) -> None:
        _reject_unknown(self, unknown, ("init", "restarts", "tol", "max_iter", "seed"))
        _check_choice(init, "init", WMMSE_INITS)
        check_int(restarts, "restarts", minimum=0)
        check_positive(tol, "tol")
        check_int(max_iter, "max_iter")
        check_int(seed, "seed", minimum=0)
        super().__init__(
            env, init=init, restarts=restarts, tol=float(tol), max_iter=max_iter, seed=seed
        )

    def _run(self, prob: SolverProblem, trace: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.hparams
        b = prob.H.shape[0]
        n_rand = h["restarts"] + (1 if h["init"] == "random" else 0)
        starts = []
        if h["init"] == "mmse":
            starts.append(_initial("mmse", prob)[0])
        if n_rand:
            starts.append(_initial("random", prob, h["seed"], n_rand)[0])
        W0 = torch.cat(starts, 0)
        r = W0.shape[0] // b
        rep = prob.repeat(r)
        res = wmmse(
            rep.H,
            W0,
            rep.power,
            rep.noise_var,
            tol=h["tol"],
            max_iter=h["max_iter"],
            power_weight=rep.Q,
            return_trace=trace,
        )
        best = res.rate.reshape(r, b).argmax(0)  # [B]
        idx = best * b + torch.arange(b, device=best.device)
        self.last_info = {
            "iterations": res.iterations[idx],
            "converged": res.converged[idx],
            "start": best,
        }
        iterates = [t[idx] for t in res.trace] if trace and res.trace is not None else []
        return res.W[idx], iterates

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        return self._run(prob, False)[0]

    def _design_trace(self, prob: SolverProblem) -> list[torch.Tensor]:
        """``max_iter + 1`` iterates, whatever the batch.

        Converged instances are frozen, so after the last instance stops every further iterate
        is the final beamformer (the list repeats that tensor; no copies). A batch-independent
        length lets the harness average metric-vs-iteration curves over batches.
        """
        iterates = self._run(prob, True)[1]
        return iterates + [iterates[-1]] * (self.hparams["max_iter"] + 1 - len(iterates))
