r"""U-G-HBF-GCN of paper 002: the unrolled greedy hybrid beamformer with a GCN error model.

Schynol, Pesavento, "Hybrid Downlink Beamforming with Outage Constraints under Imperfect CSI
using Model-Driven Deep Learning" (paper 002), Sec. IV-A (architecture, eqs. 25-34), IV-B
(initialization, eq. 35), IV-C (model gradient, eqs. 36-49, App. A) and V-A-2/3 (the
configurations U-G-HBF-GCN, U-G-HBF-FCN and U-FDBF-GCN).

The model :math:`\mathcal M(\mathcal S; \theta)` (Fig. 2) is the greedy correction algorithm
of Sec. III (:mod:`agents.rules.greedy`) run on *virtual* channel covariances:

1. A GCN :math:`\Phi_{gcn}` (eqs. 28-30, :class:`GCN`) maps per-user features
   :math:`[\log\|\hat{\mathbf R}_i\|_F^2, \log\gamma_i, \log\xi_i, \log P_{\max}]` and the shift
   operator :math:`\mathbf S` (eq. 29, channel correlation) to four positive coefficients
   :math:`z_{i,1..4}` per user.
2. Virtual covariances, eq. (27), with :math:`\hat{\mathbf R}_i = \hat{\mathbf h}_i\hat{\mathbf
   h}_i^H` (instantaneous CSI, Sec. II-A) and unit-norm orthogonal DFT codewords
   (:math:`\mathbf A^H\mathbf A = \mathbf I`):
   :math:`\widehat\Psi_{i,i} = z_{i,1}\mathbf g_i\mathbf g_i^H + z_{i,2}\rho_i\mathbf I` (wanted
   signal), :math:`\widehat\Psi_{i,j} = z_{i,3}\mathbf g_i\mathbf g_i^H + z_{i,4}\rho_i\mathbf I`
   (:math:`j \ne i`, interference), with :math:`\mathbf g_i = \mathbf A^H\hat{\mathbf h}_i` and
   :math:`\rho_i = \mathrm{Tr}(\hat{\mathbf R}_i)/M`; :math:`\widehat\Psi_{0,i} = \mathbf I`.
3. The greedy of eqs. (19)-(21) unrolled over :math:`L_{rf} = M_{rf}` selections (Table 1) from
   the eq. (35) start: every codeword is tried in the place of RF chain
   :math:`r^{(\ell)} = (\ell - 1) \bmod M_{rf}`, each trial solves the virtual uplink problem
   (31) (:func:`trial_uplink_power`) and the argmin is kept. In training the selection is the
   deterministic straight-through softmin of eq. (36) (:func:`straight_through_softmin`): the
   forward pass is the hard argmin, the backward pass differentiates the softmin proxy.
4. The final digital precoders and uplink powers solve problem (31) for the final analog
   beams and are differentiated implicitly, Theorem IV.2 / eq. (49)
   (:func:`beamgym.physics.power.implicit_virtual_uplink`), the downlink powers follow from eq.
   (32) and are projected by eq. (34).

The trial powers of step 3 enter only through :math:`\|\mathbf q^{(\ell,a)}\|_1`. Their
gradient is the q-part of eq. (49) contracted with :math:`\mathbf 1`, which by strong duality
of (38) (the value of (31) equals the value of (38), Lemma IV.1) is the derivative of the
Lagrangian of (38) at its solution: :math:`\partial\mathbf 1^T\mathbf q^*/\partial
\widehat\Psi_{i,i} = -\frac{q_i}{\gamma_i}\check{\mathbf b}_i\check{\mathbf b}_i^H`,
:math:`\partial\mathbf 1^T\mathbf q^*/\partial\widehat\Psi_{i,j} = q_i\check{\mathbf b}_j
\check{\mathbf b}_j^H` with :math:`\check{\mathbf b}_i = \sqrt{p_i}\mathbf b_i` (the
right-hand-side blocks (73)-(74) of App. A weighted by :math:`\mathbf 1`;
:class:`TrialUplinkPower`; tested equal to :func:`~beamgym.physics.power.
uplink_solution_jacobian` and to finite differences).

Computation. All virtual covariances are a scaled identity plus rank-one terms in the span of
the :math:`I` effective channels, so problem (31) is solved in that :math:`I`-dimensional
subspace (:math:`\mathbf G = \mathbf Q\mathbf T`, QR): the top generalized eigenvector of
:math:`(\widehat\Psi_{i,i}, \mathbf N_i)` lies in it because :math:`\lambda \ge z_{i,2}\rho_i /
c_i`, the complement's value (docs/readings.md#002-ug-hbf-subspace). This makes the fully
digital variant (:math:`\mathbf A` = the unitary DFT matrix, :math:`M_{rf} = M`) as cheap as
the hybrid one. Without gradients (``solve``) the model evaluates values only: the trials skip
the autograd function, the selection is the hard argmin (the forward value of eq. 36) and the
final design skips the Jacobian of Thm. IV.2. Both fixed points build the matrices of eq. (27)
once and freeze finished rows by masks, because on CPU the cost per operation on these small
tensors, not the arithmetic, dominates. :mod:`agents.ug_hbf.reference` keeps the first,
straightforward implementation; the tests check that this one selects the same codewords and
gives the same powers and gradients up to round-off.
"""

from __future__ import annotations

import dataclasses
import math
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import nn

from beamgym._validation import check_int, check_positive, check_tensor
from beamgym.envs.outage_hybrid import OutageHybridKnown, OutageHybridTask
from beamgym.physics.codebooks import codeword_scores_eq35, select_codewords, topk_codeword_indices
from beamgym.physics.power import (
    ImplicitUplink,
    coupling_matrix,
    downlink_powers,
    phase_normalize,
    scale_to_pmax,
    uplink_solution_jacobian,
)

__all__ = [
    "ARCHS",
    "ARCH_KEYS",
    "ENV_ID",
    "GCN",
    "MODEL_KEYS",
    "UGHBFModelConfig",
    "UGHBFOutput",
    "TrialUplinkPower",
    "compact_uplink_fixed_point",
    "exact_uplink_fixed_point",
    "gcn_features",
    "shift_operator",
    "straight_through_softmin",
    "trial_uplink_power",
    "true_sinr",
    "ug_hbf_forward",
    "virtual_coefficients",
]

#: The environment of the model.
ENV_ID = "beamgym/OutageHybrid-v0"
#: Env fields a model must share with the env it runs on (sizes, CSI model, the trained
#: distribution of targets and pilot powers).
MODEL_KEYS: tuple[str, ...] = (
    "n_x",
    "n_y",
    "num_rf",
    "num_users",
    "csi",
    "gamma_db_range",
    "p_max_db",
)
#: Keys of the ``model_config`` stored with a checkpoint that rebuild the architecture.
ARCH_KEYS = (
    "arch",
    "fully_digital",
    "layers",
    "width",
    "degree",
    "coef_bound",
    "beam_annealing",
    "greedy_steps",
)
#: Network types: the GCN of eq. (28) (degree F_gcn = 1) or per-user fully connected nets
#: (F_gcn = 0, U-G-HBF-FCN, Sec. V-A-3).
ARCHS: tuple[str, ...] = ("gcn", "fcn")
#: Number of coefficients per user, F_out = 4 (eq. 27).
F_OUT = 4


@dataclasses.dataclass(frozen=True)
class UGHBFModelConfig:
    """Architecture of U-G-HBF-GCN / -FCN / U-FDBF-GCN (paper 002 Sec. IV-A, V-A-2, Table 1)."""

    arch: str = "gcn"
    """``"gcn"`` (eq. 28 with degree ``degree``) or ``"fcn"`` (degree 0: per-user MLPs)."""
    fully_digital: bool = False
    """U-FDBF-GCN: A is the unitary DFT matrix (needs ``num_rf = M``), no greedy."""
    layers: int = 3
    """GCN layers [L_gcn]. Table 1: 3."""
    width: int = 32
    """Latent features [F^(l)]. Table 1: 32 (64 for U-G-HBF-FCN, Sec. V-A-3)."""
    degree: int = 1
    """Filter degree [F_gcn] of eq. (28). Table 1: 1 (0 for U-G-HBF-FCN)."""
    coef_bound: float = 8.0
    """Soft bound [beta_o] of the output activation exp(b tanh(x/b)). Table 1: 8."""
    beam_annealing: float = 5.0
    """Softmin annealing [beta_M] of eq. (36). Table 1: 5."""
    greedy_steps: int = 0
    """Greedy selections [L_rf]; 0 means M_rf (Table 1)."""

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if not isinstance(self.fully_digital, bool):
            raise ValueError(f"fully_digital must be a bool, got {self.fully_digital!r}")
        check_int(self.layers, "layers")
        check_int(self.width, "width")
        check_int(self.degree, "degree", minimum=0)
        check_int(self.greedy_steps, "greedy_steps", minimum=0)
        check_positive(self.coef_bound, "coef_bound")
        check_positive(self.beam_annealing, "beam_annealing")
        if self.arch == "fcn" and self.degree != 0:
            raise ValueError("arch='fcn' is the GCN of degree 0 (Sec. V-A-3); set degree=0")


# ---- the GCN, eqs. (28)-(30) ------------------------------------------------------------------
def shift_operator(h_est: torch.Tensor) -> torch.Tensor:
    r"""Shift operator of the GCN, paper 002 eq. (29), for instantaneous CSI.

    With :math:`\hat{\mathbf R}_i = \hat{\mathbf h}_i\hat{\mathbf h}_i^H`:

    .. math:: [\mathbf S]_{i_1,i_2} = \frac{|\mathrm{Tr}(\hat{\mathbf R}_{i_1}\hat{\mathbf
              R}_{i_2})|}{\|\hat{\mathbf R}_{i_1}\|_F\|\hat{\mathbf R}_{i_2}\|_F}
              = \frac{|\hat{\mathbf h}_{i_1}^H\hat{\mathbf h}_{i_2}|^2}{\|\hat{\mathbf
              h}_{i_1}\|^2\|\hat{\mathbf h}_{i_2}\|^2}\ (i_1 \ne i_2),\qquad [\mathbf S]_{i,i}=0

    Args:
        h_est: Complex ``[B, I, M]`` CSI :math:`\hat{\mathbf h}_i`.

    Returns:
        Real ``[B, I, I]`` in [0, 1] with zero diagonal.
    """
    n2 = h_est.abs().square().sum(-1).clamp_min(torch.finfo(h_est.real.dtype).tiny)
    c = (h_est.conj() @ h_est.mT).abs().square() / (n2.unsqueeze(-1) * n2.unsqueeze(-2))
    return c * (1.0 - torch.eye(c.shape[-1], dtype=c.dtype, device=c.device))


def gcn_features(known: OutageHybridKnown, p_max: float, *, with_xi: bool = True) -> torch.Tensor:
    r"""Input features per user, paper 002 eq. (30).

    .. math:: [\mathbf Z^{(0)}]_{i,:} = [\log\|\hat{\mathbf R}_i\|_F^2\;\; \log\gamma_i\;\;
              \log\xi_i\;\; \log P_{\max}]

    with :math:`\|\hat{\mathbf R}_i\|_F^2 = \|\hat{\mathbf h}_i\|^4`. ``with_xi=False`` drops
    :math:`\log\xi_i` (perfect CSI has no CSI-quality feature).

    Args:
        known: What the transmitter knows (``h_est`` ``[B, I, M]``, ``gamma``, ``xi``).
        p_max: :math:`P_{\max}` (linear).
        with_xi: Include :math:`\log\xi_i`.

    Returns:
        Real ``[B, I, 4]`` (``[B, I, 3]`` without ``xi``), dtype of ``known.gamma``.
    """
    tiny = torch.finfo(known.gamma.dtype).tiny
    n2 = known.h_est.abs().square().sum(-1).clamp_min(tiny)
    cols = [2.0 * torch.log(n2), torch.log(known.gamma)]
    if with_xi:
        cols.append(torch.log(known.xi.clamp_min(tiny)))
    cols.append(torch.full_like(n2, math.log(p_max)))
    return torch.stack(cols, dim=-1)


class GCN(nn.Module):
    r"""Graph convolutional network :math:`\Phi_{gcn}`, paper 002 eq. (28).

    .. math:: \mathbf Z^{(\ell')} = \phi^{(\ell')}\Big(\sum_{f=0}^{F_{gcn}} \mathbf S^f
              \mathbf Z^{(\ell'-1)}\Theta_f^{(\ell')} + \mathbf 1(\theta_b^{(\ell')})^T\Big)

    with ReLU inside and :math:`\phi^{(L_{gcn})}(x) = e^{\bar\beta_o\tanh(x/\bar\beta_o)}` at the
    output (soft bounds :math:`[e^{-\bar\beta_o}, e^{\bar\beta_o}]`, Sec. V-A-2); the input
    features are normalized by a batchnorm layer (Sec. V-A-2). Degree 0 is the per-user fully
    connected network of U-G-HBF-FCN. Permutation equivariant in the users.

    Args:
        in_features: :math:`F_{in}` (4 with :math:`\xi`, eq. 30).
        width: Latent width :math:`F^{(\ell')}`.
        layers: :math:`L_{gcn}`.
        degree: :math:`F_{gcn}`.
        coef_bound: :math:`\bar\beta_o`.
    """

    def __init__(
        self, in_features: int, width: int, layers: int, degree: int, coef_bound: float
    ) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(in_features)
        dims = [in_features] + [width] * (layers - 1) + [F_OUT]
        self.theta = nn.ModuleList(
            nn.ModuleList(nn.Linear(dims[k], dims[k + 1], bias=f == 0) for f in range(degree + 1))
            for k in range(layers)
        )
        self.coef_bound = float(coef_bound)
        last = self.theta[-1][0]
        # start near z = (0.67, e^-4, 1, e^-4): the greedy with a 1.7 dB margin, light loading
        # (docs/readings.md#002-ug-hbf-eq27)
        with torch.no_grad():
            for lin in self.theta[-1]:
                lin.weight.mul_(0.1)
            last.bias.copy_(torch.tensor([-0.4, -4.0, 0.0, -4.0]))

    def forward(self, x: torch.Tensor, S: torch.Tensor) -> torch.Tensor:
        """Coefficients ``[B, I, 4]`` of eq. (27) from the features of eq. (30) and ``S`` (29)."""
        b, i, f = x.shape
        z = self.norm(x.reshape(b * i, f)).reshape(b, i, f)
        for k, taps in enumerate(self.theta):
            y, zs = 0.0, z
            for d, lin in enumerate(taps):
                if d > 0:
                    zs = S @ zs
                y = y + lin(zs)
            if k < len(self.theta) - 1:
                z = torch.relu(y)
            else:
                z = torch.exp(self.coef_bound * torch.tanh(y / self.coef_bound))
        return z


def virtual_coefficients(z: torch.Tensor, h_est: torch.Tensor) -> torch.Tensor:
    r"""Coefficients of the virtual covariances of eq. (27): ``[z1, z2 rho, z3, z4 rho]``.

    :math:`\widehat\Psi_{i,i} = c_{i,1}\mathbf g_i\mathbf g_i^H + c_{i,2}\mathbf I`,
    :math:`\widehat\Psi_{i,j\ne i} = c_{i,3}\mathbf g_i\mathbf g_i^H + c_{i,4}\mathbf I`, with
    :math:`\rho_i = \mathrm{Tr}(\hat{\mathbf R}_i)/M = \|\hat{\mathbf h}_i\|^2/M` (eq. 27 with
    :math:`\mathbf A^H\mathbf A = \mathbf I`).

    Args:
        z: Real ``[B, I, 4]`` GCN output.
        h_est: Complex ``[B, I, M]``.

    Returns:
        Real ``[B, I, 4]`` in the dtype of ``h_est.real``.
    """
    rho = h_est.abs().square().sum(-1) / h_est.shape[-1]
    z = z.to(rho.dtype)
    return torch.stack([z[..., 0], z[..., 1] * rho, z[..., 2], z[..., 3] * rho], dim=-1)


# ---- the virtual uplink problem (31) in the span of the channels ------------------------------
def _subspace(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``Q [n, R, K]``, ``U [n, K, I]``: ``g_i = Q u_i`` (reduced QR of ``[g_1 ... g_I]``)."""
    Q, T = torch.linalg.qr(g.mT, mode="reduced")
    return Q, T


def _coupling(U: torch.Tensor, bs: torch.Tensor, c: torch.Tensor, gamma: torch.Tensor):
    """Eq. (33) in the subspace: ``[n, I, I]`` and the gains ``|u_i^H b_j|^2`` ``[n, I, I]``."""
    X = (U.conj().mT @ bs).abs().square()  # [n, i, j] = |u_i^H b_j|^2
    eye = torch.eye(X.shape[-1], dtype=X.dtype, device=X.device)
    diag = (c[..., 0] * torch.diagonal(X, dim1=-2, dim2=-1) + c[..., 1]) / gamma
    off = c[..., 2:3] * X + c[..., 3:4]
    return torch.diag_embed(diag) - off * (1 - eye), X


def _real_form(X: torch.Tensor) -> torch.Tensor:
    """Real ``[..., 2K, 2K]`` form ``[[Re X, -Im X], [Im X, Re X]]`` of complex ``[..., K, K]``."""
    return torch.cat(
        [torch.cat([X.real, -X.imag], dim=-1), torch.cat([X.imag, X.real], dim=-1)], dim=-2
    )


#: Working-set size below which :func:`compact_uplink_fixed_point` no longer drops finished rows
#: (gathering costs more than iterating on a few frozen rows).
_COMPACT_MIN = 32


@torch.no_grad()
def compact_uplink_fixed_point(
    U: torch.Tensor,
    c: torch.Tensor,
    gamma: torch.Tensor,
    *,
    tol: float = 1e-8,
    max_iter: int = 300,
    power_steps: int = 1,
    bound: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Virtual-uplink fixed point of problem (31) for the virtual covariances of eq. (27).

    The iteration of [58, Alg. 2] (:func:`~beamgym.physics.power.virtual_uplink_fixed_point`),
    :math:`q_i \leftarrow \gamma_i/\lambda_{\max}(\widehat\Psi_{i,i}, \mathbf N_i)`, :math:`\mathbf
    N_i = \mathbf I + \sum_{j\ne i} q_j\widehat\Psi_{j,i}`, from :math:`\mathbf q = \mathbf 0`, in
    the subspace coordinates :math:`\mathbf u_i` (module docstring). The top generalized
    eigenvector is tracked by ``power_steps`` warm-started power iterations per fixed-point
    step (:math:`\mathbf b \leftarrow \mathbf N_i^{-1}\widehat\Psi_{i,i}\mathbf b`, linear
    solves only) and :math:`\lambda` is its Rayleigh quotient, so no eigendecomposition is
    needed. Rows whose total exceeds ``bound`` are stopped (the iterates rise), like
    :func:`agents.rules.greedy.gram_uplink_power`.

    Computation: the matrices :math:`\widehat\Psi_{i,i}` and :math:`\widehat\Psi_{j,i}`
    (:math:`j \ne i`, which by eq. (27) depend on :math:`j` only) are built once, so that
    :math:`\mathbf N` of all users is one matrix product per step; finished rows are frozen by
    masks and dropped from the working set only once a quarter of it has finished, and never
    from a working set below ``_COMPACT_MIN`` rows (the per-operation cost of small tensors
    dominates on CPU). The iterates are those of
    :func:`agents.ug_hbf.reference.compact_uplink_fixed_point_reference` up to round-off
    (tested).

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
    rd, dev = gamma.dtype, U.device
    tiny = torch.finfo(rd).tiny
    u = U.mT.unsqueeze(-1)  # [n, I, K, 1]
    outer = u @ u.mH  # [n, I, K, K]: u_i u_i^H
    eye = torch.eye(k, dtype=U.dtype, device=dev)
    cc = c.to(U.dtype)[..., None, None]  # [n, I, 4, 1, 1]
    # real symmetric [[Re, -Im], [Im, Re]] forms (b^H X b = x^T X_r x for x = [Re b; Im b])
    sig = _real_form(cc[:, :, 0] * outer + cc[:, :, 1] * eye)  # Psi_hat_{i,i}  [n, I, 2K, 2K]
    # Psi_hat_{j,i} (j != i) flattened: N_i = I + sum_j [j != i] q_j Psi_hat_{j,i}
    itf = _real_form(cc[:, :, 2] * outer + cc[:, :, 3] * eye).reshape(n, i_users, -1)
    k2 = 2 * k
    eye2 = torch.eye(k2, dtype=rd, device=dev)
    off = 1.0 - torch.eye(i_users, dtype=rd, device=dev)  # [i, j]: j != i
    # per-user scalars are kept as [n, I, 1, 1] (they broadcast against b without reshaping)
    q = torch.zeros(n, i_users, 1, 1, dtype=rd, device=dev)
    gam = gamma[..., None, None]
    b = torch.cat([u.real, u.imag], dim=-2)  # [n, I, 2K, 1]
    b = b / (b * b).sum(-2, keepdim=True).sqrt().clamp_min(tiny)
    ok = torch.zeros(n, dtype=torch.bool, device=dev)
    stop = torch.full((n,), 1e12, dtype=rd, device=dev)
    if bound is not None:
        stop = torch.minimum(stop, bound.to(rd))
    # the working set: rows ``ws`` of the batch (None: all), ``act`` those still iterating
    ws = None
    qw, bw, okw, sw, iw, gw, tw = q, b, ok, sig, itf, gam, stop
    act = torch.ones(n, dtype=torch.bool, device=dev)
    y = sw @ bw  # Psi_hat_{i,i} b_i
    for _ in range(max_iter):
        m = qw.shape[0]
        N = ((qw.view(m, 1, i_users) * off) @ iw).view(m, i_users, k2, k2) + eye2
        bn, den, info = bw, None, None
        for _ in range(power_steps):
            x, info = torch.linalg.solve_ex(N, y)  # N^{-1} Psi_hat_{i,i} b (N = N^T > 0)
            x2 = (x * x).sum(-2, keepdim=True)
            # b^T N b of the normalized b = x / ||x||, by N x = y (no product with N)
            den = (x * y).sum(-2, keepdim=True) / x2
            bn = x / x2.sqrt().clamp_min(tiny)
            y = sw @ bn
        num = (bn * y).sum(-2, keepdim=True)
        if den is None:
            den = (bn * (N @ bn)).sum(-2, keepdim=True)
        q_new = gw / (num / den.clamp_min(tiny)).clamp_min(tiny)
        # q_new > 0 and a NaN of b reaches it: the total is below the bound iff all is well
        good = q_new.sum((1, 2, 3)) <= tw
        if info is not None:
            good = good & (info == 0).all(-1)
        conv = (q_new - qw).abs().amax((1, 2, 3)) <= tol * q_new.amax((1, 2, 3))
        upd = act & good
        sel = upd.view(m, 1, 1, 1)
        qw = torch.where(sel, q_new, qw)
        bw = torch.where(sel, bn, bw)
        fin = upd & conv
        okw = okw | fin
        act = upd ^ fin  # still iterating: updated, not converged
        n_act = int(act.sum())
        if n_act == 0 or (4 * n_act <= 3 * m and m >= _COMPACT_MIN):
            # write the working set back; continue on the rows still iterating
            if ws is None:
                q, b, ok = qw, bw, okw
                ws = torch.arange(n, device=dev)
            else:
                q[ws], b[ws], ok[ws] = qw, bw, okw
            if n_act == 0:
                break
            keep = act.nonzero().squeeze(-1)
            ws = ws[keep]
            qw, bw, okw, y, act = qw[keep], bw[keep], okw[keep], y[keep], act[keep]
            sw, iw, gw, tw = sig[ws], itf[ws], gam[ws], stop[ws]
    else:
        if ws is None:
            q, b, ok = qw, bw, okw
        else:
            q[ws], b[ws], ok[ws] = qw, bw, okw
    b = torch.complex(b[..., :k, 0], b[..., k:, 0])  # [n, I, K]
    return q[..., 0, 0], b.mT, ok


def _trial_solution(
    U: torch.Tensor, c: torch.Tensor, gamma: torch.Tensor, bound: torch.Tensor | None, tol: float
) -> tuple[torch.Tensor, ...]:
    """Forward of :class:`TrialUplinkPower`: ``(total [n], q, b, p, ok)`` from coordinates ``U``."""
    q, bs, ok = compact_uplink_fixed_point(U, c, gamma, tol=tol, bound=bound)
    C, _ = _coupling(U, bs, c, gamma)
    p, info = torch.linalg.solve_ex(C, torch.ones_like(gamma).unsqueeze(-1))
    p = p.squeeze(-1)
    ok = ok & (info == 0) & (p > 0).all(-1) & torch.isfinite(p).all(-1)
    total = torch.where(ok, q.sum(-1), torch.full_like(q[:, 0], math.inf))
    return total, q, bs, p, ok


def _trial_power_value(
    g: torch.Tensor, c: torch.Tensor, gamma: torch.Tensor, bound: torch.Tensor | None, tol: float
) -> torch.Tensor:
    """The value of :func:`trial_uplink_power` without autograd (no ``Q`` factor, no checks)."""
    U = torch.linalg.qr(g.mT, mode="r")[1]  # the T of _subspace (same LAPACK factorization)
    return _trial_solution(U, c, gamma, bound, tol)[0]


class TrialUplinkPower(torch.autograd.Function):
    r"""Differentiable :math:`\|\mathbf q^*\|_1` of problem (31) for one analog trial (eq. 36).

    Forward: :func:`compact_uplink_fixed_point` and the downlink powers of eq. (32). Backward:
    the implicit gradient of the optimal value (module docstring; eq. (49) contracted with
    :math:`\mathbf 1`), with respect to the effective channels :math:`\mathbf g_i` and the
    coefficients of eq. (27); zero where the trial is infeasible (value ``inf``).
    """

    @staticmethod
    def forward(ctx, g, c, gamma, bound, tol):  # noqa: D102
        Q, U = _subspace(g)
        total, q, bs, p, ok = _trial_solution(U, c, gamma, bound, tol)
        ctx.save_for_backward(g, c, gamma, Q, U, bs, q, p, ok)
        return total

    @staticmethod
    def backward(ctx, grad_total):  # noqa: D102
        g, c, gamma, Q, U, bs, q, p, ok = ctx.saved_tensors
        w = torch.where(ok, grad_total, torch.zeros_like(grad_total))
        w = torch.nan_to_num(w, nan=0.0, posinf=0.0, neginf=0.0)
        pz = torch.where(ok.unsqueeze(-1), p, torch.zeros_like(p))
        inner = bs.conj().mT @ U  # [n, j, i] = b_j^H u_i
        X = inner.abs().square()
        eye = torch.eye(q.shape[-1], dtype=q.dtype, device=q.device)
        a_s = -q * pz / gamma  # G_S,i = a_s,i b_i b_i^H
        # G_T,i = q_i sum_{j != i} p_j b_j b_j^H
        wt = q.unsqueeze(-1) * (pz.unsqueeze(-2) * (1 - eye))  # [n, i, j]
        d_c1 = a_s * torch.diagonal(X, dim1=-2, dim2=-1)
        d_c2 = a_s
        d_c3 = (wt * X.mT).sum(-1)
        d_c4 = wt.sum(-1)
        grad_c = torch.stack([d_c1, d_c2, d_c3, d_c4], -1) * w[:, None, None]
        bR = Q @ bs  # [n, R, I] beams in R-dim
        # dL/dg_i (torch convention) = 2 (c1 G_S,i + c3 G_T,i) g_i
        diag_in = torch.diagonal(inner, dim1=-2, dim2=-1)  # b_i^H u_i  [n, i]
        t_s = (c[..., 0] * a_s).to(bR.dtype).unsqueeze(-2) * bR * diag_in.unsqueeze(-2)
        coef_t = (c[..., 2:3] * wt).to(bR.dtype) * inner.mT  # [n, i, j]: c3_i w_ij b_j^H u_i
        t_t = (bR.unsqueeze(1) * coef_t.unsqueeze(-2)).sum(-1)  # [n, i, R]
        grad_g = 2.0 * (t_s.mT + t_t) * w.to(bR.dtype)[:, None, None]
        return grad_g, grad_c, None, None, None


def trial_uplink_power(
    g: torch.Tensor,
    c: torch.Tensor,
    gamma: torch.Tensor,
    bound: torch.Tensor | None = None,
    *,
    tol: float = 1e-6,
) -> torch.Tensor:
    r"""Total virtual-uplink power :math:`\|\mathbf q^*\|_1` of problem (31), differentiable.

    Args:
        g: Complex ``[n, I, M_rf]`` effective channels :math:`\mathbf g_i = \mathbf A^H\hat{\mathbf
            h}_i` (rows), ``M_rf >= I``.
        c: Real ``[n, I, 4]`` coefficients (:func:`virtual_coefficients`).
        gamma: Real ``[n, I]`` linear targets.
        bound: Optional real ``[n]``: trials above it are not finished (value ``inf``).
        tol: Relative tolerance of the fixed point (1e-6 ranks the greedy's trials; the final
            design is solved to 1e-12).

    Returns:
        Real ``[n]``: the power, ``inf`` where problem (31) is infeasible, did not converge or
        exceeds ``bound``.
    """
    check_tensor(g, "g", ndim=3, complex_=True)
    check_tensor(c, "c", ndim=3, complex_=False)
    check_tensor(gamma, "gamma", ndim=2, complex_=False)
    n, i_users, r = g.shape
    if c.shape != (n, i_users, F_OUT) or gamma.shape != (n, i_users):
        raise ValueError(
            f"c must be [n, I, 4] and gamma [n, I] for g {tuple(g.shape)}, got "
            f"{tuple(c.shape)} and {tuple(gamma.shape)}"
        )
    if r < i_users:
        raise ValueError(f"g needs M_rf >= I (got M_rf={r}, I={i_users})")
    if bound is not None:
        bound = bound.detach()
    tol = check_positive(tol, "tol")
    if not (torch.is_grad_enabled() and (g.requires_grad or c.requires_grad)):
        return _trial_power_value(g, c, gamma, bound, tol)
    return TrialUplinkPower.apply(g, c, gamma, bound, tol)


def straight_through_softmin(
    powers: torch.Tensor, codebook: torch.Tensor, beta: float, incumbent: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Deterministic straight-through beam selection, paper 002 eqs. (19), (36).

    Forward: the codeword of the smallest trial power (eq. 19/21; the incumbent is kept unless
    a trial is strictly better, so the power never increases). Backward: the softmin proxy

    .. math:: \mathbf a = \frac{\sum_a \check{\mathbf a}_a e^{-\beta_M\|\mathbf q^{(\ell,a)}\|_1
              /q_{\min}}}{\sum_a e^{-\beta_M\|\mathbf q^{(\ell,a)}\|_1/q_{\min}}},\qquad
              q_{\min} = \min_a\|\mathbf q^{(\ell,a)}\|_1

    (:math:`q_{\min}` is treated as a constant; docs/readings.md#002-ug-hbf-training).
    Infeasible trials (``inf``) get weight 0.

    Args:
        powers: Real ``[B, A]`` trial powers (``inf``: not allowed / infeasible).
        codebook: Complex ``[M, A]`` codewords.
        beta: :math:`\beta_M > 0`.
        incumbent: Int64 ``[B]`` codeword of the chain before the step.

    Returns:
        ``(a [B, M], index [B])``: the selected codeword (value exactly the hard one, gradient
        of the softmin) and its index.
    """
    check_tensor(powers, "powers", ndim=2, complex_=False, finite=False)
    if bool(torch.isnan(powers).any()):
        raise ValueError("powers must not contain NaN (use inf for excluded codewords)")
    if codebook.ndim != 2 or codebook.shape[1] != powers.shape[1]:
        raise ValueError(
            f"codebook must be [M, A] with A = {powers.shape[1]}, got {tuple(codebook.shape)}"
        )
    check_positive(beta, "beta")
    b = powers.shape[0]
    rows = torch.arange(b, device=powers.device)
    cur = powers[rows, incumbent]
    best_p, best = powers.detach().min(-1)
    best = torch.where(best_p < cur.detach(), best, incumbent)
    finite = torch.isfinite(powers)
    qmin = torch.where(torch.isfinite(best_p), best_p, torch.ones_like(best_p)).clamp_min(1e-300)
    logits = torch.where(
        finite, -beta * powers / qmin.unsqueeze(-1), torch.full_like(powers, -math.inf)
    )
    has = finite.any(-1, keepdim=True)
    logits = torch.where(has, logits, torch.zeros_like(logits))
    w = torch.softmax(logits, dim=-1)
    soft = w.to(codebook.dtype) @ codebook.mT  # [B, M]
    hard = codebook.mT[best]
    return hard + (soft - soft.detach()), best


# ---- the unrolled model -----------------------------------------------------------------------
class UGHBFOutput(NamedTuple):
    r"""Output of :func:`ug_hbf_forward` (batch first).

    Attributes:
        analog: Complex ``[B, M, M_rf]`` analog beams (straight-through: the value is the
            selected codewords, the gradient that of eq. 36).
        indices: Int64 ``[B, M_rf]`` selected codewords.
        digital: Complex ``[B, M_rf, I]`` columns :math:`\sqrt{p_i}\mathbf b_i` after eq. (34).
        power: Real ``[B]`` weighted power :math:`\mathbf w^T\mathbf p_{\mathcal M}`.
        feasible: Bool ``[B]``: problem (31) solved, eq. (32) powers positive.
        pmax_scaled: Bool ``[B]``: eq. (34) scaled the powers.
        z: Real ``[B, I, 4]`` GCN coefficients.
    """

    analog: torch.Tensor
    indices: torch.Tensor
    digital: torch.Tensor
    power: torch.Tensor
    feasible: torch.Tensor
    pmax_scaled: torch.Tensor
    z: torch.Tensor


def _final_design(g: torch.Tensor, c: torch.Tensor, gamma: torch.Tensor, p_max: float):
    """Problem (31) with the implicit gradient (Thm. IV.2), eq. (32) and eq. (34).

    The fixed point of :func:`~beamgym.physics.power.implicit_virtual_uplink` is computed by
    :func:`exact_uplink_fixed_point`; without gradients (inference) the same design comes from
    :func:`_final_design_value`, which skips the Jacobian of Thm. IV.2.
    """
    if not (torch.is_grad_enabled() and (g.requires_grad or c.requires_grad)):
        return _final_design_value(g, c, gamma, p_max)
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
    q, bs, ok = _ImplicitUplinkEq27.apply(Psi, gamma, U.detach(), c.detach(), None)
    C = coupling_matrix(Psi, bs, gamma)
    p, info = torch.linalg.solve_ex(C, torch.ones_like(gamma).unsqueeze(-1))
    p = p.squeeze(-1)
    ok = ok & (info == 0) & torch.isfinite(p).all(-1) & (p > 0).all(-1)
    p = torch.where(ok.unsqueeze(-1), p, torch.zeros_like(p))
    p_m, scaled = scale_to_pmax(p, p_max)  # eq. (34)
    b_full = Q @ bs  # [B, M_rf, I], unit-norm columns
    digital = b_full * p_m.clamp_min(0).sqrt().unsqueeze(-2).to(b_full.dtype)
    return digital, p_m.sum(-1), ok, scaled & ok


@torch.no_grad()
def exact_uplink_fixed_point(
    U: torch.Tensor,
    c: torch.Tensor,
    gamma: torch.Tensor,
    *,
    tol: float = 1e-12,
    max_iter: int = 1000,
    q_max: float = 1e12,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Problem (31) for the covariances of eq. (27) by the exact fixed point, in the subspace.

    The iteration of :func:`~beamgym.physics.power.virtual_uplink_fixed_point` (same start
    :math:`\mathbf q = \mathbf 0`, stopping rule, divergence threshold and flags) with the
    largest generalized eigenvalue of :math:`(\widehat\Psi_{i,i}, \mathbf N_i)` from a
    Cholesky factor and an eigenvalue decomposition, evaluated on the :math:`I`-dimensional
    coordinates :math:`\mathbf u_i` (module docstring) with :math:`\widehat\Psi_{j,i}`
    (:math:`j \ne i`, which by eq. (27) depend on :math:`j` only) built once; the beamformers
    are computed for the final powers only and phase-normalized like
    :func:`~beamgym.physics.power.implicit_virtual_uplink` (last entry real, non-negative).
    Finished rows leave the batch as in :func:`compact_uplink_fixed_point`.

    Args:
        U: Complex ``[n, K, I]`` subspace coordinates.
        c: Real ``[n, I, 4]`` coefficients of :func:`virtual_coefficients`.
        gamma: Real ``[n, I]`` targets.
        tol: Relative tolerance (raised to ``16 eps`` of the dtype).
        max_iter: Iteration limit.
        q_max: Divergence threshold of :math:`\mathbf 1^T\mathbf q`.

    Returns:
        ``(q [n, I], b [n, K, I] unit-norm, feasible [n])``: ``feasible`` is converged to
        finite, positive powers.
    """
    n, k, i_users = U.shape
    rd, cd, dev = gamma.dtype, U.dtype, U.device
    tiny = torch.finfo(rd).tiny
    tol = max(tol, 16.0 * torch.finfo(rd).eps)
    u = U.mT.unsqueeze(-1)  # [n, I, K, 1]
    outer = u @ u.mH
    eye = torch.eye(k, dtype=cd, device=dev)
    cc = c.to(cd)[..., None, None]
    sig = cc[:, :, 0] * outer + cc[:, :, 1] * eye  # Psi_hat_{i,i}
    itf = torch.view_as_real(cc[:, :, 2] * outer + cc[:, :, 3] * eye).reshape(n, i_users, -1)
    off = 1.0 - torch.eye(i_users, dtype=rd, device=dev)

    def whitened(qv: torch.Tensor, sv: torch.Tensor, iv: torch.Tensor):
        # L^{-1} Psi_hat_{i,i} L^{-H} with N_i = L L^H = I + sum_{j != i} q_j Psi_hat_{j,i}
        m = qv.shape[0]
        N = torch.view_as_complex(((qv.unsqueeze(-2) * off) @ iv).view(m, i_users, k, k, 2))
        L = torch.linalg.cholesky_ex(N + eye)[0]
        X = torch.linalg.solve_triangular(L, sv, upper=False)
        return torch.linalg.solve_triangular(L, X.mH, upper=False), L

    q = torch.zeros(n, i_users, dtype=rd, device=dev)
    conv = torch.zeros(n, dtype=torch.bool, device=dev)
    ws = None
    qw, cw, sw, iw, gw = q, conv, sig, itf, gamma
    act = torch.ones(n, dtype=torch.bool, device=dev)
    for _ in range(max_iter):
        m = qw.shape[0]
        lam = torch.linalg.eigvalsh(whitened(qw, sw, iw)[0])[..., -1]
        q_new = torch.where(lam > 0, gw / lam.clamp_min(tiny), math.inf)
        upd = act & (q_new.sum(-1) <= q_max)  # (False also where non-finite)
        done = (q_new - qw).abs().amax(-1) <= tol * q_new.amax(-1)
        qw = torch.where(upd.unsqueeze(-1), q_new, qw)
        fin = upd & done
        cw = cw | fin
        act = upd ^ fin
        n_act = int(act.sum())
        if n_act == 0 or (4 * n_act <= 3 * m and m >= _COMPACT_MIN):
            if ws is None:
                q, conv = qw, cw
                ws = torch.arange(n, device=dev)
            else:
                q[ws], conv[ws] = qw, cw
            if n_act == 0:
                break
            keep = act.nonzero().squeeze(-1)
            ws = ws[keep]
            qw, cw, act = qw[keep], cw[keep], act[keep]
            sw, iw, gw = sig[ws], itf[ws], gamma[ws]
    else:
        if ws is None:
            q, conv = qw, cw
        else:
            q[ws], conv[ws] = qw, cw
    X, L = whitened(q, sig, itf)
    v = torch.linalg.eigh(0.5 * (X + X.mH))[1][..., -1:]  # [n, I, K, 1]
    b = torch.linalg.solve_triangular(L.mH, v, upper=True)[..., 0]
    b = b / torch.linalg.vector_norm(b, dim=-1, keepdim=True)
    b = phase_normalize(b.mT)
    feasible = conv & (q > 0).all(-1) & torch.isfinite(q).all(-1)
    return q, b, feasible


class _ImplicitUplinkEq27(ImplicitUplink):
    """:func:`~beamgym.physics.power.implicit_virtual_uplink` for the covariances of eq. (27).

    The same outputs and backward pass (Thm. IV.2, eq. 49, on ``Psi``); the forward fixed
    point is :func:`exact_uplink_fixed_point` on the coordinates ``U`` and coefficients ``c``
    that ``Psi`` is built from (constants here; the gradient reaches them through ``Psi``).
    """

    @staticmethod
    def forward(ctx, Psi, gamma, U, c, _unused):  # noqa: D102
        with torch.no_grad():
            q, digital, feasible = exact_uplink_fixed_point(U, c, gamma)
            down = downlink_powers(Psi, digital, gamma)
            jac, ok = uplink_solution_jacobian(Psi, gamma, q, digital, down.power)
        ctx.save_for_backward(jac)
        ctx.dims = (Psi.shape[1], Psi.shape[-1])
        feasible = feasible & down.feasible & ok
        ctx.mark_non_differentiable(feasible)
        return q, digital, feasible


def _final_design_value(g: torch.Tensor, c: torch.Tensor, gamma: torch.Tensor, p_max: float):
    """:func:`_final_design` at inference: the same design without the implicit gradient.

    Problem (31) by :func:`exact_uplink_fixed_point` (the fixed point of
    :func:`~beamgym.physics.power.implicit_virtual_uplink`), eq. (32) with the residual test of
    :func:`~beamgym.physics.power.downlink_powers`, the positivity conditions of Assumption
    IV.1 and eq. (34). The nonsingularity of the Jacobian of Thm. IV.2, which only the
    gradient needs, is not evaluated.
    """
    Q, U = _subspace(g)
    q, bs, ok = exact_uplink_fixed_point(U, c, gamma)
    C, _ = _coupling(U, bs, c, gamma)
    p, info = torch.linalg.solve_ex(C, torch.ones_like(gamma).unsqueeze(-1))
    resid = (C @ p).squeeze(-1) - 1.0
    p = p.squeeze(-1)
    scale = (C.abs() @ p.abs().unsqueeze(-1)).squeeze(-1).amax(-1)
    small = resid.abs().amax(-1) <= 1e3 * torch.finfo(C.dtype).eps * (1 + scale)
    ok = ok & (info == 0) & small & torch.isfinite(p).all(-1) & (p > 0).all(-1)
    ok = ok & (bs[:, -1, :].abs() > 0).all(-1)  # (phase reference of Thm. IV.2)
    p = torch.where(ok.unsqueeze(-1), p, torch.zeros_like(p))
    p_m, scaled = scale_to_pmax(p, p_max)  # eq. (34)
    b_full = Q @ bs
    digital = b_full * p_m.clamp_min(0).sqrt().unsqueeze(-2).to(b_full.dtype)
    return digital, p_m.sum(-1), ok, scaled & ok


def ug_hbf_forward(
    task: OutageHybridTask,
    known: OutageHybridKnown,
    net: GCN,
    config: UGHBFModelConfig,
    *,
    selection_gradient: bool = True,
) -> UGHBFOutput:
    r"""The model :math:`\mathcal M(\mathcal S;\theta)` of paper 002 Fig. 2 on a batch.

    Runs in double precision (the implicit gradient needs it); the network in its own dtype.
    See the module docstring for the steps (eqs. 27-36, 19-21, 31-34, 49).

    Args:
        task: OutageHybrid-v0 task (codebook, ``M_rf``, ``P_max``, CSI model).
        known: What the transmitter knows.
        net: The :class:`GCN`.
        config: The architecture (``fully_digital`` needs ``num_rf = M``).
        selection_gradient: With gradients enabled, differentiate the greedy's selections
            through the straight-through softmin of eq. (36) (the paper). ``False`` runs the
            greedy as at inference (hard argmin of eq. 19, values only) and treats the selected
            beams as constants, so the gradient reaches the coefficients through the final
            design of Thm. IV.2 alone (docs/readings.md#002-ug-hbf-selection-gradient). The
            forward values are the same either way.

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
        # without gradients: the value path of the trials and the hard choice (the forward
        # value of eq. 36 exactly)
        grad = torch.is_grad_enabled() and selection_gradient
        trial = trial_uplink_power if grad else partial(_trial_power_value, tol=1e-6)
        c_sel = c if grad else c.detach()
        cur = trial(h @ A.conj(), c_sel, gamma, None).detach()
        batch = torch.arange(b, device=h.device)
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
            factor = 2.5 if grad else 1.0 + 1e-5
            bound = factor * torch.where(torch.isfinite(cur), cur, torch.full_like(cur, 1e12))
            p_trial = trial(g_t, c_sel[rows], gamma[rows], bound[rows])
            powers = torch.full((b, n_cb), math.inf, dtype=torch.float64, device=h.device)
            powers = powers.index_put((rows, cols), p_trial)
            if grad:
                a_new, best = straight_through_softmin(powers, cb, config.beam_annealing, idx[:, r])
                onehot = torch.zeros(r_count, dtype=h.dtype, device=h.device)
                onehot[r] = 1.0
                A = A * (1 - onehot) + a_new.unsqueeze(-1) * onehot
            else:
                best_p, best = powers.min(-1)
                best = torch.where(best_p < powers[batch, idx[:, r]], best, idx[:, r])
                A = A.clone()
                A[:, :, r] = cb.mT[best]
            idx = idx.clone()
            idx[:, r] = best
            cur = powers.detach()[batch, best]
    g = h @ A.conj()
    digital, power, ok, scaled = _final_design(g, c, gamma, cfg.p_max)
    return UGHBFOutput(A, idx, digital, power, ok, scaled, z)


def true_sinr(h: torch.Tensor, analog: torch.Tensor, digital: torch.Tensor) -> torch.Tensor:
    r"""Downlink SINR on the true channel, paper 002 eq. (2), unit noise; differentiable.

    :math:`\Psi_i = \mathbf A^H\mathbf h_i\mathbf h_i^H\mathbf A` (eq. 3).

    Args:
        h: Complex ``[B, I, M]`` true channels.
        analog: Complex ``[B, M, M_rf]``.
        digital: Complex ``[B, M_rf, I]`` columns :math:`\sqrt{p_j}\mathbf b_j`.

    Returns:
        Real ``[B, I]`` linear SINR.
    """
    X = ((h @ analog.conj()).conj() @ digital).abs().square()  # |g_i^H d_j|^2
    sig = torch.diagonal(X, dim1=-2, dim2=-1)
    return sig / (X.sum(-1) - sig + 1.0)


def model_summary(config: UGHBFModelConfig, in_features: int) -> dict[str, Any]:
    """JSON-able architecture (eqs. 27-30, 36; Table 1 model parameters) for ``config.json``."""
    return {**dataclasses.asdict(config), "in_features": int(in_features)}
