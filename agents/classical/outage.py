r"""Greedy correction hybrid beamforming of paper 002: G-HBF-perf and G-HBF-marg.

Paper 002 (Schynol, Pesavento) Sec. III reviews the greedy correction algorithm of its ref.
[35, Alg. 2] for power-minimizing hybrid downlink beamforming with SINR targets and a discrete
analog codebook; Sec. V-A-3 uses it as two benchmarks:

* **G-HBF-perf**: the greedy with :math:`L_{rf} = 2 M_{rf}` selections on perfect CSI
  (agent ``ghbf_perf``; it runs on whatever CSI the transmitter knows, so it is the paper's
  G-HBF-perf with ``csi="perfect"`` and a naive, margin-free design otherwise);
* **G-HBF-marg**: the same greedy on imperfect CSI with the SINR targets raised by a margin,
  :math:`\gamma'_i = \gamma_i + \check\gamma` (in dB), where the margin is bisected until the
  nominal outage :math:`P_{out}` is attained on validation data (agent ``ghbf_marg``).

The algorithm (eq. 35 initialization, cyclic chain updates with eqs. 14 and 19-21, the virtual
uplink fixed point of [58, Alg. 2], eqs. 22-23 and 34) is the pure batched rule
:func:`agents.rules.greedy.greedy_hybrid_beamforming`; these agents pass it the known CSI and
the (margin-raised) targets.

Infeasible instances are flagged in :class:`~agents.rules.greedy.GreedySolution` ``feasible``
(and in ``agent.last_info`` after ``solve``), never raised; see the rule's docstring for how
their beamformer is returned. References: :mod:`agents.rules.greedy`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import torch

from agents.base import Agent, CheckpointError, register_agent
from agents.common import check_choice, check_known_hyperparameters
from agents.rules.greedy import (
    SCREENINGS,
    GreedySolution,
    finalize_hybrid_design,
    gram_uplink_power,
    greedy_hybrid_beamforming,
)
from beamgym.datasets import InstanceSet, make_task
from beamgym.envs.outage_hybrid import (
    OutageHybridInstance,
    OutageHybridKnown,
    OutageHybridTask,
)
from beamgym.physics.codebooks import select_codewords
from beamgym.structures import HybridBeamformer

__all__ = [
    "ENV_ID",
    "GreedySolution",
    "GreedyHybridAgent",
    "GreedyMarginAgent",
    "greedy_hybrid_beamforming",
    "finalize_hybrid_design",
    "gram_uplink_power",
]

#: The environment these agents solve.
ENV_ID = "beamgym/OutageHybrid-v0"

_INITS = ("instantaneous", "covariance")


def _check_pos_int(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def _check_float(value: Any, name: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return float(value)


@register_agent(
    "ghbf_perf",
    env_ids=(ENV_ID,),
    description=(
        "greedy correction hybrid BF (paper 002 Sec. III, [35] Alg. 2; eq. 35 init, [58] Alg. 2"
        " virtual uplink, eqs. 22-23, 34) on the known CSI; G-HBF-perf with csi='perfect'"
    ),
    rf_sweeps=2,
    init="instantaneous",
    tol=1e-10,
    max_iter=500,
    screening="gram",
)
class GreedyHybridAgent(Agent):
    r"""G-HBF: greedy correction hybrid beamforming on the known CSI (paper 002 Sec. III).

    Runs :func:`greedy_hybrid_beamforming` on ``known.h_est`` with the targets
    ``known.gamma`` (raised by :meth:`margins_for`; 0 dB here). With ``csi="perfect"`` this is
    the paper's G-HBF-perf benchmark (Sec. V-A-3, :math:`L_{rf} = 2 M_{rf}`).

    After each :meth:`solve`, ``last_info`` holds per-instance tensors ``feasible``,
    ``design_power``, ``power``, ``pmax_scaled`` and ``indices`` (see
    :class:`GreedySolution`); infeasible instances are flagged there, never raised.

    Args:
        env: An OutageHybrid-v0 env or task.
        rf_sweeps: Cyclic sweeps over the RF chains, :math:`L_{rf} = \text{rf\_sweeps} \cdot
            M_{rf}` (paper's G-HBF: 2; its unrolled model: 1).
        init: Eq. (35) from ``"instantaneous"`` :math:`\hat{\mathbf h}_i \hat{\mathbf h}_i^H`
            or the known ``"covariance"`` (needs ``observe_covariance=True``).
        tol: Relative tolerance of the virtual-uplink fixed point.
        max_iter: Fixed-point iteration limit.
        screening: Ranking of trial codewords, ``"gram"`` (fast, default) or ``"physics"``
            (see :func:`greedy_hybrid_beamforming`; same selections).
    """

    def __init__(
        self,
        env: Any,
        rf_sweeps: int = 2,
        init: str = "instantaneous",
        tol: float = 1e-10,
        max_iter: int = 500,
        screening: str = "gram",
        **unknown: Any,
    ) -> None:
        check_known_hyperparameters(type(self), unknown)
        super().__init__(
            env, rf_sweeps=rf_sweeps, init=init, tol=tol, max_iter=max_iter, screening=screening
        )
        if not isinstance(self.task, OutageHybridTask):
            raise ValueError(
                f"{type(self).__name__} solves {ENV_ID} (paper 002), got "
                f"{type(self.task).__name__}; build the agent for gym.make({ENV_ID!r})"
            )
        self.rf_sweeps = _check_pos_int(rf_sweeps, "rf_sweeps", minimum=0)
        self.init = check_choice(init, "init", _INITS)
        self.tol = _check_float(tol, "tol", positive=True)
        self.max_iter = _check_pos_int(max_iter, "max_iter")
        self.screening = check_choice(screening, "screening", SCREENINGS)
        if self.init == "covariance" and not self.task.config.observe_covariance:
            raise ValueError(
                "init='covariance' needs the covariance in the observation; make the env with "
                "observe_covariance=True or use init='instantaneous'"
            )
        self.last_info: dict[str, torch.Tensor] = {}

    @property
    def steps(self) -> int:
        """Greedy steps :math:`L_{rf}` = ``rf_sweeps`` times :math:`M_{rf}`."""
        return self.rf_sweeps * self.task.config.num_rf

    def margins_for(self, known: OutageHybridKnown) -> torch.Tensor:
        """Real ``[B]`` SINR margin in dB per instance (0 dB for G-HBF)."""
        return torch.zeros(known.batch_size, dtype=torch.float64, device=known.h_est.device)

    def _known(self, known: Any) -> OutageHybridKnown:
        if isinstance(known, OutageHybridInstance):
            return self.task.known(known)  # only the transmitter's view is used
        if not isinstance(known, OutageHybridKnown):
            raise ValueError(
                f"solve expects an OutageHybridKnown (task.known(instance)), got "
                f"{type(known).__name__}"
            )
        return known

    def _problem(self, known: OutageHybridKnown) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(h, gamma', margin)`` in float64: CSI, targets with the margin, margin in dB."""
        margin = self.margins_for(known).to(device=known.h_est.device, dtype=torch.float64)
        gamma = known.gamma.to(torch.float64) * 10.0 ** (margin.unsqueeze(-1) / 10.0)
        return known.h_est.to(torch.complex128), gamma, margin

    def _to_task(self, bf: HybridBeamformer) -> HybridBeamformer:
        cd = self.task.cdtype
        return HybridBeamformer(analog=bf.analog.to(cd), digital=bf.digital.to(cd))

    def solve_detailed(self, known: OutageHybridKnown) -> GreedySolution:
        """The full :class:`GreedySolution` (beamformer, flags, power history) for a batch.

        Computed in float64 whatever the task's precision (the greedy compares trial powers
        that differ by less than float32 resolution, and in complex64 the fixed point's
        tolerance of ``16 eps`` is not met reliably: about 0.3% of trials oscillate at the
        rounding level until ``max_iter`` and would count as infeasible); the beamformer is
        returned in the task's dtype, the other fields in float64.
        """
        known = self._known(known)
        c = self.task.config
        h, gamma, margin = self._problem(known)
        init_cov = known.R_est.to(torch.complex128) if self.init == "covariance" else None
        sol = greedy_hybrid_beamforming(
            h,
            gamma,
            self.task.codebook.to(torch.complex128),
            c.num_rf,
            c.p_max,
            steps=self.steps,
            init_covariance=init_cov,
            tol=self.tol,
            max_iter=self.max_iter,
            screening=self.screening,
        )
        self.last_info = {
            "feasible": sol.feasible,
            "design_power": sol.design_power,
            "power": sol.power,
            "pmax_scaled": sol.pmax_scaled,
            "indices": sol.indices,
            "margin_db": margin,
        }
        return sol._replace(beamformer=self._to_task(sol.beamformer))

    def solve(self, known: OutageHybridKnown) -> HybridBeamformer:
        """Hybrid beamformers for a batch (see :class:`GreedyHybridAgent`)."""
        return self.solve_detailed(known).beamformer

    def solve_trace(self, known: OutageHybridKnown) -> list[HybridBeamformer]:
        """Designs after the eq. (35) initialization and after each greedy step.

        Each iterate is the analog configuration of that step with its eq. (22)-(23)
        digital precoders and eq. (34) powers (the same finalization as :meth:`solve`).
        """
        known = self._known(known)
        sol = self.solve_detailed(known)
        h, gamma, _ = self._problem(known)
        cb = self.task.codebook.to(torch.complex128)
        out = []
        for idx in sol.index_history[:-1]:
            bf = finalize_hybrid_design(
                h,
                gamma,
                select_codewords(cb, idx),
                self.task.config.p_max,
                tol=self.tol,
                max_iter=self.max_iter,
            )[0]
            out.append(self._to_task(bf))
        out.append(sol.beamformer)
        return out


@register_agent(
    "ghbf_marg",
    env_ids=(ENV_ID,),
    validation_size=2000,
    description=(
        "G-HBF-marg (paper 002 Sec. V-A-3): greedy hybrid BF on imperfect CSI with SINR margin "
        "gamma' = gamma 10^(m/10), m bisected per constraint group to reach P_out (learn)"
    ),
    rf_sweeps=2,
    init="instantaneous",
    tol=1e-10,
    max_iter=500,
    screening="gram",
    margin_db=0.0,
    bisect_low_db=-10.0,
    bisect_high_db=20.0,
    bisect_tol_db=0.01,
)
class GreedyMarginAgent(GreedyHybridAgent):
    r"""G-HBF-marg: the greedy on imperfect CSI with a learned SINR margin (paper 002 V-A-3).

    The targets are raised to :math:`\gamma'_i = \gamma_i 10^{m_g/10}` (the paper's
    :math:`\gamma_i + \check\gamma` in dB), with one margin :math:`m_g` per constraint group
    ``g`` (Sec. IV-D; ``known.group``). :meth:`learn` bisects each margin on validation data
    until the outage, counted per user on the TRUE channel, reaches the nominal
    :math:`P_{out}`; the margins are the agent's state (:meth:`state_dict`, saved as a
    float64 tensor ``margins_db`` of length ``num_groups``).

    Args:
        env: An OutageHybrid-v0 env or task.
        rf_sweeps: See :class:`GreedyHybridAgent`.
        init: See :class:`GreedyHybridAgent`.
        tol: See :class:`GreedyHybridAgent`.
        max_iter: See :class:`GreedyHybridAgent`.
        screening: See :class:`GreedyHybridAgent`.
        margin_db: Margin of every group before :meth:`learn` (default 0 dB).
        bisect_low_db: Lower end of the bisection bracket (dB; negative margins lower the
            targets, useful when the CSI is nearly perfect).
        bisect_high_db: Upper end of the bracket (dB); a group whose outage still exceeds
            :math:`P_{out}` there is reported as not reached and keeps this margin.
        bisect_tol_db: Bisection stops when the bracket is narrower than this (dB).
    """

    def __init__(
        self,
        env: Any,
        rf_sweeps: int = 2,
        init: str = "instantaneous",
        tol: float = 1e-10,
        max_iter: int = 500,
        screening: str = "gram",
        margin_db: float = 0.0,
        bisect_low_db: float = -10.0,
        bisect_high_db: float = 20.0,
        bisect_tol_db: float = 0.01,
        **unknown: Any,
    ) -> None:
        check_known_hyperparameters(type(self), unknown)
        super().__init__(
            env, rf_sweeps=rf_sweeps, init=init, tol=tol, max_iter=max_iter, screening=screening
        )
        self.hparams.update(
            margin_db=margin_db,
            bisect_low_db=bisect_low_db,
            bisect_high_db=bisect_high_db,
            bisect_tol_db=bisect_tol_db,
        )
        m0 = _check_float(margin_db, "margin_db")
        self.bisect_low_db = _check_float(bisect_low_db, "bisect_low_db")
        self.bisect_high_db = _check_float(bisect_high_db, "bisect_high_db")
        self.bisect_tol_db = _check_float(bisect_tol_db, "bisect_tol_db", positive=True)
        if not self.bisect_low_db < self.bisect_high_db:
            raise ValueError(
                f"bisect_low_db ({bisect_low_db}) must be < bisect_high_db ({bisect_high_db})"
            )
        if abs(m0) > 60.0:
            raise ValueError(f"margin_db must lie in [-60, 60] dB, got {margin_db!r}")
        n_groups = self.task.config.num_groups
        self.margins_db = torch.full((n_groups,), m0, dtype=torch.float64)
        self.learn_report: list[dict[str, Any]] = []

    def margins_for(self, known: OutageHybridKnown) -> torch.Tensor:
        """Real ``[B]`` margin in dB of each instance's constraint group."""
        g = known.group.to(torch.int64)
        n_groups = self.margins_db.shape[0]
        if g.numel() and (int(g.min()) < 0 or int(g.max()) >= n_groups):
            raise ValueError(
                f"constraint group out of range [0, {n_groups}): got groups "
                f"{sorted(set(g.tolist()))}; is the observation from this env configuration?"
            )
        return self.margins_db.to(g.device)[g]

    # ---- learning ----------------------------------------------------------------------------
    def _instances(self, validation_set: Any) -> OutageHybridInstance:
        if isinstance(validation_set, InstanceSet):
            if validation_set.env_id != ENV_ID:
                raise ValueError(
                    f"validation set is for {validation_set.env_id}, this agent solves {ENV_ID}"
                )
            other = make_task(validation_set.env_id, **validation_set.env_kwargs).config
            if other != self.task.config:
                diff = [
                    f.name
                    for f in dataclasses.fields(other)
                    if getattr(other, f.name) != getattr(self.task.config, f.name)
                ]
                raise ValueError(
                    f"validation set was drawn for another configuration (differs in {diff}); "
                    "draw it with the agent's env keywords"
                )
            inst = validation_set.instances
        else:
            inst = validation_set
        if not isinstance(inst, OutageHybridInstance):
            raise ValueError(
                "learn expects an InstanceSet or OutageHybridInstance of validation data (with "
                f"the true channels to count outages), got {type(inst).__name__}"
            )
        return self.task.validate_instance(inst)

    def _group_outage(
        self, inst: OutageHybridInstance, margins: torch.Tensor, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-group outage fraction (per user, TRUE channel) and mean power at ``margins``."""
        saved = self.margins_db
        self.margins_db = margins
        n_groups = margins.shape[0]
        out_sum = torch.zeros(n_groups, dtype=torch.float64)
        pow_sum = torch.zeros(n_groups, dtype=torch.float64)
        try:
            with torch.no_grad():
                for start in range(0, inst.batch_size, batch_size):
                    x = inst[start : start + batch_size]
                    m = self.task.evaluate(self.solve(self.task.known(x)), x)
                    grp = x.group.cpu()
                    n_out = m["outage"].sum(-1).double().cpu()
                    out_sum.index_add_(0, grp, n_out)
                    pow_sum.index_add_(0, grp, m["power"].double().cpu())
        finally:
            self.margins_db = saved
        return out_sum, pow_sum

    def learn(
        self,
        validation_set: InstanceSet | OutageHybridInstance,
        *,
        p_out: float | None = None,
        batch_size: int = 4096,
    ) -> GreedyMarginAgent:
        r"""Bisect one SINR margin per constraint group to reach :math:`P_{out}` (Sec. V-A-3).

        For each group ``g`` the margin :math:`m_g` is bisected in ``[bisect_low_db,
        bisect_high_db]`` (all groups in parallel, each greedy run on the validation instances
        of the groups still open) until the bracket is narrower than ``bisect_tol_db``; the
        upper end, the smallest tried margin whose empirical outage (users in outage on the
        TRUE channel / users) is at most :math:`P_{out}`, is kept. Groups meeting
        :math:`P_{out}` at the lower end keep it; groups missing it at the upper end keep the
        upper end and are reported with ``reached=False`` in ``learn_report``. Groups without
        validation instances keep their margin (``n=0`` in the report). ``learn_report`` lists
        per group ``n``, ``margin_db`` and its validation ``outage`` and mean ``power``, the
        lower end ``low_db`` of the final bracket and its ``outage_low`` (above
        :math:`P_{out}` unless the lower end was kept), and ``reached``.

        Args:
            validation_set: Validation instances of this env configuration (seeds distinct
                from the test set), an :class:`InstanceSet` or an ``OutageHybridInstance``.
            p_out: Nominal outage (default: the env's ``p_out``).
            batch_size: Instances per greedy call.

        Returns:
            ``self`` with the learned ``margins_db``.
        """
        inst = self._instances(validation_set)
        p_out = self.task.config.p_out if p_out is None else _check_float(p_out, "p_out")
        if not 0.0 < p_out < 1.0:
            raise ValueError(f"p_out must lie in (0, 1), got {p_out!r}")
        batch_size = _check_pos_int(batch_size, "batch_size")
        n_groups = self.margins_db.shape[0]
        counts = torch.bincount(inst.group.cpu(), minlength=n_groups)[:n_groups].double()
        if counts.sum() < inst.batch_size:
            raise ValueError(f"validation instances have groups outside [0, {n_groups})")
        users = counts * self.task.config.num_users
        has = counts > 0

        def outage_at(margins: torch.Tensor, groups: torch.Tensor):
            sel = groups[inst.group.cpu()].to(inst.group.device)
            idx = torch.nonzero(sel).squeeze(-1)
            o, p = self._group_outage(inst[idx], margins, batch_size)
            safe = torch.where(has, users, torch.ones_like(users))
            return o / safe, p / torch.where(has, counts, torch.ones_like(counts))

        lo = torch.full((n_groups,), self.bisect_low_db, dtype=torch.float64)
        hi = torch.full((n_groups,), self.bisect_high_db, dtype=torch.float64)
        out_lo, pow_lo = outage_at(lo, has)
        out_hi, pow_hi = outage_at(hi, has)
        best_out = torch.where(out_lo <= p_out, out_lo, out_hi)
        best_pow = torch.where(out_lo <= p_out, pow_lo, pow_hi)
        done_lo = has & (out_lo <= p_out)
        reached = has & (out_hi <= p_out)
        hi = torch.where(done_lo, lo, hi)
        worst_out = out_lo.clone()  # outage at the lower end of each bracket
        active = has & ~done_lo & reached
        while True:
            active = active & ((hi - lo) > self.bisect_tol_db)
            if not bool(active.any()):
                break
            mid = torch.where(active, 0.5 * (lo + hi), hi)
            out_mid, pow_mid = outage_at(mid, active)
            ok = active & (out_mid <= p_out)
            bad = active & ~ok
            hi = torch.where(ok, mid, hi)
            best_out = torch.where(ok, out_mid, best_out)
            best_pow = torch.where(ok, pow_mid, best_pow)
            lo = torch.where(bad, mid, lo)
            worst_out = torch.where(bad, out_mid, worst_out)
        self.margins_db = torch.where(has, hi, self.margins_db)
        self.learn_report = [
            {
                "group": g,
                "n": int(counts[g]),
                "margin_db": float(self.margins_db[g]),
                "outage": float(best_out[g]) if bool(has[g]) else float("nan"),
                "low_db": float(lo[g]),
                "outage_low": float(worst_out[g]) if bool(has[g]) else float("nan"),
                "power": float(best_pow[g]) if bool(has[g]) else float("nan"),
                "reached": bool(reached[g] | done_lo[g]),
            }
            for g in range(n_groups)
        ]
        return self

    # ---- persistence ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The learned margins: ``{"margins_db": float64 [num_groups]}``."""
        return {"margins_db": self.margins_db.detach().cpu().clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the margins saved by :meth:`state_dict`."""
        if set(state) != {"margins_db"}:
            raise CheckpointError(f"{self.name} expects {{'margins_db'}}, got {sorted(state)}")
        m = state["margins_db"]
        want = tuple(self.margins_db.shape)
        if not isinstance(m, torch.Tensor) or tuple(m.shape) != want:
            got = tuple(m.shape) if isinstance(m, torch.Tensor) else type(m).__name__
            raise CheckpointError(
                f"margins_db must have shape {want} (one per constraint group), got {got}"
            )
        if not bool(torch.isfinite(m).all()):
            raise CheckpointError("margins_db contains NaN or inf")
        self.margins_db = m.detach().to(torch.float64).cpu().clone()
