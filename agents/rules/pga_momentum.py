r"""Paper 004's iterative rules for ModularUplink-v0 as pure batched functions.

Levy, Shlezinger, "Rapid and Power-Aware Learned Optimization for Modular Receive
Beamforming" (paper 004). Each rule is a function of the problem (:class:`ModularProblem`:
the receiver's channel ``H_est``, the SNR, the connectivity and the feasible set), its
hyperparameters theta and the initial point; the classical agents of
:mod:`agents.classical.modular` pass constant theta, the learned U-PGA+M
(:mod:`agents.upga_m`) passes per-entry learned steps through the SAME step
(:func:`pga_momentum_step`).

* :func:`pga_momentum_step` / :func:`pga_momentum_run` / :func:`pga_momentum`: Algorithm 1
  (PGA with momentum, projection eq. 10) and Algorithm 3 (gradient eq. 17, projections
  eq. 18 / 20);
* :func:`line_search`: the "Line Search" benchmark of Sec. V-A (per-iteration, per-channel
  exhaustive search of :math:`(\mu_j, \beta_j)`);
* :func:`manifold_optimization`: the "MO" benchmark of Sec. V-A (ref. [23], Yu et al. 2016)
  adapted to the block-diagonal modular structure.

Gradient factor. Theorem 1 (eq. 9) is the Wirtinger derivative :math:`\partial R/\partial
\overline{\mathbf W}` (:func:`beamgym.physics.metrics.modular_rate_and_gradient`). The step
sizes :math:`\mu` multiply the steepest-ascent direction :math:`\partial R/\partial\Re
\mathbf W + j\,\partial R/\partial\Im\mathbf W = 2\,\partial R/\partial\overline{\mathbf
W}`, i.e. **2 × eq. (9)** (the factor is explicit in :meth:`ModularProblem.rate_and_grad`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from agents.base import task_of
from beamgym._validation import check_int, check_number
from beamgym.envs.modular_uplink import ModularUplinkKnown, ModularUplinkTask
from beamgym.physics.metrics import modular_rate_and_gradient

__all__ = [
    "ENV_ID",
    "MO_FITS",
    "ModularProblem",
    "check_modular_task",
    "finite_rows",
    "fully_digital_subspace",
    "l1_direction",
    "line_search",
    "manifold_optimization",
    "mo_objective",
    "pga_momentum",
    "pga_momentum_run",
    "pga_momentum_step",
    "random_unit_modulus_panels",
    "rate_and_gradient",
    "schedule",
    "check_l1_weight",
]

#: The env of paper 004's rules.
ENV_ID = "beamgym/ModularUplink-v0"
#: MO surrogates: ``"subspace"`` (LS digital part, default) or ``"direct"`` (literal Sec. V-A).
MO_FITS: tuple[str, ...] = ("subspace", "direct")


def check_modular_task(env: Any, who: str) -> ModularUplinkTask:
    """The ModularUplink-v0 task of ``env`` (an env or task); ValueError naming ``who``."""
    task = task_of(env)
    if not isinstance(task, ModularUplinkTask):
        raise ValueError(
            f"{who} solves paper 004's modular uplink and needs {ENV_ID}, got "
            f"{type(task).__name__}; build it with make_agent(name, gym.make('{ENV_ID}'))"
        )
    return task


def schedule(value: Any, J: int, name: str) -> tuple[float, ...]:
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


def check_l1_weight(task: ModularUplinkTask, lam: Any) -> float:
    """The ℓ1 weight of eq. (16)-(17) (>= 0; > 0 only for the sparse sets); ValueError otherwise."""
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


class ModularProblem:
    """Receiver-side quantities of one batch: ``H_est``, SNR, connectivity, projection.

    Args:
        task: The ModularUplink-v0 task.
        known: ``task.known(instance)`` (never the true instance).
    """

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
        self.snr = known.snr.to(device=task.device, dtype=task.rdtype)  # [b]
        self.batch = int(self.H.shape[0])
        self.P, self.N, self.L, self.T, self.K = c.P, c.N, c.L, c.T, c.K
        self.A = task.A.to(device=task.device)
        self.a3 = task.A.to(device=task.device, dtype=task.cdtype).reshape(c.P, c.L, c.T)
        self.a3t = self.a3.mH.contiguous()  # A real: conj does nothing
        # relative eigenvalue threshold of G^H G below which MO's least squares drops pairs
        self.cond_tol = 1e-6 if task.cdtype == torch.complex64 else 1e-14

    # -- structure: G = W A and back (paper 004 Sec. II-C, eq. 5) --
    def G(self, W: torch.Tensor) -> torch.Tensor:
        r"""Equivalent combiner :math:`\mathbf G = \mathbf W\mathbf A`, ``[..., M, T]``."""
        g = W @ self.a3  # [..., P, N, L] @ [P, L, T] -> [..., P, N, T]
        return g.reshape(*W.shape[:-3], self.P * self.N, self.T)

    def G_to_W(self, dG: torch.Tensor) -> torch.Tensor:
        """Adjoint of :meth:`G`: ``dG A^T`` restricted to the diagonal blocks (panels)."""
        d = dG.reshape(*dG.shape[:-2], self.P, self.N, self.T)
        return d @ self.a3t  # [..., P, N, T] @ [P, T, L]

    def project(self, W: torch.Tensor) -> torch.Tensor:
        """The env's constraint projection (eq. 10, 18 or 20) over any leading dims."""
        lead = W.shape[:-3]
        flat = W.reshape(-1, *W.shape[-3:])
        return self.task.project(flat).reshape(*lead, *W.shape[-3:])

    def rate_and_grad(
        self, W: torch.Tensor, need_grad: bool = True, need_rate: bool = True
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Eq. (6) (sum, nats) and the steepest-ascent direction 2 x eq. (9) on ``H_est``.

        ``W`` is ``[b, *extra, P, N, L]``; the channel of row ``i`` is ``H_est[i]``
        (:func:`beamgym.physics.metrics.modular_rate_and_gradient`, times 2).
        """
        rate, grad = modular_rate_and_gradient(
            self.H, W, self.A, self.snr, need_rate=need_rate, need_grad=need_grad
        )
        return rate, (None if grad is None else 2.0 * grad)

    def rate(self, W: torch.Tensor) -> torch.Tensor:
        """Eq. (6) sum-rate in nats, ``[b, *extra]``."""
        rate = self.rate_and_grad(W, need_grad=False)[0]
        assert rate is not None
        return rate

    def grad(self, W: torch.Tensor) -> torch.Tensor:
        """Steepest-ascent direction 2 x eq. (9), ``[b, *extra, P, N, L]``."""
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
    model = ModularProblem(task, known)
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
    g = torch.Generator(device="cpu").manual_seed(check_int(seed, "seed", minimum=0))
    theta = torch.rand((batch, *shape), generator=g, dtype=torch.float64) * (2.0 * math.pi)
    return torch.polar(torch.ones_like(theta), theta).to(dtype=dtype, device=device)


def l1_direction(W: torch.Tensor) -> torch.Tensor:
    r""":math:`e^{j\angle\mathbf W}` of eq. (17), 0 at zero entries; differentiable (no NaN)."""
    mag = W.abs()
    nz = mag > 0
    safe = torch.where(nz, mag, torch.ones_like(mag))
    return torch.where(nz, W / safe, torch.zeros_like(W))


def finite_rows(X: torch.Tensor) -> torch.Tensor:
    """Bool ``[...]``: the ``[..., P, N, L]`` panels of each row are all finite."""
    return torch.isfinite(torch.view_as_real(X)).flatten(X.ndim - 3).all(-1)


def pga_momentum_step(
    W: torch.Tensor,
    W_prev: torch.Tensor,
    grad: torch.Tensor,
    mu: torch.Tensor | float,
    beta: torch.Tensor | float,
    lam: torch.Tensor | float | None,
    project: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    r"""One step of paper 004 Algorithm 1 / 3 (lines 2-5): the update rule, theta apart.

    .. math:: \mathbf W_{j+1} = \mathcal P\big(\mathbf W_j + \mu_j\,(\mathbf D_j -
              \lambda_j e^{j\angle\mathbf W_j}) + \beta_j(\mathbf W_j - \mathbf W_{j-1})\big)

    with :math:`\mathbf D_j = 2 \times` eq. (9) (steepest ascent of eq. (6) in nats) and the
    ℓ1 term of eq. (17) (its subgradient 0 at a deactivated entry). Classical PGA+M passes
    ``[b, 1, 1, 1]`` constant steps; U-PGA+M passes learned per-entry ``[P, N, L]`` steps
    (eq. (11) / (21)).

    Args:
        W: ``[b, P, N, L]`` complex iterate :math:`\mathbf W_j`.
        W_prev: ``[b, P, N, L]`` complex :math:`\mathbf W_{j-1}`.
        grad: ``[b, P, N, L]`` steepest-ascent direction ``2 × eq. (9)`` at ``W``.
        mu: Step(s) :math:`\mu_j`, broadcastable to ``W`` (real).
        beta: Momentum :math:`\beta_j`, broadcastable to ``W`` (real).
        lam: ℓ1 weight(s) :math:`\lambda_j` or ``None`` (Algorithm 1: no ℓ1 term).
        project: Callable ``[b, P, N, L] -> [b, P, N, L]`` (eq. 10, 18, 20 or a surrogate).

    Returns:
        ``[b, P, N, L]`` complex :math:`\mathbf W_{j+1}`.
    """
    D = grad if lam is None else grad - lam * l1_direction(W)  # eq. (17)
    return project(W + mu * D + beta * (W - W_prev))  # lines 3-5


def pga_momentum_run(
    model: ModularProblem,
    W0: torch.Tensor,
    mu: torch.Tensor,
    beta: torch.Tensor,
    lam: float,
    record: bool,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Algorithm 1 / 3 with ``mu``, ``beta`` of shape ``[J, b]`` (per iteration, per row).

    A step that would give a non-finite iterate is not taken (the row keeps its iterate) and
    the row is flagged ``stalled``.

    Returns:
        ``(iterates, stalled)``: ``[W_0, ..., W_J]`` (only ``[W_J]`` unless ``record``) and a
        ``[b]`` bool flag.
    """
    W = model.project(W0)
    prev = torch.zeros_like(W)  # W_{-1} = 0 (Algorithm 1 "Init")
    trace = [W] if record else []
    stalled = torch.zeros(W.shape[0], dtype=torch.bool, device=W.device)
    for j in range(mu.shape[0]):
        D = model.grad(W)  # line 2: 2 x eq. (9) (steepest ascent)
        m = mu[j].to(W.real.dtype)[:, None, None, None]
        b = beta[j].to(W.real.dtype)[:, None, None, None]
        new = pga_momentum_step(W, prev, D, m, b, lam if lam > 0 else None, model.project)
        fin = finite_rows(new)
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
    mus = schedule(mu, J, "mu")
    betas = schedule(beta, J, "beta")
    lam = check_l1_weight(task, lam)
    model = ModularProblem(task, known)
    if W0 is None:
        W0 = random_unit_modulus_panels(
            seed, model.batch, task.panel_shape, dtype=task.cdtype, device=task.device
        )
    else:
        W0 = task._check_panels(W0, model.batch)
    rd = task.rdtype
    mu_t = torch.tensor(mus, dtype=rd, device=task.device)[:, None].expand(J, model.batch)
    beta_t = torch.tensor(betas, dtype=rd, device=task.device)[:, None].expand(J, model.batch)
    trace, _ = pga_momentum_run(model, W0, mu_t, beta_t, lam, record=True)
    return trace


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


def line_search(
    model: ModularProblem,
    W0: torch.Tensor,
    mus: Sequence[float],
    betas: Sequence[float],
    J: int,
    record: bool = False,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    r"""PGA with a per-iteration exhaustive line search on the rate (paper 004 Sec. V-A).

    At iteration ``j`` every candidate :math:`(\mu, \beta) \in` ``mus`` × ``betas`` gives

    .. math:: \mathbf W^{(\mu,\beta)} = \mathcal P_{\mathcal W}\big(\mathbf W_j + \mu\,
              2\nabla_{\mathbf W}R(\mathbf W_j\mathbf A) + \beta(\mathbf W_j -
              \mathbf W_{j-1})\big)

    (Algorithm 1 lines 2-5, eq. 9 and eq. 10 / 18 / 20), and each channel keeps the candidate
    with the largest eq. (6) on ``H_est``, or stays at :math:`\mathbf W_j` when none improves
    (the null step), so the known-channel rate is non-decreasing. Batched over channels and
    candidates.

    Args:
        model: The batch of problems.
        W0: ``[b, P, N, L]`` start (projected first).
        mus: Step candidates on 2 x eq. (9).
        betas: Momentum candidates.
        J: Iterations.
        record: Keep every iterate.

    Returns:
        ``(iterates, stalled)`` as :func:`pga_momentum_run`.
    """
    rd, dev = model.task.rdtype, model.task.device
    pairs = [(m, b) for m in mus for b in betas]
    mu = torch.tensor([m for m, _ in pairs], dtype=rd, device=dev)[None, :, None, None, None]
    beta = torch.tensor([b for _, b in pairs], dtype=rd, device=dev)[None, :, None, None, None]
    W = model.project(W0)
    prev = torch.zeros_like(W)
    trace = [W] if record else []
    rate = model.rate(W)
    stalled = torch.zeros(model.batch, dtype=torch.bool, device=dev)
    rows = torch.arange(model.batch, device=dev)
    for _ in range(J):
        D = model.grad(W)
        cand = pga_momentum_step(
            W.unsqueeze(1), prev.unsqueeze(1), D.unsqueeze(1), mu, beta, None, model.project
        )  # [b, C, P, N, L]
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


def mo_objective(
    model: ModularProblem, W: torch.Tensor, U: torch.Tensor, fit: str, grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""MO surrogate :math:`f(\mathbf W)` ``[...]`` and its Euclidean steepest-ascent direction.

    ``fit="direct"`` (literal Sec. V-A): :math:`f = \|\mathbf W\mathbf A - \mathbf U\|_F^2`,
    :math:`\nabla f = 2\,[(\mathbf W\mathbf A - \mathbf U)\mathbf A^T]_{\rm blkdiag}`.
    ``fit="subspace"``: :math:`f = \min_{\mathbf X}\|\mathbf W\mathbf A\mathbf X -
    \mathbf U\|_F^2 = T - \|\Lambda^{-1/2}\mathbf V^H\mathbf G^H\mathbf U\|_F^2` over the
    eigenpairs of :math:`\mathbf G^H\mathbf G` above ``model.cond_tol`` times the largest,
    :math:`\nabla f = 2\,[(\mathbf G\mathbf X - \mathbf U)\mathbf X^H\mathbf A^T]_{\rm
    blkdiag}` (envelope theorem). See :class:`agents.classical.modular.ManifoldOptimizationAgent`.

    Args:
        model: The batch of problems.
        W: ``[b, *extra, P, N, L]`` panels.
        U: ``[b, *extra, M, T]`` target (:func:`fully_digital_subspace`).
        fit: One of :data:`MO_FITS`.
        grad: Also return the direction.

    Returns:
        ``(f, direction or None)``.
    """
    G = model.G(W)
    if fit == "direct":
        E = G - U
        f = E.abs().square().sum((-2, -1))
        return f, (2.0 * model.G_to_W(E) if grad else None)
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


def manifold_optimization(
    model: ModularProblem,
    W0: torch.Tensor,
    steps: Sequence[float],
    fit: str,
    J: int,
    record: bool = False,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    r"""MO towards the fully digital combiner (paper 004 Sec. V-A, ref. [23]), batched.

    Riemannian gradient on the complex circle manifold (ref. [23] eq. 13),
    :math:`\operatorname{grad} f = \nabla f - \Re(\nabla f \odot \overline{\mathbf W})
    \odot \mathbf W`, retraction = the constraint's projection, and an exhaustive line search
    on :math:`f` (:func:`mo_objective`) over :math:`\alpha = \delta/\max_{ij}|\operatorname
    {grad} f|_{ij}`, :math:`\delta \in` ``steps``, per channel; the null step is kept when no
    candidate decreases :math:`f`.

    Args:
        model: The batch of problems.
        W0: ``[b, P, N, L]`` start (projected first).
        steps: Candidate largest-entry displacements :math:`\delta > 0`.
        fit: One of :data:`MO_FITS`.
        J: Iterations.
        record: Keep every iterate.

    Returns:
        ``(iterates, stalled)`` as :func:`pga_momentum_run`.
    """
    dev, rd = model.task.device, model.task.rdtype
    U = fully_digital_subspace(model.H, model.T)  # [b, M, T]
    deltas = torch.tensor(tuple(steps), dtype=rd, device=dev)[None, :, None, None, None]
    W = model.project(W0)
    trace = [W] if record else []
    stalled = torch.zeros(model.batch, dtype=torch.bool, device=dev)
    rows = torch.arange(model.batch, device=dev)
    for _ in range(J):
        f, egrad = mo_objective(model, W, U, fit, grad=True)
        assert egrad is not None
        rgrad = egrad - (egrad * W.conj()).real * W  # tangent space of the circle manifold
        scale = rgrad.abs().flatten(1).amax(-1).clamp_min(1e-30)[:, None, None, None, None]
        cand = model.project(W.unsqueeze(1) - (deltas / scale) * rgrad.unsqueeze(1))
        fc = mo_objective(model, cand, U.unsqueeze(1), fit, grad=False)[0]  # [b, C]
        fc = torch.where(torch.isfinite(fc), fc, torch.full_like(fc, math.inf))
        best_f, best = fc.min(-1)
        bad = ~torch.isfinite(f)
        stalled |= bad
        take = (best_f < f) & ~bad
        W = torch.where(take[:, None, None, None], cand[rows, best], W)
        if record:
            trace.append(W)
    return (trace if record else [W]), stalled
