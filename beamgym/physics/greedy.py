r"""Greedy correction hybrid beamforming of paper 002 as a pure batched rule.

Paper 002 (Schynol, Pesavento) Sec. III reviews the greedy correction algorithm of its ref.
[35, Alg. 2] for power-minimizing hybrid downlink beamforming with SINR targets and a discrete
analog codebook; Sec. V-A-3 uses it as two benchmarks:

* **G-HBF-perf** (agent ``ghbf_perf``): the greedy with :math:`L_{rf} = 2 M_{rf}` selections
  on the known CSI. OutageHybrid-v0 also runs it on the true channel to decide which
  instances are removed (Sec. V-A-4);
* **G-HBF-marg** (agent ``ghbf_marg``): the same greedy with the SINR targets raised by a
  bisected margin. The virtual-uplink physics lives in :mod:`beamgym.physics.power`.

Algorithm (:func:`greedy_hybrid_beamforming`), for one batch of instances at once:

1. Initialization, paper 002 eq. (35): the :math:`M_{rf}` codewords with the largest scores
   :math:`\sum_i \check{\mathbf a}^H \hat{\mathbf R}_i \check{\mathbf a} /
   \mathrm{Tr}(\hat{\mathbf R}_i)`, with :math:`\hat{\mathbf R}_i = \hat{\mathbf h}_i
   \hat{\mathbf h}_i^H` (default) or the known covariance (docs/readings.md#002-greedy-init:
   both give the same final power).
2. For :math:`\ell = 1, \dots, L_{rf}` the RF chain :math:`r^{(\ell)} = ((\ell - 1) \bmod
   M_{rf}) + 1` is updated cyclically (docs/readings.md#002-greedy: choosing the best
   chain changes nothing), eq. (14): every codeword :math:`\check{\mathbf a}_a` is tried in
   its place and the one with the smallest virtual-uplink power
   :math:`\mathbf 1^T \mathbf q^*` is kept,
   eqs. (19)-(21). A codeword already used by another chain violates :math:`\mathrm{rank}\,
   \mathbf A = M_{rf}` (eq. 6) and counts as infinite power (footnote 1), as does a trial
   whose uplink problem is infeasible. The incumbent is kept unless a trial is strictly
   better, so the design power never increases (the monotonicity of Sec. III).
3. Each trial solves the virtual uplink problem (16) by the fixed point of [58, Alg. 2] with
   the weighted noise :math:`\Psi_0 = \mathbf I` (eq. 4, unit-norm DFT codewords):
   :math:`q_i \leftarrow \gamma_i / (\mathbf g_i^H (\sum_{j \ne i} q_j \mathbf g_j
   \mathbf g_j^H + \Psi_0)^{-1} \mathbf g_i)` from :math:`\mathbf q = \mathbf 0`, with
   :math:`\mathbf g_i = \mathbf A^H \hat{\mathbf h}_i`
   (:func:`beamgym.physics.power.virtual_uplink_fixed_point`; the trials are ranked with
   the same iteration written in the Gram domain, :func:`gram_uplink_power`, about 9x
   faster on CPU and stopped as soon as a trial exceeds the incumbent's power).
4. The downlink powers follow from the coupling matrix, eqs. (22)-(23)
   (:func:`beamgym.physics.power.downlink_powers`), and are projected onto the power
   constraint by eq. (34) (:func:`beamgym.physics.power.scale_to_pmax`).

Infeasible instances (uplink fixed point diverging or not converging, non-positive or
undefined downlink powers of eq. 22, or a design power above :math:`P_{\max}`) are flagged in
:class:`GreedySolution` ``feasible`` (and in ``agent.last_info`` after ``solve``), never raised:
their beamformer is still returned, with negative / undefined powers clipped to 0 and the
total scaled to :math:`P_{\max}` by eq. (34), as the paper's model does (Sec. IV-E: "a failure
to satisfy the QoS constraints is clearly indicated").

References:
    [002] Schynol, Pesavento, "Hybrid Downlink Beamforming with Outage Constraints under
          Imperfect CSI using Model-Driven Deep Learning".
    [35]  Greedy correction codebook-based hybrid beamforming (paper 002's ref. [35], Alg. 2).
    [58]  Schubert, Boche, iterative multiuser uplink/downlink beamforming (paper 002's ref.
          [58], Alg. 2).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from beamgym._validation import check_tensor
from beamgym.physics.codebooks import codeword_scores_eq35, select_codewords, topk_codeword_indices
from beamgym.physics.power import (
    downlink_powers,
    scale_to_pmax,
    virtual_uplink_fixed_point,
)
from beamgym.structures import HybridBeamformer

__all__ = [
    "SCREENINGS",
    "GreedySolution",
    "finalize_hybrid_design",
    "gram_uplink_power",
    "greedy_hybrid_beamforming",
]

#: How :func:`greedy_hybrid_beamforming` ranks trial codewords.
SCREENINGS: tuple[str, ...] = ("gram", "physics")


class GreedySolution(NamedTuple):
    r"""Result of :func:`greedy_hybrid_beamforming` (batch dimension first).

    Attributes:
        beamformer: The design: ``analog`` ``[B, M, M_rf]`` (codewords in chain order) and
            ``digital`` ``[B, M_rf, I]`` with columns :math:`\sqrt{p_i}\,\mathbf b_i`, after
            eq. (34); weighted power :math:`\le P_{\max}`.
        indices: Int64 ``[B, M_rf]`` codeword index of each RF chain.
        power: Real ``[B]`` weighted power :math:`\mathbf w^T \mathbf p_{\mathcal M}` of the
            returned beamformer (after eq. 34).
        design_power: Real ``[B]`` :math:`\mathbf 1^T \mathbf q^*` of the final analog
            configuration on the CSI used (``inf`` where its uplink problem is infeasible).
        feasible: Bool ``[B]``: the targets given are met on the CSI used with power
            :math:`\le P_{\max}` (uplink converged, eq. 22 powers positive, no eq. 34 scaling).
        pmax_scaled: Bool ``[B]``: eq. (34) changed the eq. (22) powers.
        history: Real ``[B, L_rf + 1]`` design power before the first and after each greedy
            step (non-increasing; ``inf`` while infeasible).
        index_history: Int64 ``[L_rf + 1, B, M_rf]`` the configurations behind ``history``.
    """

    beamformer: HybridBeamformer
    indices: torch.Tensor
    power: torch.Tensor
    design_power: torch.Tensor
    feasible: torch.Tensor
    pmax_scaled: torch.Tensor
    history: torch.Tensor
    index_history: torch.Tensor


def _effective(G: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``g[n, i, r] = a_{idx[n, r]}^H h_i`` from ``G[n, i, a] = a_a^H h_i`` (``[N, I, A]``)."""
    return torch.gather(G, 2, idx.unsqueeze(1).expand(-1, G.shape[1], -1))


def _uplink_power(
    g: torch.Tensor,
    gamma: torch.Tensor,
    tol: float,
    max_iter: int,
    q_max: float,
    *,
    screening: str = "gram",
    bound: torch.Tensor | None = None,
) -> torch.Tensor:
    """``1^T q*`` of the virtual uplink problem (16) per row, ``inf`` where infeasible.

    ``screening="physics"`` calls :func:`~beamgym.physics.power.virtual_uplink_fixed_point`;
    ``"gram"`` runs :func:`gram_uplink_power` (same iterates, about 9x faster on CPU) and
    stops rows whose power exceeds ``bound`` (their exact value is then not needed).
    """
    if g.shape[0] == 0:
        return torch.zeros(0, dtype=gamma.dtype, device=gamma.device)
    if screening == "gram":
        return gram_uplink_power(g, gamma, tol=tol, max_iter=max_iter, q_max=q_max, bound=bound)
    sol = virtual_uplink_fixed_point(g, gamma, tol=tol, max_iter=max_iter, q_max=q_max)
    total = sol.q.sum(-1)
    return torch.where(sol.feasible, total, torch.full_like(total, math.inf))


def gram_uplink_power(
    g: torch.Tensor,
    gamma: torch.Tensor,
    *,
    tol: float = 1e-10,
    max_iter: int = 500,
    q_max: float = 1e12,
    bound: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Virtual-uplink power :math:`\mathbf 1^T \mathbf q^*` by the fixed point in the Gram domain.

    The iteration of :func:`~beamgym.physics.power.virtual_uplink_fixed_point` for
    rank-one :math:`\Psi_i = \mathbf g_i \mathbf g_i^H` and :math:`\Psi_0 = \mathbf I`
    (paper 002 eqs. 16-17, [58] Alg. 2), :math:`q_i \leftarrow \gamma_i / \lambda_i` from
    :math:`\mathbf q = \mathbf 0`, with the same stopping rule, evaluated with one
    :math:`I \times I` solve per instance instead of :math:`I` Cholesky factorizations of
    size :math:`M_{rf}`. :math:`\lambda_i` depends on the channels only through their Gram
    matrix (docs/readings.md#002-virtual-uplink), so
    :math:`\mathbf G = [\mathbf g_1 \cdots \mathbf g_I]` is
    replaced by the triangular factor :math:`\mathbf T = [\mathbf t_1 \cdots \mathbf t_I]`
    of its QR decomposition (:math:`\mathbf T^H \mathbf T = \mathbf G^H \mathbf G`). With
    :math:`\mathbf N = \mathbf I + \sum_j q_j \mathbf t_j \mathbf t_j^H` and
    :math:`t_i = \mathbf t_i^H \mathbf N^{-1} \mathbf t_i` (one solve with ``I`` right-hand
    sides), Sherman-Morrison removes user ``i``'s own term:

    .. math:: \lambda_i = \mathbf t_i^H (\mathbf N - q_i \mathbf t_i \mathbf t_i^H)^{-1}
              \mathbf t_i = \frac{t_i}{1 - q_i t_i}

    (:math:`1 - q_i t_i = 1 / (1 + \mathrm{SINR}_i)`, accurate to about ``eps * SINR``).
    Used to rank the greedy's trial codewords; the final design always comes from the
    physics functions.

    The iterates rise monotonically to :math:`\mathbf q^*` (standard interference function,
    docs/readings.md#002-virtual-uplink), so a row whose running total exceeds its
    ``bound`` (the incumbent's power) can never beat it and is stopped early with the value ``inf``.

    Args:
        g: Complex ``[N, I, M_rf]`` effective channels :math:`\mathbf g_i = \mathbf A^H
            \mathbf h_i`.
        gamma: Real ``[N, I]`` linear targets.
        tol: Relative tolerance (raised to ``16 eps`` of the dtype).
        max_iter: Iteration limit (non-convergence counts as infeasible: ``inf``).
        q_max: Divergence threshold of :math:`\mathbf 1^T \mathbf q`.
        bound: Real ``[N]`` early-stop bound (``None``: none).

    Returns:
        Real ``[N]`` :math:`\mathbf 1^T \mathbf q^*`, ``inf`` where infeasible, not
        converged or above ``bound``.
    """
    n, i_users, _ = g.shape
    rdtype = gamma.dtype
    tiny = torch.finfo(rdtype).tiny
    tol = max(tol, 16.0 * torch.finfo(rdtype).eps)
    # G = [g_1 ... g_I] = Q T: T has the Gram matrix of G (T^H T = G^H G)
    T = torch.linalg.qr(g.mT, mode="r")[1]  # [N, min(M_rf, I), I]
    eye = torch.eye(T.shape[-2], dtype=T.dtype, device=T.device)
    stop = torch.full((n,), q_max, dtype=rdtype, device=g.device)
    if bound is not None:
        stop = torch.minimum(stop, bound.to(rdtype) * (1.0 + 1e-9))
    q = torch.zeros(n, i_users, dtype=rdtype, device=g.device)
    ok = torch.zeros(n, dtype=torch.bool, device=g.device)
    act = torch.arange(n, device=g.device)
    for _ in range(max_iter):
        if act.numel() == 0:
            break
        Ta, qa = T[act], q[act]
        N = eye + (Ta * qa.unsqueeze(-2).to(Ta.dtype)) @ Ta.mH  # I + sum_j q_j t_j t_j^H
        X, info = torch.linalg.solve_ex(N, Ta)
        t = (Ta.conj() * X).sum(-2).real  # t_i = t_i^H N^{-1} t_i
        den = 1.0 - qa * t
        lam = torch.where(den > 0, t / den.clamp_min(tiny), 0.0)
        q_new = gamma[act] / lam.clamp_min(tiny)
        bad = (
            (info != 0)
            | (lam <= 0).any(-1)
            | ~torch.isfinite(q_new).all(-1)
            | (q_new.sum(-1) > stop[act])
        )
        done = ~bad & ((q_new - qa).abs().amax(-1) <= tol * q_new.amax(-1))
        q[act] = torch.where(bad.unsqueeze(-1), qa, q_new)
        ok[act] = done
        act = act[~bad & ~done]
    total = q.sum(-1)
    return torch.where(ok, total, torch.full_like(total, math.inf))


def finalize_hybrid_design(
    h: torch.Tensor,
    gamma: torch.Tensor,
    analog: torch.Tensor,
    p_max: float,
    *,
    tol: float = 1e-10,
    max_iter: int = 500,
    q_max: float = 1e12,
) -> tuple[HybridBeamformer, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Digital precoders and powers for fixed analog beams, paper 002 eqs. (16)-(23), (34).

    The virtual-uplink fixed point gives the unit-norm MMSE beamformers :math:`\mathbf B^*`
    and :math:`\mathbf q^*`; eq. (22) :math:`\mathbf C_C(\mathbf B^*, \mathbf A)\mathbf p^* =
    \mathbf 1` the downlink powers that meet every target exactly on ``h``; eq. (34) projects
    them onto :math:`\mathbf w^T \mathbf p \le P_{\max}` (undefined powers of a singular
    :math:`\mathbf C_C` are set to 0 first, negative ones are clipped by eq. 34 itself).

    Args:
        h: Complex ``[B, I, M]`` channels the design is made for (known CSI).
        gamma: Real ``[B, I]`` linear SINR targets (margins included).
        analog: Complex ``[B, M, M_rf]`` analog precoder.
        p_max: :math:`P_{\max}` (linear).
        tol: Fixed-point tolerance.
        max_iter: Fixed-point iteration limit.
        q_max: Divergence threshold of the fixed point.

    Returns:
        ``(beamformer, power [B], design_power [B], feasible [B], pmax_scaled [B])`` as in
        :class:`GreedySolution`.
    """
    g = h @ analog.conj()  # [B, I, M_rf]: g_i = A^H h_i
    up = virtual_uplink_fixed_point(g, gamma, tol=tol, max_iter=max_iter, q_max=q_max)
    psi = g.unsqueeze(-1) @ g.conj().unsqueeze(-2)  # Psi_i = g_i g_i^H, eq. (3)
    down = downlink_powers(psi, up.digital, gamma)
    p_star = torch.nan_to_num(down.power, nan=0.0, posinf=0.0, neginf=0.0)
    p, scaled = scale_to_pmax(p_star, p_max)
    digital = up.digital * p.sqrt().unsqueeze(-2).to(up.digital.dtype)
    design = torch.where(up.feasible, up.q.sum(-1), torch.full_like(p[:, 0], math.inf))
    feasible = up.feasible & down.feasible & ~scaled
    return HybridBeamformer(analog=analog, digital=digital), p.sum(-1), design, feasible, scaled


def greedy_hybrid_beamforming(
    h: torch.Tensor,
    gamma: torch.Tensor,
    codebook: torch.Tensor,
    num_rf: int,
    p_max: float,
    *,
    steps: int | None = None,
    init_covariance: torch.Tensor | None = None,
    tol: float = 1e-10,
    max_iter: int = 500,
    q_max: float = 1e12,
    screening: str = "gram",
) -> GreedySolution:
    r"""Greedy correction hybrid beamforming, paper 002 Sec. III ([35, Alg. 2]), batched.

    See the module docstring for the steps (eq. 35 initialization, cyclic chain updates with
    eqs. 14 and 19-21, the virtual uplink fixed point of [58, Alg. 2], eqs. 22-23 and 34).
    All instances of the batch and all trial codewords of a step are solved in one call of
    the fixed point; only the :math:`L_{rf}` greedy steps are a Python loop.

    Args:
        h: Complex ``[B, I, M]`` channels known at the transmitter (:math:`\hat{\mathbf h}_i`).
        gamma: Real ``[B, I]`` linear SINR targets :math:`\gamma_i > 0` (margins included).
        codebook: Complex ``[M, A]`` unit-norm codebook (columns), :math:`\Psi_0 = \mathbf I`.
        num_rf: RF chains :math:`M_{rf}` (``I <= M_rf <= A``).
        p_max: :math:`P_{\max}` (linear) of eq. (34).
        steps: Greedy steps :math:`L_{rf}` (default ``2 M_rf``, the paper's G-HBF).
        init_covariance: Complex ``[B, I, M, M]`` covariance for eq. (35); ``None`` uses
            :math:`\hat{\mathbf h}_i \hat{\mathbf h}_i^H`.
        tol: Relative tolerance of the fixed point (raised to ``16 eps`` in single precision).
        max_iter: Fixed-point iteration limit (non-convergence counts as infeasible).
        q_max: Divergence threshold of :math:`\mathbf 1^T \mathbf q`.
        screening: How trial codewords are ranked: ``"gram"`` (:func:`gram_uplink_power`,
            default, with early stopping at the incumbent's power) or ``"physics"``
            (:func:`~beamgym.physics.power.virtual_uplink_fixed_point` on every trial). Both
            select the same codewords (up to ties at the 1e-9 level); the final design always
            uses the physics functions.

    Returns:
        :class:`GreedySolution`.
    """
    check_tensor(h, "h", ndim=3, complex_=True)
    check_tensor(codebook, "codebook", ndim=2, complex_=True)
    check_tensor(gamma, "gamma", ndim=2, complex_=False)
    b, n_users, m = h.shape
    a_count = codebook.shape[1]
    if codebook.shape[0] != m or tuple(gamma.shape) != (b, n_users):
        raise ValueError(
            f"shapes do not match: h {tuple(h.shape)}, gamma {tuple(gamma.shape)} (want "
            f"[B, I]), codebook {tuple(codebook.shape)} (want [M, A] with M = {m})"
        )
    if bool((gamma <= 0).any()):
        raise ValueError("gamma (linear SINR targets) must be > 0; convert dB with 10**(dB/10)")
    if not 1 <= n_users <= num_rf <= a_count:
        raise ValueError(f"need 1 <= I <= M_rf <= A, got I={n_users}, M_rf={num_rf}, A={a_count}")
    if screening not in SCREENINGS:
        raise ValueError(f"screening must be one of {SCREENINGS}, got {screening!r}")
    steps = 2 * num_rf if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    cb = codebook.to(device=h.device, dtype=h.dtype)
    gamma = gamma.to(device=h.device, dtype=h.real.dtype)
    dev = h.device
    # eq. (35): codeword scores from the instantaneous outer products or a covariance
    R0 = h.unsqueeze(-1) @ h.conj().unsqueeze(-2) if init_covariance is None else init_covariance
    idx = topk_codeword_indices(codeword_scores_eq35(cb, R0.to(h.dtype)), num_rf)
    G = h @ cb.conj()  # [B, I, A]: G[b, i, a] = a_a^H h_i
    cur = _uplink_power(_effective(G, idx), gamma, tol, max_iter, q_max, screening=screening)
    history, idx_history = [cur], [idx]
    arange_a = torch.arange(a_count, device=dev)
    batch = torch.arange(b, device=dev)
    for step in range(steps):
        r = step % num_rf
        others = torch.cat([idx[:, :r], idx[:, r + 1 :]], dim=1)  # [B, M_rf - 1]
        dup = (arange_a.view(1, -1, 1) == others.unsqueeze(1)).any(-1)  # [B, A]
        incumbent = arange_a.view(1, -1) == idx[:, r : r + 1]
        trial = ~dup & ~incumbent
        rows, cols = torch.nonzero(trial, as_tuple=True)
        cand = idx[rows].clone()
        cand[:, r] = cols
        p_trial = _uplink_power(
            _effective(G[rows], cand),
            gamma[rows],
            tol,
            max_iter,
            q_max,
            screening=screening,
            bound=cur[rows],
        )
        powers = torch.full((b, a_count), math.inf, dtype=cur.dtype, device=dev)
        powers[rows, cols] = p_trial
        powers[batch, idx[:, r]] = cur  # eq. (21) includes the incumbent codeword
        best_p, best_a = powers.min(dim=1)
        better = best_p < cur  # keep the incumbent on ties: the power never increases
        idx = idx.clone()
        idx[:, r] = torch.where(better, best_a, idx[:, r])
        cur = torch.where(better, best_p, cur)
        history.append(cur)
        idx_history.append(idx)
    analog = select_codewords(cb, idx)
    bf, power, design, feasible, scaled = finalize_hybrid_design(
        h, gamma, analog, p_max, tol=tol, max_iter=max_iter, q_max=q_max
    )
    return GreedySolution(
        beamformer=bf,
        indices=idx,
        power=power,
        design_power=design,
        feasible=feasible,
        pmax_scaled=scaled,
        history=torch.stack(history, 1),
        index_history=torch.stack(idx_history, 0),
    )
