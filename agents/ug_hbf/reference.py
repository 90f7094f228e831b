r"""Reference implementation of the U-G-HBF model of :mod:`agents.ug_hbf.model` (paper 002).

The straightforward first implementation of the unrolled model (Sec. IV-A, Fig. 2), kept so
that the tests can check the optimized path of :mod:`agents.ug_hbf.model` against it: the
same selections, the same powers and the same gradients up to round-off
(``tests/agents/test_ug_hbf.py``). Nothing else uses it.

* :func:`compact_uplink_fixed_point_reference`: the fixed point of problem (31) with the
  active rows gathered every step and the matrices rebuilt from the coordinates each time;
* :func:`trial_uplink_power_reference`: the trial power of one analog configuration through
  it (the backward pass is that of :class:`~agents.ug_hbf.model.TrialUplinkPower`);
* :func:`final_design_reference`: problem (31) with the implicit gradient of Thm. IV.2
  evaluated also at inference;
* :func:`ug_hbf_forward_reference`: the model with the straight-through softmin of eq. (36)
  also at inference.
"""

from __future__ import annotations

import math

import torch

from agents.ug_hbf.model import (
    GCN,
    TrialUplinkPower,
    UGHBFModelConfig,
    UGHBFOutput,
    _coupling,
    _subspace,
    gcn_features,
    shift_operator,
    straight_through_softmin,
    virtual_coefficients,
)
from beamgym.envs.outage_hybrid import OutageHybridKnown, OutageHybridTask
from beamgym.physics.codebooks import codeword_scores_eq35, select_codewords, topk_codeword_indices
from beamgym.physics.power import coupling_matrix, implicit_virtual_uplink, scale_to_pmax

__all__ = [
    "compact_uplink_fixed_point_reference",
    "final_design_reference",
    "trial_uplink_power_reference",
    "ug_hbf_forward_reference",
]


@torch.no_grad()
def compact_uplink_fixed_point_reference(
    U: torch.Tensor,
    c: torch.Tensor,
    gamma: torch.Tensor,
    *,
    tol: float = 1e-8,
    max_iter: int = 300,
    power_steps: int = 1,
    bound: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Reference of :func:`~agents.ug_hbf.model.compact_uplink_fixed_point` (same iterates).

    Virtual-uplink fixed point of problem (31) for the virtual covariances of eq. (27).

    The iteration of [58, Alg. 2] (:func:`~beamgym.physics.power.virtual_uplink_fixed_point`),
    :math:`q_i \leftarrow \gamma_i/\lambda_{\max}(\widehat\Psi_{i,i}, \mathbf N_i)`, :math:`\mathbf
    N_i = \mathbf I + \sum_{j\ne i} q_j\widehat\Psi_{j,i}`, from :math:`\mathbf q = \mathbf 0`, in
    the subspace coordinates :math:`\mathbf u_i` (module docstring). The top generalized
    eigenvector is tracked by ``power_steps`` warm-started power iterations per fixed-point
    step (:math:`\mathbf b \leftarrow \mathbf N_i^{-1}\widehat\Psi_{i,i}\mathbf b`, Cholesky
    solves only) and :math:`\lambda` is its Rayleigh quotient, so no eigendecomposition is
    needed. Rows whose total exceeds ``bound`` are stopped (the iterates rise), like
    :func:`agents.rules.greedy.gram_uplink_power`.

    Args:
        U: Complex ``[n, K, I]`` subspace coordinates (columns :math:`\mathbf u_i`).
        c: Real ``[n, I, 4]`` coefficients of :func:`virtual_coefficients`.
        gamma: Real ``[n, I]`` targets.
        tol: Relative tolerance on :math:`\mathbf q`.
        max_iter: Iteration limit (non-convergence is infeasible).
        power_steps: Power iterations per fixed-point step.
        bound: Real ``[n]`` early-stop bound on :math:`\mathbf 1^T\mathbf q` (or ``None``).

    Returns:
        ``(q [n, I], b [n, K, I] unit-norm, ok [n])``.
    """
    n, k, i_users = U.shape
    rd = gamma.dtype
    tiny = torch.finfo(rd).tiny
    u = U.mT  # [n, I, K]
    eye = torch.eye(k, dtype=U.dtype, device=U.device)
    q = torch.zeros(n, i_users, dtype=rd, device=U.device)
    b = u / torch.view_as_real(u).square().sum((-1, -2)).sqrt().clamp_min(tiny).unsqueeze(-1)
    ok = torch.zeros(n, dtype=torch.bool, device=U.device)
    stop = torch.full((n,), 1e12, dtype=rd, device=U.device)
    if bound is not None:
        stop = torch.minimum(stop, bound.to(rd))
    act = torch.arange(n, device=U.device)
    for _ in range(max_iter):
        if act.numel() == 0:
            break
        ua, qa, ba, ca = u[act], q[act], b[act], c[act]
        w3 = (qa * ca[..., 2]).to(U.dtype)
        Mx = (U[act] * w3.unsqueeze(-2)) @ U[act].mH  # sum_j q_j c3_j u_j u_j^H
        outer = ua.unsqueeze(-1) * ua.conj().unsqueeze(-2)
        s4 = (qa * ca[..., 3]).sum(-1, keepdim=True)
        diag = (1.0 + s4 - qa * ca[..., 3]).to(U.dtype)
        N = Mx.unsqueeze(1) - w3[..., None, None] * outer + diag[..., None, None] * eye
        L, info = torch.linalg.cholesky_ex(N)
        c1 = ca[..., 0:1].to(U.dtype)
        c2 = ca[..., 1:2].to(U.dtype)
        for _ in range(power_steps):
            y = c1 * ua * (ua.conj() * ba).sum(-1, keepdim=True) + c2 * ba
            ba = torch.cholesky_solve(y.unsqueeze(-1), L).squeeze(-1)
            nrm = torch.view_as_real(ba).square().sum((-1, -2)).sqrt()  # (fast complex norm)
            ba = ba / nrm.clamp_min(tiny).unsqueeze(-1).to(ba.dtype)
        num = ca[..., 0] * (ua.conj() * ba).sum(-1).abs().square() + ca[..., 1]
        den = (ba.conj().unsqueeze(-2) @ N @ ba.unsqueeze(-1)).real[..., 0, 0]
        lam = num / den.clamp_min(tiny)
        q_new = gamma[act] / lam.clamp_min(tiny)
        bad = (
            (info != 0).any(-1)
            | ~torch.isfinite(q_new).all(-1)
            | (q_new.sum(-1) > stop[act])
            | ~torch.isfinite(ba.real).all(-1).all(-1)
        )
        done = ~bad & ((q_new - qa).abs().amax(-1) <= tol * q_new.amax(-1))
        q[act] = torch.where(bad.unsqueeze(-1), qa, q_new)
        b[act] = torch.where(bad[:, None, None], b[act], ba)
        ok[act] = done
        act = act[~bad & ~done]
    return q, b.mT, ok


class _TrialUplinkPowerReference(TrialUplinkPower):
    """:class:`~agents.ug_hbf.model.TrialUplinkPower` with the reference fixed point."""

    @staticmethod
    def forward(ctx, g, c, gamma, bound, tol):  # noqa: D102
        Q, U = _subspace(g)
        q, bs, ok = compact_uplink_fixed_point_reference(U, c, gamma, tol=tol, bound=bound)
        C, X = _coupling(U, bs, c, gamma)
        p, info = torch.linalg.solve_ex(C, torch.ones_like(gamma).unsqueeze(-1))
        p = p.squeeze(-1)
        ok = ok & (info == 0) & (p > 0).all(-1) & torch.isfinite(p).all(-1)
        total = torch.where(ok, q.sum(-1), torch.full_like(q[:, 0], math.inf))
        ctx.save_for_backward(g, c, gamma, Q, U, bs, q, p, ok)
        return total


def trial_uplink_power_reference(
    g: torch.Tensor,
    c: torch.Tensor,
    gamma: torch.Tensor,
    bound: torch.Tensor | None = None,
    *,
    tol: float = 1e-6,
) -> torch.Tensor:
    """:func:`~agents.ug_hbf.model.trial_uplink_power` on the reference fixed point."""
    if bound is not None:
        bound = bound.detach()
    return _TrialUplinkPowerReference.apply(g, c, gamma, bound, tol)


def final_design_reference(g: torch.Tensor, c: torch.Tensor, gamma: torch.Tensor, p_max: float):
    """Reference of ``agents.ug_hbf.model._final_design`` (Jacobian also without gradients).

    Problem (31) with the implicit gradient (Thm. IV.2), eq. (32) and eq. (34).
    """
    Q, U = _subspace(g)
    i_users = g.shape[1]
    k = U.shape[-2]
    u = U.mT  # [B, I, K]
    outer = u.unsqueeze(-1) * u.conj().unsqueeze(-2)  # [B, I, K, K]
    eye_k = torch.eye(k, dtype=g.dtype, device=g.device)
    cc = c.to(g.dtype)
    sig = cc[..., 0, None, None] * outer + cc[..., 1, None, None] * eye_k
    itf = cc[..., 2, None, None] * outer + cc[..., 3, None, None] * eye_k
    eye_i = torch.eye(i_users, dtype=torch.bool, device=g.device)[None, :, :, None, None]
    Psi = torch.where(eye_i, sig.unsqueeze(2), itf.unsqueeze(2))  # [B, i, j, K, K]
    q, bs, ok = implicit_virtual_uplink(Psi, gamma)
    C = coupling_matrix(Psi, bs, gamma)
    p, info = torch.linalg.solve_ex(C, torch.ones_like(gamma).unsqueeze(-1))
    p = p.squeeze(-1)
    ok = ok & (info == 0) & torch.isfinite(p).all(-1) & (p > 0).all(-1)
    p = torch.where(ok.unsqueeze(-1), p, torch.zeros_like(p))
    p_m, scaled = scale_to_pmax(p, p_max)  # eq. (34)
    b_full = Q @ bs  # [B, M_rf, I], unit-norm columns
    digital = b_full * p_m.clamp_min(0).sqrt().unsqueeze(-2).to(b_full.dtype)
    return digital, p_m.sum(-1), ok, scaled & ok


def ug_hbf_forward_reference(
    task: OutageHybridTask,
    known: OutageHybridKnown,
    net: GCN,
    config: UGHBFModelConfig,
) -> UGHBFOutput:
    r"""Reference of :func:`~agents.ug_hbf.model.ug_hbf_forward` (same outputs to round-off).

    The model :math:`\mathcal M(\mathcal S;\theta)` of paper 002 Fig. 2 on a batch.

    Runs in double precision (the implicit gradient needs it); the network in its own dtype.
    See the module docstring for the steps (eqs. 27-36, 19-21, 31-34, 49).

    Args:
        task: OutageHybrid-v0 task (codebook, ``M_rf``, ``P_max``, CSI model).
        known: What the transmitter knows.
        net: The :class:`GCN`.
        config: The architecture (``fully_digital`` needs ``num_rf = M``).

    Returns:
        :class:`UGHBFOutput` (differentiable in ``net``'s parameters).
    """
    cfg = task.config
    h = known.h_est.to(torch.complex128)
    gamma = known.gamma.to(torch.float64)
    p_dtype = next(net.parameters()).dtype
    feats = gcn_features(known, cfg.p_max, with_xi=cfg.csi != "perfect").to(p_dtype)
    S = shift_operator(known.h_est).to(p_dtype)
    z = net(feats, S)
    c = virtual_coefficients(z.to(torch.float64), h)
    cb = task.codebook.to(torch.complex128)
    b, i_users, m = h.shape
    r_count = cfg.num_rf
    if config.fully_digital:
        if r_count != cfg.M:
            raise ValueError(
                f"the fully digital model (U-FDBF-GCN) needs num_rf = M = {cfg.M} (A = the "
                f"unitary DFT matrix), got num_rf = {r_count}; make the env with num_rf={cfg.M}"
            )
        idx = torch.arange(m, device=h.device).expand(b, m)
        A = cb.expand(b, m, m)
    else:
        R0 = h.unsqueeze(-1) @ h.conj().unsqueeze(-2)
        idx = topk_codeword_indices(codeword_scores_eq35(cb, R0), r_count)  # eq. (35)
        A = select_codewords(cb, idx)
        G_cb = (h @ cb.conj()).mT  # [B, A, I]: a_a^H h_i
        n_cb = cb.shape[1]
        ar = torch.arange(n_cb, device=h.device)
        cur = trial_uplink_power_reference(h @ A.conj(), c, gamma).detach()
        steps = config.greedy_steps or r_count
        for step in range(steps):
            r = step % r_count
            others = torch.cat([idx[:, :r], idx[:, r + 1 :]], dim=1)
            allowed = ~(ar.view(1, -1, 1) == others.unsqueeze(1)).any(-1)  # [B, A]
            rows, cols = torch.nonzero(allowed, as_tuple=True)
            g_cur = h @ A.conj()  # [B, I, M_rf]
            keep = torch.ones(r_count, dtype=torch.bool, device=h.device)
            keep[r] = False
            g_t = torch.where(
                keep.view(1, 1, -1),
                g_cur[rows],
                G_cb[rows, cols].unsqueeze(-1).expand(-1, -1, r_count),
            )
            # trials above the bound cannot win (and have softmin weight < e^-7 in training)
            factor = 2.5 if torch.is_grad_enabled() else 1.0 + 1e-5
            bound = factor * torch.where(torch.isfinite(cur), cur, torch.full_like(cur, 1e12))
            p_trial = trial_uplink_power_reference(g_t, c[rows], gamma[rows], bound[rows])
            powers = torch.full((b, n_cb), math.inf, dtype=torch.float64, device=h.device)
            powers = powers.index_put((rows, cols), p_trial)
            a_new, best = straight_through_softmin(powers, cb, config.beam_annealing, idx[:, r])
            onehot = torch.zeros(r_count, dtype=h.dtype, device=h.device)
            onehot[r] = 1.0
            A = A * (1 - onehot) + a_new.unsqueeze(-1) * onehot
            idx = idx.clone()
            idx[:, r] = best
            cur = powers.detach()[torch.arange(b, device=h.device), best]
    g = h @ A.conj()
    digital, power, ok, scaled = final_design_reference(g, c, gamma, cfg.p_max)
    return UGHBFOutput(A, idx, digital, power, ok, scaled, z)
