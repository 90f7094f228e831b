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

Conventions shared by all four (docs/readings.md, section 004):

* **Rate.** The objective is eq. (6), the sum-rate in nats averaged over the ``B`` bins, on
  the *known* channel ``H_est``; the env reports eq. (6) / K (Table I's per-user nats).
* **Gradient factor.** Theorem 1 (eq. 9) is the Wirtinger derivative
  :math:`\partial R/\partial\overline{\mathbf W}`. The step sizes :math:`\mu` multiply the
  steepest-ascent direction :math:`\partial R/\partial\Re\mathbf W + j\,\partial R/\partial
  \Im\mathbf W = 2\,\partial R/\partial\overline{\mathbf W}` ("mu on the real gradient"), i.e.
  **2 × eq. (9)**; with it ``mu = 1, beta = 0.9`` reproduces the independently checked
  10-iteration value (BENCHMARKS.md, section "Paper 004, Table I, Scenario 1").
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

from agents.base import Agent, register_agent, task_of
from beamgym._validation import check_int, check_number
from beamgym.datasets import InstanceSet
from beamgym.envs.base import BeamformingTask
from beamgym.envs.modular_uplink import (
    ModularUplinkInstance,
    ModularUplinkKnown,
    ModularUplinkTask,
)
from beamgym.physics.metrics import modular_rate_gradient, modular_sum_rate
from beamgym.physics.projections import count_active_phase_shifters

__all__ = [
    "DEFAULT_BETAS",
    "GRIDS",
    "README_MUS",
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

_ENV_ID = "beamgym/ModularUplink-v0"

#: Step grid of Table I's J = 500 tuning (docs/readings.md#004-table1-tuning; "mu up to 5 on
#: the real gradient", i.e. on
#: 2 x eq. 9 of the sum-rate in nats).
README_MUS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
#: That grid extended to mu = 50: the 10-iteration optimum lies beyond 5 (BENCHMARKS.md).
WIDE_MUS: tuple[float, ...] = (*README_MUS, 10.0, 20.0, 50.0)
#: Momentum grid of the same tuning (docs/readings.md#004-table1-tuning).
DEFAULT_BETAS: tuple[float, ...] = (0.0, 0.495, 0.9, 0.99)
#: Named step grids of ``pga_m_grid`` / ``line_search`` (hyperparameter ``grid``).
GRIDS: dict[str, tuple[float, ...]] = {"wide": WIDE_MUS, "readme": README_MUS}
#: MO step candidates: largest entry displacement :math:`\delta` per step (radians-like).
MO_STEPS: tuple[float, ...] = tuple(2.0 ** (1 - i) for i in range(12))
#: MO surrogates: ``"subspace"`` (LS digital part, default) or ``"direct"`` (literal Sec. V-A).
MO_FITS: tuple[str, ...] = ("subspace", "direct")


# ---- validation ---------------------------------------------------------------------------------
def _modular_task(env: Any, who: str) -> ModularUplinkTask:
    task = task_of(env)
    if not isinstance(task, ModularUplinkTask):
        raise ValueError(
            f"{who} solves paper 004's modular uplink and needs {_ENV_ID}, got "
            f"{type(task).__name__}; build it with make_agent(name, gym.make('{_ENV_ID}'))"
        )
    return task


def _schedule(value: Any, J: int, name: str) -> tuple[float, ...]:
    """A constant or a length-``J`` sequence of finite numbers -> a length-``J`` tuple."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        vals = tuple(check_number(v, name) for v in value)
        if len(vals) != J:
            raise ValueError(
                f"{name} must be a number or a sequence of J = {J} per-iteration values, "
                f"got {len(vals)} values"
            )
    else:
        vals = (check_number(value, name),) * J
    return vals


def _grid(values: Any, name: str, *, minimum: float = 0.0) -> tuple[float, ...]:
    if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of numbers, got {values!r}")
    vals = tuple(check_number(v, name) for v in values)
    if any(v < minimum for v in vals):
        raise ValueError(f"{name} values must be >= {minimum}, got {values!r}")
    return vals


def _seed(seed: Any) -> int:
    return check_int(seed, "seed", minimum=0)


def _lam(task: ModularUplinkTask, lam: Any) -> float:
    lam = check_number(lam, "lam")
    if lam < 0:
        raise ValueError(f"lam (the l1 weight lambda of eq. 16-17) must be >= 0, got {lam}")
    if lam > 0 and task.config.constraint not in ("sparse", "sparse_quantized"):
        raise ValueError(
            f"lam = {lam} regularizes ||W||_1 to deactivate phase shifters (eq. 16-17), which "
            f"only the sparse sets allow; the env has constraint={task.config.constraint!r}. "
            "Use gym.make(..., constraint='sparse') or lam=0"
        )
    return lam


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


# ---- model: eq. (6) and Theorem 1 in the T x T domain -------------------------------------------
class _Model:
    """Receiver-side quantities of one batch: ``H_est``, SNR, connectivity, projection."""

    def __init__(self, task: ModularUplinkTask, known: ModularUplinkKnown) -> None:
        if not isinstance(known, ModularUplinkKnown):
            raise ValueError(
                f"solvers take task.known(instance) (a ModularUplinkKnown), got "
                f"{type(known).__name__}; never pass the true instance"
            )
        c = task.config
        self.task = task
        self.H = known.H_est.to(device=task.device, dtype=task.cdtype)  # [b, nb, M, K]
        if self.H.ndim != 4 or tuple(self.H.shape[1:]) != (c.B, c.M, c.K):
            raise ValueError(
                f"known.H_est must be [batch, B, M, K] = [*, {c.B}, {c.M}, {c.K}], "
                f"got {tuple(self.H.shape)}"
            )
        self.Hh = self.H.mH  # [b, nb, K, M]
        self.snr = known.snr.to(device=task.device, dtype=task.rdtype)  # [b]
        self.batch = int(self.H.shape[0])
        self.P, self.N, self.L, self.T, self.K = c.P, c.N, c.L, c.T, c.K
        self.a3 = task.A.to(device=task.device, dtype=task.cdtype).reshape(c.P, c.L, c.T)
        self.a3t = self.a3.mH.contiguous()  # A real: conj does nothing
        self.snr_c = self.snr.to(task.cdtype)
        # relative threshold on the eigenvalues of G^H G (squared singular-value ratio): the
        # fast Cholesky path needs it; MO's least squares drops eigenpairs below it
        self.cond_tol = 1e-6 if task.cdtype == torch.complex64 else 1e-14

    # -- structure: G = W A and back (paper 004 Sec. II-C, eq. 5) --
    def G(self, W: torch.Tensor) -> torch.Tensor:
        g = W @ self.a3  # [..., P, N, L] @ [P, L, T] -> [..., P, N, T]
        return g.reshape(*W.shape[:-3], self.P * self.N, self.T)

    def G_to_W(self, dG: torch.Tensor) -> torch.Tensor:
        d = dG.reshape(*dG.shape[:-2], self.P, self.N, self.T)
        return d @ self.a3t  # [..., P, N, T] @ [P, T, L]: (dR/d conj G) A^T, diagonal blocks

    def _lead(self, t: torch.Tensor, extra: int) -> torch.Tensor:
        """``[b, ...]`` -> ``[b, 1 (x extra), ...]`` for broadcasting over candidate dims."""
        return t.reshape(t.shape[0], *(1,) * extra, *t.shape[1:])

    def project(self, W: torch.Tensor) -> torch.Tensor:
        lead = W.shape[:-3]
        flat = W.reshape(-1, *W.shape[-3:])
        return self.task.project(flat).reshape(*lead, *W.shape[-3:])

    def rate_and_grad(
        self, W: torch.Tensor, need_grad: bool = True, need_rate: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Eq. (6) (sum, nats) and the steepest-ascent direction 2 x eq. (9) on ``H_est``.

        ``W`` is ``[b, *extra, P, N, L]``; the channel of row ``i`` is ``H_est[i]``.
        """
        extra = W.ndim - 4
        G = self.G(W)  # [..., M, T]
        gram = G.mH @ G
        Lg, info_g = torch.linalg.cholesky_ex(gram)
        Gu = G.unsqueeze(-3)
        F = self._lead(self.Hh, extra) @ Gu  # [..., nb, K, T]
        s = self._lead(self.snr_c, extra)[..., None, None, None]
        S = gram.unsqueeze(-3) + s * (F.mH @ F)
        Ls, info_s = torch.linalg.cholesky_ex(S)
        dg = torch.diagonal(Lg, dim1=-2, dim2=-1).real
        scale = torch.diagonal(gram, dim1=-2, dim2=-1).real.amax(-1)
        ok = (info_g == 0) & (info_s == 0).all(-1) & (dg.amin(-1).square() > self.cond_tol * scale)
        rate = grad = None
        if need_rate:
            ds = torch.diagonal(Ls, dim1=-2, dim2=-1).real
            rate = 2.0 * (
                ds.clamp_min(1e-300).log().sum(-1).mean(-1) - dg.clamp_min(1e-300).log().sum(-1)
            )
            ok = ok & torch.isfinite(rate)
        if need_grad:
            Z = Gu + s * (self._lead(self.H, extra) @ F)  # (I + s H H^H) G
            term = torch.cholesky_solve(Z.mH, Ls).mH.mean(-3)
            dG = term - torch.cholesky_solve(G.mH, Lg).mH  # dR / d conj(G)
            grad = 2.0 * self.G_to_W(dG)
        if not bool(ok.all()):
            rate, grad = self._fallback(W, ~ok, rate, grad)
        return rate, grad

    def _fallback(
        self,
        W: torch.Tensor,
        bad: torch.Tensor,
        rate: torch.Tensor | None,
        grad: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Library pseudo-inverse forms of eq. (6) / eq. (9) for rank-deficient ``G``."""
        extra = W.ndim - 4
        lead = W.shape[:-3]
        H = self._lead(self.H, extra).expand(*lead, *self.H.shape[1:])[bad]
        snr = self._lead(self.snr, extra).expand(*lead)[bad]
        Wb = W[bad]
        fin = torch.isfinite(torch.view_as_real(Wb)).flatten(1).all(-1)
        Wb = torch.where(fin[:, None, None, None], Wb, torch.ones_like(Wb))
        A = self.task.A.to(W.device)
        if rate is not None:
            r = modular_sum_rate(H, Wb, A, snr).to(rate.dtype)
            rate = rate.clone()
            rate[bad] = torch.where(fin, r, torch.full_like(r, float("nan")))
        if grad is not None:
            g = 2.0 * modular_rate_gradient(H, Wb, A, snr)
            grad = grad.clone()
            grad[bad] = g
        return rate, grad

    def rate(self, W: torch.Tensor) -> torch.Tensor:
        rate = self.rate_and_grad(W, need_grad=False)[0]
        assert rate is not None
        return rate

    def grad(self, W: torch.Tensor) -> torch.Tensor:
        grad = self.rate_and_grad(W, need_rate=False)[1]
        assert grad is not None
        return grad


def rate_and_gradient(
    task: ModularUplinkTask, known: ModularUplinkKnown, W: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Eq. (6) and its steepest-ascent direction on the receiver's channel (paper 004 Thm. 1).

    .. math:: \mathbf D = \frac{\partial R}{\partial\Re\mathbf W} + j\,\frac{\partial R}
              {\partial\Im\mathbf W} = 2\,\frac{\partial R}{\partial\overline{\mathbf W}}
              = 2 \times \text{eq. (9)},

    evaluated in the ``T × T`` domain (module docstring); equal to ``2 *
    modular_rate_gradient(H_est, W, A, snr)``.

    Args:
        task: The ModularUplink-v0 task (connectivity ``A``, dtype, device).
        known: The receiver's view ``task.known(instance)``.
        W: ``[batch, P, N, L]`` complex panels.

    Returns:
        ``(R, D)``: ``[batch]`` eq. (6) sum-rate in nats and ``[batch, P, N, L]`` direction.
    """
    model = _Model(task, known)
    W = W.to(device=task.device, dtype=task.cdtype)
    rate, grad = model.rate_and_grad(W)
    assert rate is not None and grad is not None
    return rate, grad


def random_unit_modulus_panels(
    seed: int,
    batch: int,
    shape: tuple[int, int, int],
    *,
    dtype: torch.dtype = torch.complex64,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    r"""Random unit-modulus start :math:`\mathbf W_0` (Algorithm 1/3 "randomize W_0", Sec. V-A).

    :math:`[\mathbf W_0]_{p,n,l} = e^{j\theta}`, :math:`\theta \sim \mathcal U[0, 2\pi)`
    i.i.d., drawn in float64 from a CPU ``torch.Generator`` seeded with ``seed`` (one
    ``[batch, P, N, L]`` draw), then cast and moved: the same seed gives the same start on
    every device and precision.

    Args:
        seed: Non-negative generator seed.
        batch: Number of channels.
        shape: ``(P, N, L)``.
        dtype: Complex dtype of the result.
        device: Device of the result.

    Returns:
        ``[batch, P, N, L]`` complex unit-modulus panels.
    """
    g = torch.Generator(device="cpu").manual_seed(_seed(seed))
    theta = torch.rand((batch, *shape), generator=g, dtype=torch.float64) * (2.0 * math.pi)
    return torch.polar(torch.ones_like(theta), theta).to(dtype=dtype, device=device)


def _l1_direction(W: torch.Tensor) -> torch.Tensor:
    r""":math:`e^{j\angle\mathbf W}` of eq. (17), with :math:`0` at deactivated entries."""
    mag = W.abs()
    return torch.where(mag > 0, W / mag.clamp_min(1e-30), torch.zeros_like(W))


def _finite_rows(X: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(torch.view_as_real(X)).flatten(X.ndim - 3).all(-1)


def _pga_run(
    model: _Model,
    W0: torch.Tensor,
    mu: torch.Tensor,
    beta: torch.Tensor,
    lam: float,
    record: bool,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Algorithm 1 / 3 with ``mu``, ``beta`` of shape ``[J, b]`` (per iteration, per row)."""
    W = model.project(W0)
    prev = torch.zeros_like(W)  # W_{-1} = 0 (Algorithm 1 "Init")
    trace = [W] if record else []
    stalled = torch.zeros(W.shape[0], dtype=torch.bool, device=W.device)
    for j in range(mu.shape[0]):
        D = model.grad(W)  # line 2: 2 x eq. (9) (steepest ascent)
        if lam > 0:
            D = D - lam * _l1_direction(W)  # eq. (17)
        m = mu[j].to(W.real.dtype)[:, None, None, None]
        b = beta[j].to(W.real.dtype)[:, None, None, None]
        V = W + m * D  # line 3: gradient step
        V = V + b * (W - prev)  # line 4: momentum
        new = model.project(V)  # line 5: eq. (10), (18) or (20)
        fin = _finite_rows(new)
        stalled |= ~fin
        new = torch.where(fin[:, None, None, None], new, W)
        prev, W = W, new
        if record:
            trace.append(W)
    return (trace if record else [W]), stalled


def pga_momentum(
    task: ModularUplinkTask,
    known: ModularUplinkKnown,
    *,
    J: int = 10,
    mu: float | Sequence[float] = 1.0,
    beta: float | Sequence[float] = 0.9,
    lam: float = 0.0,
    seed: int = 0,
    W0: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    r"""PGA with momentum, paper 004 Algorithm 1 (C1) and Algorithm 3 (C2 / C3), batched.

    For :math:`j = 0, \dots, J-1` (:math:`\mathbf W_{-1} = \mathbf 0`, random
    :math:`\mathbf W_0`):

    .. math::
        \mathbf D_j &= 2\,\nabla_{\mathbf W} R(\mathbf W_j\mathbf A) - \lambda\,
                       e^{j\angle\mathbf W_j}
                       &&\text{(line 2; eq. 9, and eq. 17 for } \lambda > 0)\\
        \mathbf V &= \mathbf W_j + \mu_j\,\mathbf D_j &&\text{(line 3)}\\
        \mathbf V &\leftarrow \mathbf V + \beta_j(\mathbf W_j - \mathbf W_{j-1})
                       &&\text{(line 4)}\\
        \mathbf W_{j+1} &= \mathcal P_{\mathcal W}(\mathbf V)
                       &&\text{(line 5; eq. 10, 18 or 20)}

    The projection is the env's constraint (``task.project``). The ℓ1 term of eq. (17) is
    the steepest-ascent gradient of :math:`-\lambda\|\mathbf W\|_1` (entry-wise modulus), in
    the same convention as :math:`2\nabla` (eq. 17 pairs it with eq. 9 without the factor 2;
    our reading keeps both terms in one convention, so ``lam`` here is twice the Wirtinger
    one); at a deactivated (zero) entry we use the subgradient 0.

    Args:
        task: ModularUplink-v0 task.
        known: ``task.known(instance)``.
        J: Number of iterations :math:`J \ge 1`.
        mu: Step size :math:`\mu_j` (constant or ``J`` values) on the steepest-ascent
            direction of the sum-rate in nats.
        beta: Momentum :math:`\beta_j` (constant or ``J`` values).
        lam: ℓ1 weight :math:`\lambda \ge 0` of eq. (16)-(17) (sparse constraints only).
        seed: Seed of the random start (:func:`random_unit_modulus_panels`).
        W0: Optional ``[batch, P, N, L]`` start (projected first) instead of a random one.

    Returns:
        ``[W_0, W_1, ..., W_J]``, each ``[batch, P, N, L]`` feasible panels.
    """
    J = check_int(J, "J")
    mus = _schedule(mu, J, "mu")
    betas = _schedule(beta, J, "beta")
    lam = _lam(task, lam)
    model = _Model(task, known)
    if W0 is None:
        W0 = random_unit_modulus_panels(
            seed, model.batch, task.panel_shape, dtype=task.cdtype, device=task.device
        )
    else:
        W0 = task._check_panels(W0, model.batch)
    rd = task.rdtype
    mu_t = torch.tensor(mus, dtype=rd, device=task.device)[:, None].expand(J, model.batch)
    beta_t = torch.tensor(betas, dtype=rd, device=task.device)[:, None].expand(J, model.batch)
    trace, _ = _pga_run(model, W0, mu_t, beta_t, lam, record=True)
    return trace


# ---- agents -------------------------------------------------------------------------------------
class _ModularSolver(Agent):
    """Shared plumbing: task check, random start, info, ``solve`` / ``solve_trace``."""

    def __init__(self, env: Any, **hparams: Any) -> None:
        super().__init__(env, **hparams)
        self.task: ModularUplinkTask = _modular_task(self.task, type(self).__name__)
        self.hparams["seed"] = _seed(self.hparams.get("seed", 0))

    def _w0(self, model: _Model) -> torch.Tensor:
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
            model = _Model(self.task, known)
            rate = model.rate(W) / self.task.config.K
            fixed = ~self.task._changed(W, self.task.project(W))
            feasible = fixed & _finite_rows(W) & ~stalled & torch.isfinite(rate)
            info = {
                "rate_known": rate,
                "active_phase_shifters": count_active_phase_shifters(W),
                "feasible": feasible,
                "stalled": stalled,
            }
        return W, info


@register_agent(
    "pga_m",
    env_ids=(_ENV_ID,),
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
            values (default 1.0: the independently checked anchor,
            docs/readings.md#004-table1-tuning).
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
        self._mu = _schedule(hp["mu"], J, "mu")
        self._beta = _schedule(hp["beta"], J, "beta")
        self._lam = _lam(self.task, hp["lam"])
        self.hparams.update(J=J, lam=self._lam)

    def _run(self, known: ModularUplinkKnown, record: bool) -> tuple[list[torch.Tensor], Any]:
        model = _Model(self.task, known)
        rd, dev, b = self.task.rdtype, self.task.device, model.batch
        mu = torch.tensor(self._mu, dtype=rd, device=dev)[:, None].expand(-1, b)
        beta = torch.tensor(self._beta, dtype=rd, device=dev)[:, None].expand(-1, b)
        return _pga_run(model, self._w0(model), mu, beta, self._lam, record)


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
            :data:`README_MUS`, up to 5 on the real gradient).
        betas: Momentum grid (default {0, 0.495, 0.9, 0.99}, Table I's tuning).
        seed: Seed of the random starts.
        lam: ℓ1 weight of eq. (17) (sparse constraints only).
        max_rows: Memory cap on ``len(train_set) * grid points`` per batched run.

    Returns:
        ``(mu, beta, table)``: the best pair (first in grid order on ties) and one row
        ``{"mu", "beta", "rate"}`` per grid point (``rate`` = mean per-user nats).
    """
    task = _modular_task(task, "grid_search_pga_m")
    J = check_int(J, "J")
    mus = _grid(mus, "mus")
    betas = _grid(betas, "betas", minimum=-math.inf)
    lam = _lam(task, lam)
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
            model = _Model(task, rep)
            mu = torch.tensor([m for m, _ in chunk], dtype=rd, device=dev).repeat_interleave(n)
            beta = torch.tensor([b for _, b in chunk], dtype=rd, device=dev).repeat_interleave(n)
            (W,), _ = _pga_run(
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
    env_ids=(_ENV_ID,),
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
    ``tune_J=10`` is the fairer baseline for 10-iteration learned optimizers
    (docs/readings.md#004-table1-tuning).

    Args:
        env: A ModularUplink-v0 env or task.
        J: Iterations at solve time (default 10).
        tune_J: Iterations the grid search maximizes the rate after (default ``J``).
        n_train: Number of training channels (default 128).
        train_seed: Seed of the training channels (keep it apart from test seeds).
        grid: Named step grid, ``"wide"`` (default, :data:`WIDE_MUS`, mu up to 50) or
            ``"readme"`` (:data:`README_MUS`, Table I's J = 500 grid, mu up to 5).
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
        task = _modular_task(env, "pga_m_grid")
        self.grid_table: list[dict[str, float]] = []
        if mu is None:
            gen = torch.Generator(device="cpu").manual_seed(train_seed)
            train = task.sample(gen, n_train)
            mu, beta, self.grid_table = grid_search_pga_m(
                task, train, tune_J, mus, betas, seed=seed, lam=_lam(task, lam)
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
    env_ids=(_ENV_ID,),
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
            ``"readme"`` (:data:`README_MUS`, mu up to 5), as for ``pga_m_grid``.
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
        model = _Model(self.task, known)
        rd, dev = self.task.rdtype, self.task.device
        pairs = [(m, b) for m in self._mus for b in self._betas]
        mu = torch.tensor([m for m, _ in pairs], dtype=rd, device=dev)[None, :, None, None, None]
        beta = torch.tensor([b for _, b in pairs], dtype=rd, device=dev)[None, :, None, None, None]
        W = model.project(self._w0(model))
        prev = torch.zeros_like(W)
        trace = [W] if record else []
        rate = model.rate(W)
        stalled = torch.zeros(model.batch, dtype=torch.bool, device=dev)
        rows = torch.arange(model.batch, device=dev)
        for _ in range(self.hparams["J"]):
            D = model.grad(W)
            cand = W.unsqueeze(1) + mu * D.unsqueeze(1) + beta * (W - prev).unsqueeze(1)
            cand = model.project(cand)  # [b, C, P, N, L]
            r = model.rate(cand)  # [b, C]
            r = torch.where(torch.isfinite(r), r, torch.full_like(r, -math.inf))
            best_r, best = r.max(-1)
            stalled |= ~torch.isfinite(best_r)
            take = best_r > rate
            new = torch.where(take[:, None, None, None], cand[rows, best], W)
            rate = torch.where(take, best_r, rate)
            prev, W = W, new
            if record:
                trace.append(W)
        return (trace if record else [W]), stalled


# ---- manifold optimization ----------------------------------------------------------------------
def fully_digital_subspace(H: torch.Tensor, T: int) -> torch.Tensor:
    r"""Fully digital combiner :math:`\mathbf G_{\rm opt}` of MO (paper 004 Sec. V-A).

    The ``T`` dominant eigenvectors of the bin-averaged receive covariance
    :math:`\bar{\mathbf C} = \frac1B\sum_b \mathbf H[b]\mathbf H^H[b]`. Eq. (6) depends on
    ``G`` only through its column space; for ``B = 1`` and an unconstrained ``M × T``
    combiner this subspace maximizes eq. (6) (:math:`\log|\mathbf I_T + \frac{\rho_s}
    {\sigma_w^2}\mathbf U^H\mathbf H\mathbf H^H\mathbf U|` is maximized by the dominant
    eigenvectors). For ``B > 1`` it is our choice of "the fully digital beamformer" the paper
    does not define further (the exact optimum has no closed form).

    Args:
        H: ``[batch, B, M, K]`` complex channels.
        T: Number of CPU inputs.

    Returns:
        ``[batch, M, T]`` complex matrix with orthonormal columns.
    """
    C = (H @ H.mH).mean(1)
    _, V = torch.linalg.eigh(0.5 * (C + C.mH))
    return V[..., -T:].flip(-1)


@register_agent(
    "mo",
    env_ids=(_ENV_ID,),
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
      column norms and barely moves the rate (Table I's MO: 0.75, close to the random
      start; docs/readings.md#004-mo-surrogate).
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

    def _objective(
        self, model: _Model, W: torch.Tensor, U: torch.Tensor, grad: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``f(W)`` ``[...]`` and (optionally) its Euclidean steepest-ascent direction."""
        G = model.G(W)
        if self.hparams["fit"] == "direct":
            E = G - U
            f = E.abs().square().sum((-2, -1))
            return f, (2.0 * model.G_to_W(E) if grad else None)
        # least squares through the eigendecomposition of G^H G (robust to rank deficiency):
        # X = (G^H G)^+ G^H U, f = T - ||Lambda^{-1/2} V^H G^H U||_F^2 over the kept eigenpairs
        gram = G.mH @ G
        lam, V = torch.linalg.eigh(gram)
        keep = lam > model.cond_tol * lam[..., -1:].clamp_min(1e-30)
        inv = torch.where(keep, 1.0 / lam.clamp_min(1e-30), torch.zeros_like(lam))
        Y = V.mH @ (G.mH @ U)  # [..., T, T]
        f = model.T - (inv.unsqueeze(-1) * Y.abs().square()).sum((-2, -1))
        if not grad:
            return f, None
        X = V @ (inv.unsqueeze(-1).to(Y.dtype) * Y)  # least-squares digital part
        return f, 2.0 * model.G_to_W((G @ X - U) @ X.mH)

    def surrogate(self, known: ModularUplinkKnown, W: torch.Tensor) -> torch.Tensor:
        r"""The MO objective :math:`f(\mathbf W)` on the known channel, ``[batch]``."""
        model = _Model(self.task, known)
        U = fully_digital_subspace(model.H, model.T)
        return self._objective(model, W.to(self.task.cdtype), U, grad=False)[0]

    def _run(self, known: ModularUplinkKnown, record: bool) -> tuple[list[torch.Tensor], Any]:
        model = _Model(self.task, known)
        dev, rd = self.task.device, self.task.rdtype
        U = fully_digital_subspace(model.H, model.T)  # [b, M, T]
        deltas = torch.tensor(self._steps, dtype=rd, device=dev)[None, :, None, None, None]
        W = model.project(self._w0(model))
        trace = [W] if record else []
        stalled = torch.zeros(model.batch, dtype=torch.bool, device=dev)
        rows = torch.arange(model.batch, device=dev)
        for _ in range(self.hparams["J"]):
            f, egrad = self._objective(model, W, U, grad=True)
            assert egrad is not None
            rgrad = egrad - (egrad * W.conj()).real * W  # tangent space of the circle manifold
            scale = rgrad.abs().flatten(1).amax(-1).clamp_min(1e-30)[:, None, None, None, None]
            cand = model.project(W.unsqueeze(1) - (deltas / scale) * rgrad.unsqueeze(1))
            fc = self._objective(model, cand, U.unsqueeze(1), grad=False)[0]  # [b, C]
            fc = torch.where(torch.isfinite(fc), fc, torch.full_like(fc, math.inf))
            best_f, best = fc.min(-1)
            bad = ~torch.isfinite(f)
            stalled |= bad
            take = (best_f < f) & ~bad
            W = torch.where(take[:, None, None, None], cand[rows, best], W)
            if record:
                trace.append(W)
        return (trace if record else [W]), stalled
