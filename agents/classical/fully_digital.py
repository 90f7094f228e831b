r"""Agents of paper 000's fully digital solvers and hybrid baselines with fixed analog beams.

The agent classes are thin: the closed-form precoders live in :mod:`beamgym.physics.precoding`,
the iterative rules in :mod:`agents.rules` (:func:`~agents.rules.gradient.gradient_ascent`,
:func:`~agents.rules.wmmse.wmmse`), and the env adapters in :mod:`agents.rules.problem`.
Every solver works on what the BS knows (``task.known(instance)``): the ESTIMATED channel,
the power budget and the (unit) noise variance; none reads the true channel. The same agent
classes serve three environments:

* ``beamgym/FullyDigitalFDD-v0`` (paper 000 Sec. II-III): the beamformer
  :math:`\mathbf W \in \mathbb C^{N \times KM}` under :math:`\|\mathbf W\|_F^2 \le P`
  (eq. (8)), designed on :math:`\tilde{\mathbf H}`;
* ``beamgym/FarFieldHybrid-v0`` with ``analog="steering"`` (paper 000 Sec. IV-A) and
  ``beamgym/NearFieldHybrid-v0`` (TTD+PS, paper 000 Sec. IV-B): the analog precoder
  :math:`\mathbf W^a` is predetermined (eq. (18) / eq. (30)-(31), known at the BS) and the
  solvers design the digital precoder :math:`\mathbf W^D` on the estimated EFFECTIVE channel
  :math:`\tilde{\mathbf G} = \mathbf H\mathbf W^a + \Delta\mathbf G` under the hybrid power
  constraint :math:`\|\mathbf W^a\mathbf W^D\|_F^2 \le P` (eq. (23)/(34)), whose
  normalization is eq. (24).

Power handling, common to all solvers. The hybrid power is the weighted norm
:math:`\mathrm{tr}(\mathbf W^{DH}\mathbf Q\mathbf W^D)` with the Hermitian positive definite
weight :math:`\mathbf Q = (\mathbf W^a)^H\mathbf W^a` (far field) or its average over the
subcarriers :math:`\frac1F\sum_f(\mathbf W^a_f)^H\mathbf W^a_f` (near field, wideband
option); fully digital is :math:`\mathbf Q = \mathbf I`. The closed-form precoders (MRT,
ZF, RZF, MMSE) are designed on the (effective) channel as in the fully digital case; the
iterative ones (gradient ascent, WMMSE) optimize under the exact weighted constraint. Every
output is scaled to FULL power (:func:`beamgym.physics.projections.normalize_power`),
:math:`\mathbf W \leftarrow \sqrt{P}\,\mathbf W/\sqrt{\mathrm{tr}(\mathbf W^H\mathbf Q
\mathbf W)}` (total-power scaling; eq. (24), and the normalization layer of Sec. III-A3 for
:math:`\mathbf Q = \mathbf I`): a common scaling :math:`c > 1` raises every SINR, so the
sum-rate optimum lies on the power sphere.

Channels. A solver's channel ``H`` is ``[B, K, N]`` (MISO, rows :math:`\mathbf h_k^H`),
``[B, K, M, N]`` (MIMO, blocks :math:`\mathbf H_k`) or ``[B, F, K, M, N]`` (``F`` subcarriers
sharing one precoder; the objective is the band-averaged sum-rate, NearFieldHybrid's wideband
option). ``N`` is the number of antennas (fully digital) or RF chains (hybrid). All channels
are normalized (unit noise, ``noise_var`` = 1 in the three envs).

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
    [4]   Q. Shi, M. Razaviyayn, Z.-Q. Luo, C. He, "An iteratively weighted MMSE approach to
          distributed sum-utility maximization for a MIMO interfering broadcast channel",
          IEEE Trans. Signal Process. 59(9), 2011 (paper 000's ref. [4]).
"""

from __future__ import annotations

from typing import Any

import torch

from agents.base import register_agent
from agents.common import DigitalPrecoderAgent, check_choice, check_hyperparameters
from agents.rules.gradient import DEFAULT_ETA, DEFAULT_ETA_RULE, ETA_RULES, gradient_ascent
from agents.rules.problem import INITS, SolverProblem, initial_beamformer, solver_env_ids
from agents.rules.wmmse import wmmse
from beamgym._validation import check_int, check_positive
from beamgym.physics.precoding import mrt_beamformer, rzf_beamformer, zf_beamformer

__all__ = [
    "DEFAULT_ETA",
    "DEFAULT_ETA_RULE",
    "ENV_IDS",
    "ETA_RULES",
    "GA_INITS",
    "WMMSE_INITS",
    "GAAgent",
    "MMSEAgent",
    "MMSEGAAgent",
    "MRTAgent",
    "RZFAgent",
    "WMMSEAgent",
    "ZFAgent",
]

#: Environments the agents of this module support (FarFieldHybrid: ``analog="steering"``).
ENV_IDS: tuple[str, ...] = solver_env_ids()
#: Initial beamformers of the ``ga`` agent.
GA_INITS: tuple[str, ...] = INITS
#: Initial beamformers of the ``wmmse`` agent (its random restarts come on top).
WMMSE_INITS: tuple[str, ...] = ("mmse", "random")

_DESC_ENVS = "FDD, FarField steering, NearField TTD+PS (eq. (24) power)"


@register_agent(
    "mrt",
    env_ids=ENV_IDS,
    description=f"MRT on the estimated (effective) channel, full power, 000 ref. [6]; {_DESC_ENVS}",
)
class MRTAgent(DigitalPrecoderAgent):
    """Maximum ratio transmission on the estimated channel (:func:`.precoding.mrt_beamformer`)."""

    def __init__(self, env: Any, **unknown: Any) -> None:
        check_hyperparameters(self, unknown, ())
        super().__init__(env)

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        return mrt_beamformer(prob.linear_channel, prob.power, power_weight=prob.Q)


@register_agent(
    "zf",
    env_ids=ENV_IDS,
    description=f"zero-forcing on the estimated channel, total-power scaling ({_DESC_ENVS})",
)
class ZFAgent(DigitalPrecoderAgent):
    """Zero-forcing on the estimated channel (:func:`.precoding.zf_beamformer`); ``K M <= N``.

    ``last_info["rank_deficient"]`` flags instances solved with the pseudo-inverse.
    """

    def __init__(self, env: Any, **unknown: Any) -> None:
        check_hyperparameters(self, unknown, ())
        super().__init__(env)
        s, n = self.streams_and_dim
        if s > n:
            raise ValueError(
                f"zero-forcing needs at most as many streams as transmit dimensions, got "
                f"K*M = {s} streams and {n} antennas/RF chains; use 'rzf' or 'mmse'"
            )

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        W, bad = zf_beamformer(prob.linear_channel, prob.power, power_weight=prob.Q)
        self.last_info = {"rank_deficient": bad}
        return W


@register_agent(
    "rzf",
    env_ids=ENV_IDS,
    description=f"RZF, MMSE-optimal regularization K sigma^2/P, total-power scaling; {_DESC_ENVS}",
)
class RZFAgent(DigitalPrecoderAgent):
    r"""Regularized ZF with :math:`\alpha = KM\sigma^2/P` (:func:`.precoding.rzf_beamformer`)."""

    def __init__(self, env: Any, **unknown: Any) -> None:
        check_hyperparameters(self, unknown, ())
        super().__init__(env)

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        return rzf_beamformer(prob.linear_channel, prob.power, prob.noise_var, power_weight=prob.Q)


@register_agent(
    "mmse",
    env_ids=ENV_IDS,
    description=f"000 Sec. III-B2 MMSE (KD teacher) on the estimated channel ({_DESC_ENVS})",
)
class MMSEAgent(DigitalPrecoderAgent):
    r"""Paper 000's "MMSE" beamformer, Sec. III-B2, on the ESTIMATED (effective) channel.

    :math:`\mathbf M = (\mathbf I + \frac PK\sum_i\tilde{\mathbf H}_i^H\tilde{\mathbf H}_i)
    ^{-1}`, :math:`\mathbf W_k = \sqrt{P/K}\,\mathbf M\tilde{\mathbf H}_k^H/\|\mathbf M
    \tilde{\mathbf H}_k^H\|` (:func:`beamgym.physics.precoding.mmse_beamformer`, equal power
    per user), then the hybrid normalization eq. (24) (a no-op for fully digital). Identical
    to the env's teacher ``task.mmse_beamformer`` (near field: first subcarrier).
    """

    def __init__(self, env: Any, **unknown: Any) -> None:
        check_hyperparameters(self, unknown, ())
        super().__init__(env)

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        return initial_beamformer("mmse", prob)[0]


@register_agent(
    "ga",
    env_ids=ENV_IDS,
    description="000 eq. (9): Q_i projected gradient-ascent steps on the estimated channel "
    "from an initial beamformer (mmse/mrt/zf/rzf/random)",
    init="mrt",
    steps=10,
    eta=DEFAULT_ETA,
    eta_rule=DEFAULT_ETA_RULE,
    seed=0,
)
class GAAgent(DigitalPrecoderAgent):
    r"""Gradient-ascent refinement (:func:`.gradient_ascent`) of an initial beamformer.

    Args:
        env: The env or task.
        init: Initial beamformer, one of :data:`GA_INITS`.
        steps: Number of steps :math:`Q_i \ge 0`.
        eta: Step size (:math:`\bar\eta` for ``eta_rule="normalized"``), > 0.
        eta_rule: ``"normalized"`` (default) or ``"fixed"`` (eq. (9) as printed), see
            :func:`~agents.rules.gradient.gradient_ascent`.
        seed: Seed of the ``random`` start (a fresh CPU generator per ``solve``).
    """

    def __init__(
        self,
        env: Any,
        init: str = "mrt",
        steps: int = 10,
        eta: float = DEFAULT_ETA,
        eta_rule: str = DEFAULT_ETA_RULE,
        seed: int = 0,
        **unknown: Any,
    ) -> None:
        check_hyperparameters(self, unknown, ("init", "steps", "eta", "eta_rule", "seed"))
        check_choice(init, "init", GA_INITS)
        check_int(steps, "steps", minimum=0)
        check_positive(eta, "eta")
        check_choice(eta_rule, "eta_rule", ETA_RULES)
        check_int(seed, "seed", minimum=0)
        super().__init__(env, init=init, steps=steps, eta=float(eta), eta_rule=eta_rule, seed=seed)
        if init == "zf":
            s, n = self.streams_and_dim
            if s > n:
                raise ValueError(f"init='zf' needs K*M = {s} <= {n} transmit dimensions")

    def _run(self, prob: SolverProblem, trace: bool) -> Any:
        h = self.hparams
        W0, info = initial_beamformer(h.get("init", "mmse"), prob, h.get("seed", 0))
        self.last_info = info
        return gradient_ascent(
            prob.H,
            W0,
            prob.power,
            h["steps"],
            h["eta"],
            prob.noise_var,
            eta_rule=h["eta_rule"],
            power_weight=prob.Q,
            return_trace=trace,
        )

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        return self._run(prob, False)

    def _design_trace(self, prob: SolverProblem) -> list[torch.Tensor]:
        return self._run(prob, True)[1]


@register_agent(
    "mmse_ga",
    env_ids=ENV_IDS,
    description="000 Sec. III-D1/IV-C 'MMSE' baseline: MMSE then Q_i GA steps of eq. (9) on "
    "the estimated channel",
    steps=10,
    eta=DEFAULT_ETA,
    eta_rule=DEFAULT_ETA_RULE,
)
class MMSEGAAgent(GAAgent):
    r"""Paper 000's "MMSE" baseline: the MMSE beamformer refined by :math:`Q_i` GA steps.

    Sec. III-D1: "starting from :math:`W_0 = \tilde W`, it performs :math:`Q_i` steps of
    gradient ascent as in (9) by using :math:`\tilde H`" (:math:`Q_i = 10`); Sec. IV-C: the
    same on the estimated effective channel :math:`\tilde G` with the hybrid normalization.

    Args:
        env: The env or task.
        steps: :math:`Q_i` (paper: 10).
        eta: Step size (the paper does not print the GA step; its :math:`\eta = 10^{-4}` of
            eq. (13) is the network learning rate). Default :data:`DEFAULT_ETA` with the
            ``"normalized"`` rule, tuned on training seeds only.
        eta_rule: ``"normalized"`` (default) or ``"fixed"`` (eq. (9) as printed).
    """

    def __init__(
        self,
        env: Any,
        steps: int = 10,
        eta: float = DEFAULT_ETA,
        eta_rule: str = DEFAULT_ETA_RULE,
        **unknown: Any,
    ) -> None:
        check_hyperparameters(self, unknown, ("steps", "eta", "eta_rule"))
        check_int(steps, "steps", minimum=0)
        check_positive(eta, "eta")
        check_choice(eta_rule, "eta_rule", ETA_RULES)
        DigitalPrecoderAgent.__init__(self, env, steps=steps, eta=float(eta), eta_rule=eta_rule)


@register_agent(
    "wmmse",
    env_ids=ENV_IDS,
    description="WMMSE (Shi et al. 2011, 000 ref. [4]) on the estimated channel, to a relative "
    "tolerance; MMSE start + random restarts",
    init="mmse",
    restarts=0,
    tol=1e-5,
    max_iter=500,
    seed=0,
)
class WMMSEAgent(DigitalPrecoderAgent):
    """WMMSE (:func:`.wmmse`) from the MMSE (or a random) start, best of random restarts.

    The designs from the main start (``init``) and from ``restarts`` extra random starts run
    as one batch; each instance keeps the design with the highest sum-rate on the ESTIMATED
    channel. ``last_info`` holds ``iterations`` and ``converged`` of the kept run and
    ``start`` (0 = ``init``, ``r >= 1`` = random restart ``r``).

    Args:
        env: The env or task.
        init: ``"mmse"`` (paper 000's MMSE beamformer) or ``"random"``.
        restarts: Extra random starts (>= 0).
        tol: Relative sum-rate tolerance of the stopping rule.
        max_iter: Maximum transmit updates per run.
        seed: Seed of the random starts (a fresh CPU generator per ``solve``).
    """

    def __init__(
        self,
        env: Any,
        init: str = "mmse",
        restarts: int = 0,
        tol: float = 1e-5,
        max_iter: int = 500,
        seed: int = 0,
        **unknown: Any,
    ) -> None:
        check_hyperparameters(self, unknown, ("init", "restarts", "tol", "max_iter", "seed"))
        check_choice(init, "init", WMMSE_INITS)
        check_int(restarts, "restarts", minimum=0)
        check_positive(tol, "tol")
        check_int(max_iter, "max_iter")
        check_int(seed, "seed", minimum=0)
        super().__init__(
            env, init=init, restarts=restarts, tol=float(tol), max_iter=max_iter, seed=seed
        )

    def _run(self, prob: SolverProblem, trace: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        h = self.hparams
        b = prob.H.shape[0]
        n_rand = h["restarts"] + (1 if h["init"] == "random" else 0)
        starts = []
        if h["init"] == "mmse":
            starts.append(initial_beamformer("mmse", prob)[0])
        if n_rand:
            starts.append(initial_beamformer("random", prob, h["seed"], n_rand)[0])
        W0 = torch.cat(starts, 0)
        r = W0.shape[0] // b
        rep = prob.repeat(r)
        res = wmmse(
            rep.H,
            W0,
            rep.power,
            rep.noise_var,
            tol=h["tol"],
            max_iter=h["max_iter"],
            power_weight=rep.Q,
            return_trace=trace,
        )
        best = res.rate.reshape(r, b).argmax(0)  # [B]
        idx = best * b + torch.arange(b, device=best.device)
        self.last_info = {
            "iterations": res.iterations[idx],
            "converged": res.converged[idx],
            "start": best,
        }
        iterates = [t[idx] for t in res.trace] if trace and res.trace is not None else []
        return res.W[idx], iterates

    def _design(self, prob: SolverProblem) -> torch.Tensor:
        return self._run(prob, False)[0]

    def _design_trace(self, prob: SolverProblem) -> list[torch.Tensor]:
        """``max_iter + 1`` iterates, whatever the batch.

        Converged instances are frozen, so after the last instance stops every further iterate
        is the final beamformer (the list repeats that tensor; no copies). A batch-independent
        length lets the harness average metric-vs-iteration curves over batches.
        """
        iterates = self._run(prob, True)[1]
        return iterates + [iterates[-1]] * (self.hparams["max_iter"] + 1 - len(iterates))
