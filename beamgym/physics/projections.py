"""Feasible sets and projections of the four papers (batched, differentiable where possible).

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

from beamgym._validation import check_int, check_nonnegative, check_positive, check_tensor
from beamgym.physics.metrics import as_power

__all__: list[str] = []


# ---- paper 000: total and hybrid power constraints -----------------------------------------------
#
# Paper 000's power constraint: ||W||_F^2 <= P (eq. (8)) for fully digital beamformers
# W [B, N, K*M], and ||W_a W_D||_F^2 <= P (eq. (23)/(34)) for hybrid ones with an analog
# W_a [B, N, N_RF] (or a shared [N, N_RF]) and a digital W_D [B, N_RF, K*M]. P is a positive
# number or a [B] tensor (linear, same unit as ||W||^2). Zero beamformers are mapped to zero
# (never NaN), with finite gradients.

__all__ += [
    "total_power",
    "power_violation",
    "project_total_power",
    "normalize_total_power",
    "weighted_power",
    "normalize_power",
    "full_power_scale",
    "hybrid_power",
    "normalize_hybrid_power",
    "clip_hybrid_power",
]


def _budget_000(P: float | torch.Tensor, batch: int, like: torch.Tensor) -> torch.Tensor:
    """A positive power budget (number or ``[B]`` tensor) as a real ``[B]`` tensor."""
    rdtype = like.real.dtype if like.is_complex() else like.dtype
    if isinstance(P, torch.Tensor):
        check_tensor(P, "P", complex_=False)
        p = P.to(device=like.device, dtype=rdtype)
    else:
        p = torch.tensor(check_positive(P, "P"), dtype=rdtype, device=like.device)
    if p.ndim == 0:
        p = p.expand(batch)
    if p.shape != (batch,):
        raise ValueError(f"P must be a number or a [B]={batch} tensor, got shape {tuple(p.shape)}")
    if bool((p <= 0).any()):
        raise ValueError("P (power budget, linear) must be > 0")
    return p


def _check_bf_000(W: torch.Tensor, name: str = "W") -> torch.Tensor:
    return check_tensor(W, name, min_ndim=2, complex_=True)


def _sum_squares(W: torch.Tensor) -> torch.Tensor:
    """Real ``[B]`` squared Frobenius norm of a complex ``[B, ...]`` tensor, unchecked."""
    return torch.view_as_real(W.resolve_conj()).flatten(1).square().sum(-1)


def total_power(W: torch.Tensor) -> torch.Tensor:
    r"""Transmit power :math:`\|\mathbf W\|_F^2` per instance, paper 000 eq. (8).

    Args:
        W: Complex ``[B, ...]`` beamformer (e.g. ``[B, N, K*M]``).

    Returns:
        Real ``[B]`` power (linear).
    """
    _check_bf_000(W)
    return _sum_squares(W)


def power_violation(W: torch.Tensor, P: float | torch.Tensor) -> torch.Tensor:
    r"""Violation of the total power constraint of paper 000 eq. (8).

    .. math:: v(\mathbf W) = \max\big(0,\ \|\mathbf W\|_F^2 - P\big)

    Zero exactly on the feasible set; non-decreasing in a common scaling
    :math:`c \ge 0` of :math:`\mathbf W` (so scaling a beamformer down never raises it).

    Args:
        W: Complex ``[B, ...]`` beamformer.
        P: Power budget :math:`P > 0`: a number or a real ``[B]`` tensor.

    Returns:
        Real ``[B]`` violation (linear power units).
    """
    pw = total_power(W)
    return torch.relu(pw - _budget_000(P, W.shape[0], W))


def _scale_000(W: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return W * factor.reshape(-1, *([1] * (W.ndim - 1))).to(W.dtype)


def _safe_norm_000(pw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sqrt(pw) with 1 where pw == 0, nonzero mask)``: NaN-free gradients at 0."""
    nz = pw > 0
    return torch.sqrt(torch.where(nz, pw, torch.ones_like(pw))), nz


def project_total_power(W: torch.Tensor, P: float | torch.Tensor) -> torch.Tensor:
    r"""Euclidean projection onto the power ball :math:`\{\|\mathbf W\|_F^2 \le P\}`, eq. (8).

    .. math:: \Pi(\mathbf W) = \mathbf W \min\Big(1, \frac{\sqrt P}{\|\mathbf W\|_F}\Big)

    Feasible beamformers are returned unchanged (idempotent).

    Args:
        W: Complex ``[B, ...]`` beamformer.
        P: Power budget: a number or a real ``[B]`` tensor.

    Returns:
        Complex tensor of ``W``'s shape with :math:`\|\cdot\|_F^2 \le P`.
    """
    pw = total_power(W)
    p = _budget_000(P, W.shape[0], W)
    norm, _ = _safe_norm_000(pw)
    factor = torch.where(pw > p, torch.sqrt(p) / norm, torch.ones_like(pw))
    return _scale_000(W, factor)


def normalize_total_power(W: torch.Tensor, P: float | torch.Tensor) -> torch.Tensor:
    r"""Full-power normalization layer of paper 000 Sec. III-A3.

    .. math:: \mathbf W = \sqrt P\, \frac{\tilde{\mathbf W}}{\|\tilde{\mathbf W}\|_F}

    Using the full budget is optimal for the sum-rate: a common scaling :math:`c > 1` of all
    beams raises every SINR :math:`c^2 S_k/(c^2 I_k + 1)` (eq. (4)), so the optimum of eq. (8)
    lies on the sphere. A zero :math:`\tilde{\mathbf W}` maps to zero (no NaN).

    Args:
        W: Complex ``[B, ...]`` raw beamformer :math:`\tilde{\mathbf W}`.
        P: Power budget :math:`P`: a number or a real ``[B]`` tensor.

    Returns:
        Complex tensor of ``W``'s shape with :math:`\|\cdot\|_F^2 = P` (or zero).
        Same map as :func:`normalize_power` with no weight.
    """
    return normalize_power(W, P)


def weighted_power(W: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    r"""Transmit power :math:`\mathrm{tr}(\mathbf W^H\mathbf Q\mathbf W)`, paper 000 eq. (8)/(23).

    With :math:`\mathbf Q = (\mathbf W^a)^H\mathbf W^a` this is the hybrid power
    :math:`\|\mathbf W^a\mathbf W\|_F^2` of eq. (23); ``None`` means :math:`\mathbf Q =
    \mathbf I` (:math:`\|\mathbf W\|_F^2`, eq. (8)). A ``[B, F, N, N]`` weight holds one
    Gram matrix per subcarrier and gives the band-averaged power :math:`\frac1F\sum_f
    \mathrm{tr}(\mathbf W^H\mathbf Q_f\mathbf W)` (NearFieldHybrid's wideband option, the
    form its action map normalizes).

    Args:
        W: Complex ``[B, N, S]`` (digital) beamformer.
        weight: ``None`` or complex Hermitian PSD :math:`\mathbf Q`: ``[N, N]``, ``[B, N, N]``
            or ``[B, F, N, N]``.

    Returns:
        Real ``[B]`` power (linear), computed in double precision when ``weight`` is given
        (with an ill-conditioned :math:`\mathbf Q` the quadratic form cancels heavily) and
        cast back to ``W``'s real dtype.
    """
    if weight is None:
        return total_power(W)
    check_tensor(W, "W", ndim=3, complex_=True, finite=False)
    check_tensor(weight, "weight", complex_=True)
    b, n = W.shape[0], W.shape[1]
    W64 = W.to(torch.complex128)
    if weight.ndim == 4 and weight.shape[0] == b and weight.shape[2:] == (n, n):
        quad = torch.einsum("bfrs,brk,bsk->bf", weight.to(torch.complex128), W64.conj(), W64)
        return quad.real.clamp_min(0.0).mean(-1).to(W.real.dtype)
    Q = weight.expand(b, *weight.shape) if weight.ndim == 2 else weight
    if Q.shape != (b, n, n):
        raise ValueError(
            f"weight must be [N, N], [B, N, N] or [B, F, N, N] with B={b}, N={n}, got "
            f"{tuple(weight.shape)}"
        )
    Q64 = Q.to(torch.complex128)
    pw = torch.einsum("bns,bnm,bms->b", W64.conj(), Q64, W64).real.clamp_min(0.0)
    return pw.to(W.real.dtype)


def normalize_power(
    W: torch.Tensor,
    power: float | torch.Tensor,
    weight: torch.Tensor | None = None,
    *,
    analog: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Full-power scaling: the ONE normalization of beamgym (papers 000 and 003).

    .. math:: \mathbf W \leftarrow \sqrt P\,\frac{\mathbf W}{\sqrt{p(\mathbf W)}},\qquad
              p(\mathbf W) = \begin{cases}\|\mathbf W\|_F^2 & \text{paper 000 Sec. III-A3,
              eq. (8)}\\ \mathrm{tr}(\mathbf W^H\mathbf Q\mathbf W) & \text{weighted,
              eq. (23)}\\ \|\mathbf F\mathbf W\|_F^2 & \text{hybrid, 000 eq. (24) / 003
              eq. (9)}\end{cases}

    The first form is paper 000's normalization layer (Sec. III-A3), the Euclidean
    projection onto the power sphere :math:`\|\mathbf W\|_F^2 = P`; the weighted form with
    :math:`\mathbf Q = (\mathbf W^a)^H\mathbf W^a` and the analog form are the hybrid
    normalization eq. (24) of paper 000 (= eq. (9) of paper 003 with the square root). The
    analog form evaluates :math:`\|\mathbf F\mathbf W\|_F^2` from the product in ``W``'s
    precision, as the envs' action maps do; the weighted form works in double precision
    (:func:`weighted_power`). A common scaling :math:`c > 1` raises every SINR, so the
    sum-rate optimum lies on this sphere. A beamformer of zero power maps to zero (never
    NaN, finite gradients).

    Args:
        W: Complex ``[B, ...]`` beamformer (``[B, N, S]`` with ``weight`` or ``analog``).
        power: Budget :math:`P` (linear): a positive number or a real ``[B]`` tensor.
        weight: ``None`` or :math:`\mathbf Q` (``[N, N]``, ``[B, N, N]`` or ``[B, F, N, N]``,
            see :func:`weighted_power`).
        analog: ``None`` or the complex ``[B, N_ant, N]`` / ``[N_ant, N]`` analog precoder
            :math:`\mathbf F` (exclusive with ``weight``).

    Returns:
        Complex tensor of ``W``'s shape and dtype at power :math:`P` (or zero).
    """
    if weight is not None and analog is not None:
        raise ValueError("give the power weight Q or the analog precoder F, not both")
    check_tensor(W, "W", min_ndim=2, complex_=True, finite=False)
    if analog is not None:
        check_tensor(analog, "analog", min_ndim=2, complex_=True, finite=False)
        pw = _sum_squares(analog @ W)
    elif weight is None:
        pw = _sum_squares(W)
    else:
        pw = weighted_power(W, weight)
    return _scale_000(W, full_power_scale(pw, as_power(power, W.shape[0], W)))


def full_power_scale(pw: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    r"""The factor :math:`\sqrt{P / p(\mathbf W)}` of :func:`normalize_power` (0 where p = 0).

    Paper 000 Sec. III-A3 (normalization layer) and eq. (24) (hybrid), paper 003 eq. (9).

    Exposed for callers that need the power :math:`p(\mathbf W)` itself as well (the envs'
    action maps report whether the scaling changed the design), so that they compute it once
    and apply the one normalization of :func:`normalize_power`.

    Args:
        pw: Real ``[B]`` power :math:`p(\mathbf W) \ge 0` of the unscaled beamformer.
        power: Real ``[B]`` budget :math:`P`.

    Returns:
        Real ``[B]`` scale; NaN-free gradients where ``pw == 0``.
    """
    nz = pw > 0
    return torch.where(nz, torch.sqrt(power / torch.where(nz, pw, torch.ones_like(pw))), 0.0 * pw)


def _check_hybrid_000(W_a: torch.Tensor, W_D: torch.Tensor) -> None:
    check_tensor(W_a, "W_a", min_ndim=2, complex_=True)
    check_tensor(W_D, "W_D", ndim=3, complex_=True)
    if W_a.ndim not in (2, 3) or (W_a.ndim == 3 and W_a.shape[0] != W_D.shape[0]):
        raise ValueError(
            f"W_a must be [N, N_RF] or [B, N, N_RF] with B={W_D.shape[0]}, got {tuple(W_a.shape)}"
        )
    if W_a.shape[-1] != W_D.shape[1]:
        raise ValueError(
            f"W_a has {W_a.shape[-1]} RF chains (columns) but W_D has {W_D.shape[1]} rows; "
            "W_D must be [B, N_RF, K*M]"
        )
    if W_a.dtype != W_D.dtype:
        raise ValueError(f"W_a and W_D must share a dtype, got {W_a.dtype} and {W_D.dtype}")


def hybrid_power(W_a: torch.Tensor, W_D: torch.Tensor) -> torch.Tensor:
    r"""Transmit power :math:`\|\mathbf W^a \mathbf W^D\|_F^2` of a hybrid beamformer, eq. (23).

    Args:
        W_a: Complex ``[B, N, N_RF]`` or ``[N, N_RF]`` analog precoder.
        W_D: Complex ``[B, N_RF, K*M]`` digital precoder.

    Returns:
        Real ``[B]`` power (linear).
    """
    _check_hybrid_000(W_a, W_D)
    return total_power(W_a @ W_D)


def normalize_hybrid_power(
    W_a: torch.Tensor, W_D: torch.Tensor, P: float | torch.Tensor
) -> torch.Tensor:
    r"""Hybrid normalization layer, paper 000 eq. (24).

    .. math:: \mathbf W^D = \sqrt P\, \frac{\tilde{\mathbf W}^D}
              {\|\mathbf W^a \tilde{\mathbf W}^D\|_F}

    so that :math:`\|\mathbf W^a \mathbf W^D\|_F^2 = P` (full power, as in
    :func:`normalize_total_power`). A digital precoder with :math:`\mathbf W^a
    \tilde{\mathbf W}^D = 0` maps to zero (no NaN).

    Args:
        W_a: Complex ``[B, N, N_RF]`` or ``[N, N_RF]`` analog precoder.
        W_D: Complex ``[B, N_RF, K*M]`` raw digital precoder :math:`\tilde{\mathbf W}^D`.
        P: Power budget: a number or a real ``[B]`` tensor.

    Returns:
        Complex ``[B, N_RF, K*M]`` digital precoder.
    """
    _check_hybrid_000(W_a, W_D)
    return normalize_power(W_D, P, analog=W_a)


def clip_hybrid_power(
    W_a: torch.Tensor, W_D: torch.Tensor, P: float | torch.Tensor
) -> torch.Tensor:
    r"""Radial scaling of a digital precoder into :math:`\{\|\mathbf W^a\mathbf W^D\|_F^2 \le P\}`.

    .. math:: \mathbf W^D \min\Big(1, \frac{\sqrt P}{\|\mathbf W^a \mathbf W^D\|_F}\Big)

    Feasible precoders are unchanged. This is the Euclidean projection in
    :math:`\mathbf W^a \mathbf W^D` space when :math:`\mathbf W^a` has orthonormal columns;
    for a general analog precoder it is a feasible radial retraction, not the Euclidean
    projection in :math:`\mathbf W^D` space.

    Args:
        W_a: Complex ``[B, N, N_RF]`` or ``[N, N_RF]`` analog precoder.
        W_D: Complex ``[B, N_RF, K*M]`` digital precoder.
        P: Power budget: a number or a real ``[B]`` tensor.

    Returns:
        Complex ``[B, N_RF, K*M]`` feasible digital precoder.
    """
    pw = hybrid_power(W_a, W_D)
    p = _budget_000(P, W_D.shape[0], W_D)
    norm, _ = _safe_norm_000(pw)
    return _scale_000(W_D, torch.where(pw > p, torch.sqrt(p) / norm, torch.ones_like(pw)))


# ---- paper 003: unit-modulus analog precoder and digital normalization ---------------------------

#: Power allocations of :func:`hybrid_zero_forcing`.
ZF_ALLOCATIONS: tuple[str, ...] = ("equal", "total")


def unit_modulus(F: torch.Tensor) -> torch.Tensor:
    r"""Entry-wise projection onto the unit-modulus set, paper 003 eq. (7).

    .. math:: [\mathbf F]_{nm} \leftarrow \frac{[\mathbf F]_{nm}}{|[\mathbf F]_{nm}|}

    Eq. (7) is undefined at :math:`[\mathbf F]_{nm} = 0`; beamgym maps an exactly zero entry
    to :math:`1 = e^{j0}` (phase 0) with zero gradient there, so the result is always feasible
    and never NaN. Every other entry keeps its phase.

    Args:
        F: Complex tensor of any shape ``[..., N, M]`` (the analog precoder).

    Returns:
        Complex tensor of the same shape and dtype with unit-modulus entries.
    """
    check_tensor(F, "F", complex_=True)
    mag = F.abs()
    nonzero = mag > 0
    safe = torch.where(nonzero, mag, torch.ones_like(mag))
    return torch.where(nonzero, F / safe, torch.ones_like(F))


def normalize_digital(
    F: torch.Tensor, W: torch.Tensor, power: float | torch.Tensor
) -> torch.Tensor:
    r"""Scale the digital precoder to the power budget, paper 003 eq. (9), with the square root.

    .. math:: \mathbf W \leftarrow \sqrt{P_t}\, \frac{\mathbf W}{\|\mathbf F \mathbf W\|_F}

    Eq. (9) as printed multiplies by :math:`P_t`, which violates constraint (5c)
    :math:`\|\mathbf F\mathbf W\|_F^2 = P_t`; the square root is the consistent reading
    (docs/readings.md#003-eq9-sqrt). The same map is paper 000 eq. (24) with
    :math:`\mathbf W^a = \mathbf F`.

    Args:
        F: ``[B, N, M]`` complex analog precoder.
        W: ``[B, M, K]`` complex digital precoder with :math:`\mathbf F\mathbf W \ne 0`.
        power: Power budget :math:`P_t` (linear): a positive number or a ``[B]`` tensor.

    Returns:
        ``[B, M, K]`` digital precoder with :math:`\|\mathbf F \mathbf W\|_F^2 = P_t`.
    """
    check_tensor(F, "F", ndim=3, complex_=True)
    check_tensor(W, "W", ndim=3, complex_=True)
    if F.shape[0] != W.shape[0] or F.shape[2] != W.shape[1] or F.dtype != W.dtype:
        raise ValueError(
            f"F [B, N, M] and W [B, M, K] must match in B and M and share a dtype, got "
            f"{tuple(F.shape)} {F.dtype} and {tuple(W.shape)} {W.dtype}"
        )
    if bool((torch.linalg.matrix_norm(F @ W) == 0).any()):
        raise ValueError(
            "F @ W is zero for some batch entries, so eq. (9) cannot scale W to the power "
            "budget; pass a digital precoder with F @ W != 0"
        )
    return normalize_power(W, power, analog=F)


def aligned_analog_precoder(H: torch.Tensor) -> torch.Tensor:
    r"""Channel-phase-aligned analog precoder, paper 003 eq. (12) (aligned sign).

    .. math:: [\mathbf F_0]_{nm} = e^{+j \angle [\mathbf h_m]_n}
              = e^{-j \angle [\mathbf H]_{mn}},\qquad
              \mathbf H = [\mathbf h_1, \dots, \mathbf h_K]^H

    Taken literally, eq. (12) (:math:`e^{-j\vartheta_{nm}}` with :math:`\vartheta_{nm}` the
    phase of :math:`[\mathbf h_1, \dots, \mathbf h_K]_{nm}`) is the conjugate of this matrix
    and misaligns the beams (far lower rate, see BENCHMARKS.md; docs/readings.md#003-eq12-sign;
    tested); with the aligned sign :math:`\mathbf h_m^H \mathbf f_m = \sum_n |[\mathbf h_m]_n|`
    is real and
    maximal (array gain). Column ``m`` serves user ``m``, so the number of RF chains is
    ``M = K``. A zero channel entry gives phase 0 (see :func:`unit_modulus`).

    Args:
        H: ``[B, K, N]`` complex channel, row ``k`` is :math:`\mathbf h_k^H`.

    Returns:
        ``[B, N, K]`` complex unit-modulus analog precoder.
    """
    check_tensor(H, "H", ndim=3, complex_=True)
    return unit_modulus(H).mH


def hybrid_initialization(
    H: torch.Tensor, power: float | torch.Tensor, *, n_rf: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Initial hybrid precoder of the PGA / unfolded PGA, paper 003 eq. (12)-(13).

    .. math::
        \mathbf F_0 = \text{eq. (12), aligned},\qquad
        \mathbf W_0 = \mathbf F_0^{\dagger} \mathbf H^{\dagger},\qquad
        \mathbf W_0 \leftarrow \sqrt{P_t}\, \frac{\mathbf W_0}{\|\mathbf F_0 \mathbf W_0\|_F}

    :math:`\dagger` is the Moore-Penrose pseudo-inverse and :math:`\mathbf H` the ``K x N``
    matrix :math:`[\mathbf h_1, \dots, \mathbf h_K]^H`, so :math:`\mathbf W_0` is ``M x K``
    (docs/readings.md#003-eq13-pinv; reading :math:`\dagger` as the conjugate transpose gives a
    much worse start). The sign of eq. (12) is the aligned one of
    :func:`aligned_analog_precoder`. The construction needs ``M = N_RF = K``.

    Args:
        H: ``[B, K, N]`` complex channel (rows :math:`\mathbf h_k^H`), ``N >= K``.
        power: Power budget :math:`P_t` (linear): a positive number or a ``[B]`` tensor.
        n_rf: Number of RF chains of the system, checked to equal ``K`` when given.

    Returns:
        ``(F0, W0)``: ``[B, N, K]`` unit-modulus analog and ``[B, K, K]`` digital precoders
        with :math:`\|\mathbf F_0 \mathbf W_0\|_F^2 = P_t`.
    """
    check_tensor(H, "H", ndim=3, complex_=True)
    _, k, n = H.shape
    if n_rf is not None and n_rf != k:
        raise ValueError(
            f"the initialization of paper 003 eq. (12)-(13) needs N_RF = K (one RF chain per "
            f"user), got N_RF={n_rf} and K={k}; use N_RF = K or another initialization"
        )
    if n < k:
        raise ValueError(f"eq. (13) needs N >= K antennas, got N={n} < K={k}")
    F0 = aligned_analog_precoder(H)
    W0 = torch.linalg.pinv(F0) @ torch.linalg.pinv(H)
    return F0, normalize_digital(F0, W0, power)


def hybrid_zero_forcing(
    H: torch.Tensor, F: torch.Tensor, power: float | torch.Tensor, *, allocation: str = "equal"
) -> torch.Tensor:
    r"""Digital zero forcing on the effective channel :math:`\mathbf H \mathbf F` (paper 003).

    .. math:: \mathbf U = (\mathbf H \mathbf F)^{\dagger},\qquad
              \text{equal: } \mathbf w_k = \sqrt{P_t/K}\,\frac{\mathbf u_k}
              {\|\mathbf F \mathbf u_k\|},\qquad
              \text{total: } \mathbf W = \sqrt{P_t}\,\frac{\mathbf U}{\|\mathbf F\mathbf U\|_F}

    With :math:`\mathbf F = \mathbf F_0` of eq. (12) this is the "hybrid ZF" reference
    (docs/readings.md#003-hybrid-zf). Its independently checked value (BENCHMARKS.md, section
    "Reference values of the system models") is reproduced by ``allocation="equal"`` (equal
    transmit power per user, as for the fully digital ZF bound; tested), while the eq. (9)
    scaling ``"total"`` (equal received SNR) gives a lower rate (same section). For ``M = K``
    the pseudo-inverse is :math:`(\mathbf H\mathbf F)^{-1}`. Needs ``M >= K`` and an effective
    channel of full row rank.

    Args:
        H: ``[B, K, N]`` complex channel (rows :math:`\mathbf h_k^H`).
        F: ``[B, N, M]`` complex analog precoder, ``M >= K``.
        power: Power budget :math:`P_t` (linear): a positive number or a ``[B]`` tensor.
        allocation: ``"equal"`` (power per user) or ``"total"`` (eq. (9) scaling).

    Returns:
        ``[B, M, K]`` digital precoder with :math:`\mathbf H\mathbf F\mathbf W` diagonal and
        :math:`\|\mathbf F\mathbf W\|_F^2 = P_t`.
    """
    check_tensor(H, "H", ndim=3, complex_=True)
    check_tensor(F, "F", ndim=3, complex_=True)
    if allocation not in ZF_ALLOCATIONS:
        raise ValueError(f"allocation must be one of {ZF_ALLOCATIONS}, got {allocation!r}")
    b, k, n = H.shape
    if F.shape[:2] != (b, n) or F.dtype != H.dtype:
        raise ValueError(
            f"F must have shape [B, N, M] = [{b}, {n}, M] and dtype {H.dtype}, got "
            f"{tuple(F.shape)} {F.dtype}"
        )
    if F.shape[2] < k:
        raise ValueError(f"zero forcing needs M >= K RF chains, got M={F.shape[2]} < K={k}")
    U = torch.linalg.pinv(H @ F)  # [B, M, K]
    if allocation == "total":
        return normalize_digital(F, U, power)
    p = as_power(power, b, H)
    col = torch.linalg.vector_norm(F @ U, dim=-2, keepdim=True)  # ||F u_k||, [B, 1, K]
    return U / col * torch.sqrt(p / k).to(H.dtype)[:, None, None]


__all__ += [
    "ZF_ALLOCATIONS",
    "unit_modulus",
    "normalize_digital",
    "aligned_analog_precoder",
    "hybrid_initialization",
    "hybrid_zero_forcing",
]

# ---- paper 004: block-diagonal panels, sparse and quantized phase shifters -----------------------

__all__ += [
    "unit_modulus_projection",
    "sparse_mask",
    "sparse_phase_projection",
    "quantized_phase_projection",
    "soft_sparse_projection",
    "soft_quantized_phase",
    "soft_quantized_projection",
    "count_active_phase_shifters",
    "paper_s_max",
]


def unit_modulus_projection(W: torch.Tensor) -> torch.Tensor:
    r"""Projection onto unit-modulus phase shifters (C1), paper 004 eq. (10).

    .. math:: [\mathcal P_{\mathcal W_{\rm uph}}(\mathbf W)]_{i,j} =
              \frac{[\mathbf W]_{i,j}}{|[\mathbf W]_{i,j}|}\,
              \delta_{\lfloor i/N \rfloor, \lfloor j/L \rfloor}

    Applied element-wise to the panels tensor, which holds only the diagonal blocks, so the
    Kronecker delta (zeroing off-block entries) is implicit; for a full ``M × LP`` matrix
    first take :func:`beamgym.physics.modular.panels_from_block_diag`. This is the Euclidean
    projection onto the unit-modulus set.

    Convention (eq. (10) is undefined at 0): a zero entry maps to :math:`1 = e^{j0}`
    (``torch.angle(0) = 0``); the gradient there is 0 and finite.

    Args:
        W: ``[...]`` complex tensor, typically panels ``[batch, P, N, L]``.

    Returns:
        Complex tensor of the same shape and dtype with unit-modulus entries.
    """
    return unit_modulus(W)  # the same entry-wise map as paper 003 eq. (7)


def sparse_mask(W: torch.Tensor, zeta: float = 0.5, s_max: int | None = None) -> torch.Tensor:
    r"""Active-phase-shifter mask of the sparse projection, paper 004 eq. (18) and (15).

    Entry :math:`(i, j)` stays active iff :math:`|[\mathbf W]_{i,j}| \ge \zeta` (eq. (18)) and,
    when ``s_max`` is given, it is among the ``s_max`` largest-magnitude entries of its
    instance (the :math:`\|\mathbf W\|_0 \le S_{\max}` constraint of eq. (15)).

    The paper enforces :math:`S_{\max}` only softly during training (eq. (25)); beamgym
    enforces it as a hard constraint by keeping the ``s_max`` largest magnitudes (our
    choice). With ``zeta = 0.5`` this is the exact Euclidean projection onto
    :math:`\{|w| \in \{0, 1\}\} \cap \{\|\mathbf W\|_0 \le S_{\max}\}`: activating entry
    ``w`` costs :math:`(|w| - 1)^2` instead of :math:`|w|^2`, a gain of :math:`2|w| - 1`,
    positive iff :math:`|w| > 1/2`. Ties at the ``s_max``-th magnitude are broken by
    ``torch.topk``.

    Args:
        W: ``[batch, ...]`` complex tensor (panels ``[batch, P, N, L]``); the ℓ0 budget
            counts all entries of one batch element together.
        zeta: Magnitude threshold :math:`\zeta \ge 0` (paper: 0.5).
        s_max: Maximum number of active entries per instance, or ``None`` for no limit.

    Returns:
        Bool tensor of the shape of ``W``, ``True`` where the phase shifter is active.
    """
    check_tensor(W, "W", min_ndim=1, complex_=True)
    zeta = check_nonnegative(zeta, "zeta")
    mag = W.detach().abs()
    keep = mag >= zeta
    if s_max is not None:
        s_max = check_int(s_max, "s_max", minimum=0)
        flat = mag.reshape(mag.shape[0], -1)
        if s_max < flat.shape[1]:
            score = torch.where(keep.reshape_as(flat), flat, torch.full_like(flat, -1.0))
            idx = torch.topk(score, s_max, dim=-1).indices
            top = torch.zeros_like(flat, dtype=torch.bool).scatter(-1, idx, True)
            keep = keep & top.reshape_as(keep)
    return keep


def sparse_phase_projection(
    W: torch.Tensor, zeta: float = 0.5, s_max: int | None = None
) -> torch.Tensor:
    r"""Projection onto sparse phase shifters (C2), paper 004 eq. (18).

    .. math:: [\mathcal P_{\mathcal W_{\rm sph}}(\mathbf W)]_{i,j} = \begin{cases}
              [\mathbf W]_{i,j} / |[\mathbf W]_{i,j}| & |[\mathbf W]_{i,j}| \ge \zeta \\
              0 & |[\mathbf W]_{i,j}| < \zeta \end{cases}

    plus the optional hard :math:`\|\mathbf W\|_0 \le S_{\max}` budget of eq. (15) (see
    :func:`sparse_mask`). ``zeta = 0`` (and no ``s_max``) coincides with eq. (10), including
    its ``0 -> 1`` convention, as the paper states after eq. (18).

    Args:
        W: ``[batch, ...]`` complex tensor (panels ``[batch, P, N, L]``).
        zeta: Magnitude threshold :math:`\zeta \ge 0` (paper: 0.5).
        s_max: Maximum number of active phase shifters per instance, or ``None``.

    Returns:
        Complex tensor of the same shape with entries of modulus 0 or 1; differentiable
        (the mask is piecewise constant, the active phases carry the gradient).
    """
    keep = sparse_mask(W, zeta, s_max)
    return torch.where(keep, unit_modulus(W), torch.zeros_like(W))


def _quantize_phase(W: torch.Tensor, q_levels: int) -> torch.Tensor:
    step = 2.0 * math.pi / q_levels
    k = torch.remainder(torch.round(torch.angle(W.detach()) / step), q_levels)
    phase = k * step
    return torch.polar(torch.ones_like(phase), phase)


def quantized_phase_projection(
    W: torch.Tensor,
    q_levels: int = 16,
    *,
    zeta: float | None = None,
    s_max: int | None = None,
) -> torch.Tensor:
    r"""Projection onto ``Q``-level quantized phase shifters (C3), paper 004 eq. (20).

    .. math:: [\mathcal P_{\mathcal W^Q_{\rm qps}}(\mathbf W)]_{i,j} = e^{j\phi^\star_{i,j}},
              \qquad \phi^\star_{i,j} = \operatorname*{arg\,min}_{\phi:\ Q\phi/2\pi \in
              \mathbb Z} |\phi - \angle[\mathbf W]_{i,j}|

    i.e. uniform scalar quantization of the phase to the nearest multiple of ``2π/Q``,
    computed as ``round(angle * Q / 2π) mod Q`` so that ``±π`` map to the same level and the
    projection is idempotent. Exact ties (measure zero) round half to even; a zero entry has
    phase 0. The paper notes C2 and C3 combine (Sec. II-B); pass ``zeta`` (and optionally
    ``s_max``) to also deactivate entries with the mask of :func:`sparse_mask`.

    The result is piecewise constant in ``W``: its gradient is zero (use
    :func:`soft_quantized_projection` for training, paper 004 eq. (23)).

    Args:
        W: ``[batch, ...]`` complex tensor (panels ``[batch, P, N, L]``).
        q_levels: Number of phase levels ``Q >= 2`` (paper: 16, i.e. 4-bit shifters).
        zeta: Optional magnitude threshold of eq. (18) for a sparse-and-quantized set.
        s_max: Optional ℓ0 budget (only with ``zeta``).

    Returns:
        Complex tensor of the same shape and dtype with entries :math:`e^{j 2\pi k/Q}`
        (or 0 where deactivated).
    """
    check_tensor(W, "W", min_ndim=1, complex_=True)
    q_levels = check_int(q_levels, "q_levels", minimum=2)
    # the hard quantizer has zero derivative a.e.; ``0 * W`` keeps the autograd graph linked
    out = _quantize_phase(W, q_levels).to(W.dtype) + 0.0 * W
    if zeta is None:
        if s_max is not None:
            raise ValueError("s_max needs zeta: pass zeta=0.5 for a sparse-and-quantized set")
        return out
    keep = sparse_mask(W, zeta, s_max)
    return torch.where(keep, out, torch.zeros_like(out))


def soft_sparse_projection(W: torch.Tensor, sharpness: float, shift: float = 0.5) -> torch.Tensor:
    r"""Differentiable surrogate of the sparse projection, paper 004 eq. (22).

    .. math:: [\tilde{\mathcal P}_{\mathcal W_{\rm sph}}(\mathbf W)]_{i,j} =
              e^{j\angle[\mathbf W]_{i,j}}\;\sigma\big(s_m(|[\mathbf W]_{i,j}| - \zeta_m)\big)

    The printed eq. (22) is garbled; it says the *magnitude* of the projected entry is the
    shifted sigmoid, so we keep the phase of ``W`` (as eq. (18) does). Limits (tested): as
    :math:`s_m \to \infty` it tends to eq. (18) with :math:`\zeta = \zeta_m` for every
    :math:`|w| \ne \zeta_m`; at :math:`|w| = \zeta_m` the magnitude is 1/2.

    Args:
        W: ``[...]`` complex tensor.
        sharpness: Sigmoid sharpness :math:`s_m > 0`.
        shift: Sigmoid shift :math:`\zeta_m \ge 0` (imitates :math:`\zeta`).

    Returns:
        Complex tensor of the same shape with moduli in ``(0, 1)``.
    """
    check_tensor(W, "W", complex_=True)
    s = check_positive(sharpness, "sharpness")
    z = check_nonnegative(shift, "shift")
    return unit_modulus(W) * torch.sigmoid(s * (W.abs() - z))


def soft_quantized_phase(phase: torch.Tensor, q_levels: int, sharpness: float) -> torch.Tensor:
    r"""Sum-of-sigmoids surrogate of the phase quantizer, paper 004 eq. (23).

    .. math:: \hat\phi = c + \frac{2\pi}{Q} \sum_{q=1}^{Q}
              \sigma\Big(s_p\big(\phi - c - \tfrac{2\pi(q - 0.5)}{Q}\big)\Big),
              \qquad c = -\frac{2\pi}{Q}\Big\lfloor \frac Q2 \Big\rfloor .

    The printed eq. (23) is :math:`\frac{2\pi}{Q}\sum_q \sigma(s_p(\phi - \frac{2\pi(q-0.5)}
    {Q} + \pi))`, which ranges over :math:`[0, 2\pi]` and tends to the quantized value of
    :math:`\phi + \pi`, i.e. to eq. (20)'s phase **plus π** (the printed form gives
    :math:`-\mathcal P(\mathbf W)`). Our choice: add the offset ``c`` so the limit
    :math:`s_p \to \infty` is eq. (20)'s nearest level. For even ``Q`` (the paper's Q = 16)
    ``c = -π`` and ours is exactly the printed :math:`\hat\phi` minus π; for odd ``Q`` the
    offset ``c`` keeps the levels on the multiples of ``2π/Q``. Since a global sign does not
    change the rate (paper 004 eq. (6) depends on ``G`` only through its column space), the
    printed form gives the same rate; both facts are tested.

    Args:
        phase: ``[...]`` real phases in radians, in ``(-π, π]`` (``torch.angle``).
        q_levels: Number of levels ``Q >= 2``.
        sharpness: Sigmoid sharpness :math:`s_p > 0`.

    Returns:
        ``[...]`` real soft-quantized phases in radians, in ``[c, c + 2π]``.
    """
    check_tensor(phase, "phase", complex_=False)
    q = check_int(q_levels, "q_levels", minimum=2)
    s = check_positive(sharpness, "sharpness")
    step = 2.0 * math.pi / q
    c = -step * (q // 2)
    centers = c + step * (torch.arange(1, q + 1, dtype=phase.dtype, device=phase.device) - 0.5)
    return c + step * torch.sigmoid(s * (phase.unsqueeze(-1) - centers)).sum(-1)


def soft_quantized_projection(W: torch.Tensor, q_levels: int, sharpness: float) -> torch.Tensor:
    r"""Differentiable surrogate of the quantized projection, paper 004 eq. (23).

    .. math:: [\tilde{\mathcal P}_{\mathcal W^Q_{\rm qps}}(\mathbf W)]_{i,j} =
              e^{j\hat\phi_{i,j}}

    with :math:`\hat\phi` from :func:`soft_quantized_phase` applied to
    :math:`\angle[\mathbf W]_{i,j}`. Tends to eq. (20) as :math:`s_p \to \infty` away from
    the decision boundaries (odd multiples of ``π/Q``).

    Args:
        W: ``[...]`` complex tensor.
        q_levels: Number of levels ``Q >= 2``.
        sharpness: Sigmoid sharpness :math:`s_p > 0`.

    Returns:
        Complex unit-modulus tensor of the same shape and dtype.
    """
    check_tensor(W, "W", complex_=True)
    phi = soft_quantized_phase(torch.angle(W), q_levels, sharpness)
    return torch.polar(torch.ones_like(phi), phi)


def count_active_phase_shifters(W: torch.Tensor, atol: float = 0.0) -> torch.Tensor:
    r"""Number of active phase shifters :math:`\|\mathbf W\|_0` per instance (paper 004 eq. (15)).

    Counts entries with :math:`|w| > \text{atol}` over all non-batch dimensions. Projected
    (feasible) panels hold exact zeros for deactivated shifters, so the default ``atol = 0``
    counts them exactly.

    Args:
        W: ``[batch, ...]`` complex panels (``[batch, P, N, L]``).
        atol: Magnitude at or below which an entry counts as inactive.

    Returns:
        ``[batch]`` int64 counts.
    """
    check_tensor(W, "W", min_ndim=1, complex_=True)
    atol = check_nonnegative(atol, "atol")
    return (W.detach().abs() > atol).reshape(W.shape[0], -1).sum(-1)


def paper_s_max(N: int, L: int, P: int, fraction: float = 0.75) -> int:
    r"""The paper's active-shifter budget :math:`S_{\max} = \lfloor 0.75\, N L P \rfloor`.

    Paper 004 Sec. V-C1 uses :math:`S_{\max} = 0.75 \cdot N L P` (18 for Scenario 2, 120
    for Scenario 1).

    Args:
        N: Antennas per panel.
        L: Outputs per panel.
        P: Number of panels.
        fraction: Fraction of the :math:`NLP` shifters allowed active, in ``(0, 1]``.

    Returns:
        The integer budget (at least 1).
    """
    total = check_int(N, "N") * check_int(L, "L") * check_int(P, "P")
    f = check_positive(fraction, "fraction")
    if f > 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction!r}")
    return max(1, int(math.floor(f * total + 1e-9)))
