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

from beamgym._validation import check_tensor

__all__ = [
    "as_noise",
    "miso_sinr",
    "miso_rates",
    "mimo_rates",
    "sum_rate",
]

_LN2 = math.log(2.0)


def as_noise(noise_var: float | torch.Tensor, batch: int, k: int, like: torch.Tensor) -> torch.Tensor:
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


def miso_sinr(H: torch.Tensor, W: torch.Tensor, noise_var: float | torch.Tensor = 1.0) -> torch.Tensor:
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
    g = (H @ W).abs().square()  # [B, K, K]: |h_k^H w_i|^2
    signal = torch.diagonal(g, dim1=-2, dim2=-1)
    interference = g.sum(-1) - signal
    return signal / (interference + as_noise(noise_var, b, k, H))


def miso_rates(H: torch.Tensor, W: torch.Tensor, noise_var: float | torch.Tensor = 1.0) -> torch.Tensor:
    r"""Per-user MISO rates :math:`\log_2(1 + \mathrm{SINR}_k)` in bit/s/Hz, paper 000 eq. (4).

    Args:
        H: ``[B, K, N]`` complex channel (rows :math:`\mathbf h_k^H`).
        W: ``[B, N, K]`` complex beamformer.
        noise_var: Scalar, ``[B]`` or ``[B, K]`` noise variance.

    Returns:
        ``[B, K]`` rates in bit/s/Hz.
    """
    return torch.log1p(miso_sinr(H, W, noise_var)) / _LN2


def mimo_rates(H: torch.Tensor, W: torch.Tensor, noise_var: float | torch.Tensor = 1.0) -> torch.Tensor:
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


def sum_rate(H: torch.Tensor, W: torch.Tensor, noise_var: float | torch.Tensor = 1.0) -> torch.Tensor:
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

# ==========================================================================================
# SECTION paper 000: sum-rate gradients and hybrid effective channels (owner: helper-000) -- keep all code of this section between its markers
# ==========================================================================================
# END SECTION paper 000: sum-rate gradients and hybrid effective channels

# ==========================================================================================
# SECTION paper 003: hybrid sum-rate and Theorem 1 gradients (owner: helper-003) -- keep all code of this section between its markers
# ==========================================================================================
# END SECTION paper 003: hybrid sum-rate and Theorem 1 gradients

# ==========================================================================================
# SECTION paper 004: modular uplink rate and Theorem 1 gradient (owner: helper-004) -- keep all code of this section between its markers
# ==========================================================================================
# END SECTION paper 004: modular uplink rate and Theorem 1 gradient

# ==========================================================================================
# SECTION paper 002: downlink / virtual-uplink SINR, weighted power, outage (owner: helper-002) -- keep all code of this section between its markers
# ==========================================================================================
# END SECTION paper 002: downlink / virtual-uplink SINR, weighted power, outage
