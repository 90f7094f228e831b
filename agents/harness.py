"""The common evaluation harness: any policy, any env, identical instances, quality and speed.

Modelled on stable-baselines3's ``evaluate_policy``: the harness scores anything that has
``predict`` (SB3's :class:`PolicyPredictor` protocol: an SB3 model, a user's policy, a beamgym
:class:`~agents.base.Agent`) on a fixed, seeded :class:`~beamgym.datasets.InstanceSet`, and uses
the fast batched ``solve`` of a beamgym agent where it has one. For every batch it

1. hands the policy only what the transmitter/receiver knows:

   * **solve path** (agents with ``solve`` and ``task``): ``task.known(instance)``, and times
     ``agent.solve`` (batched);
   * **predict path** (anything with ``predict``): the observation ``env.reset(options=
     {"instance": ...})`` would return (``task.observe(instance)`` as float32, the horizon-1
     layout), batched over the instances, and times ``predict``;

2. maps the design through the env's action map, exactly what ``env.step`` would evaluate:
   ``action_to_beamformer(beamformer_to_action(bf))`` for a beamformer, ``action_to_beamformer``
   of the action clipped to the action space for an action. An infeasible design is projected,
   never scored as is; the fraction of instances the map changed is reported
   (:attr:`AgentResult.projected_fraction`);
3. evaluates it on the TRUE channel with the env's own metric, and refuses to report a metric
   if the env's ``evaluate`` flags a mapped design as infeasible (``feasible == False``), if
   the metric is not finite, or if ``evaluate`` raises.

The instance set is checked once against the policy's env configuration (env id, keywords,
precision): a policy built for another configuration is refused with the differing keywords.
For iterative solvers it also evaluates every iterate of ``agent.solve_trace`` to give the
metric against iterations. Also times, on a few instances, one instance at a time.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from scipy import stats

from agents.base import task_of
from beamgym._validation import check_int
from beamgym.datasets import InstanceSet, make_task
from beamgym.envs.base import BeamformingTask
from beamgym.structures import TensorDataclass

__all__ = [
    "AgentResult",
    "PROJECTION_RTOL",
    "PolicyPredictor",
    "TEST_SEED",
    "VALIDATION_SEED",
    "evaluate_agent",
    "mean_ci",
]

#: Seed of every test set (fixed once; never tuned on): ``examples/evaluate.py`` and sweeps.
TEST_SEED = 1_000_003
#: Seed of the validation sets that calibrating agents (``validation_size > 0``) learn on.
VALIDATION_SEED = 2_000_003

#: Relative change above which the env's action map counts as having projected a beamformer.
PROJECTION_RTOL = 1e-4

Mode = Literal["auto", "solve", "predict"]


@runtime_checkable
class PolicyPredictor(Protocol):
    """Anything with SB3's ``predict`` (``stable_baselines3.common.type_aliases``).

    SB3 models, beamgym agents and user policies satisfy it. The harness calls it with a batch
    of observations ``[B, obs_dim]`` (float32, the env's horizon-1 observation; ``B = 1`` for the
    single-instance latency) and expects a batch of actions ``[B, action_dim]`` in the env's
    action space ``[-1, 1]`` (actions outside it are clipped, as SB3 does).
    """

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, Any]:
        """Observation(s) -> ``(action(s), state)``."""
        ...


def mean_ci(x: np.ndarray) -> tuple[float, float | None]:
    r"""Mean and half-width of the Student-t 95% confidence interval of the mean.

    .. math:: \bar x \pm t_{0.975,\,n-1}\, s / \sqrt n, \qquad
              s^2 = \tfrac{1}{n-1}\textstyle\sum_i (x_i - \bar x)^2

    Args:
        x: ``[n]`` samples (any shape; flattened), ``n >= 1``.

    Returns:
        ``(mean, half_width)``; ``half_width`` is ``None`` for ``n == 1`` (the interval is
        undefined), so summaries stay valid JSON.

    Raises:
        ValueError: if ``x`` is empty.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("mean_ci needs at least one sample, got an empty array")
    if x.size == 1:
        return float(x[0]), None
    half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean()), float(half)


@dataclasses.dataclass
class AgentResult:
    """Scores of one agent or policy on one instance set.

    Attributes:
        agent: The agent's name (hyperparameters included), or the policy's name.
        env_id: Registered env id (the instance set's, checked against the agent's task).
        env_kwargs: Env configuration keywords of the instance set (checked against the
            agent's task: they describe the same configuration).
        metric_name: The env's headline metric (``sum_rate``, ``power``, ...).
        metric_sign: +1 if larger is better, -1 if smaller is better.
        metric: ``[n]`` headline metric per instance (true channel).
        reward: ``[n]`` env reward per instance.
        extras: Other per-instance scalars of the env's ``evaluate`` (``[n]`` each), e.g. the
            outage fraction or the active phase shifters.
        projected_fraction: Fraction of instances whose design the env's action map changed.
            Solve path: the beamformer moved by more than :data:`PROJECTION_RTOL` (relative),
            so an agent returning feasible, full-power beamformers scores 0. Predict path: the
            action was outside the action space (clipped) or the env flagged it ``projected``,
            exactly as ``info["projected"]`` of ``env.step``. The envs whose action map scales
            every design to full power (FullyDigitalFDD, NearFieldHybrid) flag any action whose
            power is not already exactly P, so there the predict path reports the fraction
            rescaled by the normalization layer (usually all of them), not an infeasibility.
        latency_batched_s: Solve (or predict) time per instance when handling the whole batch.
        latency_single_s: Median solve (or predict) time of one instance alone (NaN if not
            measured).
        trace: Mean metric of each iterate ``[W_0, ..., W_final]`` (``None`` if not traced).
        mode: ``"solve"`` or ``"predict"``: the path that was scored.
        feedback_bits: Feedback bits per user of an agent with a feedback link (its
            ``feedback_bits()``: ``symbols_x_bits``, ``entropy_coded`` /
            ``noisy_link_upper_bound``), ``None`` for the others.
    """

    agent: str
    env_id: str
    env_kwargs: dict[str, Any]
    metric_name: str
    metric_sign: int
    metric: np.ndarray
    reward: np.ndarray
    extras: dict[str, np.ndarray]
    projected_fraction: float
    latency_batched_s: float
    latency_single_s: float
    trace: np.ndarray | None = None
    mode: str = "solve"
    feedback_bits: dict[str, float] | None = None

    @property
    def n(self) -> int:
        """Number of instances."""
        return int(self.metric.size)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: means and Student-t 95% CIs of the metric, reward and extras.

        Undefined values (a CI of one instance, an unmeasured latency) are ``None``, so
        ``json.dumps(summary, allow_nan=False)`` always succeeds.
        """
        m, m_ci = mean_ci(self.metric)
        r, r_ci = mean_ci(self.reward)
        out: dict[str, Any] = {
            "agent": self.agent,
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "mode": self.mode,
            "metric_name": self.metric_name,
            "metric_mean": m,
            "metric_ci95": m_ci,
            "reward_mean": r,
            "reward_ci95": r_ci,
            "n": self.n,
            "projected_fraction": self.projected_fraction,
            "latency_batched_us": 1e6 * self.latency_batched_s,
            "latency_single_us": 1e6 * self.latency_single_s,
        }
        for k, v in self.extras.items():
            out[f"{k}_mean"], out[f"{k}_ci95"] = mean_ci(v)
        if self.trace is not None:
            out["trace"] = [float(t) for t in self.trace]
        if self.feedback_bits is not None:
            out["feedback_bits"] = {
                k: _finite_or_none(float(v)) for k, v in self.feedback_bits.items()
            }
        return {k: _finite_or_none(v) for k, v in out.items()}


def _finite_or_none(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, list):
        return [_finite_or_none(x) for x in v]
    return v


def evaluate_agent(
    agent: Any,
    instance_set: InstanceSet,
    *,
    env: Any = None,
    mode: Mode = "auto",
    batch_size: int = 512,
    trace: bool = False,
    single_instances: int = 8,
    deterministic: bool = True,
    name: str | None = None,
) -> AgentResult:
    """Score ``agent`` on every instance of ``instance_set`` (see the module docstring).

    Args:
        agent: A beamgym :class:`~agents.base.Agent` built for the set's env configuration, or
            any :class:`PolicyPredictor` (an SB3 model, an object with ``predict``).
        instance_set: Fixed seeded instances (:func:`beamgym.datasets.make_instance_set` or
            :func:`~beamgym.datasets.load_instance_set`).
        env: The env (or task) a plain policy acts in; default: the task of the instance set's
            configuration. Must have ``horizon=1``. Ignored for the task of an agent with
            ``task``, but checked against the instance set as well.
        mode: ``"solve"`` (batched ``solve(known)``), ``"predict"`` (``predict(obs)``) or
            ``"auto"`` (``solve`` where the agent has it and a ``task``, else ``predict``).
        batch_size: Instances per ``solve``/``predict`` call.
        trace: Also evaluate every iterate of ``agent.solve_trace`` (metric vs iteration);
            solve path only.
        single_instances: Instances timed one at a time for the single-instance latency
            (0 to skip).
        deterministic: Passed to ``predict`` (SB3: the mean action instead of a sample).
        name: Name in the result; default: ``agent.name`` if it has one, else its class name.

    Returns:
        The per-instance scores, latencies and (optionally) the trace.

    Raises:
        TypeError: if ``instance_set`` is not an :class:`InstanceSet` or ``agent`` has neither
            ``solve`` nor ``predict``.
        ValueError: on a bad argument, an agent built for another env configuration than the
            instance set, or infeasible designs (the env's ``evaluate`` reports
            ``feasible == False``, a non-finite metric, or raises).
    """
    if not isinstance(instance_set, InstanceSet):
        raise TypeError(
            f"instance_set must be a beamgym.datasets.InstanceSet, got "
            f"{type(instance_set).__name__}; build one with make_instance_set(env_id, n, seed) "
            "or load_instance_set(path)"
        )
    if mode not in ("auto", "solve", "predict"):
        raise ValueError(f"mode must be 'auto', 'solve' or 'predict', got {mode!r}")
    batch_size = check_int(batch_size, "batch_size")
    single_instances = check_int(single_instances, "single_instances", minimum=0)
    agent_task = getattr(agent, "task", None)
    if not isinstance(agent_task, BeamformingTask):
        agent_task = None
    path = _resolve_mode(agent, agent_task, mode)
    who = name or _name_of(agent)
    if trace and path != "solve":
        raise ValueError(
            f"trace=True needs the solve path (an agent with solve_trace); {who} is scored "
            "through predict: pass trace=False"
        )
    env_task = _env_task(env) if env is not None else None
    for t in (agent_task, env_task):
        if t is not None:
            _check_configuration(t, instance_set, who)
    task = agent_task or env_task or _task_of_set(instance_set)
    if path == "predict":
        _check_policy_spaces(agent, task, who)
    # validated once per set: make_instance_set draws through the task and load_instance_set
    # validates; a hand-built set is checked here (type, shapes, finiteness), never per batch
    instances = instance_set.instances
    if not instance_set.validated:
        instances = task.validate_instance(instances)
    instances = instances.to(task.device)
    n = instances.batch_size

    metrics, rewards, projected, feasible = [], [], [], []
    extras: dict[str, list[np.ndarray]] = {}
    traces: list[np.ndarray] = []
    elapsed = 0.0
    for start in range(0, n, batch_size):
        batch = instances[start : min(start + batch_size, n)]
        with torch.no_grad():
            if path == "solve":
                bf, proj, dt = _solve_batch(agent, task, batch)
            else:
                bf, proj, dt = _predict_batch(agent, task, batch, deterministic, who)
            elapsed += dt
            m = _evaluate(task, bf, batch, who)
            if trace:
                traces.append(_trace_batch(agent, task, batch))
        metric = m["metric"].detach().double().cpu().numpy()
        ok = np.isfinite(metric)
        if isinstance(m.get("feasible"), torch.Tensor):
            ok &= m["feasible"].detach().cpu().numpy().astype(bool).reshape(-1)
        feasible.append(ok)
        metrics.append(metric)
        rewards.append(m["reward"].detach().double().cpu().numpy())
        projected.append(proj.detach().cpu().numpy())
        for k, v in _scalar_extras(m, batch.batch_size).items():
            extras.setdefault(k, []).append(v)
    bad = int((~np.concatenate(feasible)).sum())
    if bad:
        raise ValueError(
            f"{who} handed over designs that are infeasible after the env's action map on "
            f"{bad} of {n} instances (the env's evaluate reports feasible=False or a "
            "non-finite metric); the harness reports no metric for infeasible designs: return "
            "beamformers that satisfy the env's constraints (power budget, analog precoder), or "
            "finite actions that the env's action map makes feasible"
        )
    if path == "solve":
        single = _single_latency_solve(agent, task, instances, single_instances)
    else:
        single = _single_latency_predict(agent, task, instances, single_instances, deterministic)
    trace_mean = None
    if trace and traces:
        # iterative solvers may stop early on some batches: hold their final value
        length = max(t.shape[1] for t in traces)
        padded = [np.pad(t, ((0, 0), (0, length - t.shape[1])), mode="edge") for t in traces]
        trace_mean = np.concatenate(padded, 0).mean(0)
    return AgentResult(
        agent=who,
        env_id=instance_set.env_id,
        env_kwargs=dict(instance_set.env_kwargs),
        metric_name=task.metric_name,
        metric_sign=task.metric_sign,
        metric=np.concatenate(metrics),
        reward=np.concatenate(rewards),
        extras={k: np.concatenate(v) for k, v in extras.items()},
        projected_fraction=float(np.concatenate(projected).mean()),
        latency_batched_s=elapsed / n,
        latency_single_s=single,
        trace=trace_mean,
        mode=path,
        feedback_bits=_feedback_bits(agent),
    )


def _feedback_bits(agent: Any) -> dict[str, float] | None:
    """The agent's ``feedback_bits()`` (per-user feedback accounting), if it has one."""
    method = getattr(agent, "feedback_bits", None)
    return dict(method()) if callable(method) else None


# ---- resolving the policy, its task and its configuration --------------------------------------
def _name_of(agent: Any) -> str:
    name = getattr(agent, "name", None)
    return name if isinstance(name, str) and name else type(agent).__name__


def _resolve_mode(agent: Any, agent_task: BeamformingTask | None, mode: Mode) -> str:
    can_solve = callable(getattr(agent, "solve", None)) and agent_task is not None
    can_predict = callable(getattr(agent, "predict", None))
    if mode == "solve" and not can_solve:
        raise TypeError(
            f"mode='solve' needs an agent with solve(known) and a BeamformingTask in .task; "
            f"{type(agent).__name__} has none: use mode='predict' or mode='auto'"
        )
    if mode == "predict" and not can_predict:
        raise TypeError(
            f"mode='predict' needs an agent with predict(obs) -> (action, state); "
            f"{type(agent).__name__} has none: use mode='solve' or mode='auto'"
        )
    if mode == "auto":
        if not (can_solve or can_predict):
            raise TypeError(
                f"agent must be a beamgym Agent or have predict(obs, state, episode_start, "
                f"deterministic) -> (action, state) (an SB3 model, a PolicyPredictor); got "
                f"{type(agent).__name__}"
            )
        return "solve" if can_solve else "predict"
    return mode


def _env_task(env: Any) -> BeamformingTask:
    horizon = getattr(getattr(env, "unwrapped", env), "horizon", 1)
    if horizon != 1:
        raise ValueError(
            f"env has horizon={horizon}; the harness scores one-step episodes (one instance, "
            "one action): pass an env made with horizon=1"
        )
    return task_of(env)


def _task_of_set(instance_set: InstanceSet) -> BeamformingTask:
    return make_task(
        instance_set.env_id, device=instance_set.instances.device, **instance_set.env_kwargs
    )


def _check_configuration(task: BeamformingTask, instance_set: InstanceSet, who: str) -> None:
    """Refuse an agent built for another env configuration than the instance set."""
    fix = (
        "build the agent for the instance set's configuration (make_task(instance_set.env_id, "
        "**instance_set.env_kwargs)) or draw the instance set for the agent's"
    )
    env_id = getattr(task, "env_id", None)
    if env_id != instance_set.env_id:
        raise ValueError(
            f"the instance set holds {instance_set.env_id} instances but {who} was built for "
            f"{env_id}; {fix}"
        )
    kwargs = dict(instance_set.env_kwargs)
    set_precision = kwargs.pop("precision", "single")
    kwargs.pop("device", None)
    config_cls = type(task.config)
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ValueError(
            f"instance set keywords {unknown} are not {config_cls.__name__} fields; valid: "
            f"{sorted(names)}"
        )
    other = config_cls(**kwargs)
    diff = [
        f"{f.name}: agent {getattr(task.config, f.name)!r} vs instance set "
        f"{getattr(other, f.name)!r}"
        for f in dataclasses.fields(config_cls)
        if getattr(task.config, f.name) != getattr(other, f.name)
    ]
    if task.precision != set_precision:
        diff.append(f"precision: agent {task.precision!r} vs instance set {set_precision!r}")
    if diff:
        raise ValueError(
            f"{who} was built for another configuration of {env_id} than the instance set "
            f"({'; '.join(diff)}); {fix}"
        )
    if not isinstance(instance_set.instances, task.instance_cls):
        raise ValueError(
            f"the instance set holds {type(instance_set.instances).__name__} but {who} was "
            f"built for {task.instance_cls.__name__}; {fix}"
        )


def _check_policy_spaces(policy: Any, task: BeamformingTask, who: str) -> None:
    """A policy with Gymnasium spaces (an SB3 model) must fit the env's horizon-1 spaces."""
    for attr, dim in (("observation_space", task.obs_dim), ("action_space", task.action_dim)):
        shape = getattr(getattr(policy, attr, None), "shape", None)
        if shape is not None and tuple(shape) != (dim,):
            raise ValueError(
                f"{who} has {attr} of shape {tuple(shape)} but {task.env_id} with this "
                f"configuration has ({dim},) at horizon=1; train the policy on "
                f"gym.make({task.env_id!r}, **instance_set.env_kwargs)"
            )


# ---- one batch ----------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _solve_batch(
    agent: Any, task: BeamformingTask, batch: TensorDataclass
) -> tuple[Any, torch.Tensor, float]:
    """Solve path: the agent's beamformer through the env's action map."""
    known = task.known(batch)
    _sync(task.device)
    t0 = time.perf_counter()
    bf = agent.solve(known)
    _sync(task.device)
    dt = time.perf_counter() - t0
    action = task.beamformer_to_action(bf, known)
    feasible_bf, _ = task.action_to_beamformer(action, known)
    return feasible_bf, _relative_change(feasible_bf, bf) > PROJECTION_RTOL, dt


def _observe(task: BeamformingTask, batch: TensorDataclass) -> np.ndarray:
    """The observations ``env.reset(options={"instance": ...})`` returns (horizon 1), batched."""
    return task.observe(batch).detach().cpu().numpy().astype(np.float32)


def _predict_batch(
    policy: Any, task: BeamformingTask, batch: TensorDataclass, deterministic: bool, who: str
) -> tuple[Any, torch.Tensor, float]:
    """Predict path: observation -> ``predict`` -> clip to the action space -> action map."""
    obs = _observe(task, batch)
    b = obs.shape[0]
    t0 = time.perf_counter()
    action = _call_predict(policy, obs, deterministic, who)
    dt = time.perf_counter() - t0
    action = _check_actions(action, b, task.action_dim, who)
    clipped = np.clip(action, -1.0, 1.0)
    was_clipped = np.any(clipped != action, axis=1)
    act = torch.as_tensor(clipped, device=task.device).to(task.rdtype)
    bf, flag = task.action_to_beamformer(act, batch)  # as env.step: the instance itself
    proj = flag.detach().cpu().bool() | torch.from_numpy(was_clipped)
    return bf, proj, dt


def _call_predict(policy: Any, obs: np.ndarray, deterministic: bool, who: str) -> Any:
    out = policy.predict(
        obs,
        state=None,
        episode_start=np.ones(obs.shape[0], dtype=bool),
        deterministic=deterministic,
    )
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(
            f"{who}.predict must return (action, state) like SB3's predict, got "
            f"{type(out).__name__}"
        )
    return out[0]


def _check_actions(action: Any, b: int, dim: int, who: str) -> np.ndarray:
    if isinstance(action, torch.Tensor):
        action = action.detach().cpu().numpy()
    arr = np.asarray(action)
    if arr.shape == (dim,) and b == 1:
        arr = arr[None]
    if arr.shape != (b, dim):
        raise ValueError(
            f"{who}.predict returned actions of shape {arr.shape} for {b} observations; "
            f"expected ({b}, {dim}) (one action of the env's action space per observation)"
        )
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"{who}.predict returned actions of dtype {arr.dtype}; expected float32")
    bad = int((~np.isfinite(arr)).any(axis=1).sum())
    if bad:
        raise ValueError(f"{who}.predict returned NaN or inf actions for {bad} of {b} instances")
    return arr.astype(np.float64)


def _evaluate(
    task: BeamformingTask, bf: Any, batch: TensorDataclass, who: str
) -> dict[str, torch.Tensor]:
    try:
        return task.evaluate(bf, batch)
    except (ValueError, RuntimeError, TypeError) as err:
        raise ValueError(
            f"{who}: the env's evaluate rejected the design after its action map ({err}); "
            "the harness reports no metric for designs the env cannot score"
        ) from err


def _trace_batch(agent: Any, task: BeamformingTask, batch: TensorDataclass) -> np.ndarray:
    known = task.known(batch)
    row = []
    for w in agent.solve_trace(known):
        a = task.beamformer_to_action(w, known)
        row.append(task.evaluate(task.action_to_beamformer(a, known)[0], batch)["metric"])
    return torch.stack(row, 1).double().cpu().numpy()


def _scalar_extras(m: dict[str, torch.Tensor], b: int) -> dict[str, np.ndarray]:
    skip = {"reward", "metric"}
    out = {}
    for k, v in m.items():
        if k in skip or not isinstance(v, torch.Tensor) or v.shape != (b,):
            continue
        if v.dtype == torch.bool or v.is_floating_point():
            out[k] = v.detach().double().cpu().numpy()
    return out


def _relative_change(mapped: Any, original: Any) -> torch.Tensor:
    """Per-instance ``||mapped - original|| / ||original||`` (max over structured fields)."""
    if isinstance(mapped, torch.Tensor):
        pairs = [(mapped, original)]
    else:
        items = zip(mapped._tensor_items(), original._tensor_items(), strict=True)
        pairs = [(a, b) for (_, a), (_, b) in items]
    out = None
    for a, b in pairs:
        d = torch.linalg.vector_norm((a - b.to(a.dtype)).flatten(1), dim=1)
        r = d / torch.linalg.vector_norm(b.flatten(1), dim=1).clamp_min(1e-30)
        out = r if out is None else torch.maximum(out, r)
    assert out is not None
    return out


# ---- single-instance latency -------------------------------------------------------------------
def _single_latency_solve(
    agent: Any, task: BeamformingTask, instances: TensorDataclass, count: int
) -> float:
    if count <= 0:
        return float("nan")
    n = instances.batch_size
    times = []
    with torch.no_grad():
        for i in range(min(count, n) + 1):  # +1: the first call warms up
            known = task.known(instances[i % n])
            _sync(task.device)
            t0 = time.perf_counter()
            agent.solve(known)
            _sync(task.device)
            times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))


def _single_latency_predict(
    policy: Any, task: BeamformingTask, instances: TensorDataclass, count: int, deterministic: bool
) -> float:
    if count <= 0:
        return float("nan")
    n = instances.batch_size
    times = []
    with torch.no_grad():
        for i in range(min(count, n) + 1):  # +1: the first call warms up
            obs = _observe(task, instances[i % n])  # a batch of one: [1, obs_dim]
            t0 = time.perf_counter()
            policy.predict(obs, state=None, episode_start=None, deterministic=deterministic)
            times.append(time.perf_counter() - t0)
    return float(np.median(times[1:]))
