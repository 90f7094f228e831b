r"""Paper 004 solvers for ModularUplink-v0: PGA with momentum, grid-tuned PGA+M, line search, MO.

Levy, Shlezinger, "Rapid and Power-Aware Learned Optimization for Modular Receive
Beamforming" (paper 004). Every solver works on a batch of channels at once (no Python loop
over the batch; loops run over iterations only), in complex64 or complex128, on the task's
device, from what the receiver knows (:class:`~beamgym.envs.modular_uplink.ModularUplinkKnown`:
``H_est`` and the linear SNR), never from the true channel.

Registered agents (``make_agent(name, env)``):

* ``pga_m``: Algorithm 1 (PGA with momentum, projection eq. 10) and, for the sparse / quantized
  constraints, Algorithm 3 (gradient eq. 17, projections eq. 18 / 20), with constant or
  per-iteration :math:`(\mu_j, \beta_j)`.
* ``pga_m_grid``: the "PGA+M" benchmark of Sec. V-A: constant :math:`(\mu, \beta)` picked by a
  grid search on a training set for a given number of iterations
  (:func:`grid_search_pga_m`).
* ``line_search``: the "Line Search" benchmark of Sec. V-A: PGA with momentum whose
  :math:`(\mu_j, \beta_j)` are chosen per iteration and per channel by an exhaustive grid
  search on the rate.
* ``mo``: the "MO" benchmark of Sec. V-A (ref. [23], Yu et al. 2016), adapted to the
  block-diagonal modular structure: Riemannian gradient steps on the complex circle manifold
  towards the fully digital optimum, with an exhaustive line search per iteration.

Conventions shared by all four (docs/readings.md#004):

* **Rate.** The objective is eq. (6), the sum-rate in nats averaged over the ``B`` bins, on
  the *known* channel ``H_est``; the env reports eq. (6) / K (Table I's per-user nats).
* **Gradient factor.** Theorem 1 (eq. 9) is the Wirtinger derivative
  :math:`\partial R/\partial\overline{\mathbf W}`. The step sizes :math:`\mu` multiply the
  steepest-ascent direction :math:`\partial R/\partial\Re\mathbf W + j\,\partial R/\partial
  \Im\mathbf W = 2\,\partial R/\partial\overline{\mathbf W}` ("mu on the real gradient"), i.e.
  **2 × eq. (9)**; with it ``mu = 1, beta = 0.9`` reproduces the checked 0.898 after 10
  iterations.
* **Start.** :math:`\mathbf W_0` has i.i.d. uniform phases (a random unit-modulus panel, Sec.
  V-A), drawn from a CPU ``torch.Generator`` seeded with the agent's ``seed`` at every call,
  one ``[batch, P, N, L]`` draw per batch: deterministic, but an instance's start depends on
  its position in the batch (as in the paper, which draws one random start per sample). For
  the sparse / quantized sets :math:`\mathbf W_0` is projected onto the feasible set, so every
  iterate is feasible. Algorithm 1's :math:`\mathbf W_{-1} = \mathbf 0` is kept literally.
* **Gradient evaluation.** Eq. (9) is evaluated in the ``T × T`` domain: with
  :math:`\mathbf S_b = \mathbf G^H(\mathbf I + \tfrac{\rho_s}{\sigma_w^2}\mathbf H[b]\mathbf
  H^H[b])\mathbf G`,

  .. math:: R = \frac1B\sum_b \log|\mathbf S_b| - \log|\mathbf G^H\mathbf G|,\qquad
            \frac{\partial R}{\partial\overline{\mathbf G}} = \frac1B\sum_b
            \big(\mathbf G + \tfrac{\rho_s}{\sigma_w^2}\mathbf H[b]\mathbf H^H[b]\mathbf G\big)
            \mathbf S_b^{-1} - \mathbf G(\mathbf G^H\mathbf G)^{-1},

  and :math:`\partial R/\partial\overline{\mathbf W} = (\partial R/\partial\overline{\mathbf
  G})\mathbf A^T` restricted to the diagonal blocks. This equals eq. (9) exactly (tested
  against :func:`beamgym.physics.metrics.modular_rate_gradient` in complex128) at
  :math:`O(B M K T)` instead of eq. (9)'s :math:`O(B M^2 (T + K))`. Rank-deficient (or, in
  complex64, badly conditioned) ``G``, which only sparse panels can produce, falls back to the
  library's pseudo-inverse forms (:func:`~beamgym.physics.metrics.modular_sum_rate`,
  :func:`~beamgym.physics.metrics.modular_rate_gradient`) for those channels.
* **Reporting.** :meth:`solve_with_info` also returns per-channel ``rate_known`` (eq. 6 / K
  on ``H_est``), ``active_phase_shifters`` (ℓ0 count, eq. 15) and ``feasible`` (finite and a
  fixed point of the constraint's projection). A step that would produce a non-finite iterate
  is not taken (the channel keeps its previous iterate) and the channel is flagged
  ``stalled``; no solver raises on a bad channel or returns a silent NaN.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from agents.base import Agent, register_agent
from agents.rules.pga_momentum import (
    ENV_ID,
    MO_FITS,
    ModularProblem,
    check_l1_weight,
    check_modular_task,
    finite_rows,
    fully_digital_subspace,
    line_search,
    manifold_optimization,
    mo_objective,
    pga_momentum,
    pga_momentum_run,
    random_unit_modulus_panels,
    rate_and_gradient,
    schedule,
)
from beamgym._validation import check_int, check_number
from beamgym.datasets import InstanceSet
from beamgym.envs.base import BeamformingTask
from beamgym.envs.modular_uplink import (
    ModularUplinkInstance,
    ModularUplinkKnown,
    ModularUplinkTask,
)
from beamgym.physics.projections import count_active_phase_shifters

__all__ = [
    "DEFAULT_BETAS",
    "GRIDS",
    "README_MUS",
    "TABLE1_MUS",
    "WIDE_MUS",
    "MO_FITS",
    "MO_STEPS",
    "LineSearchAgent",
    "ManifoldOptimizationAgent",
    "PGAMGridAgent",
    "PGAMomentumAgent",
    "fully_digital_subspace",
    "grid_search_pga_m",
    "pga_momentum",
    "random_unit_modulus_panels",
    "rate_and_gradient",
]


#: Step grid of the J = 500 tuning behind Table I's "PGA+M" row (mu up to 5 on the steepest-
#: ascent direction, i.e. on 2 x eq. 9 of the sum-rate in nats).
TABLE1_MUS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
#: Deprecated alias of :data:`TABLE1_MUS`.
README_MUS = TABLE1_MUS
#: The Table I grid extended to mu = 50: the 10-iteration optimum (about mu = 20) lies beyond 5.
WIDE_MUS: tuple[float, ...] = (*TABLE1_MUS, 10.0, 20.0, 50.0)
#: Momentum grid of Table I's tuning (docs/readings.md#004-table1-tuning).
DEFAULT_BETAS: tuple[float, ...] = (0.0, 0.495, 0.9, 0.99)
#: Named step grids of ``pga_m_grid`` / ``line_search`` (hyperparameter ``grid``).
#: ``"readme"`` is a deprecated alias of ``"table1"``.
GRIDS: dict[str, tuple[float, ...]] = {"wide": WIDE_MUS, "table1": TABLE1_MUS, "readme": TABLE1_MUS}
#: MO step candidates: largest entry displacement :math:`\delta` per step (radians-like).
MO_STEPS: tuple[float, ...] = tuple(2.0 ** (1 - i) for i in range(12))


# ---- validation ---------------------------------------------------------------------------------
def _grid(values: Any, name: str, *, minimum: float = 0.0) -> tuple[float, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of numbers, got {values!r}")
    vals = tuple(check_number(v, name) for v in values)
    if any(v < minimum for v in vals):
        raise ValueError(f"{name} values must be >= {minimum}, got {values!r}")
    return vals


def _seed(seed: Any) -> int:
    return check_int(seed, "seed", minimum=0)


def _resolve_grid(hp: dict[str, Any]) -> tuple[tuple[float, ...], tuple[float, ...], dict]:
    """Pop ``grid`` / ``mus`` / ``betas`` from ``hp``: the step and momentum grids + hparams."""
    grid = hp.pop("grid", "wide")
    if grid not in GRIDS:
        raise ValueError(f"grid must be one of {sorted(GRIDS)}, got {grid!r} (or pass mus=...)")
    kept: dict[str, Any] = {"grid": grid}
    mus = GRIDS[grid]
    if "mus" in hp:
        mus = kept["mus"] = _grid(hp.pop("mus"), "mus")
    betas = DEFAULT_BETAS
    if "betas" in hp:
        betas = kept["betas"] = _grid(hp.pop("betas"), "betas", minimum=-math.inf)
    return mus, betas, kept


# ---- agents -------------------------------------------------------------------------------------
class _ModularSolver(Agent):
    """Shared plumbing: task check, random start, info, ``solve`` / ``solve_trace``."""

    def __init__(self, env: Any, **hparams: Any) -> None:
        super().__init__(env, **hparams)
        self.task: ModularUplinkTask = check_modular_task(self.task, type(self).__name__)
        self.hparams["seed"] = _seed(self.hparams.get("seed", 0))

    def _w0(self, model: ModularProblem) -> torch.Tensor:
        t = self.task
        return random_unit_modulus_panels(
            self.hparams["seed"], model.batch, t.panel_shape, dtype=t.cdtype, device=t.device
        )

    def _run(self, known: ModularUplinkKnown, record: bool) -> tuple[list[torch.Tensor], Any]:
        raise NotImplementedError

    def solve(self, known: ModularUplinkKnown) -> torch.Tensor:
        """Feasible ``[batch, P, N, L]`` panels for a batch of known channels."""
        with torch.no_grad():
            return self._run(known, record=False)[0][-1]

    def solve_trace(self, known: ModularUplinkKnown) -> list[torch.Tensor]:
        """Every iterate ``[W_0, W_1, ..., W_J]`` (same code path as :meth:`solve`)."""
        with torch.no_grad():
            return self._run(known, record=True)[0]

    def solve_with_info(
        self, known: ModularUplinkKnown
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:meth:`solve` plus per-channel diagnostics.

        Returns:
            ``(W, info)`` with ``info`` holding ``[batch]`` tensors: ``rate_known`` (eq. 6 /
            K in nats on ``H_est``), ``active_phase_shifters`` (int64 ℓ0 count, eq. 15),
            ``feasible`` (bool: finite and a fixed point of the constraint's projection, no
            stalled step) and ``stalled`` (bool: a step was skipped because it was not
            finite).
        """
        with torch.no_grad():
            iterates, stalled = self._run(known, record=False)
            W = iterates[-1]
            model = ModularProblem(self.task, known)
            rate = model.rate(W) / self.task.config.K
            fixed = ~self.task._changed(W, self.task.project(W))
            feasible = fixed & finite_rows(W) & ~stalled & torch.isfinite(rate)
            info = {
                "rate_known": rate,
                "active_phase_shifters": count_active_phase_shifters(W),
                "feasible": feasible,
                "stalled": stalled,
            }
        return W, info


@register_agent(
    "pga_m",
    env_ids=(ENV_ID,),
    description=(
        "PGA with momentum, paper 004 Alg. 1 (eq. 9 gradient, eq. 10 projection) / Alg. 3 "
        "(eq. 17-20 sparse, quantized), constant or per-iteration (mu, beta), random W0"
    ),
    J=10,
    mu=1.0,
    beta=0.9,
    lam=0.0,
    seed=0,
)
class PGAMomentumAgent(_ModularSolver):
    r"""PGA with momentum, paper 004 Algorithm 1 (C1) / Algorithm 3 (C2, C3).

    The update is that of :func:`pga_momentum`.

    The feasible set follows the env's ``constraint``: eq. (10) for ``"unconstrained"``,
    eq. (18) (with the env's ``zeta`` and hard ``s_max``) for ``"sparse"``, eq. (20) for
    ``"quantized"`` and both for ``"sparse_quantized"``.

    Args:
        env: A ModularUplink-v0 env or task.
        J: Iterations :math:`J \ge 1` (default 10).
        mu: Step :math:`\mu` on 2 x eq. (9) of the sum-rate in nats, a constant or ``J``
            values (default 1.0: the checked anchor of paper 004, 0.898 per-user nats after 10).
        beta: Momentum :math:`\beta`, a constant or ``J`` values (default 0.9).
        lam: ℓ1 weight :math:`\lambda \ge 0` of eq. (17), sparse constraints only (default 0).
        seed: Seed of the random unit-modulus start (default 0).
    """

    def __init__(self, env: Any, **hparams: Any) -> None:
        hp = {"J": 10, "mu": 1.0, "beta": 0.9, "lam": 0.0, "seed": 0, **hparams}
        super().__init__(env, **hp)
        J = check_int(hp["J"], "J")
        unknown = set(hp) - {"J", "mu", "beta", "lam", "seed"}
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)} for pga_m")
        self._mu = schedule(hp["mu"], J, "mu")
        self._beta = schedule(hp["beta"], J, "beta")
        self._lam = check_l1_weight(self.task, hp["lam"])
        self.hparams.update(J=J, lam=self._lam)

    def _run(self, known: ModularUplinkKnown, record: bool) -> tuple[list[torch.Tensor], Any]:
        model = ModularProblem(self.task, known)
        rd, dev, b = self.task.rdtype, self.task.device, model.batch
        mu = torch.tensor(self._mu, dtype=rd, device=dev)[:, None].expand(-1, b)
        beta = torch.tensor(self._beta, dtype=rd, device=dev)[:, None].expand(-1, b)
        return pga_momentum_run(model, self._w0(model), mu, beta, self._lam, record)


# ---- grid search ("PGA+M" benchmark) -------------------------------------------------------------
def _instances_of(task: ModularUplinkTask, train_set: Any) -> ModularUplinkInstance:
    inst = train_set.instances if isinstance(train_set, InstanceSet) else train_set
    return task.validate_instance(inst)


def grid_search_pga_m(
    task: BeamformingTask,
    train_set: InstanceSet | ModularUplinkInstance,
    J: int,
    mus: Sequence[float] = WIDE_MUS,
    betas: Sequence[float] = DEFAULT_BETAS,
    *,
    seed: int = 0,
    lam: float = 0.0,
    max_rows: int = 4096,
) -> tuple[float, float, list[dict[str, float]]]:
    r"""Constant :math:`(\mu, \beta)` of PGA+M maximizing the mean rate after ``J`` iterations.

    Paper 004 Sec. V-A ("PGA + M"): Algorithm 1 with fixed hyperparameters
    :math:`\{\mu, \beta\}` for all :math:`j`, "chosen from a discrete grid, to maximize the
    average R after J = 500 iterations for the entire training set". Every grid point runs
    :func:`pga_momentum` from the same random starts (``seed``) on the receiver's view of the
    training channels; the score is the env's metric (eq. 6 / K, per-user nats) of
    :math:`\mathbf W_J` on the training channels. All grid points run batched together
    (at most ``max_rows`` channel-grid rows at a time).

    Args:
        task: ModularUplink-v0 task.
        train_set: Training instances (an :class:`~beamgym.datasets.InstanceSet` or a batch
            of instances), disjoint from any test set.
        J: Iterations whose final rate is maximized.
        mus: Step-size grid (default :data:`WIDE_MUS`; Table I's J = 500 grid is
            :data:`TABLE1_MUS`, up to 5 on the real gradient).
        betas: Momentum grid (default {0, 0.495, 0.9, 0.99}).
        seed: Seed of the random starts.
        lam: ℓ1 weight of eq. (17) (sparse constraints only).
        max_rows: Memory cap on ``len(train_set) * grid points`` per batched run.

    Returns:
        ``(mu, beta, table)``: the best pair (first in grid order on ties) and one row
        ``{"mu", "beta", "rate"}`` per grid point (``rate`` = mean per-user nats).
    """
    task = check_modular_task(task, "grid_search_pga_m")
    J = check_int(J, "J")
    mus = _grid(mus, "mus")
    betas = _grid(betas, "betas", minimum=-math.inf)
    lam = check_l1_weight(task, lam)
    max_rows = check_int(max_rows, "max_rows")
    inst = _instances_of(task, train_set)
    n = inst.batch_size
    known = task.known(inst)
    W0 = random_unit_modulus_panels(
        seed, n, task.panel_shape, dtype=task.cdtype, device=task.device
    )
    pairs = [(m, b) for m in mus for b in betas]
    per_chunk = max(1, max_rows // n)
    table: list[dict[str, float]] = []
    rd, dev = task.rdtype, task.device
    with torch.no_grad():
        for start in range(0, len(pairs), per_chunk):
            chunk = pairs[start : start + per_chunk]
            g = len(chunk)
            rep = known[torch.arange(n, device=dev).repeat(g)]  # grid-major rows
            model = ModularProblem(task, rep)
            mu = torch.tensor([m for m, _ in chunk], dtype=rd, device=dev).repeat_interleave(n)
            beta = torch.tensor([b for _, b in chunk], dtype=rd, device=dev).repeat_interleave(n)
            (W,), _ = pga_momentum_run(
                model, W0.repeat(g, 1, 1, 1), mu.expand(J, -1), beta.expand(J, -1), lam, False
            )
            metric = task.evaluate(W, inst[torch.arange(n, device=dev).repeat(g)])["metric"]
            means = metric.reshape(g, n).mean(-1)
            table += [
                {"mu": m, "beta": b, "rate": float(r)}
                for (m, b), r in zip(chunk, means, strict=True)
            ]
    best = max(range(len(table)), key=lambda i: (table[i]["rate"], -i))
    return table[best]["mu"], table[best]["beta"], table


@register_agent(
    "pga_m_grid",
    env_ids=(ENV_ID,),
    description=(
        "PGA+M benchmark, paper 004 Sec. V-A: Alg. 1/3 with constant (mu, beta) grid-searched "
        "on training channels for tune_J iterations (Table I: tune_J=500), run for J"
    ),
    J=10,
    tune_J=None,
    grid="wide",
    n_train=128,
    train_seed=2024,
    seed=0,
)
class PGAMGridAgent(PGAMomentumAgent):
    r"""PGA+M with constant :math:`(\mu, \beta)` from a grid search (paper 004 Sec. V-A).

    On construction (unless ``mu`` and ``beta`` are given, e.g. when loading), draws
    ``n_train`` training channels from the env's sampler with a CPU generator seeded by
    ``train_seed`` and runs :func:`grid_search_pga_m` for ``tune_J`` iterations (default
    ``J``); the chosen pair is stored in :attr:`hparams`, so :attr:`name` shows it and
    :meth:`save` / :meth:`load` reproduce the agent without searching again. The search table
    is kept in :attr:`grid_table`. Table I's "PGA+M, J = 10" row is ``J=10, tune_J=500``;
    ``tune_J=10`` is the fairer baseline for 10-iteration learned optimizers (see
    docs/readings.md#004-table1-tuning).

    Args:
        env: A ModularUplink-v0 env or task.
        J: Iterations at solve time (default 10).
        tune_J: Iterations the grid search maximizes the rate after (default ``J``).
        n_train: Number of training channels (default 128).
        train_seed: Seed of the training channels (keep it apart from test seeds).
        grid: Named step grid, ``"wide"`` (default, :data:`WIDE_MUS`, mu up to 50) or
            ``"table1"`` (:data:`TABLE1_MUS`, the J = 500 grid of Table I's tuning, mu up to
            5; ``"readme"`` is a deprecated alias).
        mus: Explicit step grid (overrides ``grid``).
        betas: Momentum grid (default :data:`DEFAULT_BETAS`).
        mu: Chosen step (skip the search when given together with ``beta``).
        beta: Chosen momentum.
        lam: ℓ1 weight of eq. (17) (sparse constraints only; default 0).
        seed: Seed of the random start (same for tuning and solving).
    """

    def __init__(self, env: Any, **hparams: Any) -> None:
        hp = dict(hparams)
        J = check_int(hp.pop("J", 10), "J")
        tune_J = hp.pop("tune_J", None)
        tune_J = J if tune_J is None else check_int(tune_J, "tune_J")
        n_train = check_int(hp.pop("n_train", 128), "n_train")
        train_seed = check_int(hp.pop("train_seed", 2024), "train_seed", minimum=0)
        mus, betas, grid_hp = _resolve_grid(hp)
        mu, beta = hp.pop("mu", None), hp.pop("beta", None)
        lam, seed = hp.pop("lam", 0.0), _seed(hp.pop("seed", 0))
        if hp:
            raise ValueError(f"unknown hyperparameter(s) {sorted(hp)} for pga_m_grid")
        if (mu is None) != (beta is None):
            raise ValueError("give both mu and beta (skip the grid search) or neither")
        task = check_modular_task(env, "pga_m_grid")
        self.grid_table: list[dict[str, float]] = []
        if mu is None:
            gen = torch.Generator(device="cpu").manual_seed(train_seed)
            train = task.sample(gen, n_train)
            mu, beta, self.grid_table = grid_search_pga_m(
                task, train, tune_J, mus, betas, seed=seed, lam=check_l1_weight(task, lam)
            )
        super().__init__(
            task,
            J=J,
            mu=check_number(mu, "mu"),
            beta=check_number(beta, "beta"),
            lam=lam,
            seed=seed,
        )
        self.hparams.update(tune_J=tune_J, n_train=n_train, train_seed=train_seed, **grid_hp)


# ---- line search --------------------------------------------------------------------------------
@register_agent(
    "line_search",
    env_ids=(ENV_ID,),
    description=(
        "Line-search PGA benchmark, paper 004 Sec. V-A: Alg. 1/3 with (mu_j, beta_j) picked per "
        "iteration and channel by exhaustive grid search maximizing eq. (6)"
    ),
    J=10,
    grid="wide",
    seed=0,
)
class LineSearchAgent(_ModularSolver):
    r"""PGA with a per-iteration exhaustive line search on the rate (paper 004 Sec. V-A).

    Paper: "PGA where the hyperparameters :math:`\{\mu_j, \beta_j\}` are selected for each
    iteration through grid search to maximize the achievable rate R at each step [40] ...
    independently for each data sample". Our rule (batched over channels and candidates):
    at iteration ``j`` every candidate :math:`(\mu, \beta) \in` ``mus`` × ``betas`` gives

    .. math:: \mathbf W^{(\mu,\beta)} = \mathcal P_{\mathcal W}\big(\mathbf W_j + \mu\,
              2\nabla_{\mathbf W}R(\mathbf W_j\mathbf A) + \beta(\mathbf W_j -
              \mathbf W_{j-1})\big)

    (Algorithm 1 lines 2-5, eq. 9 and eq. 10 / 18 / 20), and each channel keeps the candidate
    with the largest eq. (6) on ``H_est``, **or stays at** :math:`\mathbf W_j` when no
    candidate improves (the null step :math:`\mu = \beta = 0`, which projection leaves fixed
    for feasible :math:`\mathbf W_j`). The rate is therefore non-decreasing in ``j`` on the
    known channel (tested). Cost: one gradient and ``len(mus) * len(betas)`` rate evaluations
    per iteration.

    Args:
        env: A ModularUplink-v0 env or task.
        J: Iterations (default 10).
        grid: Named step-candidate grid, ``"wide"`` (default, :data:`WIDE_MUS`) or
            ``"table1"`` (:data:`TABLE1_MUS`, mu up to 5; alias ``"readme"``), as for
            ``pga_m_grid``.
        mus: Explicit step candidates on 2 x eq. (9) (override ``grid``).
        betas: Momentum candidates (default :data:`DEFAULT_BETAS`).
        seed: Seed of the random unit-modulus start (default 0).
    """

    def __init__(self, env: Any, **hparams: Any) -> None:
        hp = {"J": 10, "seed": 0, **hparams}
        self._mus, self._betas, grid_hp = _resolve_grid(hp)
        unknown = set(hp) - {"J", "seed"}
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)} for line_search")
        super().__init__(env, J=check_int(hp["J"], "J"), seed=hp["seed"], **grid_hp)

    def _run(self, known: ModularUplinkKnown, record: bool) -> tuple[list[torch.Tensor], Any]:
        model = ModularProblem(self.task, known)
        return line_search(
            model, self._w0(model), self._mus, self._betas, self.hparams["J"], record
        )


# ---- manifold optimization ----------------------------------------------------------------------
@register_agent(
    "mo",
    env_ids=(ENV_ID,),
    description=(
        "MO benchmark, paper 004 Sec. V-A (ref. [23]) adapted to block-diagonal W: Riemannian "
        "gradient on the circle manifold towards the fully digital subspace, exhaustive line search"
    ),
    J=10,
    fit="subspace",
    seed=0,
)
class ManifoldOptimizationAgent(_ModularSolver):
    r"""Manifold optimization towards the fully digital combiner (paper 004 Sec. V-A, ref. [23]).

    Paper: MO "takes gradient steps of W toward the fully digital beamformer
    :math:`\mathbf G_{\rm opt}`, trying to minimize the error
    :math:`\|\mathbf W\mathbf A - \mathbf G_{\rm opt}\|^2`, and projecting the resulting matrix
    on the feasible set using :math:`\mathcal P_{\mathcal W}` ... it performs an exhaustive
    line search to choose the best step size for each iteration". The paper defines neither
    :math:`\mathbf G_{\rm opt}` nor its scale. Our adaptation (documented choices):

    * :math:`\mathbf G_{\rm opt} = \mathbf U` = :func:`fully_digital_subspace` (orthonormal
      ``M × T``).
    * Surrogate ``fit="subspace"`` (default; the physically consistent reading): as in
      ref. [23]'s MO-AltMin the digital part is kept and eliminated by least squares,
      :math:`\mathbf X = (\mathbf G^H\mathbf G)^{-1}\mathbf G^H\mathbf U` with
      :math:`\mathbf G = \mathbf W\mathbf A` (the CPU's digital processing; eq. (6) is
      invariant to :math:`\mathbf G \to \mathbf G\mathbf X`). The surrogate is the subspace
      distance

      .. math:: f(\mathbf W) = \min_{\mathbf X}\|\mathbf W\mathbf A\mathbf X -
                \mathbf U\|_F^2 = T - \|\Lambda^{-1/2}\mathbf V^H\mathbf G^H\mathbf U\|_F^2,\qquad
                \mathbf V\Lambda\mathbf V^H = \mathbf G^H\mathbf G,

      where eigenvalues below ``1e-6`` (complex64) / ``1e-14`` (complex128) times the largest
      are dropped (pseudo-inverse: rank-deficient ``G`` from sparse panels is handled),

      with Euclidean steepest-ascent direction (envelope theorem, X at its optimum)
      :math:`\nabla f = 2\,[(\mathbf G\mathbf X - \mathbf U)\mathbf X^H\mathbf A^T]_{\rm
      blkdiag}`.
    * Surrogate ``fit="direct"`` (the literal Sec. V-A reading):
      :math:`f(\mathbf W) = \|\mathbf W\mathbf A - \mathbf U\|_F^2`,
      :math:`\nabla f = 2\,[(\mathbf W\mathbf A - \mathbf U)\mathbf A^T]_{\rm blkdiag}`. With
      unit-modulus panels ``W A`` cannot approach an orthonormal ``U``, so this mostly fits
      column norms and barely moves the rate (Table I's MO: 0.75, close to the 0.73 random
      start).
    * Riemannian gradient on the complex circle manifold (ref. [23] eq. 13):
      :math:`\operatorname{grad} f = \nabla f - \Re(\nabla f \odot \overline{\mathbf W})
      \odot \mathbf W`; retraction = the constraint's projection (normalization
      :math:`w/|w|`, eq. 10, for C1; eq. 18 / 20 otherwise).
    * Step rule: exhaustive line search on the surrogate :math:`f` over
      :math:`\alpha = \delta / \max_{ij}|\operatorname{grad} f|_{ij}` with :math:`\delta \in`
      ``steps`` (default :data:`MO_STEPS`, :math:`2^{1}, \dots, 2^{-10}`: the largest entry
      moves by :math:`\delta`), per channel; the null step is kept when no candidate
      decreases :math:`f`, so :math:`f` is non-increasing (tested). The rate eq. (6) is what
      the env reports; it is not what MO optimizes.

    Args:
        env: A ModularUplink-v0 env or task.
        J: Iterations (default 10).
        fit: ``"subspace"`` (default) or ``"direct"`` (see above).
        steps: Candidate largest-entry displacements :math:`\delta` (default :data:`MO_STEPS`).
        seed: Seed of the random unit-modulus start (default 0).
    """

    def __init__(self, env: Any, **hparams: Any) -> None:
        hp = {"J": 10, "fit": "subspace", "seed": 0, **hparams}
        unknown = set(hp) - {"J", "seed", "steps", "fit"}
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)} for mo")
        super().__init__(env, **hp)
        self.hparams["J"] = check_int(hp["J"], "J")
        if hp["fit"] not in MO_FITS:
            raise ValueError(f"fit must be one of {MO_FITS}, got {hp['fit']!r}")
        steps = _grid(hp.get("steps", MO_STEPS), "steps")
        if any(s <= 0 for s in steps):
            raise ValueError(f"steps must be > 0, got {steps}")
        self._steps = steps
        if steps == MO_STEPS:
            self.hparams.pop("steps", None)
        else:
            self.hparams["steps"] = steps

    def surrogate(self, known: ModularUplinkKnown, W: torch.Tensor) -> torch.Tensor:
        r"""The MO objective :math:`f(\mathbf W)` on the known channel, ``[batch]``."""
        model = ModularProblem(self.task, known)
        U = fully_digital_subspace(model.H, model.T)
        return mo_objective(model, W.to(self.task.cdtype), U, self.hparams["fit"], grad=False)[0]

    def _run(self, known: ModularUplinkKnown, record: bool) -> tuple[list[torch.Tensor], Any]:
        model = ModularProblem(self.task, known)
        fit, J = self.hparams["fit"], self.hparams["J"]
        return manifold_optimization(model, self._w0(model), self._steps, fit, J, record)
