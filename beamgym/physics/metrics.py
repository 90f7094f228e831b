r"""Performance metrics of the four papers, batched and differentiable.

Channel convention (all papers): the channel of user ``k`` is stored so that the received
signal is ``y_k = H_k W x + n_k``, i.e.

* MISO: ``H`` is ``[B, K, N]`` and row ``H[:, k]`` is :math:`\mathbf h_k^H` (paper 003's
  :math:`\mathbf H = [\mathbf h_1, \dots, \mathbf h_K]^H`, paper 000's ``(h̄_k)^T``);
* MIMO: ``H`` is ``[B, K, M, N]`` and ``H[:, k]`` is paper 000's :math:`\bar{\mathbf H}_k`.

Beamformers ``W`` are ``[B, N, K*M]`` (column block ``k`` serves user ``k``). Rates are in
bit/s/Hz (log base 2) unless a function says otherwise.

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
    [002] Schynol, Pesavento, "Hybrid Downlink Beamforming with Outage Constraints under
          Imperfect CSI using Model-Driven Deep Learning".
    [003] Nguyen et al., "Fast Deep Unfolded Hybrid Beamforming in Multiuser Large MIMO Systems".
    [004] Levy, Shlezinger, "Rapid and Power-Aware Learned Optimization for Modular Receive
          Beamforming".
"""

from __future__ import annotations

import math

import torch

from beamgym._validation import check_same_batch, check_tensor
from beamgym.physics.modular import equivalent_channel, panels_from_block_diag

__all__ = [
    "abs2",
    "as_noise",
    "miso_sinr",
    "miso_rates",
    "mimo_rates",
    "sum_rate",
]

_LN2 = math.log(2.0)


def abs2(x: torch.Tensor) -> torch.Tensor:
    """Squared magnitude :math:`|x|^2` of a complex tensor, without the square root of ``abs``.

    Differentiable everywhere (also at 0), and about twice as fast as ``x.abs().square()``.
    """
    if not x.is_complex():
        return x * x
    return x.real * x.real + x.imag * x.imag


def as_noise(
    noise_var: float | torch.Tensor, batch: int, k: int, like: torch.Tensor
) -> torch.Tensor:
    """Broadcast a noise variance (scalar, ``[B]`` or ``[B, K]``) to a real ``[B, K]`` tensor."""
    rdtype = like.real.dtype if like.is_complex() else like.dtype
    s = torch.as_tensor(noise_var, dtype=rdtype, device=like.device)
    if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise ValueError("noise_var must be finite and > 0")
    if s.ndim == 0:
        return s.expand(batch, k)
    if s.ndim == 1 and s.shape[0] == batch:
        return s.unsqueeze(-1).expand(batch, k)
    if s.shape == (batch, k):
        return s
    raise ValueError(
        f"noise_var must be a scalar, [B]={batch} or [B, K]=[{batch}, {k}], got shape "
        f"{tuple(s.shape)}"
    )


def _check_miso(H: torch.Tensor, W: torch.Tensor) -> tuple[int, int, int]:
    check_tensor(H, "H", ndim=3, complex_=True)
    check_tensor(W, "W", ndim=3, complex_=True)
    b, k, n = H.shape
    if W.shape[0] != b or W.shape[1] != n or W.shape[2] != k:
        raise ValueError(
            f"W must have shape [B, N, K] = [{b}, {n}, {k}] to match H {tuple(H.shape)}, "
            f"got {tuple(W.shape)}"
        )
    if H.dtype != W.dtype:
        raise ValueError(f"H and W must share a dtype, got {H.dtype} and {W.dtype}")
    return b, k, n


def miso_sinr(
    H: torch.Tensor, W: torch.Tensor, noise_var: float | torch.Tensor = 1.0
) -> torch.Tensor:
    r"""Per-user SINR of MISO downlink beamforming, paper 000 eq. (4), paper 003 eq. (4).

    .. math:: \mathrm{SINR}_k = \frac{|\mathbf h_k^H \mathbf w_k|^2}
              {\sigma_k^2 + \sum_{i\ne k} |\mathbf h_k^H \mathbf w_i|^2}

    With paper 000's normalized channel (``H = H̄/σ``) use ``noise_var = 1``.

    Args:
        H: ``[B, K, N]`` complex channel, row ``k`` is :math:`\mathbf h_k^H`.
        W: ``[B, N, K]`` complex beamformer, column ``k`` is :math:`\mathbf w_k`.
        noise_var: Noise variance :math:`\sigma_k^2`: scalar, ``[B]`` or ``[B, K]``.

    Returns:
        ``[B, K]`` real SINR (linear).
    """
    b, k, _ = _check_miso(H, W)
    g = abs2(H @ W)  # [B, K, K]: |h_k^H w_i|^2
    signal = torch.diagonal(g, dim1=-2, dim2=-1)
    interference = g.sum(-1) - signal
    return signal / (interference + as_noise(noise_var, b, k, H))


def miso_rates(
    H: torch.Tensor, W: torch.Tensor, noise_var: float | torch.Tensor = 1.0
) -> torch.Tensor:
    r"""Per-user MISO rates :math:`\log_2(1 + \mathrm{SINR}_k)` in bit/s/Hz, paper 000 eq. (4).

    Args:
        H: ``[B, K, N]`` complex channel (rows :math:`\mathbf h_k^H`).
        W: ``[B, N, K]`` complex beamformer.
        noise_var: Scalar, ``[B]`` or ``[B, K]`` noise variance.

    Returns:
        ``[B, K]`` rates in bit/s/Hz.
    """
    return torch.log1p(miso_sinr(H, W, noise_var)) / _LN2


def mimo_rates(
    H: torch.Tensor, W: torch.Tensor, noise_var: float | torch.Tensor = 1.0
) -> torch.Tensor:
    r"""Per-user MIMO rates, paper 000 eq. (2).

    .. math:: R_k = \log_2 \left| \mathbf I_M + \boldsymbol\Sigma_k^{-1} \mathbf H_k \mathbf W_k
              \mathbf W_k^H \mathbf H_k^H \right|,\quad
              \boldsymbol\Sigma_k = \sigma_k^2 \mathbf I_M + \mathbf H_k \Big(\sum_{i\ne k}
              \mathbf W_i \mathbf W_i^H\Big) \mathbf H_k^H

    Computed stably as :math:`\log_2|\boldsymbol\Sigma_k + \mathbf S_k| - \log_2|\boldsymbol
    \Sigma_k|` with Cholesky-based log-determinants (both matrices are Hermitian positive
    definite when :math:`\sigma_k^2 > 0`).

    Args:
        H: ``[B, K, M, N]`` complex channel matrices :math:`\mathbf H_k`.
        W: ``[B, N, K*M]`` complex beamformer; columns ``k*M:(k+1)*M`` are :math:`\mathbf W_k`.
        noise_var: Scalar, ``[B]`` or ``[B, K]`` noise variance.

    Returns:
        ``[B, K]`` rates in bit/s/Hz.
    """
    check_tensor(H, "H", ndim=4, complex_=True)
    check_tensor(W, "W", ndim=3, complex_=True)
    b, k, m, n = H.shape
    if W.shape != (b, n, k * m):
        raise ValueError(
            f"W must have shape [B, N, K*M] = [{b}, {n}, {k * m}] to match H {tuple(H.shape)}, "
            f"got {tuple(W.shape)}"
        )
    s2 = as_noise(noise_var, b, k, H)
    Wk = W.reshape(b, n, k, m).permute(0, 2, 1, 3)  # [B, K(stream owner), N, M]
    # E[b, k, i] = H_k W_i : [B, K, K, M, M]
    E = torch.einsum("bkmn,bino->bkimo", H, Wk)
    cov_all = torch.einsum("bkimo,bkipo->bkmp", E, E.conj())  # sum_i H_k W_i W_i^H H_k^H
    own = torch.einsum("bkkmo,bkkpo->bkmp", E, E.conj())
    eye = torch.eye(m, dtype=H.dtype, device=H.device)
    noise = s2.to(H.dtype)[..., None, None] * eye
    sigma = noise + cov_all - own
    total = noise + cov_all
    return (_logdet_hpd(total) - _logdet_hpd(sigma)) / _LN2


def _logdet_hpd(A: torch.Tensor) -> torch.Tensor:
    """log|A| of Hermitian positive-definite matrices via Cholesky (real result)."""
    A = 0.5 * (A + A.mH)
    L = torch.linalg.cholesky(A)
    return 2.0 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1).real).sum(-1)


def sum_rate(
    H: torch.Tensor, W: torch.Tensor, noise_var: float | torch.Tensor = 1.0
) -> torch.Tensor:
    """Sum-rate in bit/s/Hz, paper 000 eq. (2) (MIMO, ``H`` 4-D) or eq. (4) (MISO, ``H`` 3-D).

    Args:
        H: ``[B, K, N]`` (MISO) or ``[B, K, M, N]`` (MIMO) complex channel.
        W: ``[B, N, K]`` or ``[B, N, K*M]`` complex beamformer.
        noise_var: Scalar, ``[B]`` or ``[B, K]`` noise variance.

    Returns:
        ``[B]`` sum-rate.
    """
    if isinstance(H, torch.Tensor) and H.ndim == 4:
        return mimo_rates(H, W, noise_var).sum(-1)
    return miso_rates(H, W, noise_var).sum(-1)


# ---- paper 000: sum-rate gradients and hybrid effective channels ---------------------------------
#
# Gradient conventions (docs/readings.md#000-gradient-factor, #004-gradient-factor; paper
# 000 Appendix
# eq. (36)-(37)): for a real function R of a complex W, the Wirtinger derivative is
# dR/dconj(W); the steepest-ascent direction dR/dRe(W) + j dR/dIm(W) is 2 x the Wirtinger
# derivative and equals what torch autograd stores in W.grad for a real loss of a complex
# leaf. Paper 000's gradient step eq. (9)/(11) uses [grad_w L]_a = 2 dL/dconj(w_a)
# (Appendix, below eq. (36)), i.e. the steepest-ascent direction.

#: Gradient forms of :func:`sum_rate_gradient`.
SUM_RATE_GRADIENT_FORMS: tuple[str, ...] = ("ascent", "wirtinger")

__all__ += [
    "SUM_RATE_GRADIENT_FORMS",
    "sum_rate_gradient",
    "effective_channel",
]


def sum_rate_gradient(
    H: torch.Tensor,
    W: torch.Tensor,
    noise_var: float | torch.Tensor = 1.0,
    *,
    form: str = "ascent",
) -> torch.Tensor:
    r"""Closed-form gradient of the sum-rate w.r.t. the beamformer, paper 000 eq. (2), (4), (9).

    The sum-rate is in bit/s/Hz. MISO (``H`` is ``[B, K, N]``, rows
    :math:`\mathbf h_k^H`): with :math:`\mathbf G = \mathbf H \mathbf W`
    (:math:`G_{ki} = \mathbf h_k^H \mathbf w_i`), :math:`T_k = \sum_i |G_{ki}|^2` and
    :math:`I_k = T_k - |G_{kk}|^2`,

    .. math:: \frac{\partial R}{\partial \mathbf W^*} = \frac{1}{\ln 2}\,
              \mathbf H^H \mathbf D, \qquad D_{ki} = \frac{G_{ki}}{T_k + \sigma_k^2}
              - [i \ne k]\,\frac{G_{ki}}{I_k + \sigma_k^2}

    MIMO (``H`` is ``[B, K, M, N]``, :math:`\mathbf E_{ki} = \mathbf H_k \mathbf W_i`,
    :math:`\mathbf T_k = \sigma_k^2\mathbf I + \sum_i \mathbf E_{ki}\mathbf E_{ki}^H`,
    :math:`\boldsymbol\Sigma_k = \mathbf T_k - \mathbf E_{kk}\mathbf E_{kk}^H`, eq. (2)):

    .. math:: \frac{\partial R}{\partial \mathbf W_i^*} = \frac{1}{\ln 2} \sum_{k=1}^{K}
              \mathbf H_k^H \big(\mathbf T_k^{-1} - [i \ne k]\,\boldsymbol\Sigma_k^{-1}\big)
              \mathbf H_k \mathbf W_i

    (from :math:`\partial \log|\mathbf A + \mathbf H\mathbf X\mathbf X^H\mathbf H^H| /
    \partial \mathbf X^* = \mathbf H^H(\cdot)^{-1}\mathbf H \mathbf X`). The MISO formula is
    the ``M = 1`` case (tested). Neither forms an ``N × N`` matrix.

    Factor convention: ``form="wirtinger"`` returns :math:`\partial R/\partial\mathbf W^*`
    above; ``form="ascent"`` (default) returns the steepest-ascent direction
    :math:`\partial R/\partial\Re\mathbf W + j\,\partial R/\partial\Im\mathbf W =
    2\,\partial R/\partial \mathbf W^*`, which is paper 000's :math:`\nabla_{\mathbf W}
    R_{\rm sum}` in the gradient step eq. (9)/(11) (Appendix: :math:`[\nabla_{\mathbf w}
    L]_a = 2\,\partial L/\partial\bar{\mathbf w}(a)`) and equals torch autograd's
    ``W.grad`` for the loss :math:`R` (tested in complex128 to < 1e-6 relative error).

    Args:
        H: Complex ``[B, K, N]`` (MISO) or ``[B, K, M, N]`` (MIMO) normalized channel.
        W: Complex ``[B, N, K]`` or ``[B, N, K*M]`` beamformer (column block ``k`` serves
            user ``k``).
        noise_var: Noise variance :math:`\sigma_k^2` (1 for paper 000's normalized
            channel): scalar, ``[B]`` or ``[B, K]``.
        form: ``"ascent"`` or ``"wirtinger"``.

    Returns:
        Complex tensor of ``W``'s shape (per bit/s/Hz of sum-rate).
    """
    if form not in SUM_RATE_GRADIENT_FORMS:
        raise ValueError(f"form must be one of {SUM_RATE_GRADIENT_FORMS}, got {form!r}")
    check_tensor(H, "H", min_ndim=3, complex_=True)
    factor = (2.0 if form == "ascent" else 1.0) / _LN2
    if H.ndim == 3:
        b, k, _ = _check_miso(H, W)
        s2 = as_noise(noise_var, b, k, H)
        G = H @ W  # [B, K, K]
        p = G.abs().square()
        total = p.sum(-1)
        interf = total - torch.diagonal(p, dim1=-2, dim2=-1)
        eye = torch.eye(k, dtype=torch.bool, device=H.device)
        D = G / (total + s2).unsqueeze(-1) - G.masked_fill(eye, 0.0) / (interf + s2).unsqueeze(-1)
        return (H.mH @ D) * factor
    check_tensor(H, "H", ndim=4, complex_=True)
    check_tensor(W, "W", ndim=3, complex_=True)
    b, k, m, n = H.shape
    if W.shape != (b, n, k * m):
        raise ValueError(
            f"W must have shape [B, N, K*M] = [{b}, {n}, {k * m}] to match H {tuple(H.shape)}, "
            f"got {tuple(W.shape)}"
        )
    if H.dtype != W.dtype:
        raise ValueError(f"H and W must share a dtype, got {H.dtype} and {W.dtype}")
    s2 = as_noise(noise_var, b, k, H)
    Wk = W.reshape(b, n, k, m).permute(0, 2, 1, 3)  # [B, K, N, M]
    E = torch.einsum("bkmn,bino->bkimo", H, Wk)  # E[b, k, i] = H_k W_i
    eye_m = torch.eye(m, dtype=H.dtype, device=H.device)
    T = s2.to(H.dtype)[..., None, None] * eye_m + torch.einsum("bkimo,bkipo->bkmp", E, E.conj())
    own = torch.einsum("bkkmo,bkkpo->bkmp", E, E.conj())
    S = T - own
    T = 0.5 * (T + T.mH)
    S = 0.5 * (S + S.mH)
    LT = torch.linalg.cholesky(T)  # [B, K, M, M]
    LS = torch.linalg.cholesky(S)
    Ef = E.permute(0, 1, 3, 2, 4).reshape(b, k, m, k * m)  # [B, K, M, (i, o)]
    DT = torch.cholesky_solve(Ef, LT).reshape(b, k, m, k, m)
    DS = torch.cholesky_solve(Ef, LS).reshape(b, k, m, k, m)
    not_own = (~torch.eye(k, dtype=torch.bool, device=H.device)).to(H.real.dtype)
    D = DT - DS * not_own[None, :, None, :, None].to(H.dtype)  # [B, K(k), M, K(i), M]
    grad = torch.einsum("bkmn,bkmio->bnio", H.conj(), D)  # sum_k H_k^H D_ki
    return grad.reshape(b, n, k * m) * factor


def effective_channel(H: torch.Tensor, W_a: torch.Tensor) -> torch.Tensor:
    r"""Effective channel of hybrid beamforming, paper 000 eq. (19)/(21)/(32).

    .. math:: \mathbf G_k = \mathbf H_k \mathbf W^a \quad (\text{MIMO}), \qquad
              \mathbf g_k^T = \mathbf h_k^T \mathbf W^a \quad (\text{MISO})

    With paper 000's normalized channel :math:`\mathbf H = \bar{\mathbf H}/\sigma` the
    result is its normalized effective channel, and the hybrid sum-rate eq. (20)/(22)/(33)
    is ``sum_rate(G, W_D)`` (:func:`sum_rate` with unit noise).

    Args:
        H: Complex ``[B, K, N]`` or ``[B, K, M, N]`` channel (row/block ``k`` multiplies the
            transmit signal).
        W_a: Complex ``[N, N_RF]`` (shared, e.g. eq. (18)) or ``[B, N, N_RF]`` (per
            instance, e.g. eq. (31)) analog precoder.

    Returns:
        Complex ``[B, K, N_RF]`` or ``[B, K, M, N_RF]`` effective channel.
    """
    check_tensor(H, "H", min_ndim=3, complex_=True)
    check_tensor(W_a, "W_a", min_ndim=2, complex_=True)
    if H.ndim > 4:
        raise ValueError(f"H must be [B, K, N] or [B, K, M, N], got shape {tuple(H.shape)}")
    b, n = H.shape[0], H.shape[-1]
    if W_a.ndim not in (2, 3) or W_a.shape[-2] != n or (W_a.ndim == 3 and W_a.shape[0] != b):
        raise ValueError(
            f"W_a must be [N, N_RF] or [B, N, N_RF] with N={n}, B={b} to match H "
            f"{tuple(H.shape)}, got {tuple(W_a.shape)}"
        )
    if H.dtype != W_a.dtype:
        raise ValueError(f"H and W_a must share a dtype, got {H.dtype} and {W_a.dtype}")
    if H.ndim == 4 and W_a.ndim == 3:
        return H @ W_a.unsqueeze(1)
    return H @ W_a


# ---- paper 003: hybrid sum-rate and Theorem 1 gradients ------------------------------------------
#: Gradient conventions of :func:`hybrid_rate_gradients`.
GRADIENT_FORMS: tuple[str, ...] = ("paper", "ascent")


def _check_hybrid(H: torch.Tensor, F: torch.Tensor, W: torch.Tensor) -> tuple[int, int, int, int]:
    """Validate ``H [B, K, N]``, ``F [B, N, M]``, ``W [B, M, K]``; return ``(B, K, N, M)``."""
    check_tensor(H, "H", ndim=3, complex_=True)
    check_tensor(F, "F", ndim=3, complex_=True)
    check_tensor(W, "W", ndim=3, complex_=True)
    b, k, n = H.shape
    if F.shape[0] != b or F.shape[1] != n:
        raise ValueError(
            f"F (analog precoder) must have shape [B, N, M] = [{b}, {n}, M] to match H "
            f"{tuple(H.shape)}, got {tuple(F.shape)}"
        )
    m = F.shape[2]
    if W.shape != (b, m, k):
        raise ValueError(
            f"W (digital precoder) must have shape [B, M, K] = [{b}, {m}, {k}] to match H "
            f"{tuple(H.shape)} and F {tuple(F.shape)}, got {tuple(W.shape)}"
        )
    if not H.dtype == F.dtype == W.dtype:
        raise ValueError(
            f"H, F and W must share a complex dtype, got {H.dtype}, {F.dtype} and {W.dtype}"
        )
    return b, k, n, m


def hybrid_rates(
    H: torch.Tensor, F: torch.Tensor, W: torch.Tensor, noise_var: float | torch.Tensor = 1.0
) -> torch.Tensor:
    r"""Per-user rates of fully connected hybrid precoding, paper 003 eq. (4), in bit/s/Hz.

    .. math:: R_k = \log_2\Big(1 + \frac{|\mathbf h_k^H \mathbf F \mathbf w_k|^2}
              {\sum_{\ell\ne k} |\mathbf h_k^H \mathbf F \mathbf w_\ell|^2 + \sigma_n^2}\Big)

    Eq. (4) writes ``log``; the loss of Sec. III-B and the appendix use :math:`\log_2`, so the
    rate is reported in bits (docs/readings.md#003-log-base). Computed with
    :func:`miso_rates` on the effective precoder :math:`\mathbf F \mathbf W`.

    Args:
        H: ``[B, K, N]`` complex channel, row ``k`` is :math:`\mathbf h_k^H`.
        F: ``[B, N, M]`` complex analog precoder (``M`` RF chains).
        W: ``[B, M, K]`` complex digital precoder, column ``k`` is :math:`\mathbf w_k`.
        noise_var: Noise variance :math:`\sigma_n^2` (linear): scalar, ``[B]`` or ``[B, K]``.

    Returns:
        ``[B, K]`` real rates in bit/s/Hz.
    """
    _check_hybrid(H, F, W)
    return miso_rates(H, F @ W, noise_var)


def hybrid_sum_rate(
    H: torch.Tensor, F: torch.Tensor, W: torch.Tensor, noise_var: float | torch.Tensor = 1.0
) -> torch.Tensor:
    r"""Sum-rate :math:`R = \sum_k R_k` of hybrid precoding, paper 003 eq. (4), in bit/s/Hz.

    Args:
        H: ``[B, K, N]`` complex channel (rows :math:`\mathbf h_k^H`).
        F: ``[B, N, M]`` complex analog precoder.
        W: ``[B, M, K]`` complex digital precoder.
        noise_var: Noise variance :math:`\sigma_n^2`: scalar, ``[B]`` or ``[B, K]``.

    Returns:
        ``[B]`` sum-rate in bit/s/Hz.
    """
    return hybrid_rates(H, F, W, noise_var).sum(-1)


def hybrid_rate_gradients(
    H: torch.Tensor,
    F: torch.Tensor,
    W: torch.Tensor,
    noise_var: float | torch.Tensor = 1.0,
    *,
    form: str = "paper",
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Closed-form gradients of the hybrid sum-rate, paper 003 Theorem 1, eq. (10)-(11).

    .. math::
        \nabla_{\mathbf F} R = \sum_{k=1}^K \Big(
            \frac{\tilde{\mathbf H}_k \mathbf F \mathbf V}
                 {\mathrm{tr}(\mathbf F \mathbf V \mathbf F^H \tilde{\mathbf H}_k) + \sigma_n^2}
          - \frac{\tilde{\mathbf H}_k \mathbf F \mathbf V_{\bar k}}
                 {\mathrm{tr}(\mathbf F \mathbf V_{\bar k} \mathbf F^H \tilde{\mathbf H}_k)
                  + \sigma_n^2}\Big),\qquad
        \nabla_{\mathbf W} R = \sum_{k=1}^K \Big(
            \frac{\bar{\mathbf H}_k \mathbf W}
                 {\mathrm{tr}(\mathbf W \mathbf W^H \bar{\mathbf H}_k) + \sigma_n^2}
          - \frac{\bar{\mathbf H}_k \mathbf W_{\bar k}}
                 {\mathrm{tr}(\mathbf W_{\bar k} \mathbf W_{\bar k}^H \bar{\mathbf H}_k)
                  + \sigma_n^2}\Big)

    with :math:`\tilde{\mathbf H}_k = \mathbf h_k \mathbf h_k^H`, :math:`\bar{\mathbf H}_k =
    \mathbf F^H \tilde{\mathbf H}_k \mathbf F`, :math:`\mathbf V = \mathbf W \mathbf W^H`,
    :math:`\mathbf V_{\bar k} = \mathbf W_{\bar k} \mathbf W_{\bar k}^H` and
    :math:`\mathbf W_{\bar k}` equal to :math:`\mathbf W` with column ``k`` set to zero.

    Evaluated without forming the ``N x N`` matrices: with :math:`\mathbf G = \mathbf H
    \mathbf F \mathbf W` (``G[k, l]`` :math:`= \mathbf h_k^H \mathbf F \mathbf w_l`),
    :math:`T_k = \sum_l |G_{kl}|^2` and :math:`I_k = T_k - |G_{kk}|^2`, let
    :math:`D_{kl} = G_{kl}/(T_k + \sigma_n^2) - [l \ne k]\, G_{kl}/(I_k + \sigma_n^2)`. Then
    eq. (10) is :math:`\mathbf H^H \mathbf D \mathbf W^H` and eq. (11) is
    :math:`(\mathbf H \mathbf F)^H \mathbf D`.

    Factor conventions (docs/readings.md#003-theorem1-factor; checked against autograd in the
    tests): eq. (10)-(11) are the Wirtinger derivatives :math:`\partial R/\partial
    \mathbf F^*` of the rate **in nats**; Theorem 1 drops the :math:`1/\ln 2` of the
    appendix's eq. (17)-(18). For the rate in bits of :func:`hybrid_sum_rate`,

    * ``form="paper"`` returns eq. (10)-(11) exactly as printed
      (:math:`= \ln 2 \cdot \partial R_{\text{bit}}/\partial \mathbf F^*`);
    * ``form="ascent"`` returns the steepest-ascent direction
      :math:`\partial R_{\text{bit}}/\partial \Re\mathbf F + j\,\partial R_{\text{bit}}/
      \partial \Im \mathbf F = (2/\ln 2)\times` eq. (10) (likewise for ``W``), which is what
      torch autograd returns as ``F.grad`` for the real loss :math:`R_{\text{bit}}`.

    Args:
        H: ``[B, K, N]`` complex channel, row ``k`` is :math:`\mathbf h_k^H`.
        F: ``[B, N, M]`` complex analog precoder.
        W: ``[B, M, K]`` complex digital precoder.
        noise_var: Noise variance :math:`\sigma_n^2`: scalar, ``[B]`` or ``[B, K]``.
        form: ``"paper"`` (eq. (10)-(11) as printed) or ``"ascent"`` (see above).

    Returns:
        ``(grad_F, grad_W)``: complex ``[B, N, M]`` and ``[B, M, K]`` tensors.
    """
    b, k, _, _ = _check_hybrid(H, F, W)
    if form not in GRADIENT_FORMS:
        raise ValueError(f"form must be one of {GRADIENT_FORMS}, got {form!r}")
    s2 = as_noise(noise_var, b, k, H)
    HF = H @ F  # [B, K, M]
    G = HF @ W  # [B, K, K]
    p = G.abs().square()
    total = p.sum(-1)  # T_k
    interf = total - torch.diagonal(p, dim1=-2, dim2=-1)  # I_k
    eye = torch.eye(k, dtype=torch.bool, device=H.device)
    G_off = G.masked_fill(eye, 0.0)
    D = G / (total + s2).unsqueeze(-1) - G_off / (interf + s2).unsqueeze(-1)
    grad_F = H.mH @ D @ W.mH
    grad_W = HF.mH @ D
    if form == "ascent":
        grad_F = grad_F * (2.0 / _LN2)
        grad_W = grad_W * (2.0 / _LN2)
    return grad_F, grad_W


def zf_equal_power_precoder(H: torch.Tensor, power: float | torch.Tensor) -> torch.Tensor:
    r"""Fully digital zero-forcing precoder with equal power per user (paper 003 Fig. 2 bound).

    .. math:: \mathbf W = \sqrt{P_t / K}\, \big[\mathbf u_1/\|\mathbf u_1\|, \dots,
              \mathbf u_K/\|\mathbf u_K\|\big],\qquad
              [\mathbf u_1, \dots, \mathbf u_K] = \mathbf H^{\dagger}

    Paper 003 compares with "fully digital ZF" without details; the independent reference value
    (BENCHMARKS.md, section "Reference values of the system models") is reproduced by this
    equal-power-per-user form (docs/readings.md#003-fully-digital-zf, tested). Needs ``N >= K``
    and a channel of full row rank.

    Args:
        H: ``[B, K, N]`` complex channel (rows :math:`\mathbf h_k^H`), ``N >= K``.
        power: Total transmit power :math:`P_t` (linear): a positive number or a ``[B]``
            real tensor.

    Returns:
        ``[B, N, K]`` complex precoder with :math:`\|\mathbf W\|_F^2 = P_t` and
        :math:`\mathbf H \mathbf W` diagonal.
    """
    check_tensor(H, "H", ndim=3, complex_=True)
    b, k, n = H.shape
    if n < k:
        raise ValueError(f"zero forcing needs N >= K antennas, got N={n} < K={k}")
    p = as_power(power, b, H)
    U = torch.linalg.pinv(H)  # [B, N, K]
    norms = torch.linalg.vector_norm(U, dim=-2, keepdim=True)
    return U / norms * torch.sqrt(p / k).to(H.dtype)[:, None, None]


def fully_digital_zf_sum_rate(
    H: torch.Tensor, power: float | torch.Tensor, noise_var: float | torch.Tensor = 1.0
) -> torch.Tensor:
    r"""Sum-rate of :func:`zf_equal_power_precoder` in bit/s/Hz (paper 003 Fig. 2 reference).

    .. math:: R_{\text{ZF}} = \sum_k \log_2\Big(1 + \frac{P_t}{K\sigma_n^2
              \|[\mathbf H^{\dagger}]_{:,k}\|^2}\Big)

    Args:
        H: ``[B, K, N]`` complex channel (rows :math:`\mathbf h_k^H`), ``N >= K``.
        power: Total transmit power :math:`P_t`: a positive number or a ``[B]`` tensor.
        noise_var: Noise variance :math:`\sigma_n^2`: scalar, ``[B]`` or ``[B, K]``.

    Returns:
        ``[B]`` sum-rate in bit/s/Hz.
    """
    return miso_rates(H, zf_equal_power_precoder(H, power), noise_var).sum(-1)


def as_power(power: float | torch.Tensor, batch: int, like: torch.Tensor) -> torch.Tensor:
    """A power budget as a real ``[B]`` tensor in ``like``'s real dtype and device.

    Args:
        power: Budget :math:`P` (linear): a positive number or a real ``[B]`` tensor.
        batch: Batch size ``B``.
        like: Tensor whose (real) dtype and device the result takes.

    Returns:
        Real ``[B]`` tensor.

    Raises:
        ValueError: if the shape is not ``[]`` or ``[B]``, or a value is not finite and > 0.
    """
    rdtype = like.real.dtype if like.is_complex() else like.dtype
    p = torch.as_tensor(power, dtype=rdtype, device=like.device)
    if p.ndim == 0:
        p = p.expand(batch)
    if p.shape != (batch,):
        raise ValueError(f"power must be a number or a [B]={batch} tensor, got {tuple(p.shape)}")
    if not bool(torch.isfinite(p).all()) or bool((p <= 0).any()):
        raise ValueError("power (P_t, linear) must be finite and > 0")
    return p


__all__ += [
    "GRADIENT_FORMS",
    "hybrid_rates",
    "hybrid_sum_rate",
    "hybrid_rate_gradients",
    "zf_equal_power_precoder",
    "fully_digital_zf_sum_rate",
]

# ---- paper 004: modular uplink rate and Theorem 1 gradient ---------------------------------------

__all__ += [
    "equivalent_channel_rate",
    "modular_sum_rate",
    "modular_average_user_rate",
    "modular_sic_user_rates",
    "modular_rate_gradient",
    "modular_rate_and_gradient",
    "fully_digital_uplink_rate",
    "RATE_UNITS",
]

#: Units of the paper 004 rate functions: natural log as printed in eq. (6), or bits.
RATE_UNITS: tuple[str, ...] = ("nats", "bits")


def _rate_unit_scale(unit: str) -> float:
    if unit not in RATE_UNITS:
        raise ValueError(f"unit must be one of {RATE_UNITS}, got {unit!r}")
    return 1.0 if unit == "nats" else 1.0 / _LN2


def _snr_vector(snr: float | torch.Tensor, batch: int, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a linear SNR ``rho_s / sigma_w^2`` (scalar or ``[batch]``) to real ``[batch]``."""
    rdtype = like.real.dtype if like.is_complex() else like.dtype
    s = torch.as_tensor(snr, dtype=rdtype, device=like.device)
    if s.ndim == 0:
        s = s.expand(batch)
    elif s.shape != (batch,):
        raise ValueError(
            f"snr must be a scalar or have shape [batch] = [{batch}], got {tuple(s.shape)}"
        )
    if not bool(torch.isfinite(s).all()) or bool((s <= 0).any()):
        raise ValueError("snr (linear rho_s / sigma_w^2) must be finite and > 0")
    return s


def _check_uplink_channel(H: torch.Tensor) -> tuple[int, int, int, int]:
    check_tensor(H, "H", ndim=4, complex_=True)
    b, nb, m, k = H.shape
    return int(b), int(nb), int(m), int(k)


def _check_combiner(H: torch.Tensor, G: torch.Tensor) -> None:
    check_tensor(G, "G", ndim=3, complex_=True)
    check_same_batch((H, "H"), (G, "G"))
    if G.shape[1] != H.shape[2]:
        raise ValueError(
            f"G must have M = {H.shape[2]} rows to match H of shape {tuple(H.shape)} "
            f"([batch, B, M, K]), got G of shape {tuple(G.shape)}"
        )
    if G.shape[2] > G.shape[1]:
        raise ValueError(
            f"G has T = {G.shape[2]} columns but only M = {G.shape[1]} rows; eq. (6) needs T <= M"
        )
    if G.dtype != H.dtype:
        raise ValueError(f"H and G must share a dtype, got {H.dtype} and {G.dtype}")


def _check_modular(H: torch.Tensor, W: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """Validate ``H [b, B, M, K]``, panels ``W [b, P, N, L]``, ``A [PL, T]``; return ``G``."""
    _check_uplink_channel(H)
    check_tensor(W, "W", ndim=4, complex_=True)
    check_same_batch((H, "H"), (W, "W"))
    if W.dtype != H.dtype:
        raise ValueError(f"H and W must share a dtype, got {H.dtype} and {W.dtype}")
    _, p, n, _ = W.shape
    if p * n != H.shape[2]:
        raise ValueError(
            f"panels W of shape {tuple(W.shape)} ([batch, P, N, L]) give M = P*N = {p * n} "
            f"antennas but H has M = {H.shape[2]}"
        )
    G = equivalent_channel(W, A)
    _check_combiner(H, G)
    return G


def _range_basis(G: torch.Tensor, rank_rtol: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Constant ``X`` with ``G X`` an orthonormal basis of ``range(G)`` (zero columns beyond).

    From the eigendecomposition :math:`\mathbf G^H\mathbf G = \mathbf V \Lambda \mathbf V^H`
    (float64, no gradient): ``X = V diag(m / sqrt(λ))`` with ``m_i = 1[λ_i > rtol² λ_max]``.
    Returns ``X`` in ``G``'s dtype and the bool mask ``m`` ``[batch, T]``.
    """
    if rank_rtol is None:
        rank_rtol = 1e-5 if G.dtype == torch.complex64 else 1e-7
    with torch.no_grad():
        g = G.detach().to(torch.complex128)
        gram = g.mH @ g
        lam, V = torch.linalg.eigh(0.5 * (gram + gram.mH))
        lam_max = lam[..., -1:]
        keep = (lam > (rank_rtol**2) * lam_max) & (lam_max > 0)
        scale = torch.where(keep, lam.clamp_min(1e-300).rsqrt(), torch.zeros_like(lam))
        X = (V * scale.unsqueeze(-2)).to(G.dtype)
    return X, keep


def _projected_terms(
    H: torch.Tensor, G: torch.Tensor, rank_rtol: float | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gram', F)`` with ``gram' = (GX)^H GX + diag(1-m)`` and ``F = (GX)^H H``.

    Shapes: ``gram'`` is ``[b, T, T]``, ``F`` is ``[b, B, T, K]``.
    """
    X, keep = _range_basis(G, rank_rtol)
    U = G @ X
    eye_off = torch.diag_embed((~keep).to(G.dtype))
    gram = U.mH @ U + eye_off
    F = U.mH.unsqueeze(1) @ H
    return gram, F


def equivalent_channel_rate(
    H: torch.Tensor,
    G: torch.Tensor,
    snr: float | torch.Tensor,
    *,
    unit: str = "nats",
    rank_rtol: float | None = None,
) -> torch.Tensor:
    r"""Uplink sum-rate behind a linear combiner ``G``, paper 004 eq. (6).

    .. math:: R(\mathbf G; \{\mathbf H[b]\}) = \frac1B \sum_{b=1}^{B} \log\Big|\mathbf I_M
              + \frac{\rho_s}{\sigma_w^2}\,\mathbf G(\mathbf G^H\mathbf G)^{-1}\mathbf G^H
              \mathbf H[b]\mathbf H^H[b]\Big|

    (eq. (6) writes :math:`N_0` for the noise variance :math:`\sigma_w^2`). Computed
    stably in the ``T × T`` domain: with a constant ``X`` such that ``U = G X`` has
    orthonormal columns,

    .. math:: R = \frac1B\sum_b \Big(\log|\mathbf U^H\mathbf U + \tfrac{\rho_s}{\sigma_w^2}
              \mathbf U^H\mathbf H[b]\mathbf H^H[b]\mathbf U| - \log|\mathbf U^H\mathbf U|\Big),

    which equals eq. (6) for every full-rank ``G`` because eq. (6) depends on ``G`` only
    through its column space (:math:`R(\mathbf G\mathbf X) = R(\mathbf G)` for invertible
    ``X``); autograd through it is the exact gradient of eq. (6). Since ``X`` is a constant,
    the autograd gradient equals Theorem 1's closed form (:func:`modular_rate_gradient`).

    Rank-deficient ``G`` (e.g. sparse panels or identical panel columns): eq. (6)'s
    :math:`(\mathbf G^H\mathbf G)^{-1}` does not exist. Our choice: use the orthogonal
    projector onto :math:`\operatorname{range}(\mathbf G)` (the mutual information the CPU
    inputs actually carry), keeping directions whose singular value exceeds
    ``rank_rtol`` times the largest; ``G = 0`` gives rate 0. The gradient there is that of
    the rate over the retained subspace (Theorem 1 with the pseudo-inverse).

    Args:
        H: ``[batch, B, M, K]`` complex channels :math:`\mathbf H[b]`.
        G: ``[batch, M, T]`` complex combiner / equivalent channel ``G = W A``, ``T <= M``.
        snr: Linear :math:`\rho_s/\sigma_w^2`, scalar or ``[batch]`` (paper: SNR = 1/σ_w²
            with ρ_s = 1).
        unit: ``"nats"`` (natural log as printed in eq. (6)) or ``"bits"``.
        rank_rtol: Relative singular-value threshold for the column space (default
            ``1e-5`` for complex64, ``1e-7`` for complex128).

    Returns:
        ``[batch]`` real sum-rate (nats or bits per channel use, averaged over the B bins).
    """
    b, _, _, _ = _check_uplink_channel(H)
    _check_combiner(H, G)
    scale = _rate_unit_scale(unit)
    s = _snr_vector(snr, b, H)
    gram, F = _projected_terms(H, G, rank_rtol)
    S = gram.unsqueeze(1) + s.to(H.dtype)[:, None, None, None] * (F @ F.mH)
    rate = (_logdet_hpd(S) - _logdet_hpd(gram).unsqueeze(1)).mean(-1)
    return rate * scale


def modular_sum_rate(
    H: torch.Tensor,
    W: torch.Tensor,
    A: torch.Tensor,
    snr: float | torch.Tensor,
    *,
    unit: str = "nats",
    rank_rtol: float | None = None,
) -> torch.Tensor:
    r"""Sum-rate of a modular receiver, paper 004 eq. (6) with ``G = W A``.

    .. math:: R(\mathbf W\mathbf A; \{\mathbf H[b]\}) = \frac1B \sum_{b=1}^{B}
              \log\Big|\mathbf I_M + \frac{\rho_s}{\sigma_w^2}\mathbf P_{\mathbf G}
              \mathbf H[b]\mathbf H^H[b]\Big|,\quad
              \mathbf P_{\mathbf G} = \mathbf G(\mathbf G^H\mathbf G)^{-1}\mathbf G^H

    See :func:`equivalent_channel_rate` for the computation and the rank-deficient case.

    Args:
        H: ``[batch, B, M, K]`` complex channels.
        W: ``[batch, P, N, L]`` complex panels (diagonal blocks of the block-diagonal W),
            ``P N = M``.
        A: ``[P L, T]`` real connectivity (:func:`beamgym.physics.modular.connectivity_matrix`).
        snr: Linear :math:`\rho_s/\sigma_w^2`, scalar or ``[batch]``.
        unit: ``"nats"`` (as printed) or ``"bits"``.
        rank_rtol: See :func:`equivalent_channel_rate`.

    Returns:
        ``[batch]`` sum-rate per channel use (averaged over frequency bins).
    """
    G = _check_modular(H, W, A)
    return equivalent_channel_rate(H, G, snr, unit=unit, rank_rtol=rank_rtol)


def modular_average_user_rate(
    H: torch.Tensor,
    W: torch.Tensor,
    A: torch.Tensor,
    snr: float | torch.Tensor,
    *,
    unit: str = "nats",
    rank_rtol: float | None = None,
) -> torch.Tensor:
    r"""Paper 004 Table I's metric: eq. (6) divided by the number of users ``K``.

    .. math:: \bar R = \frac{1}{K}\, R(\mathbf W\mathbf A; \{\mathbf H[b]\})

    docs/readings.md#004-nats: Table I and Figs. 5-14 report eq. (6) in **nats** per user
    although the
    axes say bits; keep ``unit="nats"`` to compare with the paper (e.g. 0.98 for PGA+M after
    500 iterations in Scenario 1 at 0 dB).

    Args:
        H: ``[batch, B, M, K]`` complex channels.
        W: ``[batch, P, N, L]`` complex panels.
        A: ``[P L, T]`` real connectivity.
        snr: Linear :math:`\rho_s/\sigma_w^2`, scalar or ``[batch]``.
        unit: ``"nats"`` (Table I) or ``"bits"``.
        rank_rtol: See :func:`equivalent_channel_rate`.

    Returns:
        ``[batch]`` average per-user rate.
    """
    return modular_sum_rate(H, W, A, snr, unit=unit, rank_rtol=rank_rtol) / H.shape[-1]


def modular_sic_user_rates(
    H: torch.Tensor,
    W: torch.Tensor,
    A: torch.Tensor,
    snr: float | torch.Tensor,
    *,
    unit: str = "nats",
    rank_rtol: float | None = None,
) -> torch.Tensor:
    r"""Per-user rates whose sum is eq. (6): MMSE-SIC at the CPU (chain rule), paper 004.

    Eq. (6) is a sum-rate; it splits into per-user rates by the chain rule of mutual
    information, achieved by MMSE successive interference cancellation on the CPU inputs.
    With ``U`` an orthonormal basis of range(G) and :math:`\tilde{\mathbf h}_k[b] =
    \mathbf U^H \mathbf h_k[b]`:

    .. math:: R_k = \frac1B\sum_b \log\frac{|\mathbf I + \tfrac{\rho_s}{\sigma_w^2}
              \sum_{j \le k}\tilde{\mathbf h}_j\tilde{\mathbf h}_j^H|}
              {|\mathbf I + \tfrac{\rho_s}{\sigma_w^2}\sum_{j < k}\tilde{\mathbf h}_j
              \tilde{\mathbf h}_j^H|},\qquad \sum_k R_k = R(\mathbf W\mathbf A).

    Our choice (the paper has no per-user rate): decoding order ``K, K-1, ..., 1`` (user
    ``K`` first, treating all others as noise; user 1 last, interference-free). The split
    depends on the order; the sum does not.

    Args:
        H: ``[batch, B, M, K]`` complex channels.
        W: ``[batch, P, N, L]`` complex panels.
        A: ``[P L, T]`` real connectivity.
        snr: Linear :math:`\rho_s/\sigma_w^2`, scalar or ``[batch]``.
        unit: ``"nats"`` or ``"bits"``.
        rank_rtol: See :func:`equivalent_channel_rate`.

    Returns:
        ``[batch, K]`` non-negative per-user rates.
    """
    G = _check_modular(H, W, A)
    scale = _rate_unit_scale(unit)
    s = _snr_vector(snr, H.shape[0], H)
    gram, F = _projected_terms(H, G, rank_rtol)
    cols = F.transpose(-1, -2)  # [batch, B, K, T]: column k is h~_k
    outer = cols.unsqueeze(-1) @ cols.unsqueeze(-2).conj()  # [batch, B, K, T, T]
    cum = torch.cumsum(s.to(H.dtype)[:, None, None, None, None] * outer, dim=2)
    base = gram[:, None, None]  # [batch, 1, 1, T, T]
    S = torch.cat([base.expand(-1, H.shape[1], 1, -1, -1), base + cum], dim=2)
    ld = _logdet_hpd(S)  # [batch, B, K + 1]
    return (ld[..., 1:] - ld[..., :-1]).mean(1) * scale


def modular_rate_gradient(
    H: torch.Tensor,
    W: torch.Tensor,
    A: torch.Tensor,
    snr: float | torch.Tensor,
    *,
    rank_rtol: float | None = None,
) -> torch.Tensor:
    r"""Closed-form gradient of eq. (6) w.r.t. the panels, paper 004 Theorem 1 eq. (9).

    .. math:: \nabla_{\mathbf W} R = \frac1B\sum_{b=1}^{B}\Big(\frac{\rho_s}{\sigma_w^2}
              \mathbf A\,\mathbf G^\dagger\mathbf H[b]\mathbf H^H[b]\,\mathbf Q[b]^{-1}
              (\mathbf I - \mathbf P)\Big)^H,

    with :math:`\mathbf G^\dagger = (\mathbf G^H\mathbf G)^{-1}\mathbf G^H`,
    :math:`\mathbf P = \mathbf G\mathbf G^\dagger` and :math:`\mathbf Q[b] = \mathbf I_M +
    \frac{\rho_s}{\sigma_w^2}\mathbf P\mathbf H[b]\mathbf H^H[b]` (Appendix A, eq. (A.1)).
    The ``M × LP`` matrix is restricted to its diagonal blocks (the panel entries; the other
    entries of ``W`` are structurally zero).

    Factor convention (docs/readings.md#004-gradient-factor, tested against autograd in
    complex128): eq. (9) is the
    Wirtinger derivative :math:`\partial R/\partial\overline{\mathbf W}`. The steepest-ascent
    direction :math:`\partial R/\partial\Re\mathbf W + j\,\partial R/\partial\Im\mathbf W`
    (what torch autograd returns for a real loss of a complex leaf) is **2 ×** this value.
    The rate here is in nats (natural log); divide by ``ln 2`` for bits.

    For rank-deficient ``G``, :math:`\mathbf G^\dagger` is the pseudo-inverse over the same
    retained column space as :func:`equivalent_channel_rate`, so the two stay consistent.

    Args:
        H: ``[batch, B, M, K]`` complex channels.
        W: ``[batch, P, N, L]`` complex panels.
        A: ``[P L, T]`` real connectivity.
        snr: Linear :math:`\rho_s/\sigma_w^2`, scalar or ``[batch]``.
        rank_rtol: See :func:`equivalent_channel_rate`.

    Returns:
        ``[batch, P, N, L]`` complex :math:`\partial R/\partial\overline{\mathbf W}` (nats).
    """
    G = _check_modular(H, W, A)
    b, nb, m, _ = H.shape
    s = _snr_vector(snr, b, H).to(H.dtype)
    X, _ = _range_basis(G, rank_rtol)
    U = G @ X  # orthonormal basis of range(G) (zero columns beyond the rank)
    G_pinv = X @ U.mH  # [b, T, M]
    proj = U @ U.mH  # [b, M, M]
    eye = torch.eye(m, dtype=H.dtype, device=H.device)
    C = H @ H.mH  # [b, B, M, M]
    Q = eye + s[:, None, None, None] * (proj.unsqueeze(1) @ C)
    Y = torch.linalg.solve(Q, (eye - proj).unsqueeze(1).expand(-1, nb, -1, -1))
    inner = (G_pinv.unsqueeze(1) @ C @ Y).mean(1) * s[:, None, None]  # [b, T, M]
    a = A.to(device=H.device, dtype=H.real.dtype).to(H.dtype)
    full = (a @ inner).mH  # [b, M, LP]
    return panels_from_block_diag(full, W.shape[1])


def modular_rate_and_gradient(
    H: torch.Tensor,
    W: torch.Tensor,
    A: torch.Tensor,
    snr: torch.Tensor,
    *,
    need_rate: bool = True,
    need_grad: bool = True,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    r"""Eq. (6) and Theorem 1 (eq. (9)) of paper 004 from one factorization, batched.

    Evaluated in the ``T × T`` domain: with :math:`\mathbf G = \mathbf W\mathbf A` and
    :math:`\mathbf S_b = \mathbf G^H(\mathbf I + \rho\,\mathbf H[b]\mathbf H^H[b])
    \mathbf G`,

    .. math:: R = \frac1B\sum_b \log|\mathbf S_b| - \log|\mathbf G^H\mathbf G|,\qquad
              \frac{\partial R}{\partial\overline{\mathbf G}} = \frac1B\sum_b
              \big(\mathbf G + \rho\,\mathbf H[b]\mathbf H^H[b]\mathbf G\big)
              \mathbf S_b^{-1} - \mathbf G(\mathbf G^H\mathbf G)^{-1},

    and :math:`\partial R/\partial\overline{\mathbf W} = (\partial R/\partial
    \overline{\mathbf G})\mathbf A^T` restricted to the diagonal blocks: exactly eq. (9)
    (the Wirtinger derivative, :func:`modular_rate_gradient`; the steepest-ascent direction
    is **2 ×** it) at :math:`O(B M K T)` instead of :math:`O(B M^2 (T + K))`. Rows whose
    ``G`` is rank deficient or (complex64: relative eigenvalue below 1e-6, complex128:
    1e-14) badly conditioned, which only sparse panels produce, fall back to the
    pseudo-inverse forms :func:`modular_sum_rate` / :func:`modular_rate_gradient`; a
    non-finite panel row gives a NaN rate (and the gradient of all-ones panels).

    Args:
        H: ``[batch, B, M, K]`` complex channels.
        W: ``[batch, *extra, P, N, L]`` complex panels (``extra`` candidate dimensions share
            the channel of their row).
        A: ``[P L, T]`` real connectivity.
        snr: Real ``[batch]`` linear :math:`\rho = \rho_s/\sigma_w^2`.
        need_rate: Compute the rate.
        need_grad: Compute the gradient.

    Returns:
        ``(R, dR)``: real ``[batch, *extra]`` eq. (6) sum-rate in nats (not divided by
        ``K``) and complex ``[batch, *extra, P, N, L]`` :math:`\partial R/\partial
        \overline{\mathbf W}`; ``None`` where not requested.
    """
    extra = W.ndim - 4
    cdtype = H.dtype
    p, n, l_ = W.shape[-3:]
    t = A.shape[-1]
    a3 = A.to(device=H.device, dtype=cdtype).reshape(p, l_, t)
    cond_tol = 1e-6 if cdtype == torch.complex64 else 1e-14

    def lead(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *(1,) * extra, *x.shape[1:])

    G = (W @ a3).reshape(*W.shape[:-3], p * n, t)  # [..., M, T]
    gram = G.mH @ G
    Lg, info_g = torch.linalg.cholesky_ex(gram)
    Gu = G.unsqueeze(-3)
    F = lead(H.mH) @ Gu  # [..., nb, K, T]
    s = lead(snr.to(cdtype))[..., None, None, None]
    S = gram.unsqueeze(-3) + s * (F.mH @ F)
    Ls, info_s = torch.linalg.cholesky_ex(S)
    dg = torch.diagonal(Lg, dim1=-2, dim2=-1).real
    scale = torch.diagonal(gram, dim1=-2, dim2=-1).real.amax(-1)
    ok = (info_g == 0) & (info_s == 0).all(-1) & (dg.amin(-1).square() > cond_tol * scale)
    rate = grad = None
    if need_rate:
        ds = torch.diagonal(Ls, dim1=-2, dim2=-1).real
        rate = 2.0 * (
            ds.clamp_min(1e-300).log().sum(-1).mean(-1) - dg.clamp_min(1e-300).log().sum(-1)
        )
        ok = ok & torch.isfinite(rate)
    if need_grad:
        Z = Gu + s * (lead(H) @ F)  # (I + s H H^H) G
        term = torch.cholesky_solve(Z.mH, Ls).mH.mean(-3)
        dG = term - torch.cholesky_solve(G.mH, Lg).mH  # dR / d conj(G)
        d = dG.reshape(*dG.shape[:-2], p, n, t)
        grad = d @ a3.mH.contiguous()  # (dR/d conj G) A^T on the diagonal blocks
    if not bool(ok.all()):
        bad = ~ok
        lead_shape = W.shape[:-3]
        Hb = lead(H).expand(*lead_shape, *H.shape[1:])[bad]
        snr_b = lead(snr).expand(*lead_shape)[bad]
        Wb = W[bad]
        fin = torch.isfinite(torch.view_as_real(Wb)).flatten(1).all(-1)
        Wb = torch.where(fin[:, None, None, None], Wb, torch.ones_like(Wb))
        A_ = A.to(W.device)
        if rate is not None:
            r = modular_sum_rate(Hb, Wb, A_, snr_b).to(rate.dtype)
            rate = rate.clone()
            rate[bad] = torch.where(fin, r, torch.full_like(r, float("nan")))
        if grad is not None:
            grad = grad.clone()
            grad[bad] = modular_rate_gradient(Hb, Wb, A_, snr_b)
    return rate, grad


def fully_digital_uplink_rate(
    H: torch.Tensor, snr: float | torch.Tensor, *, unit: str = "nats"
) -> torch.Tensor:
    r"""Fully digital uplink sum capacity, the upper bound of paper 004 eq. (6).

    .. math:: R_{\rm FD} = \frac1B\sum_{b=1}^{B}\log\Big|\mathbf I_M + \frac{\rho_s}
              {\sigma_w^2}\mathbf H[b]\mathbf H^H[b]\Big| = \frac1B\sum_b\log\Big|
              \mathbf I_K + \frac{\rho_s}{\sigma_w^2}\mathbf H^H[b]\mathbf H[b]\Big|

    Eq. (6) with :math:`\mathbf G = \mathbf I_M`; since :math:`\mathbf P_{\mathbf G}
    \preceq \mathbf I`, every modular receiver satisfies :math:`R(\mathbf W\mathbf A) \le
    R_{\rm FD}` (tested). Computed in the smaller of the ``M × M`` / ``K × K`` forms
    (Sylvester's determinant identity).

    Args:
        H: ``[batch, B, M, K]`` complex channels.
        snr: Linear :math:`\rho_s/\sigma_w^2`, scalar or ``[batch]``.
        unit: ``"nats"`` or ``"bits"``.

    Returns:
        ``[batch]`` rate averaged over frequency bins.
    """
    b, _, m, k = _check_uplink_channel(H)
    scale = _rate_unit_scale(unit)
    s = _snr_vector(snr, b, H).to(H.dtype)[:, None, None, None]
    gram = H @ H.mH if m <= k else H.mH @ H
    eye = torch.eye(gram.shape[-1], dtype=H.dtype, device=H.device)
    return _logdet_hpd(eye + s * gram).mean(-1) * scale


# ---- paper 002: downlink / virtual-uplink SINR, weighted power, outage ---------------------------
#
# Conventions of paper 002 (Sec. II): h[:, i] is the paper's h_i with received signal
# y_i = sqrt(p_i) h_i^H A b_i s_i + ... + n_i (eq. (1), unit noise), i.e. h.conj() in the
# "row k is h_k^H" convention above. Analog precoder A is [B, M, M_rf]; the digital precoders
# are the COLUMNS of ``digital`` [B, M_rf, I] (the paper's B = [b_1 ... b_I]^T stored
# transposed, as HybridBeamformer.digital); powers p are [B, I]. Psi[:, i] = A^H R_i A
# (eq. (3)) with R_i = h_i h_i^H (instantaneous) or E[h_i h_i^H] (statistical).
# Gradients: paper 002 gives no closed-form gradient of these metrics (its Appendix A/B gives
# the implicit Jacobian of the virtual-uplink SOLUTION, Theorem IV.2, see power.py); all
# functions here are plain differentiable torch and are checked against autograd only
# through their definitions.

__all__ += [
    "check_psi",
    "psi_matrices",
    "psi_from_channels",
    "coupling_gains",
    "power_weights",
    "weighted_sum_power",
    "hybrid_downlink_sinr",
    "virtual_uplink_sinr",
    "outage_flags",
    "empirical_outage",
]


def psi_matrices(R: torch.Tensor, analog: torch.Tensor) -> torch.Tensor:
    r"""Covariances seen by the digital precoder, paper 002 eq. (3).

    .. math:: \Psi_i(\mathbf A) = \mathbf A^H \mathbf R_i \mathbf A

    Args:
        R: Complex ``[B, I, M, M]`` channel covariances (Hermitian PSD).
        analog: Complex ``[B, M, M_rf]`` analog precoder :math:`\mathbf A`.

    Returns:
        Complex ``[B, I, M_rf, M_rf]`` Hermitian PSD matrices :math:`\Psi_i`.
    """
    check_tensor(R, "R", ndim=4, complex_=True)
    check_tensor(analog, "analog", ndim=3, complex_=True)
    b, _, m, m2 = R.shape
    if m != m2 or analog.shape[:2] != (b, m):
        raise ValueError(
            f"analog must be [B, M, M_rf] = [{b}, {m}, *] to match R {tuple(R.shape)}, got "
            f"{tuple(analog.shape)}"
        )
    if R.dtype != analog.dtype:
        raise ValueError(f"R and analog must share a dtype, got {R.dtype} and {analog.dtype}")
    a = analog.unsqueeze(1)
    return a.mH @ R @ a


def psi_from_channels(h: torch.Tensor, analog: torch.Tensor) -> torch.Tensor:
    r"""Instantaneous covariances seen by the digital precoder, paper 002 eq. (3).

    .. math:: \Psi_i = \mathbf A^H \mathbf h_i \mathbf h_i^H \mathbf A = \mathbf g_i
              \mathbf g_i^H,\qquad \mathbf g_i = \mathbf A^H \mathbf h_i

    Args:
        h: Complex ``[B, I, M]`` channels :math:`\mathbf h_i` (paper 002 convention).
        analog: Complex ``[B, M, M_rf]`` analog precoder.

    Returns:
        Complex ``[B, I, M_rf, M_rf]`` rank-one :math:`\Psi_i`.
    """
    check_tensor(h, "h", ndim=3, complex_=True)
    check_tensor(analog, "analog", ndim=3, complex_=True)
    b, _, m = h.shape
    if analog.shape[:2] != (b, m):
        raise ValueError(
            f"analog must be [B, M, M_rf] = [{b}, {m}, *] to match h {tuple(h.shape)}, got "
            f"{tuple(analog.shape)}"
        )
    if h.dtype != analog.dtype:
        raise ValueError(f"h and analog must share a dtype, got {h.dtype} and {analog.dtype}")
    g = h @ analog.conj()  # [B, I, M_rf]: row i is (A^H h_i)^T
    return g.unsqueeze(-1) @ g.conj().unsqueeze(-2)


def check_psi(Psi: torch.Tensor) -> tuple[int, int, int]:
    """Validate paper 002's ``Psi_i`` ``[B, I, R, R]`` or ``Psi_hat_ij`` ``[B, I, I, R, R]``.

    Returns:
        ``(B, I, R)``.
    """
    check_tensor(Psi, "Psi", complex_=True)
    if (
        Psi.ndim not in (4, 5)
        or Psi.shape[-1] != Psi.shape[-2]
        or (Psi.ndim == 5 and Psi.shape[1] != Psi.shape[2])
    ):
        raise ValueError(
            f"Psi must be [B, I, M_rf, M_rf] (Psi_i) or [B, I, I, M_rf, M_rf] (virtual "
            f"Psi_hat_ij of eq. (27)), got {tuple(Psi.shape)}"
        )
    return Psi.shape[0], Psi.shape[1], Psi.shape[-1]


def _check_psi_digital_002(Psi: torch.Tensor, digital: torch.Tensor) -> tuple[int, int, int]:
    check_tensor(digital, "digital", ndim=3, complex_=True)
    b, i, r = check_psi(Psi)
    if digital.shape != (b, r, i):
        raise ValueError(
            f"digital must be [B, M_rf, I] = [{b}, {r}, {i}] to match Psi "
            f"{tuple(Psi.shape)}, got {tuple(digital.shape)}"
        )
    if Psi.dtype != digital.dtype:
        raise ValueError(f"Psi and digital must share a dtype, got {Psi.dtype} and {digital.dtype}")
    return b, i, r


def coupling_gains(Psi: torch.Tensor, digital: torch.Tensor) -> torch.Tensor:
    r"""Pairwise gains :math:`G_{i,j} = \mathbf b_j^H \Psi_i \mathbf b_j`, paper 002 eq. (2)/(23).

    :math:`G_{i,j}` is the power user ``i`` receives from the beam of user ``j`` per unit
    transmit power. The downlink SINR (eq. (2)) uses row ``i``; the virtual uplink (eq. (17))
    uses column ``i`` (:math:`\mathbf b_i^H \Psi_j \mathbf b_i = G_{j,i}`); the coupling
    matrix (eq. (23)) is :math:`\mathrm{Diag}(G_{ii}/\gamma_i) - (G - \mathrm{Diag}(G_{ii}))`.
    With the virtual covariances :math:`\widehat\Psi_{i,j}` of eq. (27) (5-D ``Psi``),
    :math:`G_{i,j} = \mathbf b_j^H \widehat\Psi_{i,j} \mathbf b_j`, which gives eqs. (25),
    (26) and (33) by the same rules.

    Args:
        Psi: Complex ``[B, I, M_rf, M_rf]`` matrices :math:`\Psi_i`, or ``[B, I, I, M_rf,
            M_rf]`` with ``Psi[:, i, j]`` :math:`= \widehat\Psi_{i,j}`.
        digital: Complex ``[B, M_rf, I]``, column ``j`` is :math:`\mathbf b_j`.

    Returns:
        Real ``[B, I, I]`` non-negative gains (imaginary rounding discarded, negatives from
        rounding clamped at 0).
    """
    _check_psi_digital_002(Psi, digital)
    # G[b, i, j] = b_j^H Psi_i b_j  (or b_j^H Psi_hat_ij b_j)
    eq = "brj,birs,bsj->bij" if Psi.ndim == 4 else "brj,bijrs,bsj->bij"
    g = torch.einsum(eq, digital.conj(), Psi, digital).real
    return g.clamp_min(0.0)


def power_weights(digital: torch.Tensor, Psi0: torch.Tensor | None = None) -> torch.Tensor:
    r"""Power weights :math:`w_i = \mathbf b_i^H \Psi_0 \mathbf b_i`, paper 002 eq. (4).

    :math:`\Psi_0 = \mathbf I` (default) weights baseband power (as [35] and the paper's
    experiments with a unit-norm DFT codebook, docs/readings.md#002-codebook-normalization);
    :math:`\Psi_0 = \mathbf A^H
    \mathbf A` weights RF power (identical for distinct unit-norm DFT codewords).

    Args:
        digital: Complex ``[B, M_rf, I]``, column ``i`` is :math:`\mathbf b_i`.
        Psi0: Complex ``[B, M_rf, M_rf]`` or ``[M_rf, M_rf]`` Hermitian PSD matrix, or
            ``None`` for the identity.

    Returns:
        Real ``[B, I]`` weights.
    """
    check_tensor(digital, "digital", ndim=3, complex_=True)
    if Psi0 is None:
        return digital.abs().square().sum(-2)
    r = digital.shape[1]
    check_tensor(Psi0, "Psi0", shape=(r, r), complex_=True)
    if Psi0.ndim not in (2, 3) or (Psi0.ndim == 3 and Psi0.shape[0] != digital.shape[0]):
        raise ValueError(
            f"Psi0 must be [M_rf, M_rf] or [B, M_rf, M_rf] with B={digital.shape[0]}, got "
            f"{tuple(Psi0.shape)}"
        )
    psi0 = Psi0.to(digital.dtype).expand(digital.shape[0], r, r)
    return torch.einsum("bri,brs,bsi->bi", digital.conj(), psi0, digital).real


def weighted_sum_power(
    digital: torch.Tensor, power: torch.Tensor, Psi0: torch.Tensor | None = None
) -> torch.Tensor:
    r"""Weighted transmit power :math:`\mathbf w^T \mathbf p`, paper 002 eqs. (4)-(5).

    .. math:: \mathbf w^T \mathbf p = \sum_i p_i\, \mathbf b_i^H \Psi_0 \mathbf b_i

    Args:
        digital: Complex ``[B, M_rf, I]`` digital precoders (columns :math:`\mathbf b_i`).
        power: Real ``[B, I]`` powers :math:`p_i` (linear, relative to unit noise).
        Psi0: ``None`` (identity) or the matrix of :func:`power_weights`.

    Returns:
        Real ``[B]`` weighted power (linear).
    """
    w = power_weights(digital, Psi0)
    check_tensor(power, "power", ndim=2, complex_=False)
    if power.shape != w.shape:
        raise ValueError(f"power must be [B, I] = {tuple(w.shape)}, got {tuple(power.shape)}")
    return (w * power.to(w.dtype)).sum(-1)


def _check_power_002(power: torch.Tensor | None, b: int, i: int, like: torch.Tensor, name: str):
    rdtype = like.real.dtype
    if power is None:
        return torch.ones(b, i, dtype=rdtype, device=like.device)
    check_tensor(power, name, ndim=2, complex_=False)
    if power.shape != (b, i):
        raise ValueError(f"{name} must be [B, I] = [{b}, {i}], got {tuple(power.shape)}")
    if bool((power.detach() < 0).any()):
        raise ValueError(f"{name} must be >= 0 (linear powers); project with [p]_0^inf first")
    return power.to(rdtype)


def hybrid_downlink_sinr(
    Psi: torch.Tensor,
    digital: torch.Tensor,
    power: torch.Tensor | None = None,
    noise_var: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    r"""Downlink SINR of hybrid beamforming, paper 002 eq. (2).

    .. math:: \mathrm{SINR}_i^{\mathrm{Dl}} = \frac{p_i \mathbf b_i^H \Psi_i \mathbf b_i}
              {\sum_{j \ne i} p_j \mathbf b_j^H \Psi_i \mathbf b_j + \sigma_i^2}

    with :math:`\sigma_i^2 = 1` in the paper. With ``Psi`` from :func:`psi_from_channels`
    (TRUE channel) this is the instantaneous SINR that decides outage; with covariances it is
    the paper's average-SINR approximation. ``power=None`` means the columns of ``digital``
    already carry :math:`\sqrt{p_j}` (``digital = B diag(sqrt(p))``, as in
    :class:`beamgym.structures.HybridBeamformer`).

    Args:
        Psi: Complex ``[B, I, M_rf, M_rf]`` :math:`\Psi_i`, or ``[B, I, I, M_rf, M_rf]``
            virtual covariances ``Psi[:, i, j]`` :math:`= \widehat\Psi_{i,j}` (eqs. (25)-(27)).
        digital: Complex ``[B, M_rf, I]`` digital precoders (columns).
        power: Real ``[B, I]`` non-negative powers, or ``None``.
        noise_var: Noise variance: scalar, ``[B]`` or ``[B, I]`` (default 1).

    Returns:
        Real ``[B, I]`` linear SINR.
    """
    b, i, _ = _check_psi_digital_002(Psi, digital)
    p = _check_power_002(power, b, i, Psi, "power")
    g = coupling_gains(Psi, digital) * p.unsqueeze(-2)  # G[i, j] p_j
    signal = torch.diagonal(g, dim1=-2, dim2=-1)
    return signal / (g.sum(-1) - signal + as_noise(noise_var, b, i, Psi))


def virtual_uplink_sinr(
    Psi: torch.Tensor,
    digital: torch.Tensor,
    q: torch.Tensor,
    Psi0: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Virtual uplink SINR, paper 002 eq. (17).

    .. math:: \mathrm{SINR}_i^{\mathrm{Ul}} = \frac{q_i \mathbf b_i^H \Psi_i \mathbf b_i}
              {\sum_{j \ne i} q_j \mathbf b_i^H \Psi_j \mathbf b_i
              + \mathbf b_i^H \Psi_0 \mathbf b_i}

    Scale-invariant in each :math:`\mathbf b_i`.

    Args:
        Psi: Complex ``[B, I, M_rf, M_rf]`` :math:`\Psi_i`, or ``[B, I, I, M_rf, M_rf]``
            virtual covariances ``Psi[:, i, j]`` :math:`= \widehat\Psi_{i,j}` (eqs. (25)-(27)).
        digital: Complex ``[B, M_rf, I]`` receive beamformers :math:`\mathbf b_i` (columns).
        q: Real ``[B, I]`` non-negative virtual uplink powers.
        Psi0: Uplink noise covariance, ``None`` for the identity (see :func:`power_weights`).

    Returns:
        Real ``[B, I]`` linear SINR.
    """
    b, i, _ = _check_psi_digital_002(Psi, digital)
    qq = _check_power_002(q, b, i, Psi, "q")
    g = coupling_gains(Psi, digital).mT * qq.unsqueeze(-2)  # [i, j] = b_i^H Psi_j b_i q_j
    signal = torch.diagonal(g, dim1=-2, dim2=-1)
    return signal / (g.sum(-1) - signal + power_weights(digital, Psi0))


def outage_flags(sinr: torch.Tensor, gamma: torch.Tensor, *, rtol: float = 0.0) -> torch.Tensor:
    r"""Per-user outage :math:`\mathrm{SINR}_i < \gamma_i`, the event of paper 002 eq. (10).

    A user meets its target if :math:`\mathrm{SINR}_i \ge \gamma_i (1 - \mathrm{rtol})`. The
    tolerance only absorbs rounding: allocations that meet a target exactly in exact arithmetic
    (eq. (22)) give :math:`\mathrm{SINR}_i/\gamma_i = 1 \pm 10^{-7}` in single precision.
    Evaluate ``sinr`` on the TRUE channel.

    Args:
        sinr: Real ``[B, I]`` linear SINR.
        gamma: Real ``[B, I]`` linear targets :math:`\gamma_i > 0`.
        rtol: Relative tolerance in ``[0, 1)``.

    Returns:
        Bool ``[B, I]``, ``True`` where user ``i`` is in outage.
    """
    check_tensor(sinr, "sinr", complex_=False, finite=False)
    check_tensor(gamma, "gamma", complex_=False)
    if sinr.shape != gamma.shape:
        raise ValueError(
            f"sinr {tuple(sinr.shape)} and gamma {tuple(gamma.shape)} must have the same shape"
        )
    if bool(torch.isnan(sinr).any()):
        raise ValueError("sinr contains NaN; check the beamformer and channel")
    if not 0.0 <= float(rtol) < 1.0:
        raise ValueError(f"rtol must lie in [0, 1), got {rtol!r}")
    return sinr.detach() < gamma.to(sinr.dtype) * (1.0 - float(rtol))


def empirical_outage(flags: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    r"""Empirical outage probability :math:`\widehat{\mathbb P}(\mathrm{SINR}_i < \gamma_i)`.

    The fraction of (instance, user) pairs in outage, counted per user as in the paper's
    Tables 2-4 and eq. (52).

    Args:
        flags: Bool ``[B, I]`` outage flags (:func:`outage_flags`).
        mask: Optional bool ``[B, I]`` or ``[B]`` selecting the pairs / instances to count
            (e.g. one constraint group).

    Returns:
        Real scalar tensor in ``[0, 1]`` (NaN if the mask selects nothing).
    """
    check_tensor(flags, "flags", ndim=2, finite=False)
    if flags.dtype != torch.bool:
        raise ValueError(f"flags must be a bool tensor, got dtype {flags.dtype}")
    f = flags.to(torch.float64)
    if mask is None:
        return f.mean()
    if mask.dtype != torch.bool:
        raise ValueError(f"mask must be a bool tensor, got dtype {mask.dtype}")
    if mask.ndim == 1 and mask.shape[0] == flags.shape[0]:
        mask = mask.unsqueeze(-1).expand_as(flags)
    if mask.shape != flags.shape:
        raise ValueError(
            f"mask must be [B] or [B, I] = {tuple(flags.shape)}, got {tuple(mask.shape)}"
        )
    n = mask.sum()
    return torch.where(
        n > 0, (f * mask).sum() / n.clamp_min(1), torch.full_like(f.sum(), torch.nan)
    )


def __getattr__(name: str):  # noqa: ANN202  (PEP 562 module attribute)
    """Re-export :func:`beamgym.physics.precoding.mmse_beamformer` (its former home)."""
    if name == "mmse_beamformer":
        from beamgym.physics.precoding import mmse_beamformer

        return mmse_beamformer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
