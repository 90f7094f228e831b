r"""Power allocation of QoS-constrained hybrid beamforming: virtual uplink and downlink.

Paper 002 Sec. III: for a fixed analog precoder :math:`\mathbf A`, the digital beamforming
subproblem (12) (minimize the weighted power subject to :math:`\mathrm{SINR}_i \ge \gamma_i`)
is solved through its dual virtual uplink problem (16)/(31): the uplink powers :math:`\mathbf
q` are the fixed point of

.. math:: q_i \leftarrow \frac{\gamma_i}{\lambda_{\max}\!\big(\Psi_i,\;
          \textstyle\sum_{j \ne i} q_j \Psi_j + \Psi_0\big)}

(:math:`\lambda_{\max}(\mathbf X, \mathbf N)` the largest generalized eigenvalue; for
instantaneous CSI :math:`\Psi_i = \mathbf g_i \mathbf g_i^H` this is
:math:`\mathbf g_i^H (\sum_{j\ne i} q_j \mathbf g_j \mathbf g_j^H + \Psi_0)^{-1}
\mathbf g_i`), the optimal beamformers are the principal generalized eigenvectors (MMSE
receivers), and the downlink powers follow from the coupling matrix, eqs. (22)-(23).
Infeasible instances (targets that no power can meet) show up as a diverging fixed point or
as non-positive / undefined downlink powers; every function reports them through a boolean
mask and never raises on them.

Shapes follow :mod:`beamgym.physics.metrics` (paper 002 section): ``Psi`` is ``[B, I, M_rf,
M_rf]``, digital precoders are the columns of ``[B, M_rf, I]``, powers and targets ``[B, I]``
(linear), batch dimension first.

References:
    [002] Schynol, Pesavento, "Hybrid Downlink Beamforming with Outage Constraints under
          Imperfect CSI using Model-Driven Deep Learning".
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from beamgym._validation import check_int, check_positive, check_tensor
from beamgym.physics.metrics import check_psi, coupling_gains

__all__ = [
    "ImplicitUplink",
    "UplinkSolution",
    "phase_normalize",
    "DownlinkPowers",
    "DigitalSolution",
    "coupling_matrix",
    "downlink_powers",
    "generalized_max_eig",
    "virtual_uplink_fixed_point",
    "solve_digital_beamforming",
    "scale_to_pmax",
    "hermitian_basis",
    "hermitian_to_real",
    "real_to_hermitian",
    "uplink_solution_jacobian",
    "implicit_virtual_uplink",
]


class UplinkSolution(NamedTuple):
    r"""Result of :func:`virtual_uplink_fixed_point`.

    Attributes:
        q: Real ``[B, I]`` virtual uplink powers (the last iterate where not converged).
        digital: Complex ``[B, M_rf, I]`` unit-norm optimal receive beamformers
            :math:`\mathbf b_i` (columns) for ``q``.
        converged: Bool ``[B]``: relative change below ``tol`` within ``max_iter``.
        feasible: Bool ``[B]``: converged to finite, positive powers (problem (31) feasible).
        iterations: Int64 ``[B]`` iterations used.
    """

    q: torch.Tensor
    digital: torch.Tensor
    converged: torch.Tensor
    feasible: torch.Tensor
    iterations: torch.Tensor


class DownlinkPowers(NamedTuple):
    r"""Result of :func:`downlink_powers`.

    Attributes:
        power: Real ``[B, I]`` solution of :math:`\mathbf C_C \mathbf p = \mathbf 1`; NaN
            where :math:`\mathbf C_C` is singular. Rows with ``feasible == False`` are NOT
            valid allocations (negative, zero or NaN entries).
        feasible: Bool ``[B]``: coupling matrix nonsingular and every :math:`p_i > 0`.
    """

    power: torch.Tensor
    feasible: torch.Tensor


class DigitalSolution(NamedTuple):
    r"""Result of :func:`solve_digital_beamforming`.

    Attributes:
        power: Real ``[B, I]`` downlink powers :math:`\mathbf p^*` (eq. (22)).
        q: Real ``[B, I]`` virtual uplink powers :math:`\mathbf q^*`.
        digital: Complex ``[B, M_rf, I]`` unit-norm digital precoders :math:`\mathbf B^*`.
        feasible: Bool ``[B]``: uplink fixed point converged and downlink powers positive.
    """

    power: torch.Tensor
    q: torch.Tensor
    digital: torch.Tensor
    feasible: torch.Tensor


def _check_gamma(gamma: torch.Tensor, b: int, i: int, like: torch.Tensor) -> torch.Tensor:
    check_tensor(gamma, "gamma", ndim=2, complex_=False)
    if gamma.shape != (b, i):
        raise ValueError(f"gamma must be [B, I] = [{b}, {i}], got {tuple(gamma.shape)}")
    if bool((gamma <= 0).any()):
        raise ValueError("gamma (linear SINR targets) must be > 0; convert dB with 10**(dB/10)")
    return gamma.to(like.real.dtype)


def _psi0(Psi0: torch.Tensor | None, b: int, r: int, like: torch.Tensor) -> torch.Tensor:
    if Psi0 is None:
        return torch.eye(r, dtype=like.dtype, device=like.device).expand(b, r, r)
    check_tensor(Psi0, "Psi0", shape=(r, r), complex_=True)
    if Psi0.ndim not in (2, 3) or (Psi0.ndim == 3 and Psi0.shape[0] != b):
        raise ValueError(f"Psi0 must be [M_rf, M_rf] or [B, M_rf, M_rf], got {tuple(Psi0.shape)}")
    return Psi0.to(like.dtype).expand(b, r, r)


def coupling_matrix(Psi: torch.Tensor, digital: torch.Tensor, gamma: torch.Tensor) -> torch.Tensor:
    r"""Coupling matrix :math:`\mathbf C_C(\mathbf B, \mathbf A)`, paper 002 eq. (23).

    .. math:: [\mathbf C_C]_{i,j} = \begin{cases} \gamma_i^{-1} \mathbf b_i^H \Psi_i
              \mathbf b_i & i = j \\ -\mathbf b_j^H \Psi_i \mathbf b_j & i \ne j \end{cases}

    Row ``i`` of :math:`\mathbf C_C \mathbf p = \mathbf 1` is :math:`\mathrm{SINR}_i^{Dl}
    (\mathbf p) = \gamma_i` (eq. (2) with unit noise). With the virtual covariances of eq.
    (27) this is :math:`\widehat{\mathbf C}_C` of eq. (33) (:math:`\Psi_i \to
    \widehat\Psi_{i,j}`).

    Args:
        Psi: Complex ``[B, I, M_rf, M_rf]`` :math:`\Psi_i` (eq. (3)) or ``[B, I, I, M_rf,
            M_rf]`` :math:`\widehat\Psi_{i,j}` (eq. (27)).
        digital: Complex ``[B, M_rf, I]`` digital precoders :math:`\mathbf b_j` (columns).
        gamma: Real ``[B, I]`` linear SINR targets :math:`\gamma_i > 0`.

    Returns:
        Real ``[B, I, I]`` coupling matrix.
    """
    b, i, _ = check_psi(Psi)
    g = coupling_gains(Psi, digital)
    gam = _check_gamma(gamma, b, i, Psi)
    diag = torch.diagonal(g, dim1=-2, dim2=-1)
    return torch.diag_embed(diag / gam + diag) - g


def downlink_powers(
    Psi: torch.Tensor, digital: torch.Tensor, gamma: torch.Tensor
) -> DownlinkPowers:
    r"""Downlink powers that meet every SINR target exactly, paper 002 eq. (22).

    .. math:: \mathbf C_C(\mathbf B, \mathbf A)\, \mathbf p^* = \mathbf 1

    Infeasibility is reported, not raised: a singular :math:`\mathbf C_C` (e.g. a user with
    zero gain or linearly dependent beams) gives NaN powers, and targets that cannot be met
    with these beams give non-positive powers; both set ``feasible = False``. For a
    nonsingular M-matrix :math:`\mathbf C_C` (feasible targets) :math:`\mathbf p^* > 0`.

    Args:
        Psi: Complex ``[B, I, M_rf, M_rf]`` :math:`\Psi_i` (TRUE or estimated CSI) or ``[B,
            I, I, M_rf, M_rf]`` virtual :math:`\widehat\Psi_{i,j}` (eq. (32)-(33)).
        digital: Complex ``[B, M_rf, I]`` digital precoders (columns; any nonzero norm, the
            SINR targets fix the powers for the given directions).
        gamma: Real ``[B, I]`` linear targets.

    Returns:
        :class:`DownlinkPowers` ``(power [B, I], feasible [B])``.
    """
    c = coupling_matrix(Psi, digital, gamma)
    ones = torch.ones(c.shape[:-1], dtype=c.dtype, device=c.device).unsqueeze(-1)
    # (C is finite: its inputs were checked.) Exactly singular matrices give info > 0
    p, info = torch.linalg.solve_ex(c, ones)
    p = p.squeeze(-1)
    cond_ok = info == 0
    # reject numerically singular systems: the residual of C p = 1 must be small
    resid = (c @ p.unsqueeze(-1)).squeeze(-1) - 1.0
    tol = 1e3 * torch.finfo(c.dtype).eps
    small = resid.abs().amax(-1) <= tol * (1 + _scale(c, p))
    cond_ok = cond_ok & torch.isfinite(p).all(-1) & small
    p = torch.where(cond_ok.unsqueeze(-1), p, torch.full_like(p, float("nan")))
    feasible = cond_ok & (p > 0).all(-1)
    return DownlinkPowers(p, feasible)


def _scale(c: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    return (c.abs() @ p.abs().unsqueeze(-1)).squeeze(-1).amax(-1)


def generalized_max_eig(Psi: torch.Tensor, N: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Largest generalized eigenpair of :math:`(\Psi, \mathbf N)`, :math:`\mathbf N \succ 0`.

    .. math:: \lambda_{\max} = \max_{\mathbf b \ne 0} \frac{\mathbf b^H \Psi \mathbf b}
              {\mathbf b^H \mathbf N \mathbf b},\qquad \Psi \mathbf b = \lambda \mathbf N
              \mathbf b

    computed as the top eigenpair of :math:`\mathbf L^{-1} \Psi \mathbf L^{-H}` with the
    Cholesky factor :math:`\mathbf N = \mathbf L \mathbf L^H`; the eigenvector is mapped back,
    :math:`\mathbf b = \mathbf L^{-H} \mathbf v`, and normalized to unit 2-norm. This is the
    maximal virtual-uplink SINR per unit power of eq. (17) and its MMSE receive beamformer;
    for rank-one :math:`\Psi = \mathbf g \mathbf g^H` it equals :math:`\mathbf g^H \mathbf
    N^{-1} \mathbf g` with :math:`\mathbf b \propto \mathbf N^{-1} \mathbf g`.

    Args:
        Psi: Complex ``[..., R, R]`` Hermitian PSD.
        N: Complex ``[..., R, R]`` Hermitian positive definite.

    Returns:
        ``(lam [...], b [..., R])``: real eigenvalue and unit-norm complex eigenvector.
    """
    L, info = torch.linalg.cholesky_ex(0.5 * (N + N.mH))
    if bool((info != 0).any()):
        raise ValueError(
            "N must be Hermitian positive definite (the uplink noise covariance Psi0 must be "
            "positive definite, e.g. the identity)"
        )
    X = torch.linalg.solve_triangular(L, Psi, upper=False)
    X = torch.linalg.solve_triangular(L, X.mH, upper=False)  # L^{-1} Psi L^{-H}
    lam, V = torch.linalg.eigh(0.5 * (X + X.mH))
    v = V[..., -1]
    b = torch.linalg.solve_triangular(L.mH, v.unsqueeze(-1), upper=True).squeeze(-1)
    b = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True)
    return lam[..., -1], b


def virtual_uplink_fixed_point(
    Psi: torch.Tensor,
    gamma: torch.Tensor,
    Psi0: torch.Tensor | None = None,
    *,
    tol: float = 1e-10,
    max_iter: int = 500,
    q_max: float = 1e12,
) -> UplinkSolution:
    r"""Virtual-uplink power fixed point (Schubert-Boche), paper 002 eqs. (16)-(17), (31).

    .. math:: q_i^{(t+1)} = \frac{\gamma_i}{\lambda_{\max}\!\Big(\Psi_i,\;
              \sum_{j \ne i} q_j^{(t)} \Psi_j + \Psi_0\Big)},\qquad \mathbf q^{(0)} = \mathbf 0

    the variation of [58, Alg. 2] named in Sec. III, with the uplink noise covariance
    :math:`\Psi_0` from the power weighting eq. (4). For instantaneous CSI,
    :math:`\Psi_i = \mathbf g_i \mathbf g_i^H` with :math:`\mathbf g_i = \mathbf A^H
    \mathbf h_i`, the denominator is :math:`\mathbf g_i^H (\sum_{j \ne i} q_j \mathbf g_j
    \mathbf g_j^H + \Psi_0)^{-1} \mathbf g_i`; pass the effective channels ``g`` ``[B, I,
    M_rf]`` instead of ``Psi`` for this faster rank-one path. The map is a standard
    interference function, so from :math:`\mathbf q = \mathbf 0` the iterates rise
    monotonically to the minimal uplink powers when problem (31) is feasible
    (docs/readings.md#002-virtual-uplink; iteration counts in BENCHMARKS.md, section "Paper 002
    Table 2") and diverge otherwise. At the fixed
    point every uplink SINR (eq. (17)) with the returned beamformers equals :math:`\gamma_i`,
    and by duality the downlink powers of eq. (22) for the same beamformers satisfy
    :math:`\mathbf w^T \mathbf p = \mathbf 1^T \mathbf q`.

    Stopping: per instance when :math:`\max_i |q_i^{(t+1)} - q_i^{(t)}| \le \mathrm{tol}
    \cdot \max_i q_i^{(t+1)}`; an instance whose total power exceeds ``q_max``, becomes
    non-finite (a user with :math:`\Psi_i = 0`) or has not converged after ``max_iter``
    iterations is flagged infeasible and frozen (slowly converging instances right at the
    feasibility boundary are therefore conservatively flagged). Converged instances leave the
    batch, so the cost follows the mean, not the maximum, iteration count.

    Not meant to be differentiated (the paper differentiates the solution implicitly,
    Theorem IV.2, see :func:`uplink_solution_jacobian`).

    Args:
        Psi: Complex ``[B, I, M_rf, M_rf]`` Hermitian PSD :math:`\Psi_i`; or ``[B, I, I,
            M_rf, M_rf]`` virtual covariances ``Psi[:, i, j]`` :math:`=\widehat\Psi_{i,j}` of
            eq. (27) (problem (31): signal :math:`\widehat\Psi_{i,i}`, interference
            :math:`\widehat\Psi_{j,i}` at receiver ``i``, eq. (26)); or complex ``[B, I,
            M_rf]`` effective channels :math:`\mathbf g_i` (rank-one :math:`\Psi_i =
            \mathbf g_i \mathbf g_i^H`).
        gamma: Real ``[B, I]`` linear SINR targets :math:`\gamma_i > 0`.
        Psi0: Hermitian positive definite ``[M_rf, M_rf]`` or ``[B, M_rf, M_rf]`` uplink
            noise covariance; ``None`` = identity (paper's experiments).
        tol: Relative stopping tolerance (> 0); raised to ``16 eps`` of the dtype if smaller
            (``1.9e-6`` in single precision, where ``1e-10`` could never be met).
        max_iter: Maximum number of iterations.
        q_max: Divergence threshold on :math:`\mathbf 1^T \mathbf q` (linear).

    Returns:
        :class:`UplinkSolution` ``(q, digital, converged, feasible, iterations)``.
    """
    rank_one = isinstance(Psi, torch.Tensor) and Psi.ndim == 3
    if rank_one:
        check_tensor(Psi, "g", ndim=3, complex_=True)
        b, i, r = Psi.shape
    else:
        b, i, r = check_psi(Psi)
    gam = _check_gamma(gamma, b, i, Psi)
    # a tolerance below the rounding level could never be met (e.g. 1e-10 in complex64)
    tol = max(check_positive(tol, "tol"), 16.0 * torch.finfo(Psi.real.dtype).eps)
    max_iter = check_int(max_iter, "max_iter")
    q_max = check_positive(q_max, "q_max")
    n0 = _psi0(Psi0, b, r, Psi)
    step_fn = _uplink_eig_rank_one if rank_one else _uplink_eig
    rdtype = Psi.real.dtype
    tiny = torch.finfo(rdtype).tiny
    q = torch.zeros(b, i, dtype=rdtype, device=Psi.device)
    converged = torch.zeros(b, dtype=torch.bool, device=Psi.device)
    diverged = torch.zeros_like(converged)
    iters = torch.zeros(b, dtype=torch.int64, device=Psi.device)
    act = torch.arange(b, device=Psi.device)  # indices of the instances still iterating
    for _ in range(max_iter):
        if act.numel() == 0:
            break
        q_a = q[act]
        lam, _ = step_fn(Psi[act], q_a, n0[act])
        q_new = torch.where(lam > 0, gam[act] / lam.clamp_min(tiny), torch.inf)
        bad = ~torch.isfinite(q_new).all(-1) | (q_new.sum(-1) > q_max)
        done = ~bad & ((q_new - q_a).abs().amax(-1) <= tol * q_new.amax(-1))
        q[act] = torch.where(bad.unsqueeze(-1), q_a, q_new)
        iters[act] += 1
        converged[act] = done
        diverged[act] = bad
        act = act[~bad & ~done]
    _, bvec = step_fn(Psi, q, n0)
    feasible = converged & (q > 0).all(-1) & torch.isfinite(q).all(-1)
    return UplinkSolution(q, bvec.mT, converged, feasible, iters)


def _uplink_eig(
    Psi: torch.Tensor, q: torch.Tensor, n0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized top eigenpair of (Psi_ii, sum_{j != i} q_j Psi_ji + Psi0) for all users."""
    if Psi.ndim == 4:
        qc = q.to(Psi.dtype)[..., None, None]
        total = (qc * Psi).sum(1, keepdim=True)  # [B, 1, R, R]
        N = total - qc * Psi + n0.unsqueeze(1)
        return generalized_max_eig(Psi, N)
    i = Psi.shape[1]
    off = 1.0 - torch.eye(i, dtype=q.dtype, device=q.device)  # [j, i]: j != i
    w = (q.unsqueeze(-1) * off).to(Psi.dtype)  # [B, j, i]
    N = torch.einsum("bji,bjirs->birs", w, Psi) + n0.unsqueeze(1)
    return generalized_max_eig(torch.diagonal(Psi, dim1=1, dim2=2).permute(0, 3, 1, 2), N)


def _uplink_eig_rank_one(
    g: torch.Tensor, q: torch.Tensor, n0: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-one case: lam_i = g_i^H N_i^{-1} g_i and b_i = N_i^{-1} g_i / ||.||."""
    # (complex broadcasting products are slow on CPU; build the outer products by matmul)
    qc = q.to(g.dtype)[..., None, None]
    outer = g.unsqueeze(-1) @ g.conj().unsqueeze(-2)  # [B, I, R, R]: g_i g_i^H
    total = ((g * q.to(g.dtype).unsqueeze(-1)).mT @ g.conj()).unsqueeze(1)  # sum_j q_j g_j g_j^H
    N = total - qc * outer + n0.unsqueeze(1)
    L, info = torch.linalg.cholesky_ex(0.5 * (N + N.mH))
    if bool((info != 0).any()):
        raise ValueError("Psi0 must be Hermitian positive definite (e.g. the identity)")
    x = torch.cholesky_solve(g.unsqueeze(-1), L).squeeze(-1)  # N_i^{-1} g_i
    lam = (g.conj() * x).sum(-1).real
    nrm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    return lam, x / torch.where(nrm > 0, nrm, torch.ones_like(nrm))


def solve_digital_beamforming(
    Psi: torch.Tensor,
    gamma: torch.Tensor,
    Psi0: torch.Tensor | None = None,
    *,
    tol: float = 1e-10,
    max_iter: int = 500,
    q_max: float = 1e12,
) -> DigitalSolution:
    r"""Digital beamformers and powers for a fixed analog precoder, paper 002 eqs. (12)-(23).

    Solves the virtual uplink problem (16) with :func:`virtual_uplink_fixed_point`
    (:math:`\mathcal F_{\mathrm{Ul}}`, eq. (18)), then recovers the downlink powers from the
    coupling matrix, eq. (22), for the same beamformers :math:`\mathbf B^*`. The maximum
    power constraint :math:`\mathbf w^T \mathbf p \le P_{\max}` is NOT applied (as in
    problem (31)); use :func:`scale_to_pmax` (eq. (34)) afterwards.

    Args:
        Psi: Complex ``[B, I, M_rf, M_rf]`` :math:`\Psi_i(\mathbf A)`, ``[B, I, I, M_rf,
            M_rf]`` virtual :math:`\widehat\Psi_{i,j}` (eqs. (31)-(33)) or ``[B, I, M_rf]``
            effective channels (see :func:`virtual_uplink_fixed_point`).
        gamma: Real ``[B, I]`` linear targets.
        Psi0: Uplink noise covariance / power weighting, ``None`` = identity.
        tol: Fixed-point tolerance.
        max_iter: Fixed-point iteration limit.
        q_max: Divergence threshold.

    Returns:
        :class:`DigitalSolution` ``(power, q, digital, feasible)``.
    """
    up = virtual_uplink_fixed_point(Psi, gamma, Psi0, tol=tol, max_iter=max_iter, q_max=q_max)
    if Psi.ndim == 3:  # effective channels g_i: Psi_i = g_i g_i^H
        Psi = Psi.unsqueeze(-1) @ Psi.conj().unsqueeze(-2)
    down = downlink_powers(Psi, up.digital, gamma)
    return DigitalSolution(down.power, up.q, up.digital, up.feasible & down.feasible)


def scale_to_pmax(
    power: torch.Tensor,
    p_max: float | torch.Tensor,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Projection onto the power constraint, paper 002 eq. (34).

    .. math:: \mathbf p_{\mathcal M} = \frac{P_{\max}}{P_{\max} + \big[\mathbf w^T
              [\mathbf p]_0^\infty - P_{\max}\big]_0^\infty}\, [\mathbf p]_0^\infty

    Negative entries are clipped to 0, then the allocation is scaled down uniformly if the
    weighted total exceeds :math:`P_{\max}`; allocations inside the feasible set are returned
    unchanged (idempotent). Differentiable almost everywhere.

    Args:
        power: Real ``[B, I]`` powers (linear; NaN is rejected).
        p_max: :math:`P_{\max} > 0` (linear): float or real ``[B]`` tensor.
        weights: Real ``[B, I]`` non-negative weights :math:`\mathbf w` (eq. (4)); ``None``
            means all ones (unit-norm :math:`\mathbf b_i`, :math:`\Psi_0 = \mathbf I`).

    Returns:
        ``(power [B, I], scaled [B])``: projected powers and whether the scaling (or the
        clipping of a negative entry) changed them.
    """
    check_tensor(power, "power", ndim=2, complex_=False)
    pm = torch.as_tensor(p_max, dtype=power.dtype, device=power.device)
    if not bool(torch.isfinite(pm).all()) or bool((pm <= 0).any()):
        raise ValueError("p_max must be finite and > 0 (linear scale)")
    if pm.ndim not in (0, 1) or (pm.ndim == 1 and pm.shape[0] != power.shape[0]):
        raise ValueError(
            f"p_max must be a scalar or [B] = [{power.shape[0]}], got {tuple(pm.shape)}"
        )
    if weights is None:
        w = torch.ones_like(power)
    else:
        check_tensor(weights, "weights", ndim=2, complex_=False)
        if weights.shape != power.shape:
            raise ValueError(
                f"weights must have the shape of power {tuple(power.shape)}, got "
                f"{tuple(weights.shape)}"
            )
        if bool((weights < 0).any()):
            raise ValueError("weights must be >= 0")
        w = weights.to(power.dtype)
    pos = power.clamp_min(0.0)
    total = (w * pos).sum(-1)
    factor = pm / (pm + (total - pm).clamp_min(0.0))
    scaled = (total > pm) | (power < 0).any(-1)
    return pos * factor.unsqueeze(-1), scaled


# ---- implicit gradient of the virtual-uplink solution (paper 002 Theorem IV.2) ---------------


def hermitian_basis(
    r: int, *, dtype: torch.dtype = torch.complex128, device: str | torch.device | None = None
) -> torch.Tensor:
    r"""Basis of ``r x r`` Hermitian matrices behind the real parametrization eq. (37).

    :math:`\Psi = \sum_p \psi_p \mathbf E_p` with :math:`\psi = [\mathrm{vec}_d(\Psi)^T\;
    \mathrm{vec}_{re}(\Psi)^T\; \mathrm{vec}_{im}(\Psi)^T]^T` (paper 002 eq. (37) and the
    :math:`\Gamma_d, \Gamma_{re}, \Gamma_{im}` of Appendix A): ``r`` diagonal entries, then the
    real and the imaginary parts of the strictly upper triangle in row-major order
    (``torch.triu_indices(r, r, 1)``). :math:`\mathbf E_p` is :math:`\mathbf e_m \mathbf
    e_m^T`, :math:`\mathbf e_m \mathbf e_n^T + \mathbf e_n \mathbf e_m^T` or :math:`j(\mathbf
    e_m \mathbf e_n^T - \mathbf e_n \mathbf e_m^T)` (:math:`m < n`); its vectorization is the
    matching column of :math:`\Gamma` (times :math:`j` for the imaginary part).

    Args:
        r: Matrix size (:math:`M_{rf}`).
        dtype: Complex dtype of the result.
        device: Device of the result.

    Returns:
        Complex ``[r*r, r, r]`` basis matrices.
    """
    r = check_int(r, "r")
    iu = torch.triu_indices(r, r, 1)
    n_up = iu.shape[1]
    E = torch.zeros(r * r, r, r, dtype=dtype, device=device)
    ar = torch.arange(r)
    E[ar, ar, ar] = 1.0
    k = torch.arange(n_up)
    E[r + k, iu[0], iu[1]] = 1.0
    E[r + k, iu[1], iu[0]] = 1.0
    E[r + n_up + k, iu[0], iu[1]] = 1j
    E[r + n_up + k, iu[1], iu[0]] = -1j
    return E


def hermitian_to_real(Psi: torch.Tensor) -> torch.Tensor:
    r"""Real parametrization :math:`\psi` of Hermitian matrices, paper 002 eq. (37).

    Args:
        Psi: Complex ``[..., r, r]`` Hermitian matrices.

    Returns:
        Real ``[..., r*r]``: diagonal, real upper, imaginary upper (see :func:`hermitian_basis`).
    """
    check_tensor(Psi, "Psi", min_ndim=2, complex_=True)
    r = Psi.shape[-1]
    iu = torch.triu_indices(r, r, 1, device=Psi.device)
    up = Psi[..., iu[0], iu[1]]
    diag = torch.diagonal(Psi, dim1=-2, dim2=-1).real
    return torch.cat([diag, up.real, up.imag], dim=-1)


def real_to_hermitian(psi: torch.Tensor, r: int) -> torch.Tensor:
    r"""Inverse of :func:`hermitian_to_real`: :math:`\Psi = \sum_p \psi_p \mathbf E_p`.

    Args:
        psi: Real ``[..., r*r]`` parameters.
        r: Matrix size.

    Returns:
        Complex ``[..., r, r]`` Hermitian matrices (differentiable in ``psi``).
    """
    check_tensor(psi, "psi", min_ndim=1, complex_=False)
    r = check_int(r, "r")
    if psi.shape[-1] != r * r:
        raise ValueError(f"psi must have last dimension r*r = {r * r}, got {psi.shape[-1]}")
    cdtype = torch.complex128 if psi.dtype == torch.float64 else torch.complex64
    E = hermitian_basis(r, dtype=cdtype, device=psi.device)
    return torch.einsum("...p,prs->...rs", psi.to(cdtype), E)


def phase_normalize(b: torch.Tensor) -> torch.Tensor:
    """Rotate each column (``[B, R, I]``) so that its last entry is real and >= 0."""
    last = b[:, -1:, :]
    mag = last.abs()
    ph = torch.where(mag > 0, last.conj() / torch.where(mag > 0, mag, 1.0), 1.0)
    return b * ph


def _realify_vec(v: torch.Tensor) -> torch.Tensor:
    """Complex ``[..., R]`` (or ``[..., R, K]``) -> real ``[Re v; Im v[:-1]]`` along dim -2/-1."""
    return torch.cat([v.real, v.imag[..., :-1]], dim=-1)


def _realify_mat(X: torch.Tensor) -> torch.Tensor:
    """Real ``(2R-1) x (2R-1)`` representation eq. (59) of the complex ``R x R`` map ``X``."""
    top = torch.cat([X.real, -X.imag[..., :, :-1]], dim=-1)
    bot = torch.cat([X.imag[..., :-1, :], X.real[..., :-1, :-1]], dim=-1)
    return torch.cat([top, bot], dim=-2)


def uplink_solution_jacobian(
    Psi: torch.Tensor,
    gamma: torch.Tensor,
    q: torch.Tensor,
    digital: torch.Tensor,
    power: torch.Tensor,
    Psi0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Implicit Jacobian of the virtual-uplink solution, paper 002 Theorem IV.2, eq. (49).

    .. math:: \mathbf D_{\underline\psi_{i,j}} \mathbf f_{\mathrm{Ul}}(\underline\psi) =
              -\mathbf D_\zeta \mathbf f_{\mathrm{BN}}(\check\zeta^*) \big(\mathbf D_\zeta
              \mathbf g(\check\zeta^*, \underline\psi)\big)^{-1} \mathbf D_{\underline
              \psi_{i,j}} \mathbf g(\check\zeta^*, \underline\psi)

    with the SNLE :math:`\mathbf g` of eqs. (42)-(47) in the variables :math:`\check\zeta =
    [\check{\mathbf b}_1 \dots \check{\mathbf b}_I, \mathbf q]`, :math:`\check{\mathbf b}_i =
    \sqrt{p_i} \mathbf b_i` restricted to :math:`[\Im \check{\mathbf b}_i]_{M_{rf}} = 0`, and
    the Jacobian blocks of Appendix A: eqs. (59), (61)-(62) (:math:`\underline\Lambda_i`),
    (64) (:math:`\mathbf D_{\mathbf q} \mathbf g_b`), (65) (:math:`\mathbf D_{\check{\mathbf
    b}} \mathbf g_q = 2\,\mathrm{Diag}(\mathbf q) \mathbf D_{\mathbf q}\mathbf g_b^T`), (66)-(67)
    (:math:`\mathbf D_{\mathbf q} \mathbf g_q`, zero at the solution but kept), (70)-(74)
    (right-hand side) and (75)-(76) (normalization). The right-hand side is assembled from the
    basis :math:`\mathbf E_p` of :func:`hermitian_basis`: :math:`\partial (\Psi \check{\mathbf
    b})/\partial \psi_p = \mathbf E_p \check{\mathbf b}` and :math:`\partial(\check{\mathbf b}^H
    \Psi \check{\mathbf b})/\partial\psi_p = \check{\mathbf b}^H \mathbf E_p \check{\mathbf b}`,
    which equals the :math:`\Gamma`-matrix expressions.

    Typos of the printed appendix, corrected here (and checked against autograd in the tests):
    eqs. (70)-(71) write :math:`(\check{\mathbf b}_i^T \otimes \mathbf I)` also in the case
    :math:`i \ne j = k`, where :math:`\mathbf g_{b,k} = \underline\Lambda_k \check{\mathbf b}_k`
    requires :math:`\check{\mathbf b}_k` (:math:`= \check{\mathbf b}_j`); eq. (76) divides by
    :math:`\|\check{\mathbf b}_i\|_2^{3/2}`, the derivative of :math:`\mathbf x/\|\mathbf x\|`
    needs :math:`\|\check{\mathbf b}_i\|_2^3`; and the upper-left block of eq. (60) is
    :math:`\mathbf D_{\check{\mathbf b}}\mathbf g_b` (printed :math:`\mathbf D_{\check\zeta}
    \mathbf g_b`). :math:`\Psi_0` is treated as a constant.

    Layout. Rows (outputs :math:`\mathbf f_{\mathrm{Ul}}`, length :math:`2 I M_{rf}`): for each
    user ``i`` the normalized beamformer :math:`[\Re\mathbf b_i;\, [\Im \mathbf b_i]_{-M_{rf}}]`
    (:math:`2M_{rf}-1` values, phase fixed so that the last entry is real and positive), then
    :math:`q_1 \dots q_I`. Columns: :math:`\underline\psi_{i,j}` (:func:`hermitian_to_real` of
    :math:`\widehat\Psi_{i,j}`, :math:`M_{rf}^2` values each) for ``(i, j)`` in row-major order.

    Args:
        Psi: Complex ``[B, I, I, M_rf, M_rf]`` virtual covariances ``Psi[:, i, j]``
            :math:`= \widehat\Psi_{i,j}` (eq. 27). For the plain model (eq. 17), pass
            ``Psi_i`` expanded along ``j`` and sum the Jacobian over ``j``.
        gamma: Real ``[B, I]`` linear targets.
        q: Real ``[B, I]`` converged uplink powers (:func:`virtual_uplink_fixed_point`).
        digital: Complex ``[B, M_rf, I]`` the matching unit-norm beamformers (any phase).
        power: Real ``[B, I]`` downlink powers of eq. (32) for these beamformers
            (:func:`downlink_powers`).
        Psi0: Uplink noise covariance (constant), ``None`` = identity.

    Returns:
        ``(J, valid)``: real ``[B, 2 I M_rf, I^2 M_rf^2]`` Jacobian and bool ``[B]`` telling
        where Assumption IV.1 held numerically (positive powers, a beamformer with nonzero
        last entry, nonsingular :math:`\mathbf D_\zeta \mathbf g`); invalid rows are set to 0,
        as the paper does ("we set the partial gradient to 0").
    """
    b_, i_, r = check_psi(Psi)
    if Psi.ndim != 5:
        raise ValueError(
            "uplink_solution_jacobian needs the 5-D virtual covariances [B, I, I, M_rf, M_rf]; "
            "expand a 4-D Psi with Psi.unsqueeze(2).expand(-1, -1, I, -1, -1)"
        )
    gam = _check_gamma(gamma, b_, i_, Psi)
    rdtype = Psi.real.dtype
    for t, name in ((q, "q"), (power, "power")):
        check_tensor(t, name, ndim=2, complex_=False)
        if t.shape != (b_, i_):
            raise ValueError(f"{name} must be [B, I] = [{b_}, {i_}], got {tuple(t.shape)}")
    check_tensor(digital, "digital", ndim=3, complex_=True)
    if digital.shape != (b_, r, i_):
        raise ValueError(
            f"digital must be [B, M_rf, I] = [{b_}, {r}, {i_}], got {tuple(digital.shape)}"
        )
    q = q.to(rdtype)
    p = power.to(rdtype)
    n0 = _psi0(Psi0, b_, r, Psi)
    nb = 2 * r - 1
    bn = phase_normalize(digital.to(Psi.dtype))  # [B, R, I]
    ok = (p > 0).all(-1) & (q > 0).all(-1) & (bn[:, -1, :].abs() > 0).all(-1)
    bt = (bn * p.clamp_min(0).sqrt().to(Psi.dtype).unsqueeze(-2)).mT  # [B, I, R]: b_check_i
    eye_i = torch.eye(i_, dtype=rdtype, device=Psi.device)
    # coefficient of Psi_hat_{j,k} in Lambda_k: -q_k/gamma_k (j = k), q_j (j != k)
    coef = q.unsqueeze(-1) * (1 - eye_i) - torch.diag_embed(q / gam)  # [B, j, k]
    lam = torch.einsum("bjk,bjkrs->bkrs", coef.to(Psi.dtype), Psi) + n0.unsqueeze(1)  # eq. (58)
    # ---- left-hand side D_zeta g, eq. (60)-(67)
    n = i_ * nb + i_
    lhs = torch.zeros(b_, n, n, dtype=rdtype, device=Psi.device)
    lam_r = _realify_mat(lam)  # [B, K, nb, nb]
    for k in range(i_):
        lhs[:, k * nb : (k + 1) * nb, k * nb : (k + 1) * nb] = lam_r[:, k]
    # eq. (64): D_{q_j} g_{b,k} = (-1/gamma_k if j == k else 1) Psi_hat_{j,k} b_check_k
    sel = (1 - eye_i) - torch.diag_embed(1.0 / gam)  # [B, j, k]
    dqgb = torch.einsum("bjk,bjkrs,bks->bkjr", sel.to(Psi.dtype), Psi, bt)  # [B, k, j, R]
    dqgb_r = _realify_vec(dqgb)  # [B, k, j, nb]
    top_right = dqgb_r.permute(0, 1, 3, 2).reshape(b_, i_ * nb, i_)
    lhs[:, : i_ * nb, i_ * nb :] = top_right
    lhs[:, i_ * nb :, : i_ * nb] = 2.0 * q.unsqueeze(-1) * top_right.mT  # eq. (65)
    gains = torch.einsum("bjr,bkjrs,bjs->bkj", bt.conj(), Psi, bt).real  # b_j^H Psi_kj b_j
    diag_g = torch.diagonal(gains, dim1=-2, dim2=-1)
    resid = 1.0 - diag_g / gam + (gains.sum(-1) - diag_g)  # eq. (67)
    lhs[:, i_ * nb :, i_ * nb :] = torch.diag_embed(resid)
    # ---- right-hand side D_psi g, eqs. (68)-(74)
    E = hermitian_basis(r, dtype=Psi.dtype, device=Psi.device)  # [P, R, R]
    n_p = r * r
    rhs = torch.zeros(b_, n, i_, i_, n_p, dtype=rdtype, device=Psi.device)
    eb = torch.einsum("prs,bks->bkpr", E, bt)  # E_p b_check_k  [B, K, P, R]
    eb_r = _realify_vec(eb)  # [B, K, P, nb]
    quad = torch.einsum("bkr,bkpr->bkp", bt.conj(), eb).real  # b_k^H E_p b_k  [B, K, P]
    for k in range(i_):
        rows = slice(k * nb, (k + 1) * nb)
        for i in range(i_):
            # g_{b,k} depends on Psi_hat_{i,k} with coefficient coef[i, k]
            rhs[:, rows, i, k, :] = coef[:, i, k, None, None] * eb_r[:, k].mT
        # g_{q,k} = q_k (1 - b_k^H Psi_kk b_k / gamma_k + sum_{j != k} b_j^H Psi_kj b_j)
        for j in range(i_):
            c = -q[:, k] / gam[:, k] if j == k else q[:, k]
            rhs[:, i_ * nb + k, k, j, :] = c.unsqueeze(-1) * quad[:, j]
    rhs = rhs.reshape(b_, n, i_ * i_ * n_p)
    sol, info = torch.linalg.solve_ex(lhs, rhs)
    ok = ok & (info == 0) & torch.isfinite(sol).all(-1).all(-1)
    # ---- normalization f_BN, eqs. (75)-(76): D(x/||x||) = (||x||^2 I - x x^T) / ||x||^3
    xr = _realify_vec(bt)  # [B, I, nb]
    nrm = torch.linalg.vector_norm(xr, dim=-1, keepdim=True).clamp_min(torch.finfo(rdtype).tiny)
    eye_b = torch.eye(nb, dtype=rdtype, device=Psi.device)
    dbn = (nrm.square().unsqueeze(-1) * eye_b - xr.unsqueeze(-1) * xr.unsqueeze(-2)) / (
        nrm.unsqueeze(-1) ** 3
    )
    jac = torch.empty_like(sol)
    for k in range(i_):
        rows = slice(k * nb, (k + 1) * nb)
        jac[:, rows] = -dbn[:, k] @ sol[:, rows]
    jac[:, i_ * nb :] = -sol[:, i_ * nb :]
    jac = torch.where(ok[:, None, None], jac, torch.zeros_like(jac))
    return jac, ok


class ImplicitUplink(torch.autograd.Function):
    """Forward: fixed point + eq. (32); backward: Theorem IV.2 (see implicit_virtual_uplink)."""

    @staticmethod
    def forward(ctx, Psi, gamma, Psi0, tol, max_iter):  # noqa: D102
        with torch.no_grad():
            up = virtual_uplink_fixed_point(Psi, gamma, Psi0, tol=tol, max_iter=max_iter)
            digital = phase_normalize(up.digital)
            down = downlink_powers(Psi, digital, gamma)
            jac, ok = uplink_solution_jacobian(Psi, gamma, up.q, digital, down.power, Psi0)
        ctx.save_for_backward(jac)
        ctx.dims = (Psi.shape[1], Psi.shape[-1])
        feasible = up.feasible & down.feasible & ok
        ctx.mark_non_differentiable(feasible)
        return up.q, digital, feasible

    @staticmethod
    def backward(ctx, grad_q, grad_digital, _grad_feasible):  # noqa: D102
        (jac,) = ctx.saved_tensors
        i_, r = ctx.dims
        b_ = jac.shape[0]
        if grad_q is None:
            grad_q = torch.zeros(b_, i_, dtype=jac.dtype, device=jac.device)
        if grad_digital is None:
            up_b = torch.zeros(b_, i_, 2 * r - 1, dtype=jac.dtype, device=jac.device)
        else:
            # torch's complex gradient is dL/dRe + j dL/dIm; Im of the last entry is fixed at 0
            up_b = _realify_vec(grad_digital.mT)
        u = torch.cat([up_b.reshape(b_, -1), grad_q.to(jac.dtype)], dim=-1)
        g_psi = (u.unsqueeze(-2) @ jac).squeeze(-2).reshape(b_, i_, i_, r * r)
        # Hermitian gradient G with dL = Re tr(G^H dPsi): G_mm = g_d, G_mn = (g_re + j g_im)/2
        half = torch.cat([g_psi[..., :r], 0.5 * g_psi[..., r:]], dim=-1)
        G = real_to_hermitian(half, r)
        # real_to_hermitian maps psi_im to +j at (m, n) and -j at (n, m): G is Hermitian
        return G, None, None, None, None


def implicit_virtual_uplink(
    Psi: torch.Tensor,
    gamma: torch.Tensor,
    Psi0: torch.Tensor | None = None,
    *,
    tol: float = 1e-12,
    max_iter: int = 1000,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Differentiable virtual-uplink solution :math:`\mathcal F_{\mathrm{Ul}}` (eq. 31).

    Forward: :func:`virtual_uplink_fixed_point` (no autograd graph). Backward: the implicit
    gradient of Theorem IV.2 (:func:`uplink_solution_jacobian`) with respect to the virtual
    covariances; the gradient returned for ``Psi`` is the Hermitian matrix :math:`\mathbf G`
    with :math:`\mathrm dL = \Re\,\mathrm{tr}(\mathbf G^H \mathrm d\widehat\Psi_{i,j})` for
    Hermitian perturbations (PyTorch's convention :math:`\partial L/\partial\Re +
    j\,\partial L/\partial\Im` restricted to Hermitian matrices), so it chains correctly when
    ``Psi`` is built by Hermitian operations (e.g. eq. 27). ``gamma`` and ``Psi0`` are
    constants. Where the solution does not satisfy Assumption IV.1 (infeasible, ...) the
    gradient is 0 and ``feasible`` is ``False``.

    Args:
        Psi: Complex ``[B, I, I, M_rf, M_rf]`` virtual covariances
            :math:`\widehat\Psi_{i,j}` (Hermitian PSD).
        gamma: Real ``[B, I]`` linear targets.
        Psi0: Uplink noise covariance, ``None`` = identity.
        tol: Fixed-point tolerance (tight: the implicit gradient assumes the exact solution).
        max_iter: Fixed-point iteration limit.

    Returns:
        ``(q [B, I], digital [B, M_rf, I], feasible [B])``: uplink powers and unit-norm
        beamformers whose last entry is real and non-negative (the paper's phase constraint).
    """
    if not isinstance(Psi, torch.Tensor) or Psi.ndim != 5:
        raise ValueError("Psi must be a [B, I, I, M_rf, M_rf] complex tensor")
    return ImplicitUplink.apply(Psi, gamma, Psi0, tol, max_iter)
