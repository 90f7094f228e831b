r"""WMMSE sum-rate maximization (Shi et al. 2011, paper 000 ref. [4]) as a pure batched rule.

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

import torch

from agents.rules.gradient import band_sum_rate
from agents.rules.problem import iterative_start
from beamgym._validation import check_int, check_positive
from beamgym.physics.projections import normalize_power

__all__ = ["WMMSEResult", "wmmse"]

_LN2 = math.log(2.0)


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
    (:func:`~beamgym.physics.projections.normalize_power`; a common scaling :math:`c \ge 1`
    never lowers the sum-rate).

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
    H5, p, s2, Qb, W = iterative_start(H, W0, power, noise_var, power_weight)
    b, _, k, m, n = H5.shape
    LQ = None if Qb is None else _cholesky_jitter(Qb)[0]
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
