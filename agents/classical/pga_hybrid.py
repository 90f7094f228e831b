r"""Agents of paper 003's projected gradient ascent (PGA) for hybrid beamforming, and references.

Paper 003 (Nguyen, Nguyen, Shlezinger, Swindlehurst, Juntti, *Fast Deep Unfolded Hybrid
Beamforming in Multiuser Large MIMO Systems*) maximizes the sum-rate eq. (4) of a fully
connected hybrid precoder by alternating projected gradient steps, Algorithm 1 (Sec. III,
eq. (6)-(13)); the equations are in :mod:`agents.rules.pga`.

Contents (the rule itself, :func:`~agents.rules.pga.pga` / :func:`~agents.rules.pga.
pga_iteration`, lives in :mod:`agents.rules.pga`, shared with the unfolded model):

* :class:`PGAAgent` (``"pga"``) and :class:`HybridZFAgent` (``"hybrid_zf"``);
* :func:`fully_digital_zf_reference` -- the fully digital ZF upper reference of Fig. 2;
* :func:`tune_pga_steps` -- grid search of constant ``(mu, lambda)`` for a given ``I`` on
  training instances (the fair baseline of a learned ``I``-layer optimizer).

Gradient convention: the step sizes multiply Theorem 1's eq. (10)-(11) as printed (the
Wirtinger derivative of the rate in nats); see :mod:`agents.rules.pga`. A step ``mu`` here
equals a step ``mu * ln(2) / 2`` on the steepest-ascent direction of the rate in bits.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import torch

from agents.base import Agent, register_agent
from agents.rules.pga import (
    ENV_ID,
    PAPER_LAMBDA,
    PAPER_MU,
    check_count,
    check_pga_known,
    check_pga_task,
    pga,
    pga_iteration,
)
from beamgym.physics.metrics import abs2, miso_rates, zf_equal_power_precoder
from beamgym.physics.projections import hybrid_zero_forcing
from beamgym.structures import HybridBeamformer, TensorDataclass

__all__ = [
    "PAPER_MU",
    "PAPER_LAMBDA",
    "PGAAgent",
    "HybridZFAgent",
    "PGAStepSearch",
    "pga_iteration",
    "pga",
    "fully_digital_zf_reference",
    "tune_pga_steps",
]


# ---- references of paper 003 Fig. 2 -------------------------------------------------------------
def fully_digital_zf_reference(
    instance: TensorDataclass, known: TensorDataclass | None = None
) -> dict[str, torch.Tensor]:
    r"""Fully digital ZF with equal power per user: the upper reference of paper 003 Fig. 2.

    .. math:: \mathbf W_{\rm ZF} = \sqrt{P_t/K}\,\big[\mathbf u_1/\|\mathbf u_1\|, \dots,
              \mathbf u_K/\|\mathbf u_K\|\big],\qquad [\mathbf u_1,\dots,\mathbf u_K] =
              \tilde{\mathbf H}^\dagger

    designed from the known CSI :math:`\tilde{\mathbf H}` (``known.H_est``; default
    ``instance.H_est``) and evaluated by eq. (4) on the TRUE channel ``instance.H``
    (:func:`beamgym.physics.metrics.zf_equal_power_precoder`; 17.50 bit/s/Hz at 10 dB in the
    checked setting).

    Why a function and not an agent: this precoder is ``N x K`` and fully digital, i.e. it
    needs ``N`` RF chains. Wrapped as a :class:`~beamgym.structures.HybridBeamformer` with
    ``analog = I_N`` it would violate the env's shapes (``analog`` is ``[B, N, N_RF]``) and
    the unit-modulus constraint (5b), so the env's ``evaluate`` would (rightly) reject it or
    flag it infeasible, and ranking it beside hybrid agents would be misleading. It is a
    bound, reported beside the agents (benchmarks/pga_003.py).

    Args:
        instance: A phase-shifter-mode ``FarFieldHybridInstance`` (fields ``H``, ``H_est``,
            ``power``, ``noise_var``).
        known: Optional known view to design from (``H_est``, ``power``); default: the
            instance's own estimated fields.

    Returns:
        ``sum_rate`` ``[B]`` and ``per_user`` ``[B, K]`` in bit/s/Hz, ``power`` ``[B]``
        (:math:`\|\mathbf W\|_F^2`) and ``feasible`` ``[B]`` bool. ZF needs an estimate of full
        row rank (``torch.linalg.matrix_rank`` with its default tolerance); where it is rank
        deficient (e.g. two users with the same channel) ``feasible`` is False and the rates
        are NaN (reported, never a silent number).

    Raises:
        ValueError: if the CSI is not the full ``[B, K, N]`` channel (steering mode, whose
            ``H_est`` is the ``K x N_RF`` effective channel).
    """
    src = instance if known is None else known
    H, H_est = instance.H, src.H_est
    if H_est.shape != H.shape:
        raise ValueError(
            f"the fully digital ZF reference designs an N-antenna precoder from the full "
            f"channel estimate [B, K, N] = {tuple(H.shape)}, got H_est {tuple(H_est.shape)}; "
            "use FarFieldHybrid-v0 with analog='phase-shifter'"
        )
    ok = torch.linalg.matrix_rank(H_est) == H_est.shape[-2]  # full row rank (default rtol)
    eye = torch.eye(*H_est.shape[1:], dtype=H_est.dtype, device=H_est.device)
    safe = torch.where(ok[:, None, None], H_est, eye)
    W = zf_equal_power_precoder(safe, src.power)
    rates = miso_rates(H, W, instance.noise_var)
    nan = torch.full_like(rates, math.nan)
    rates = torch.where(ok[:, None], rates, nan)
    return {
        "sum_rate": rates.sum(-1),
        "per_user": rates,
        "power": abs2(W).sum((-2, -1)),
        "feasible": ok,
    }


# ---- agents --------------------------------------------------------------------------------------
def _check_step(value: Any, name: str, I: int) -> Any:  # noqa: E741
    vals = value if isinstance(value, list | tuple) else [value]
    if isinstance(value, list | tuple) and len(value) != I:
        raise ValueError(f"{name} must be one number or a tuple of I={I} numbers, got {value!r}")
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} step sizes must be finite numbers >= 0, got {value!r}")
    return tuple(float(v) for v in value) if isinstance(value, list | tuple) else float(value)


@register_agent(
    "pga",
    env_ids=(ENV_ID,),
    env_kwargs={ENV_ID: {"analog": "phase-shifter"}},
    description=(
        "projected gradient ascent, paper 003 Algorithm 1 (eq. (6)-(13), Theorem 1), "
        "phase-shifter analog; fixed steps mu=0.01, lambda=1e-4 (Sec. IV)"
    ),
    mu=PAPER_MU,
    lam=PAPER_LAMBDA,
    I=30,
    J=1,
)
class PGAAgent(Agent):
    r"""Conventional PGA of paper 003 (Algorithm 1 with fixed or per-iteration step sizes).

    Runs :func:`pga` on the BS's channel estimate ``known.H_est`` with its power budget and
    unit noise; never reads the true channel. Defaults are the paper's conventional PGA
    (Sec. IV): ``I = 30`` iterations, ``J = 1`` analog step per iteration, ``mu = 0.01``,
    ``lam = 1e-4`` multiplying eq. (10)-(11) as printed (module docstring).

    Args:
        env: FarFieldHybrid-v0 with ``analog="phase-shifter"`` and ``N_RF = K``.
        mu: Analog step :math:`\mu \ge 0`, or a tuple of ``I`` per-iteration steps.
        lam: Digital step :math:`\lambda \ge 0`, or a tuple of ``I`` per-iteration steps.
        I: Outer iterations ``I >= 0`` (``I = 0``: the start of eq. (12)-(13)).
        J: Inner analog steps ``J >= 1`` (the paper's unfolded model uses ``J > 1``).

    Attributes:
        last_info: After :meth:`solve`, ``{"degenerate": [B] bool}``: all-zero channel
            estimates, for which eq. (13) is undefined (the output stays feasible).

    Raises:
        ValueError: for another env, the steering analog mode, ``N_RF != K`` or bad
            hyperparameters.
    """

    def __init__(
        self,
        env: Any,
        mu: float | tuple[float, ...] = PAPER_MU,
        lam: float | tuple[float, ...] = PAPER_LAMBDA,
        I: int = 30,  # noqa: E741
        J: int = 1,
    ) -> None:
        I = check_count(I, "I", 0)  # noqa: E741
        J = check_count(J, "J", 1)
        mu = _check_step(mu, "mu", I)
        lam = _check_step(lam, "lam", I)
        super().__init__(env, mu=mu, lam=lam, I=I, J=J)
        self.task = check_pga_task(self.task, self.registry_name)
        self.last_info: dict[str, torch.Tensor] = {}

    def _run(self, known: TensorDataclass, trace: bool) -> list[HybridBeamformer]:
        known = check_pga_known(self.task, known)
        h = self.hparams
        with torch.no_grad():
            its, degenerate = pga(
                known.H_est,
                known.power,
                known.noise_var,
                mu=h["mu"],
                lam=h["lam"],
                I=h["I"],
                J=h["J"],
                trace=trace,
            )
        self.last_info = {"degenerate": degenerate}
        return its

    def solve(self, known: TensorDataclass) -> HybridBeamformer:
        """Hybrid beamformers ``(F_(I), W_(I))`` of Algorithm 1 for a batch of known CSI."""
        return self._run(known, trace=False)[-1]

    def solve_trace(self, known: TensorDataclass) -> list[HybridBeamformer]:
        """All ``I + 1`` iterates ``[(F_(0), W_(0)), ..., (F_(I), W_(I))]`` (Fig. 2(a))."""
        return self._run(known, trace=True)


@register_agent(
    "hybrid_zf",
    env_ids=(ENV_ID,),
    env_kwargs={ENV_ID: {"analog": "phase-shifter"}},
    description=(
        "hybrid ZF: aligned analog F0 of paper 003 eq. (12) + digital ZF (H F0)^-1 with equal "
        "power per user (003 Fig. 2 reference), phase-shifter analog"
    ),
)
class HybridZFAgent(Agent):
    r"""Hybrid zero forcing: the analog start of paper 003 eq. (12) and digital ZF.

    .. math:: \mathbf F = \mathbf F_{(0)}\ \text{(eq. (12), aligned)},\qquad
              \mathbf w_k = \sqrt{P_t/K}\,\frac{\mathbf u_k}{\|\mathbf F\mathbf u_k\|},\quad
              \mathbf U = (\tilde{\mathbf H}\mathbf F)^{-1}

    (:func:`beamgym.physics.projections.hybrid_zero_forcing`, ``allocation="equal"``; the
    checked "hybrid ZF" reference, 16.12 bit/s/Hz at 10 dB). Designed from
    ``known.H_est``; feasible by construction (unit modulus, :math:`\|\mathbf F\mathbf
    W\|_F^2 = P_t`).

    Args:
        env: FarFieldHybrid-v0 with ``analog="phase-shifter"`` and ``N_RF = K``.

    Attributes:
        last_info: After :meth:`solve`, ``{"degenerate": [B] bool}``: estimates for which
            the effective channel :math:`\tilde{\mathbf H}\mathbf F` is singular, so ZF is
            undefined; those entries fall back to the PGA start of eq. (13) (feasible).
    """

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.task = check_pga_task(self.task, self.registry_name)
        self.last_info: dict[str, torch.Tensor] = {}

    def solve(self, known: TensorDataclass) -> HybridBeamformer:
        """Hybrid ZF beamformers for a batch of known CSI."""
        known = check_pga_known(self.task, known)
        with torch.no_grad():
            (start,), degenerate = pga(known.H_est, known.power, known.noise_var, I=0)
            F = start.analog
            HF = known.H_est @ F
            sv = torch.linalg.svdvals(HF)  # [B, K], descending
            rtol = HF.shape[-1] * torch.finfo(sv.dtype).eps  # matrix_rank's default
            singular = sv[:, -1] <= rtol * sv[:, 0].clamp_min(torch.finfo(sv.dtype).tiny)
            safe_H = torch.where(singular[:, None, None], F.mH, known.H_est)  # H F = N I
            W = hybrid_zero_forcing(safe_H, F, known.power, allocation="equal")
            W = torch.where(singular[:, None, None], start.digital, W)
        self.last_info = {"degenerate": degenerate | singular}
        return HybridBeamformer(analog=F, digital=W)


# ---- step-size grid search (training instances only) --------------------------------------------
#: Default grids of :func:`tune_pga_steps` (steps multiply eq. (10)-(11) as printed).
DEFAULT_MU_GRID: tuple[float, ...] = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
DEFAULT_LAMBDA_GRID: tuple[float, ...] = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)


@dataclasses.dataclass(frozen=True)
class PGAStepSearch:
    """Result of :func:`tune_pga_steps`.

    Attributes:
        mu: Best constant analog step.
        lam: Best constant digital step.
        mean_rate: Mean sum-rate (bit/s/Hz, true channel) of the best pair after ``I``
            iterations on the tuning instances.
        I: Iterations the steps were tuned for.
        J: Inner analog steps.
        table: ``{(mu, lam): mean sum-rate}`` of every grid point.
    """

    mu: float
    lam: float
    mean_rate: float
    I: int  # noqa: E741
    J: int
    table: dict[tuple[float, float], float]


def tune_pga_steps(
    task: Any,
    instances: TensorDataclass,
    *,
    I: int,  # noqa: E741
    J: int = 1,
    mus: Sequence[float] = DEFAULT_MU_GRID,
    lams: Sequence[float] = DEFAULT_LAMBDA_GRID,
) -> PGAStepSearch:
    r"""Grid-search constant ``(mu, lambda)`` maximizing the mean sum-rate after ``I`` iterations.

    The fair baseline of an ``I``-layer learned optimizer (docs/readings.md#003-tuned-baseline;
    the rates such steps reach are in BENCHMARKS.md, section "Paper 003: PGA hybrid
    beamforming"). Each grid point runs :func:`pga` on the known CSI of ``instances``
    (batched) and scores :math:`(\mathbf F_{(I)}, \mathbf W_{(I)})` with ``task.evaluate`` on
    their true channels. Pass TRAINING instances only (e.g. ``make_instance_set(..., seed)``
    with a seed disjoint from every test seed); the best pair is then evaluated elsewhere.

    Args:
        task: A FarFieldHybrid-v0 phase-shifter env or task (``N_RF = K``).
        instances: Tuning instances of that task.
        I: Iterations ``I >= 1`` the steps are tuned for.
        J: Inner analog steps.
        mus: Grid of analog steps (multiplying eq. (10) as printed).
        lams: Grid of digital steps (multiplying eq. (11) as printed).

    Returns:
        The best pair, its mean rate and the whole table (ties: the first in grid order).
    """
    I = check_count(I, "I", 1)  # noqa: E741
    J = check_count(J, "J", 1)
    if not mus or not lams:
        raise ValueError("mus and lams must be non-empty grids of step sizes")
    probe = PGAAgent(task, mu=float(mus[0]), lam=float(lams[0]), I=I, J=J)
    t = probe.task
    inst = t.validate_instance(instances)
    known = t.known(inst)
    table: dict[tuple[float, float], float] = {}
    for mu in mus:
        for lam in lams:
            agent = PGAAgent(t, mu=float(mu), lam=float(lam), I=I, J=J)
            with torch.no_grad():
                rate = t.evaluate(agent.solve(known), inst)["sum_rate"]
            table[(float(mu), float(lam))] = float(rate.mean())
    (mu, lam), best = max(table.items(), key=lambda kv: kv[1])
    return PGAStepSearch(mu=mu, lam=lam, mean_rate=best, I=I, J=J, table=table)
