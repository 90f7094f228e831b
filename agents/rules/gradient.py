r"""Projected gradient ascent on the sum-rate, paper 000 eq. (9), as a pure batched rule.

The rule (:func:`gradient_ascent`) takes the problem (channel, budget, noise, power weight),
its hyperparameters theta (the step :math:`\eta` and its rule, the number of steps) and the
initial point; the classical ``ga`` / ``mmse_ga`` agents pass constant theta, KD-EDN's
post-processing passes its own (and differentiates through it).

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
"""

from __future__ import annotations

import torch

from agents.rules.problem import canonical_channel, iterative_start
from beamgym._validation import check_int, check_positive
from beamgym.physics.metrics import as_noise, mimo_rates, miso_rates, sum_rate_gradient
from beamgym.physics.projections import normalize_power

__all__ = [
    "DEFAULT_ETA",
    "DEFAULT_ETA_RULE",
    "ETA_RULES",
    "band_gradient",
    "band_sum_rate",
    "gradient_ascent",
]

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
    H5 = canonical_channel(H)
    b, f, k, m, n = H5.shape
    Wf = W.unsqueeze(1).expand(b, f, *W.shape[1:]).reshape(b * f, *W.shape[1:])
    s2 = as_noise(noise_var, b, 1, H5)[:, 0].repeat_interleave(f)
    if m == 1:
        rates = miso_rates(H5[:, :, :, 0].reshape(b * f, k, n), Wf, s2)
    else:
        rates = mimo_rates(H5.reshape(b * f, k, m, n), Wf, s2)
    return rates.sum(-1).reshape(b, f).mean(-1)


def band_gradient(H5: torch.Tensor, W: torch.Tensor, s2: torch.Tensor) -> torch.Tensor:
    r"""Steepest-ascent direction of :func:`band_sum_rate`, paper 000 eq. (9)'s gradient.

    The mean over subcarriers of :math:`\nabla_{\mathbf W}R = 2\,\partial R/\partial
    \mathbf W^*` (:func:`beamgym.physics.metrics.sum_rate_gradient`, ``form="ascent"``).

    Args:
        H5: Complex ``[B, F, K, M, N]`` channel (:func:`canonical_channel`).
        W: Complex ``[B, N, K*M]`` beamformer.
        s2: Real ``[B]`` noise variance.

    Returns:
        Complex ``[B, N, K*M]`` direction (bit/s/Hz per unit of ``W``).
    """
    b, f, k, m, n = H5.shape
    Wf = W.unsqueeze(1).expand(b, f, *W.shape[1:]).reshape(b * f, *W.shape[1:])
    Hf = H5[:, :, :, 0].reshape(b * f, k, n) if m == 1 else H5.reshape(b * f, k, m, n)
    g = sum_rate_gradient(Hf, Wf, s2.repeat_interleave(f), form="ascent")
    return g.reshape(b, f, *W.shape[1:]).mean(1)


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
    :math:`\mathrm{tr}(\mathbf W^H\mathbf Q\mathbf W) = P`
    (:func:`~beamgym.physics.projections.normalize_power`: the
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
    H5, p, s2, Q, W = iterative_start(H, W0, power, noise_var, power_weight)
    b, _, k = H5.shape[:3]
    if eta_rule == "fixed":
        step = torch.full((b,), eta, dtype=p.dtype, device=p.device)
    else:
        energy = (H5.real.square() + H5.imag.square()).sum((1, 2, 3, 4)) / (k * H5.shape[1])
        step = eta / energy.clamp_min(torch.finfo(p.dtype).tiny)
    step = step.to(H5.dtype)[:, None, None]
    trace = [W]
    for _ in range(steps):
        W = normalize_power(W + step * band_gradient(H5, W, s2), p, Q)
        if return_trace:
            trace.append(W)
    return (W, trace) if return_trace else W
