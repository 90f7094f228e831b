r"""Closed-form linear precoders: MRT, ZF, RZF and paper 000's MMSE beamformer.

Pure, batched functions of the (estimated, possibly effective) channel, modelled on Sionna's
``phy/mimo/precoding.py``. A channel is ``[B, K, N]`` (MISO users, rows
:math:`\mathbf h_k^H`) or ``[B, K, M, N]`` (MIMO users, blocks :math:`\mathbf H_k`); the
``K M`` stream rows are stacked and the precoder is ``[B, N, K*M]``. MRT, ZF and RZF are scaled
to full power by one common factor (total-power scaling,
:func:`~beamgym.physics.projections.normalize_power`, with an optional power weight
:math:`\mathbf Q` for the hybrid constraint of paper 000 eq. (23)/(24)); the MMSE beamformer
gives every user power :math:`P/K` (paper 000 Sec. III-B2).

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
"""

from __future__ import annotations

import torch

from beamgym._validation import check_tensor
from beamgym.physics.metrics import as_noise, as_power
from beamgym.physics.projections import normalize_power

__all__ = ["mrt_beamformer", "zf_beamformer", "rzf_beamformer", "mmse_beamformer"]


def _stack_rows(H: torch.Tensor) -> torch.Tensor:
    """``[B, K, N]`` or ``[B, K, M, N]`` -> ``[B, K*M, N]`` (one row per stream)."""
    check_tensor(H, "H", min_ndim=3, complex_=True)
    if H.ndim == 3:
        return H
    if H.ndim == 4:
        return H.reshape(H.shape[0], -1, H.shape[-1])
    raise ValueError(f"H must be [B, K, N] or [B, K, M, N], got shape {tuple(H.shape)}")


def mrt_beamformer(
    H: torch.Tensor, power: float | torch.Tensor, *, power_weight: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Maximum ratio transmission (matched filter), paper 000 Sec. I ref. [6].

    .. math:: \mathbf W = c\,\mathbf H^H

    with the ``K M`` stream rows of :math:`\mathbf H` stacked and one common factor
    :math:`c > 0` to full power (total-power scaling).
    The precoder is designed on the given (effective) channel as if its power were
    :math:`\|\mathbf W\|_F^2` and then scaled to full power under ``power_weight``
    (:func:`~beamgym.physics.projections.normalize_power`: total-power scaling, eq. (24) for
    hybrid), as paper 000 does
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
    (:func:`~beamgym.physics.projections.normalize_power`: total-power scaling, eq. (24) for
    hybrid), as paper 000 does
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
    (:func:`~beamgym.physics.projections.normalize_power`: total-power scaling, eq. (24) for
    hybrid), as paper 000 does
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
    p = as_power(power, b, Hs)
    s2 = as_noise(noise_var, b, 1, Hs)[:, 0]
    alpha = (s * s2 / p).to(Hs.dtype)[:, None, None]
    eye = torch.eye(s, dtype=Hs.dtype, device=Hs.device)
    A = Hs @ Hs.mH + alpha * eye
    L = torch.linalg.cholesky(0.5 * (A + A.mH))
    return normalize_power(Hs.mH @ torch.cholesky_inverse(L), p, power_weight)


def mmse_beamformer(
    H: torch.Tensor, P: float | torch.Tensor, noise_var: float | torch.Tensor = 1.0
) -> torch.Tensor:
    r"""Paper 000's MMSE (regularized ZF) beamformer, Sec. III-B2 (the KD teacher).

    .. math:: \mathbf M = \Big(\mathbf I_N + \sum_{i=1}^K \frac{P}{K\sigma^2}
              \mathbf H_i^H \mathbf H_i\Big)^{-1}, \qquad
              \tilde{\mathbf W}_k = \sqrt{\frac PK}\,
              \frac{\mathbf M \mathbf H_k^H}{\|\mathbf M \mathbf H_k^H\|_F}

    (the paper writes it for the normalized channel, :math:`\sigma^2 = 1`; ``noise_var``
    generalizes it to a common noise variance). Equal power :math:`P/K` per user, so
    :math:`\|\tilde{\mathbf W}\|_F^2 = P`; for MIMO users the norm of the ``N × M`` block is
    the Frobenius norm (the paper's :math:`\|\cdot\|_2` of a vector). Computed as a
    Cholesky solve of the ``N × N`` Hermitian positive definite system.

    Args:
        H: Complex ``[B, K, N]`` or ``[B, K, M, N]`` channel (estimated, for a baseline).
        P: Power budget :math:`P`: a positive number or a real ``[B]`` tensor.
        noise_var: Common noise variance :math:`\sigma^2 > 0`: a number or ``[B]``.

    Returns:
        Complex ``[B, N, K*M]`` beamformer with :math:`\|\tilde{\mathbf W}\|_F^2 = P`.
    """
    check_tensor(H, "H", min_ndim=3, complex_=True)
    if H.ndim > 4:
        raise ValueError(f"H must be [B, K, N] or [B, K, M, N], got shape {tuple(H.shape)}")
    b, k, n = H.shape[0], H.shape[1], H.shape[-1]
    Hs = H.reshape(b, -1, n)  # [B, K*M, N] stacked rows
    p = torch.as_tensor(P, dtype=H.real.dtype, device=H.device)
    if p.ndim == 0:
        p = p.expand(b)
    if p.shape != (b,) or not bool(torch.isfinite(p).all()) or bool((p <= 0).any()):
        raise ValueError(f"P must be a positive number or a positive [B]={b} tensor")
    s2 = as_noise(noise_var, b, 1, H)[:, 0]
    reg = (p / (k * s2)).to(H.dtype)[:, None, None]
    A = torch.eye(n, dtype=H.dtype, device=H.device) + reg * (Hs.mH @ Hs)
    X = torch.cholesky_solve(Hs.mH, torch.linalg.cholesky(0.5 * (A + A.mH)))  # [B, N, K*M]
    m = Hs.shape[1] // k
    blocks = X.reshape(b, n, k, m)
    norms = blocks.abs().square().sum((1, 3)).sqrt()  # [B, K]
    scale = torch.sqrt(p / k)[:, None] / norms
    return (blocks * scale[:, None, :, None].to(H.dtype)).reshape(b, n, k * m)
