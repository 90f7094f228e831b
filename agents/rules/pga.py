r"""Paper 003's projected gradient ascent (PGA) for hybrid beamforming as pure batched rules.

Paper 003 (Nguyen, Nguyen, Shlezinger, Swindlehurst, Juntti, *Fast Deep Unfolded Hybrid
Beamforming in Multiuser Large MIMO Systems*) maximizes the sum-rate eq. (4) of a fully
connected hybrid precoder :math:`\mathbf F\mathbf W` (problem (5)) by alternating projected
gradient steps, Algorithm 1 (Sec. III):

.. math::
    \mathbf F_{(i,j+1)} = \mathcal P_{\rm uc}\big(\mathbf F_{(i,j)} + \mu_{(i)}
        \nabla_{\mathbf F} R(\mathbf F_{(i,j)}, \mathbf W_{(i)})\big),\quad j < J
        \qquad\text{(eq. (6), (7))}

.. math::
    \mathbf W_{(i+1)} = \sqrt{P_t}\,\frac{\mathbf W_{(i)} + \lambda_{(i)}
        \nabla_{\mathbf W} R(\mathbf F_{(i+1)}, \mathbf W_{(i)})}
        {\|\mathbf F_{(i+1)}(\mathbf W_{(i)} + \lambda_{(i)}\nabla_{\mathbf W} R)\|_F}
        \qquad\text{(eq. (8), (9))}

from the start of eq. (12)-(13), with :math:`\mathcal P_{\rm uc}` the entry-wise unit-modulus
projection eq. (7) and :math:`\mathbf F_{(i+1)} = \mathbf F_{(i,J)}`.

Contents:

* :func:`pga_iteration` -- one outer iteration (Algorithm 1 lines 3-10) as a pure,
  differentiable function of the state and the step sizes theta (the layer of the unfolded
  model, Fig. 1: the classical ``pga`` agent passes constant steps, ``unfolded_pga`` its
  learned ones, through the SAME :func:`pga`);
* :func:`pga` -- Algorithm 1 (lines 1-12), optionally recording every iterate;
* :func:`check_pga_task` / :func:`check_pga_known` -- the env checks of every paper-003 agent.

Gradient convention (docs/readings.md#003-theorem1-factor, #003-step-convention). Theorem 1
(eq. (10)-(11)) is the Wirtinger derivative :math:`\partial R/\partial\mathbf F^*` of the rate
**in nats**: it drops
the :math:`1/\ln 2` of the appendix's eq. (17)-(18). The steepest-ascent direction of the rate
in bits is :math:`(2/\ln 2)\times` eq. (10). The step sizes here multiply **eq. (10)-(11)
as printed** (:func:`beamgym.physics.metrics.hybrid_rate_gradients` with ``form="paper"``),
because (a) Algorithm 1 inserts Theorem 1's expressions into eq. (6) and (8) unchanged, and
(b) only this reading reproduces the independently checked trajectory of the paper's fixed
steps ``mu = 0.01``, ``lambda = 1e-4`` (30 iterations with ``J = 1`` at 10 dB; the gains of
both readings are in BENCHMARKS.md, section "Paper 003: PGA hybrid beamforming"; tested). A
step ``mu`` here equals a step ``mu * ln(2) / 2`` on the steepest-ascent direction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from beamgym._validation import check_tensor
from beamgym.envs.far_field_hybrid import (
    FarFieldHybridInstance,
    FarFieldHybridKnown,
    FarFieldHybridTask,
)
from beamgym.physics.metrics import abs2, as_noise
from beamgym.physics.projections import aligned_analog_precoder, normalize_power
from beamgym.structures import HybridBeamformer, TensorDataclass

__all__ = [
    "ENV_ID",
    "PAPER_LAMBDA",
    "PAPER_MU",
    "StepSize",
    "check_count",
    "check_pga_known",
    "check_pga_task",
    "pga",
    "pga_iteration",
]

#: The env of paper 003's PGA (``analog="phase-shifter"``, ``N_RF = K``).
ENV_ID = "beamgym/FarFieldHybrid-v0"

#: Paper 003 Sec. IV: fixed analog step of the conventional PGA (and the unfolded init).
PAPER_MU = 0.01
#: Paper 003 Sec. IV: fixed digital step of the conventional PGA (and the unfolded init).
PAPER_LAMBDA = 1e-4

StepSize = float | torch.Tensor


# ---- Algorithm 1 as pure functions --------------------------------------------------------------
def _project_power(
    F: torch.Tensor, W: torch.Tensor, power: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Eq. (9) with the square root (docs/readings.md#003-eq9-sqrt), with a guarded start.

    :math:`\mathbf W \leftarrow \sqrt{P_t}\,\mathbf W/\|\mathbf F\mathbf W\|_F`. Where
    :math:`\mathbf F\mathbf W = 0` (only for an all-zero channel estimate) eq. (9) is
    undefined; ``W`` is then replaced by :math:`[\mathbf I_K; \mathbf 0]` first, the same
    fallback as the env's action map, and the entry is flagged.

    Returns:
        ``(W, degenerate)``: ``[B, M, K]`` with :math:`\|\mathbf F\mathbf W\|_F^2 = P_t` and a
        ``[B]`` bool flag.
    """
    norm2 = abs2(F @ W).sum((-2, -1))
    degenerate = norm2 <= torch.finfo(norm2.dtype).tiny
    if bool(degenerate.any()):
        eye = torch.eye(W.shape[-2], W.shape[-1], dtype=W.dtype, device=W.device)
        W = torch.where(degenerate[:, None, None], eye, W)
        norm2 = abs2(F @ W).sum((-2, -1))
    return normalize_power(W, power, analog=F), degenerate


def _theorem1_D(G: torch.Tensor, s2: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
    r"""The ``[B, K, K]`` matrix :math:`\mathbf D` shared by eq. (10) and eq. (11).

    With :math:`G_{kl} = \mathbf h_k^H\mathbf F\mathbf w_l`, :math:`T_k = \sum_l |G_{kl}|^2`
    (so :math:`T_k = \mathrm{tr}(\mathbf F\mathbf V\mathbf F^H\tilde{\mathbf H}_k)`) and
    :math:`I_k = T_k - |G_{kk}|^2`: :math:`D_{kl} = G_{kl}/(T_k + \sigma_n^2) - [l \ne k]\,
    G_{kl}/(I_k + \sigma_n^2)`. Then eq. (10) is :math:`\mathbf H^H\mathbf D\mathbf W^H` and
    eq. (11) is :math:`(\mathbf H\mathbf F)^H\mathbf D` -- the factorization of
    :func:`beamgym.physics.metrics.hybrid_rate_gradients` (``form="paper"``), equal to it to
    rounding (tested), without its per-call input checks. ``off`` is the real ``[K, K]`` mask
    :math:`[l \ne k]` (no ``diagonal`` calls: this is the hot loop).
    """
    p = torch.view_as_real(G).square().sum(-1)  # |G_kl|^2
    a = (p.sum(-1) + s2).reciprocal()  # 1 / (T_k + sigma^2)
    b = ((p * off).sum(-1) + s2).reciprocal()  # 1 / (I_k + sigma^2)
    return G * (a.unsqueeze(-1) - off * b.unsqueeze(-1))


def _off_diagonal(k: int, like: torch.Tensor) -> torch.Tensor:
    r"""Real ``[K, K]`` mask :math:`[l \ne k]` in ``like``'s real dtype and device."""
    return 1.0 - torch.eye(k, dtype=like.real.dtype, device=like.device)


def _unit_modulus(F: torch.Tensor) -> torch.Tensor:
    """Eq. (7) as :func:`beamgym.physics.projections.unit_modulus` (0 -> 1), unchecked."""
    # F / |F|; adding the smallest normal number maps an exact 0 to sgn(tiny) = 1 and leaves
    # every other entry unchanged (two tensor ops instead of four: this is the hot loop)
    return torch.sgn(F + torch.finfo(F.real.dtype).tiny)


def _iteration(
    H: torch.Tensor,
    Hh: torch.Tensor,
    F: torch.Tensor,
    W: torch.Tensor,
    HF: torch.Tensor,
    power: torch.Tensor,
    s2: torch.Tensor,
    off: torch.Tensor,
    mu: StepSize,
    lam: StepSize,
    J: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Body of :func:`pga_iteration` on validated tensors.

    ``Hh`` is the contiguous :math:`\mathbf H^H`, ``HF`` the current :math:`\mathbf H\mathbf F`
    (carried from the previous iteration's digital step), ``power`` and ``s2`` are ``[B]`` and
    ``[B, K]``. All operands are
    3-D, so ``torch.bmm`` replaces ``@``. Returns ``(F, W, H F)`` of the next iterate.
    """
    mm = torch.bmm
    for j in range(J):  # Algorithm 1 lines 3-6: J analog steps at fixed W_(i)
        if j > 0:
            HF = mm(H, F)
        D = _theorem1_D(mm(HF, W), s2, off)
        grad_F = mm(Hh, mm(D, W.mH))  # eq. (10) as printed, O(N M K)
        F = _unit_modulus(F + _step(mu, j) * grad_F)  # eq. (6), (7)
    # line 7: F_(i+1) = F_(i,J) (projected above); lines 8-10: digital step at F_(i+1)
    HF = mm(H, F)
    grad_W = mm(HF.mH, _theorem1_D(mm(HF, W), s2, off))  # eq. (11) as printed
    W = W + lam * grad_W  # eq. (8)
    # eq. (9) with the square root (F W = 0 after a step has measure zero; it maps to W = 0)
    return F, normalize_power(W, power, analog=F), HF


def _step(value: StepSize, index: int) -> StepSize:
    """Step size of inner step ``index``: a scalar, or entry ``index`` of a ``[J]`` tensor."""
    if isinstance(value, torch.Tensor) and value.ndim == 1:
        return value[index]
    return value


def _check_inputs(
    H: torch.Tensor, power: Any, noise_var: Any, J: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate ``H``, the power and the noise once; return ``P`` [B] and ``s2`` [B, K]."""
    check_tensor(H, "H", ndim=3, complex_=True)
    b, k, n = H.shape
    if n < k:
        raise ValueError(f"paper 003 eq. (13) needs N >= K antennas, got N={n} < K={k}")
    check_count(J, "J", 1)
    p = torch.as_tensor(power, dtype=H.real.dtype, device=H.device)
    p = p.expand(b) if p.ndim == 0 else p
    if p.shape != (b,) or not bool(torch.isfinite(p).all()) or bool((p <= 0).any()):
        raise ValueError(f"power (P_t, linear) must be a positive number or [B]={b} tensor")
    return p, as_noise(noise_var, b, k, H)


def pga_iteration(
    H: torch.Tensor,
    F: torch.Tensor,
    W: torch.Tensor,
    power: torch.Tensor | float,
    noise_var: torch.Tensor | float = 1.0,
    *,
    mu: StepSize = PAPER_MU,
    lam: StepSize = PAPER_LAMBDA,
    J: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""One outer iteration of paper 003 Algorithm 1 (lines 3-10), batched and differentiable.

    .. math::
        \mathbf F_{(i,0)} = \mathbf F,\quad
        \mathbf F_{(i,j+1)} = \mathcal P_{\rm uc}\big(\mathbf F_{(i,j)}
            + \mu_j \nabla_{\mathbf F} R(\mathbf F_{(i,j)}, \mathbf W)\big)
            \ \ (j = 0..J-1,\ \text{eq. (6), (7)}),\quad
        \mathbf F' = \mathbf F_{(i,J)}

    .. math::
        \mathbf W' = \sqrt{P_t}\,\frac{\tilde{\mathbf W}}{\|\mathbf F'\tilde{\mathbf W}\|_F},
        \qquad \tilde{\mathbf W} = \mathbf W + \lambda\,\nabla_{\mathbf W}
            R(\mathbf F', \mathbf W)\ \ \text{(eq. (8), (9) with the square root)}

    The gradients are Theorem 1, eq. (10)-(11), as printed (the closed form of
    :func:`beamgym.physics.metrics.hybrid_rate_gradients` with ``form="paper"``, evaluated
    by its :math:`\mathbf D`-matrix factorization; only the gradient each step needs is
    formed, and the inputs are checked once per call, not per inner step; equality to
    ``hybrid_rate_gradients`` is tested). See the module docstring for why the steps multiply
    this form. The digital gradient is taken at the *updated* analog precoder (Algorithm 1
    line 9). :math:`\mathcal P_{\rm uc}` is eq. (7) with
    :func:`beamgym.physics.projections.unit_modulus`'s convention (a zero entry maps to 1).

    The function is pure: the state ``(F, W)`` and the step sizes go in, the next state comes
    out, so a deep-unfolded model can make ``mu``/``lam`` trainable tensors (paper 003
    Sec. III-B, Fig. 1) and backpropagate through it.

    Args:
        H: ``[B, K, N]`` complex channel used by the optimizer (the BS's estimate
            :math:`\tilde{\mathbf H}`, rows :math:`\mathbf h_k^H`).
        F: ``[B, N, M]`` complex unit-modulus analog precoder :math:`\mathbf F_{(i)}`.
        W: ``[B, M, K]`` complex digital precoder :math:`\mathbf W_{(i)}`.
        power: Power budget :math:`P_t` (linear): a positive number or a ``[B]`` tensor.
        noise_var: Noise variance :math:`\sigma_n^2`: scalar, ``[B]`` or ``[B, K]``.
        mu: Analog step :math:`\mu_{(i)} \ge 0`: a number, a 0-d tensor, or a ``[J]`` tensor
            (one step per inner iteration, :math:`\mu_{(i,j)}` of the unfolded model).
        lam: Digital step :math:`\lambda_{(i)} \ge 0` (number or 0-d tensor).
        J: Number of inner analog steps ``J >= 1``.

    Returns:
        ``(F, W)`` of the next iterate: ``[B, N, M]`` unit modulus and ``[B, M, K]`` with
        :math:`\|\mathbf F\mathbf W\|_F^2 = P_t`.
    """
    power_, s2 = _check_inputs(H, power, noise_var, J)
    b, k, n = H.shape
    check_tensor(F, "F", ndim=3, complex_=True)
    check_tensor(W, "W", ndim=3, complex_=True)
    m = F.shape[-1]
    if F.shape != (b, n, m) or W.shape != (b, m, k) or not H.dtype == F.dtype == W.dtype:
        raise ValueError(
            f"F must be [B, N, M] = [{b}, {n}, M] and W [B, M, K] = [{b}, M, {k}] with H's "
            f"dtype {H.dtype}, got {tuple(F.shape)} {F.dtype} and {tuple(W.shape)} {W.dtype}"
        )
    off = _off_diagonal(k, H)
    F, W, _ = _iteration(H, H.mH.contiguous(), F, W, H @ F, power_, s2, off, mu, lam, J)
    return F, W


def pga(
    H: torch.Tensor,
    power: torch.Tensor | float,
    noise_var: torch.Tensor | float = 1.0,
    *,
    mu: StepSize | Sequence[StepSize] = PAPER_MU,
    lam: StepSize | Sequence[StepSize] = PAPER_LAMBDA,
    I: int = 30,  # noqa: E741  (the paper's symbol)
    J: int = 1,
    trace: bool = False,
) -> tuple[list[HybridBeamformer], torch.Tensor]:
    r"""Paper 003 Algorithm 1: PGA hybrid beamforming from the start of eq. (12)-(13).

    Line 1 initializes :math:`\mathbf F_{(0)}` by eq. (12) with the aligned sign and
    :math:`\mathbf W_{(0)} = \mathbf F_{(0)}^\dagger\mathbf H^\dagger` scaled by eq. (13)
    (Moore-Penrose pseudo-inverses; docs/readings.md#003-eq13-pinv; the map of
    :func:`beamgym.physics.projections.hybrid_initialization`). Lines 2-11 run ``I`` outer
    iterations of :func:`pga_iteration`; line 12 returns :math:`(\mathbf F_{(I)},
    \mathbf W_{(I)})`. The number of RF chains is ``M = K`` (eq. (12) has one column per
    user).

    Args:
        H: ``[B, K, N]`` complex channel used by the optimizer (the estimate), ``N >= K``.
        power: Power budget :math:`P_t` (linear): a positive number or a ``[B]`` tensor.
        noise_var: Noise variance :math:`\sigma_n^2`: scalar, ``[B]`` or ``[B, K]``.
        mu: Analog step(s): one value for all iterations, or a sequence of ``I`` values
            :math:`\mu_{(i)}` (each a number, a 0-d tensor or a ``[J]`` tensor).
        lam: Digital step(s): one value, or a sequence of ``I`` values :math:`\lambda_{(i)}`.
        I: Number of outer iterations ``I >= 0`` (``I = 0`` returns the start).
        J: Inner analog steps per outer iteration, ``J >= 1``.
        trace: Record every iterate (``I + 1`` beamformers) instead of only the last.

    Returns:
        ``(iterates, degenerate)``: the list ``[(F_(0), W_(0)), ..., (F_(I), W_(I))]`` as
        :class:`HybridBeamformer` (only the last one unless ``trace``) and a ``[B]`` bool flag
        marking all-zero channel estimates, for which eq. (13) is undefined and the start
        falls back to ``W_(0) = [I; 0]`` (the beamformers stay feasible).
    """
    I = check_count(I, "I", 0)  # noqa: E741
    power_, s2 = _check_inputs(H, power, noise_var, J)
    mus = _per_iteration(mu, I, "mu")
    lams = _per_iteration(lam, I, "lam")
    # line 1: eq. (12) (aligned sign) and eq. (13) (pseudo-inverses, then eq. (9) scaling);
    # the map of hybrid_initialization, with eq. (9) guarded for an all-zero estimate
    F = aligned_analog_precoder(H)
    W, degenerate = _project_power(F, torch.linalg.pinv(F) @ torch.linalg.pinv(H), power_)
    out = [HybridBeamformer(analog=F, digital=W)] if trace else []
    off = _off_diagonal(H.shape[-2], H)
    Hh, HF = H.mH.contiguous(), H @ F
    for i in range(I):
        F, W, HF = _iteration(H, Hh, F, W, HF, power_, s2, off, mus[i], lams[i], J)
        if trace:
            out.append(HybridBeamformer(analog=F, digital=W))
    if not trace:
        out = [HybridBeamformer(analog=F, digital=W)]
    return out, degenerate


def _per_iteration(value: Any, n: int, name: str) -> list[Any]:
    """``n`` per-iteration step sizes from one value or a length-``n`` sequence."""
    if isinstance(value, list | tuple):
        if len(value) != n:
            raise ValueError(
                f"{name} must be one step size or a sequence of I={n} step sizes, got {len(value)}"
            )
        return list(value)
    return [value] * n


def check_pga_task(task: Any, who: str) -> FarFieldHybridTask:
    """``task`` as a phase-shifter FarFieldHybrid task with ``N_RF = K`` (paper 003's setting).

    Args:
        task: The agent's task.
        who: Name of the caller for the messages (e.g. the agent's registry name).

    Returns:
        The task.

    Raises:
        ValueError: for another env, the steering mode or ``N_RF != K``.
    """
    if not isinstance(task, FarFieldHybridTask) or task.steering:
        raise ValueError(
            f"{who} implements paper 003 and needs {ENV_ID} with "
            f"analog='phase-shifter' (a free unit-modulus analog precoder), got "
            f"{type(task).__name__}"
            + (" with analog='steering'" if isinstance(task, FarFieldHybridTask) else "")
        )
    c = task.config
    if c.N_RF != c.K:
        raise ValueError(
            f"{who}: the start of paper 003 eq. (12)-(13) needs N_RF = K (one "
            f"RF chain per user), got N_RF={c.N_RF} and K={c.K}; make the env with N_RF={c.K}"
        )
    return task


def check_pga_known(task: FarFieldHybridTask, known: Any) -> TensorDataclass:
    """``known`` as a batch of what the BS knows for ``task`` (``H_est`` ``[B, K, N]``).

    Raises:
        ValueError: for another type, shape or dtype.
    """
    if not isinstance(known, FarFieldHybridKnown | FarFieldHybridInstance):
        raise ValueError(
            f"solve() takes task.known(instance) (a FarFieldHybridKnown), got "
            f"{type(known).__name__}"
        )
    c = task.config
    H = known.H_est
    if tuple(H.shape[1:]) != (c.K, c.N) or H.dtype != task.cdtype:
        raise ValueError(
            f"known.H_est must be [B, K, N] = [B, {c.K}, {c.N}] of dtype {task.cdtype}, got "
            f"{tuple(H.shape)} {H.dtype}"
        )
    return known


def check_count(value: Any, name: str, minimum: int) -> int:
    """``value`` as an int ``>= minimum`` (iteration counts ``I``, ``J``); ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value
