r"""KD-EDN+: a learned refinement of the engineered beamspace feedback, trained end to end.

The pipeline (issue 11 item 3) is paper 000's KD-EDN structure on the ingredients of
:mod:`agents.classical.beamspace_feedback`, with every learned part initialised to the
engineered scheme, so an untrained model reproduces ``beamspace_feedback`` (same bits, same
link draws, same beamformer) and training can only move away from it where the sum-rate
gains:

1. **User-side encoder.** The fixed beamspace front end
   (:func:`~agents.classical.beamspace_feedback.select_window`: rotated-DFT or identity
   beamspace, strongest window, common phase removed, gain) and a learned pre-quantization
   gain :math:`\alpha_j = \alpha_0 e^{a_j}` per window coefficient :math:`j` (``a = 0``:
   the codec's own scale :math:`\alpha_0`; with ``snr_gains``, :math:`a_j + b_j(\mathrm{SNR})`,
   the user knowing the SNR): the coefficients times :math:`\alpha_j` go
   through the codec's scalar quantizers (amplitude/phase or real/imaginary part), with a
   straight-through gradient (forward: the quantizer's level; backward: the identity on the
   clipped value), and the BS divides by :math:`\alpha_j`. The message has exactly the
   codec's bits (:meth:`~agents.classical.beamspace_feedback.BeamspaceCodec.total_bits`).
2. **The link**, simulated in training as at inference: ``"noiseless"`` delivers the bits;
   ``"noisy"`` sends them over paper 000's link
   (:func:`~agents.classical.beamspace_feedback.link_transmit`) or, for an analog codec,
   sends each coefficient part as one alphabet level plus :math:`\mathcal N(0, \sigma_z^2)`
   (:func:`~beamgym.physics.feedback.feedback_error`); the straight-through gradient
   passes the link unchanged.
3. **BS-side channel decoder.** Learned soft dequantization of analog levels,

   .. math:: \hat\ell(y) = \sum_s \ell_s\,\mathrm{softmax}_s\Big(-\frac{(y - \ell_s)^2}
             {2\sigma_z^2 e^{\tau}} + \beta_s\Big)

   (``tau = beta = 0``: :func:`~beamgym.physics.feedback.soft_dequantize` with a uniform
   prior), then a residual MLP on the window's decoded coefficients and the SNR whose last
   layer starts at zero (no correction), then
   :func:`~agents.classical.beamspace_feedback.assemble` gives :math:`\hat{\mathbf H}`.
4. **Error-aware MMSE.** Paper 000's MMSE beamformer (Sec. III-B2) on :math:`\hat{\mathbf
   H}` with the regularization :math:`K\sigma^2 e^{\rho(\mathrm{SNR})}/P` instead of
   :math:`K\sigma^2/P`: the BS knows :math:`\hat{\mathbf H}` is noisy; ``rho = 0`` is the
   plain MMSE.
5. **Learned GA.** :math:`Q_i` steps of eq. (9) on :math:`\hat{\mathbf H}` with the
   normalized step :math:`\bar\eta\,e^{\theta_q(\mathrm{SNR})}` of step ``q``
   (``theta = 0``: :func:`agents.rules.gradient.gradient_ascent`).

SNR-dependent parameters (:math:`\rho`, :math:`\theta_q`) are tables over the SNR knots
:data:`SNR_KNOTS`, interpolated linearly in dB (clamped outside): the SNR is an input of the
model, one model serves 5-20 dB.

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch
from torch import nn

from agents.classical.beamspace_feedback import (
    BeamspaceCodec,
    BeamspaceFeedbackAgent,
    Header,
    assemble,
    decode_header,
    link_transmit,
    pack,
    phase_invariant_nmse,
    select_window,
)
from agents.rules.gradient import band_gradient
from agents.rules.problem import SolverProblem, iterative_start
from beamgym.envs.base import BeamformingTask
from beamgym.physics.feedback import (
    SIGMA_Z2,
    SYMBOL_BITS,
    dequantize,
    feedback_error,
    quantization_symbols,
    symbol_levels,
)
from beamgym.physics.precoding import mmse_beamformer
from beamgym.physics.projections import normalize_power

__all__ = [
    "KNOT_TABLES",
    "SNR_KNOTS",
    "KDEDNPlus",
    "error_aware_mmse",
    "interpolate_knots",
    "learned_gradient_ascent",
    "straight_through",
]

#: SNR knots (dB) of the SNR-dependent parameter tables (examples/evaluate.py's SNRs).
SNR_KNOTS: tuple[float, ...] = (5.0, 10.0, 15.0, 20.0)
#: The parameters that are tables over :data:`SNR_KNOTS` (last dimension: the knot).
KNOT_TABLES: tuple[str, ...] = ("reg_log_scale", "step_log_scale", "enc_log_gain_snr")


def interpolate_knots(table: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """Linear interpolation in dB of a table over :data:`SNR_KNOTS`, clamped outside.

    Args:
        table: Real ``[..., len(SNR_KNOTS)]`` values at the knots.
        snr_db: Real ``[B]`` SNR in dB.

    Returns:
        Real ``[B, ...]`` values (exactly the knot value at a knot).
    """
    knots = torch.tensor(SNR_KNOTS, dtype=table.dtype, device=table.device)
    x = snr_db.to(table.dtype).clamp(knots[0], knots[-1])
    i = torch.searchsorted(knots, x, right=True).clamp(1, len(SNR_KNOTS) - 1) - 1
    w = ((x - knots[i]) / (knots[i + 1] - knots[i]))[:, None]
    lo = table[..., i].movedim(-1, 0).reshape(len(x), -1)
    hi = table[..., i + 1].movedim(-1, 0).reshape(len(x), -1)
    out = torch.where(w == 0, lo, lo + w * (hi - lo))  # exact at the knots
    return out.reshape(len(x), *table.shape[:-1])


def straight_through(hard: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """``hard`` in the forward pass (exactly), the gradient of ``soft`` in the backward pass."""
    return hard.detach() + (soft - soft.detach())


def error_aware_mmse(
    H: torch.Tensor,
    power: torch.Tensor,
    noise_var: torch.Tensor,
    rho: torch.Tensor,
    power_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Paper 000's MMSE beamformer with the regularization scaled by :math:`e^{\rho}`.

    :func:`beamgym.physics.precoding.mmse_beamformer` with the noise variance
    :math:`\sigma^2 e^{\rho}` (regularization :math:`K\sigma^2e^{\rho}/P`), then the
    full-power scaling (eq. (24) with ``power_weight``). ``rho = 0`` is the plain MMSE start
    of ``mmse_ga``.

    Args:
        H: Complex ``[B, K, N]`` / ``[B, K, M, N]`` channel the BS has.
        power: Real ``[B]`` budget :math:`P`.
        noise_var: Real ``[B]`` noise variance :math:`\sigma^2`.
        rho: Real ``[B]`` log-scale of the regularization.
        power_weight: ``None`` or complex ``[B, N, N]`` :math:`\mathbf Q`.

    Returns:
        Complex ``[B, N, K*M]`` beamformer at full power.
    """
    return normalize_power(
        mmse_beamformer(H, power, noise_var * torch.exp(rho)), power, power_weight
    )


def learned_gradient_ascent(
    H: torch.Tensor,
    W0: torch.Tensor,
    power: torch.Tensor,
    noise_var: torch.Tensor,
    steps: torch.Tensor,
    power_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Eq. (9) with a normalized step per instance and step: the rule with learned theta.

    :math:`\mathbf W_q = \Pi(\mathbf W_{q-1} + (\bar\eta_{q}/\bar e)\nabla R)` exactly as
    :func:`agents.rules.gradient.gradient_ascent` (``eta_rule="normalized"``) with the step
    :math:`\bar\eta_q` of step ``q`` taken from ``steps``.

    Args:
        H: Complex ``[B, K, N]`` / ``[B, K, M, N]`` / ``[B, F, K, M, N]`` channel.
        W0: Complex ``[B, N, K*M]`` start.
        power: Real ``[B]`` budget.
        noise_var: Real ``[B]`` noise variance.
        steps: Real ``[B, Q]`` normalized steps :math:`\bar\eta_q > 0`.
        power_weight: ``None`` or :math:`\mathbf Q`.

    Returns:
        Complex ``[B, N, K*M]`` beamformer after ``Q`` steps.
    """
    H5, p, s2, Q, W = iterative_start(H, W0, power, noise_var, power_weight)
    b, _, k = H5.shape[:3]
    energy = (H5.real.square() + H5.imag.square()).sum((1, 2, 3, 4)) / (k * H5.shape[1])
    energy = energy.clamp_min(torch.finfo(p.dtype).tiny)
    for q in range(steps.shape[1]):
        step = (steps[:, q].to(p.dtype) / energy).to(H5.dtype)[:, None, None]
        W = normalize_power(W + step * band_gradient(H5, W, s2), p, Q)
    return W


class KDEDNPlus(nn.Module):
    r"""The learned feedback-and-beamforming pipeline (module docstring), one env and link.

    Args:
        task: The env's task (its configuration fixes the codec's shapes).
        bits: Budget per user (``beamspace_feedback``'s ``bits``).
        link: ``"noisy"`` or ``"noiseless"``.
        q_infer: GA steps :math:`Q_i`.
        hidden: Width of the residual channel decoder's hidden layer.
        snr_gains: Add a per-SNR table to the encoder's log-gains (the user knows the SNR),
            so that low and high SNRs need not share one quantizer scale.
    """

    def __init__(
        self,
        task: BeamformingTask,
        bits: int,
        link: str,
        q_infer: int,
        hidden: int = 64,
        snr_gains: bool = False,
    ) -> None:
        super().__init__()
        #: the engineered scheme whose codec, link and GA step this model starts from
        self.front = BeamspaceFeedbackAgent(task, bits=bits, link=link, q_infer=q_infer)
        codec: BeamspaceCodec = self.front.codec
        self.codec = codec
        self.link = link
        self.q_infer = q_infer
        self.eta = self.front.eta
        n = max(codec.n_coef, 1)
        k = len(SNR_KNOTS)
        #: log of the pre-quantization gain per coefficient (user side and BS side)
        self.enc_log_gain = nn.Parameter(torch.zeros(n))
        if snr_gains:  #: per-SNR part of the log-gains, at the SNR knots
            self.enc_log_gain_snr = nn.Parameter(torch.zeros(n, k))
        self.snr_gains = snr_gains
        #: learned soft dequantization: log-temperature and per-level log-prior
        self.deq_log_temp = nn.Parameter(torch.zeros(()))
        self.deq_prior = nn.Parameter(torch.zeros(2**SYMBOL_BITS))
        #: residual channel decoder on the window's coefficients (+ the SNR)
        self.ch_in = nn.Linear(2 * n + 1, hidden)
        self.ch_out = nn.Linear(hidden, 2 * n)
        nn.init.zeros_(self.ch_out.weight)
        nn.init.zeros_(self.ch_out.bias)
        #: log-scale of the MMSE regularization at the SNR knots
        self.reg_log_scale = nn.Parameter(torch.zeros(k))
        #: log-scale of each GA step at the SNR knots
        self.step_log_scale = nn.Parameter(torch.zeros(q_infer, k))

    # ---- feedback: encoder, link, channel decoder ------------------------------------------------
    @property
    def base_scale(self) -> float:
        r"""The codec's own coefficient scale :math:`\alpha_0` (1 for polar codecs)."""
        return self.codec.coef_scale if self.codec.mode == "cartesian" else 1.0

    def gains(self, snr_db: torch.Tensor) -> torch.Tensor:
        r"""The pre-quantization gains :math:`\alpha_j`, real ``[B, 1, R L - 1]``."""
        log_gain = self.enc_log_gain.expand(len(snr_db), -1)
        if self.snr_gains:
            log_gain = log_gain + interpolate_knots(self.enc_log_gain_snr, snr_db)
        return (self.base_scale * torch.exp(log_gain))[:, None, :]

    def _encode(self, X: torch.Tensor, snr_db: torch.Tensor) -> tuple[Any, ...]:
        """User side: selection, message bits and the straight-through quantized parts."""
        codec = self.codec
        sel = select_window(X, codec, snr_db)
        if not codec.n_coef:
            return sel, pack(sel, codec, None, None), None, None
        rd = X.real.dtype
        alpha = self.gains(snr_db)[..., : codec.n_coef].to(rd)
        a, p = codec.field_bits
        c = sel.coefs
        if codec.mode == "polar":
            z0 = (c.abs() * alpha).clamp(0.0, 1.0)
            s0 = torch.round(z0 * (2**a - 1)).long()
            s1 = torch.round(torch.angle(c) / (2 * math.pi) * 2**p).long() % 2**p
            z1 = torch.angle(c)
        else:
            z0 = (c.real * alpha).clamp(-1.0, 1.0)
            z1 = (c.imag * alpha).clamp(-1.0, 1.0)
            s0, s1 = quantization_symbols(z0, a), quantization_symbols(z1, p)
        return sel, pack(sel, codec, s0, s1), z0, z1

    def _soft_dequantize(self, y: torch.Tensor) -> torch.Tensor:
        """Learned conditional-mean estimate of the sent level (module docstring, step 3)."""
        levels = symbol_levels(SYMBOL_BITS, y.dtype, y.device)
        temp = 2.0 * SIGMA_Z2 * torch.exp(self.deq_log_temp.to(y.dtype))
        logw = -(y[..., None] - levels).square() / temp + self.deq_prior.to(y.dtype)
        return (torch.softmax(logw, -1) * levels).sum(-1)

    def _values(
        self,
        head: Header,
        z0: torch.Tensor,
        z1: torch.Tensor,
        parts: torch.Tensor | None,
        rd: torch.dtype,
        snr_db: torch.Tensor,
    ) -> torch.Tensor:
        """The coefficients relative to the gain the BS decodes (before the residual)."""
        codec = self.codec
        a, p = codec.field_bits
        alpha = self.gains(snr_db)[..., : codec.n_coef].to(rd)
        if codec.mode == "polar":
            amp = straight_through(head.part0.to(rd) / (2**a - 1), z0)
            phase = straight_through(head.part1.to(rd) * (2 * math.pi / 2**p), z1)
            return torch.polar(amp / alpha, phase)
        if parts is None:
            re = straight_through(dequantize(head.part0, a, rd), z0)
            im = straight_through(dequantize(head.part1, p, rd), z1)
        else:
            re, im = parts[:, :, 0].to(rd), parts[:, :, 1].to(rd)
        return torch.complex(re / alpha, im / alpha)

    def feedback(
        self, H: torch.Tensor, snr_db: torch.Tensor, generator: torch.Generator | None
    ) -> torch.Tensor:
        r"""The BS's :math:`\hat{\mathbf H}` ``[B, F, K, M, N]`` of estimated channels ``H``.

        The link draws come from ``generator`` in ``beamspace_feedback``'s order (header
        bits first, then the analog coefficient uses), so an untrained model sees the very
        same link as ``beamspace_feedback`` with the same generator state.
        """
        codec = self.codec
        b, f, k, m, n = H.shape
        rd = H.real.dtype
        X = H.permute(0, 2, 1, 3, 4).reshape(b, k, f * m, n)
        sel, msg, z0, z1 = self._encode(X, snr_db)
        parts = None
        if self.link == "noisy" and codec.analog:
            head_bits = codec.header_bits
            sent = msg[..., :head_bits]
            sb = self.front.symbol_bits
            if sb > 1:
                sent = torch.cat([sent, sent.new_zeros((b, k, (-head_bits) % sb))], -1)
            rx = link_transmit(sent, "noisy", sb, generator)[..., :head_bits]
            head = decode_header(torch.cat([rx, msg[..., head_bits:]], -1), codec, H.dtype, snr_db)
            hard = dequantize(torch.stack([head.part0, head.part1], 2), SYMBOL_BITS, torch.float64)
            soft = torch.stack([z0, z1], 2).to(torch.float64)
            y = feedback_error(straight_through(hard, soft), SIGMA_Z2, generator)
            parts = self._soft_dequantize(y)
        elif self.link == "noisy":
            uses_bits = self.front.uses * self.front.symbol_bits
            padded = torch.cat([msg, msg.new_zeros((b, k, uses_bits - msg.shape[-1]))], -1)
            rx = link_transmit(padded, "noisy", self.front.symbol_bits, generator)
            head = decode_header(rx[..., : codec.total_bits], codec, H.dtype, snr_db)
        else:
            head = decode_header(msg, codec, H.dtype, snr_db)
        vals = None
        if codec.n_coef:
            vals = self._values(head, z0, z1, parts, rd, snr_db)
            feat = torch.cat(
                [
                    vals.real,
                    vals.imag,
                    ((snr_db.to(rd) - 12.5) / 7.5)[:, None, None].expand(b, k, 1),
                ],
                -1,
            )
            corr = self.ch_out(torch.relu(self.ch_in(feat.to(self.ch_in.weight.dtype)))).to(rd)
            nc = codec.n_coef
            vals = vals + torch.complex(corr[..., :nc], corr[..., nc:])
        X_hat = assemble(head, codec, H.dtype, vals)
        return X_hat.reshape(b, k, f, m, n).permute(0, 2, 1, 3, 4)

    # ---- beamforming on H^ -----------------------------------------------------------------------
    def forward(
        self,
        prob: SolverProblem,
        snr_db: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        r"""The inference pipeline: ``(W, H_hat)`` from what the BS knows (``prob``).

        Args:
            prob: The users' ESTIMATED channels (what they encode), budget, noise, weight.
            snr_db: Real ``[B]`` SNR in dB.
            generator: CPU generator of the link errors.

        Returns:
            The digital beamformer ``[B, N, K*M]`` (full power) and :math:`\hat{\mathbf H}`
            ``[B, F, K, M, N]``.
        """
        snr_db = (
            torch.as_tensor(snr_db, dtype=prob.power.dtype).reshape(-1).expand(prob.power.shape[0])
        )
        H_hat = self.feedback(prob.H, snr_db, generator)
        est = dataclasses.replace(prob, H=H_hat)
        rho = interpolate_knots(self.reg_log_scale, snr_db).to(prob.power.dtype)
        W0 = error_aware_mmse(est.linear_channel, prob.power, prob.noise_var, rho, prob.Q)
        if self.q_infer == 0:
            return W0, H_hat
        theta = interpolate_knots(self.step_log_scale, snr_db).to(prob.power.dtype)  # [B, Q]
        steps = self.eta * torch.exp(theta)
        W = learned_gradient_ascent(H_hat, W0, prob.power, prob.noise_var, steps, prob.Q)
        return W, H_hat

    @staticmethod
    def nmse(H: torch.Tensor, H_hat: torch.Tensor) -> torch.Tensor:
        """Per-user phase-invariant NMSE ``[B, K]`` of ``[B, F, K, M, N]`` channels."""
        return phase_invariant_nmse(H.permute(0, 2, 1, 3, 4), H_hat.permute(0, 2, 1, 3, 4))
