r"""U-PGA+M of paper 004: the unfolded PGA with momentum and its power-aware variants.

Levy, Shlezinger, "Rapid and Power-Aware Learned Optimization for Modular Receive
Beamforming" (paper 004), Sec. III-B (unfolded PGA+M, eq. 11, log(1+j) loss, Algorithm 2),
Sec. III-B3 (transfer across K and P) and Sec. IV-D (power-aware unfolding, eq. 21-25).

The update rule is a pure function of (state, theta) (:func:`unfolded_layer`,
:func:`unfolded_pga_m`); the learned parameters :math:`\boldsymbol\theta =
\{\boldsymbol\alpha_j, \boldsymbol\beta_j, \boldsymbol\lambda_j\}_{j=0}^{J-1}` are a dict of
real ``[J, P, N, L]`` tensors (one value per entry of the diagonal blocks ``W_p``: the
"block-diagonal matrices" of eq. 11 / 21 stored as panels). Layer ``j`` (Algorithm 1 / 3 with
per-entry hyperparameters):

.. math::
    \mathbf D_j &= 2\nabla_{\mathbf W} R(\mathbf W_j\mathbf A)
                   - \boldsymbol\lambda_j \odot e^{j\angle\mathbf W_j}
                   &&\text{(Thm. 1 eq. 9; eq. 17 with per-entry } \boldsymbol\lambda_j)\\
    \mathbf V &= \mathbf W_j + \boldsymbol\alpha_j \odot \mathbf D_j
                 + \boldsymbol\beta_j \odot (\mathbf W_j - \mathbf W_{j-1})
                   &&\text{(Alg. 1 lines 3-4, eq. 11)}\\
    \mathbf W_{j+1} &= \mathcal P(\mathbf V)
                   &&\text{(eq. 10 / 18 / 20; surrogates eq. 22-23 in training)}

Conventions (shared with :mod:`agents.classical.modular`, whose gradient code is reused):

* the gradient is the steepest-ascent direction ``2 × eq. (9)`` of the sum-rate in nats on
  the receiver's ``H_est`` (docs/readings.md#004-gradient-factor: Theorem 1 is the Wirtinger
  derivative; the factor 2 is kept explicit), so :math:`\boldsymbol\alpha_j = \mu` reproduces
  ``pga_m`` exactly (tested);
* :math:`\mathbf W_{-1} = \mathbf 0` (Algorithm 1 "Init") and a random unit-modulus
  :math:`\mathbf W_0` (:func:`~agents.rules.pga_momentum.random_unit_modulus_panels`, the same
  start as the classical solvers for the same ``seed``), projected onto the feasible set;
* the ℓ1 direction :math:`e^{j\angle\mathbf W}` is 0 at deactivated entries (subgradient).

Projections. Training (``soft=True``) uses differentiable surrogates: eq. (10) itself for C1
(it is differentiable), eq. (22) (:func:`~beamgym.physics.projections.soft_sparse_projection`,
sharpness :math:`s_m`, shift :math:`\zeta_m = \zeta`) for C2, eq. (23)
(:func:`~beamgym.physics.projections.soft_quantized_projection`, sharpness :math:`s_p`) for C3,
and eq. (22) followed by eq. (23) on the phase for C2 and C3 together. Inference always uses
the env's hard projection ``task.project`` (eq. 10 / 18 with the hard ``s_max`` / 20), so every
returned beamformer is feasible.

Transfer (Sec. III-B3). :math:`\boldsymbol\theta` does not depend on ``K``, ``B``, ``T`` or the
SNR, so a model runs unchanged on another number of users. For ``c P`` panels
(:func:`transfer_theta`): ``"kron"`` uses :math:`\mathbf I_c \otimes \boldsymbol\alpha_j` (panel
``p`` takes the parameters of trained panel ``p mod P``, matching ``connectivity_blocks = c``),
``"mean"`` keeps the trained panels and gives the added ones the average over the trained
panels.
"""

from __future__ import annotations

from typing import Any

import torch

from agents.rules.pga_momentum import ModularProblem, l1_direction, pga_momentum_step
from beamgym._validation import check_int, check_number, check_positive
from beamgym.envs.modular_uplink import ModularUplinkKnown, ModularUplinkTask
from beamgym.physics.projections import (
    soft_quantized_phase,
    soft_sparse_projection,
    unit_modulus,
)

__all__ = [
    "ENV_ID",
    "MODEL_KEYS",
    "PANEL_TRANSFERS",
    "THETA_KEYS",
    "WEIGHTINGS",
    "check_theta",
    "init_theta",
    "l1_direction",
    "layer_weights",
    "surrogate_projection",
    "transfer_theta",
    "unfolded_layer",
    "unfolded_pga_m",
    "upga_m_loss",
]

ENV_ID = "beamgym/ModularUplink-v0"
#: Names of the learned tensors (eq. 11: alpha, beta; eq. 21: lambda).
THETA_KEYS: tuple[str, ...] = ("alpha", "beta", "lam")
#: Panel-scaling rules of Sec. III-B3.
PANEL_TRANSFERS: tuple[str, ...] = ("kron", "mean")
#: Env fields a checkpoint must share with the env it runs on (they fix theta's meaning);
#: ``P`` must be a multiple of the trained one; ``K``, ``B``, ``T``, SNR may differ (transfer).
MODEL_KEYS: tuple[str, ...] = ("N", "L", "constraint", "q_levels", "zeta")


# ---- parameters -------------------------------------------------------------------------------
def init_theta(
    J: int,
    panel_shape: tuple[int, int, int],
    *,
    mu: float,
    beta: float,
    lam: float = 0.0,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> dict[str, torch.Tensor]:
    r"""Algorithm 2 "Init: set :math:`\boldsymbol\theta` as fixed hyperparameters".

    Every entry of :math:`\boldsymbol\alpha_j, \boldsymbol\beta_j, \boldsymbol\lambda_j`
    (eq. 11 / 21) starts at the constant ``mu``, ``beta``, ``lam`` of a PGA+M, so the
    untrained model *is* Algorithm 1 / 3 with these constants.

    Args:
        J: Number of layers (iterations) :math:`J \ge 1`.
        panel_shape: ``(P, N, L)``.
        mu: Step on ``2 × eq. (9)`` (sum-rate in nats).
        beta: Momentum.
        lam: ℓ1 weight of eq. (17) (0 unless sparse).
        dtype: Real dtype of the parameters.
        device: Device of the parameters.

    Returns:
        ``{"alpha", "beta", "lam"}``, each a real ``[J, P, N, L]`` tensor.
    """
    J = check_int(J, "J")
    shape = (J, *(check_int(s, "panel_shape") for s in panel_shape))
    vals = {"alpha": mu, "beta": beta, "lam": lam}
    return {
        k: torch.full(shape, check_number(v, k), dtype=dtype, device=device)
        for k, v in vals.items()
    }


def check_theta(theta: dict[str, torch.Tensor]) -> tuple[int, int, int, int]:
    """``(J, P, N, L)`` of learned parameters ``{"alpha", "beta", "lam"}``.

    Raises:
        ValueError: Other keys, or an entry that is not a real ``[J, P, N, L]`` tensor shaped
            like ``theta["alpha"]``.
    """
    if not isinstance(theta, dict) or set(theta) != set(THETA_KEYS):
        got = sorted(theta) if isinstance(theta, dict) else type(theta).__name__
        raise ValueError(f"theta must be a dict with keys {THETA_KEYS}, got {got}")
    shape = tuple(theta["alpha"].shape)
    for k in THETA_KEYS:
        t = theta[k]
        if not isinstance(t, torch.Tensor) or t.is_complex() or tuple(t.shape) != shape:
            raise ValueError(
                f"theta[{k!r}] must be a real tensor of shape {shape} like theta['alpha'], "
                f"got {getattr(t, 'shape', type(t).__name__)}"
            )
        if t.ndim != 4:
            raise ValueError(f"theta[{k!r}] must be [J, P, N, L], got {tuple(t.shape)}")
    return shape  # type: ignore[return-value]


def transfer_theta(
    theta: dict[str, torch.Tensor], P: int, mode: str = "kron"
) -> dict[str, torch.Tensor]:
    r"""Scale a model trained for ``P0`` panels to ``P = c P0`` panels (paper 004 Sec. III-B3).

    * ``"kron"``: :math:`\{\mathbf I_c\otimes\boldsymbol\alpha_j, \mathbf I_c\otimes
      \boldsymbol\beta_j, \mathbf I_c\otimes\boldsymbol\lambda_j\}`: panel ``p`` gets the
      parameters of trained panel ``p mod P0`` (block-diagonal replication);
    * ``"mean"``: the trained panels keep theirs, each added panel gets the average over the
      ``P0`` trained panels ("assigning the added panels an average of the learned
      hyperparameters").

    Args:
        theta: Learned parameters, ``[J, P0, N, L]`` each.
        P: Target number of panels, a positive multiple of ``P0``.
        mode: ``"kron"`` or ``"mean"``.

    Returns:
        Parameters ``[J, P, N, L]`` (the same tensors when ``P == P0``).
    """
    _, p0, _, _ = check_theta(theta)
    P = check_int(P, "P")
    if mode not in PANEL_TRANSFERS:
        raise ValueError(f"panel transfer mode must be one of {PANEL_TRANSFERS}, got {mode!r}")
    if P % p0:
        raise ValueError(
            f"a model trained for P = {p0} panels transfers only to multiples c*{p0} "
            f"(Sec. III-B3), got P = {P}; train a model for this P"
        )
    c = P // p0
    if c == 1:
        return dict(theta)
    if mode == "kron":
        return {k: v.repeat(1, c, 1, 1) for k, v in theta.items()}
    out = {}
    for k, v in theta.items():
        avg = v.mean(1, keepdim=True).expand(-1, P - p0, -1, -1)
        out[k] = torch.cat([v, avg], dim=1)
    return out


# ---- projections ------------------------------------------------------------------------------
def surrogate_projection(
    V: torch.Tensor,
    constraint: str,
    *,
    zeta: float = 0.5,
    q_levels: int = 16,
    sharpness_m: float = 10.0,
    sharpness_p: float = 10.0,
) -> torch.Tensor:
    r"""Differentiable training surrogate of the constraint's projection (paper 004 Sec. IV-D2).

    * ``"unconstrained"``: eq. (10) itself, :math:`v/|v|` (already differentiable);
    * ``"sparse"``: eq. (22), :math:`e^{j\angle v}\,\sigma(s_m(|v| - \zeta_m))` with
      :math:`\zeta_m = \zeta`;
    * ``"quantized"``: eq. (23), :math:`e^{j\hat\phi(\angle v)}` (sum of ``Q`` shifted
      sigmoids, centred on eq. 20's levels, see
      :func:`~beamgym.physics.projections.soft_quantized_phase`);
    * ``"sparse_quantized"``: eq. (22)'s magnitude with eq. (23)'s phase.

    The hard ``S_max`` budget of eq. (15) has no surrogate: in training it is encouraged by the
    ℓ1 target term of eq. (25) (:func:`upga_m_loss`). As the sharpness grows, each surrogate
    tends to the hard projection of eq. (10) / (18) / (20) (tested).

    Args:
        V: ``[..., P, N, L]`` complex pre-projection panels.
        constraint: One of ``beamgym.envs.modular_uplink.CONSTRAINTS``.
        zeta: Threshold :math:`\zeta_m` of eq. (22).
        q_levels: Phase levels ``Q`` of eq. (23).
        sharpness_m: :math:`s_m > 0` of eq. (22).
        sharpness_p: :math:`s_p > 0` of eq. (23).

    Returns:
        Complex tensor of ``V``'s shape (moduli in ``(0, 1]``).
    """
    if constraint == "unconstrained":
        return unit_modulus(V)
    if constraint == "sparse":
        return soft_sparse_projection(V, sharpness_m, zeta)
    if constraint in ("quantized", "sparse_quantized"):
        phi = soft_quantized_phase(torch.angle(V), q_levels, sharpness_p)
        out = torch.polar(torch.ones_like(phi), phi)
        if constraint == "quantized":
            return out
        s = check_positive(sharpness_m, "sharpness_m")
        return out * torch.sigmoid(s * (V.abs() - zeta))
    raise ValueError(
        f"constraint must be 'unconstrained', 'sparse', 'quantized' or 'sparse_quantized', "
        f"got {constraint!r}"
    )


# ---- the unfolded optimizer -------------------------------------------------------------------
def unfolded_layer(
    W: torch.Tensor,
    W_prev: torch.Tensor,
    grad: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    lam: torch.Tensor | None,
    project: Any,
) -> torch.Tensor:
    r"""One U-PGA+M layer, paper 004 Algorithm 1 / 3 lines 3-5 with eq. (11) / (21) weights.

    .. math:: \mathbf W_{j+1} = \mathcal P\big(\mathbf W_j + \boldsymbol\alpha_j \odot
              (\mathbf D - \boldsymbol\lambda_j \odot e^{j\angle\mathbf W_j})
              + \boldsymbol\beta_j \odot (\mathbf W_j - \mathbf W_{j-1})\big)

    Args:
        W: ``[b, P, N, L]`` complex iterate :math:`\mathbf W_j`.
        W_prev: ``[b, P, N, L]`` complex :math:`\mathbf W_{j-1}`.
        grad: ``[b, P, N, L]`` steepest-ascent direction ``2 × eq. (9)`` at ``W``.
        alpha: ``[P, N, L]`` real per-entry steps :math:`\boldsymbol\alpha_j`.
        beta: ``[P, N, L]`` real per-entry momenta :math:`\boldsymbol\beta_j`.
        lam: ``[P, N, L]`` real per-entry ℓ1 weights :math:`\boldsymbol\lambda_j`, or ``None``
            (Algorithm 1, no ℓ1 term).
        project: Callable ``[b, P, N, L] -> [b, P, N, L]`` (hard or surrogate projection).

    Returns:
        ``[b, P, N, L]`` complex :math:`\mathbf W_{j+1}`.
    """
    return pga_momentum_step(W, W_prev, grad, alpha, beta, lam, project)  # the classical step


def unfolded_pga_m(
    task: ModularUplinkTask,
    known: ModularUplinkKnown,
    theta: dict[str, torch.Tensor],
    W0: torch.Tensor,
    *,
    soft: bool = False,
    sharpness_m: float = 10.0,
    sharpness_p: float = 10.0,
    use_lam: bool | None = None,
    need_rates: bool = True,
) -> tuple[list[torch.Tensor], torch.Tensor | None, torch.Tensor]:
    r"""Run the ``J`` unfolded layers on a batch (paper 004 Fig. 2 / Fig. 3), differentiably.

    Args:
        task: The ModularUplink-v0 task the batch belongs to (its ``P`` must equal theta's;
            use :func:`transfer_theta` first for another ``P``).
        known: ``task.known(instance)``: ``H_est`` and the SNR (never the true channel).
        theta: Learned parameters ``{"alpha", "beta", "lam"}`` ``[J, P, N, L]``.
        W0: ``[b, P, N, L]`` complex start (projected first).
        soft: Use the differentiable surrogates (training) instead of the hard projection.
        sharpness_m: :math:`s_m` of eq. (22) (``soft`` only).
        sharpness_p: :math:`s_p` of eq. (23) (``soft`` only).
        use_lam: Include the ℓ1 term (default: iff the constraint is sparse).
        need_rates: Also return every iterate's rate (training, traces); inference skips them
            and computes only the gradients.

    Returns:
        ``(iterates, rates, stalled)``: ``[W_0, ..., W_J]``; ``rates`` ``[J + 1, b]`` the eq. (6)
        sum-rate in nats of each iterate on ``H_est`` (``None`` unless ``need_rates``);
        ``stalled`` ``[b]`` bool, a layer gave a non-finite iterate and the previous one was
        kept (hard mode only).
    """
    c = task.config
    J, P, N, L = check_theta(theta)
    if (P, N, L) != task.panel_shape:
        raise ValueError(
            f"theta is for panels (P, N, L) = {(P, N, L)}, the env has {task.panel_shape}; "
            "scale P with transfer_theta(theta, P) (N and L must match)"
        )
    if use_lam is None:
        use_lam = c.constraint in ("sparse", "sparse_quantized")
    model = ModularProblem(task, known)
    th = {k: v.to(device=task.device, dtype=task.rdtype) for k, v in theta.items()}
    if soft:

        def project(V: torch.Tensor) -> torch.Tensor:
            return surrogate_projection(
                V,
                c.constraint,
                zeta=c.zeta,
                q_levels=c.q_levels,
                sharpness_m=sharpness_m,
                sharpness_p=sharpness_p,
            )

    else:
        project = model.project
    W = project(W0.to(device=task.device, dtype=task.cdtype))
    prev = torch.zeros_like(W)  # W_{-1} = 0
    iterates: list[torch.Tensor] = [W]
    rates: list[torch.Tensor | None] = []
    stalled = torch.zeros(W.shape[0], dtype=torch.bool, device=task.device)
    for j in range(J):
        rate, grad = model.rate_and_grad(W, need_rate=need_rates)
        assert grad is not None
        rates.append(rate)
        lam = th["lam"][j] if use_lam else None
        new = unfolded_layer(W, prev, grad, th["alpha"][j], th["beta"][j], lam, project)
        if not soft:
            fin = torch.isfinite(torch.view_as_real(new)).flatten(1).all(-1)
            stalled = stalled | ~fin
            new = torch.where(fin[:, None, None, None], new, W)
        prev, W = W, new
        iterates.append(W)
    if not need_rates:
        return iterates, None, stalled
    rates.append(model.rate(W))
    return iterates, torch.stack([r for r in rates if r is not None]), stalled


#: Layer weightings of the loss: the paper's log(1+j) (Sec. III-B2) or the final layer only
#: (eq. 12, the objective the log weighting is a surrogate for).
WEIGHTINGS: tuple[str, ...] = ("log", "final")


def layer_weights(
    J: int, weighting: str = "log", *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    r"""Layer weights of the loss over :math:`j = 1, \dots, J`.

    ``"log"``: Sec. III-B2's :math:`\log(1+j)`; ``"final"``: eq. (12)'s :math:`\mathbf W_J`
    only (``[0, ..., 0, 1]``).
    """
    J = check_int(J, "J")
    if weighting == "log":
        return torch.log1p(torch.arange(1, J + 1, dtype=dtype))
    if weighting == "final":
        w = torch.zeros(J, dtype=dtype)
        w[-1] = 1.0
        return w
    raise ValueError(f"layer weighting must be one of {WEIGHTINGS}, got {weighting!r}")


def upga_m_loss(
    rates: torch.Tensor,
    W_J: torch.Tensor,
    num_users: int,
    *,
    gamma: float = 0.0,
    s_max: float | None = None,
    weighting: str = "log",
) -> tuple[torch.Tensor, dict[str, float]]:
    r"""Training loss of U-PGA+M, paper 004 Sec. III-B2 and eq. (25).

    .. math:: \mathcal L = -\frac{1}{|\mathcal D|}\sum_{\mathcal D}\sum_{j=1}^{J}
              \log(1+j)\,\frac{R(\mathbf W_j\mathbf A)}{K}
              + \gamma\,\frac{1}{|\mathcal D|}\sum_{\mathcal D}
              \big(\|\mathbf W_J\|_1 - S_{\max}\big)^2

    The rate is divided by ``K`` (Table I's per-user nats) so one learning rate serves every
    ``K``; the paper's sum over the batch is a mean (the :math:`1/|\mathcal D|` of eq. 25). The
    second term is eq. (25)'s ℓ1 target (printed without its "+" sign,
    docs/readings.md#004-eq25-sign; a penalty must be added to a loss that is minimized);
    ``gamma = 0`` (C1, C3) drops it.

    Args:
        rates: ``[J + 1, b]`` sum-rates in nats of ``W_0 ... W_J`` (from :func:`unfolded_pga_m`).
        W_J: ``[b, P, N, L]`` complex final (surrogate-projected) iterate.
        num_users: ``K``.
        gamma: :math:`\gamma \ge 0`.
        s_max: :math:`S_{\max}` (needed when ``gamma > 0``).
        weighting: ``"log"`` (the paper's, default) or ``"final"`` (see :func:`layer_weights`).

    Returns:
        ``(loss, stats)``: scalar loss and floats ``rate_J`` (per-user nats) and ``l1``.
    """
    J = rates.shape[0] - 1
    w = layer_weights(J, weighting, dtype=rates.dtype).to(rates.device)
    per_user = rates[1:] / num_users  # [J, b]
    loss = -(w[:, None] * per_user).sum(0).mean()
    l1 = W_J.abs().flatten(1).sum(-1)
    if gamma > 0:
        if s_max is None:
            raise ValueError("gamma > 0 (eq. 25's l1 target) needs s_max")
        loss = loss + gamma * (l1 - s_max).square().mean()
    return loss, {"rate_J": float(per_user[-1].detach().mean()), "l1": float(l1.detach().mean())}
