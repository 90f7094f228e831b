"""The common evaluation harness: any agent, any env, identical instances, quality and speed.

Modelled on stable-baselines3's ``evaluate_policy``: the harness takes anything that satisfies
the :class:`~agents.base.Agent` contract and scores it on a fixed, seeded
:class:`~beamgym.datasets.InstanceSet`. For every batch it

1. hands the agent only what the transmitter/receiver knows (``task.known(instance)``),
2. times ``agent.solve`` (batched) and, on a few instances, one instance at a time,
3. maps the beamformer through the env's action map (``beamformer_to_action`` then
   ``action_to_beamformer``: exactly what ``env.step`` would evaluate, so an infeasible design is
   projected, never scored as is; the fraction that needed projection is reported), and
4. evaluates it on the TRUE channel with the env's own metric.

For iterative solvers it also evaluates every iterate of ``agent.solve_trace`` to give the
metric against iterations.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import torch

from agents.base import Agent
from beamgym.datasets import InstanceSet

__all__ = ["AgentResult", "evaluate_agent", "mean_ci"]


def mean_ci(x: np.ndarray) -> tuple[float, float]:
    """Mean and half-width of the normal 95% confidence interval of the mean."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_ci of an empty array")
    half = 1.96 * x.std(ddof=1) / math.sqrt(x.size) if x.size > 1 else float("nan")
    return float(x.mean()), float(half)


@dataclasses.dataclass
class AgentResult:
    """Scores of one agent on one instance set.

    Attributes:
        agent: The agent's name (hyperparameters included).
        env_id: Registered env id.
        env_kwargs: Env configuration keywords of the instance set.
        metric_name: The env's headline metric (``sum_rate``, ``power``, ...).
        metric_sign: +1 if larger is better, -1 if smaller is better.
        metric: ``[n]`` headline metric per instance (true channel).
        reward: ``[n]`` env reward per instance.
        extras: Other per-instance scalars of the env's ``evaluate`` (``[n]`` each), e.g. the
            outage fraction or the active phase shifters.
        projected_fraction: Fraction of instances whose design the env's action map changed by
            more than :data:`PROJECTION_RTOL` (relative): an agent returning feasible,
            full-power beamformers scores 0.
        latency_batched_s: Solve time per instance when solving the whole batch at once.
        latency_single_s: Median solve time of one instance solved alone.
        trace: Mean metric of each iterate ``[W_0, ..., W_final]`` (``None`` if not traced).
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

    @property
    def n(self) -> int:
        """Number of instances."""
        return int(self.metric.size)

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary: means and 95% CIs of the metric, reward and extras."""
        m, m_ci = mean_ci(self.metric)
        r, r_ci = mean_ci(self.reward)
        out: dict[str, Any] = {
            "agent": self.agent,
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
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
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _scalar_extras(m: dict[str, torch.Tensor], b: int) -> dict[str, np.ndarray]:
    skip = {"reward", "metric"}
    out = {}
    for k, v in m.items():
        if k in skip or not isinstance(v, torch.Tensor) or v.shape != (b,):
            continue
        if v.dtype == torch.bool or v.is_floating_point():
            out[k] = v.detach().double().cpu().numpy()
    return out


def evaluate_agent(
    agent: Agent,
    instance_set: InstanceSet,
    *,
    batch_size: int = 512,
    trace: bool = False,
    single_instances: int = 8,
) -> AgentResult:
    """Score ``agent`` on every instance of ``instance_set`` (see the module docstring).

    Args:
        agent: Any :class:`~agents.base.Agent` built for the set's env configuration.
        instance_set: Fixed seeded instances (:func:`beamgym.datasets.make_instance_set`).
        batch_size: Instances per ``solve`` call.
        trace: Also evaluate every iterate of ``agent.solve_trace`` (metric vs iteration).
        single_instances: Instances timed one at a time for the single-instance latency
            (0 to skip).

    Returns:
        The per-instance scores, latencies and (optionally) the trace.
    """
    task = agent.task
    inst_cls = task.instance_cls
    if not isinstance(instance_set.instances, inst_cls):
        raise ValueError(
            f"the instance set holds {type(instance_set.instances).__name__} but agent "
            f"{agent.name} was built for {inst_cls.__name__}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    metrics, rewards, projected = [], [], []
    extras: dict[str, list[np.ndarray]] = {}
    traces: list[np.ndarray] = []
    solve_time = 0.0
    for batch in instance_set.batches(batch_size):
        batch = task.validate_instance(batch)
        known = task.known(batch)
        with torch.no_grad():
            _sync(task.device)
            t0 = time.perf_counter()
            bf = agent.solve(known)
            _sync(task.device)
            solve_time += time.perf_counter() - t0
            action = task.beamformer_to_action(bf, known)
            feasible_bf, _ = task.action_to_beamformer(action, known)
            proj = _relative_change(feasible_bf, bf) > PROJECTION_RTOL
            m = task.evaluate(feasible_bf, batch)
            if trace:
                iterates = agent.solve_trace(known)
                row = []
                for w in iterates:
                    a = task.beamformer_to_action(w, known)
                    row.append(
                        task.evaluate(task.action_to_beamformer(a, known)[0], batch)["metric"]
                    )
                traces.append(torch.stack(row, 1).double().cpu().numpy())
        metrics.append(m["metric"].double().cpu().numpy())
        rewards.append(m["reward"].double().cpu().numpy())
        projected.append(proj.cpu().numpy())
        for k, v in _scalar_extras(m, batch.batch_size).items():
            extras.setdefault(k, []).append(v)
    n = len(instance_set)
    single = _single_latency(agent, instance_set, single_instances)
    trace_mean = None
    if trace and traces:
        # iterative solvers may stop early on some batches: hold their final value
        length = max(t.shape[1] for t in traces)
        padded = [np.pad(t, ((0, 0), (0, length - t.shape[1])), mode="edge") for t in traces]
        trace_mean = np.concatenate(padded, 0).mean(0)
    return AgentResult(
        agent=agent.name,
        env_id=instance_set.env_id,
        env_kwargs=dict(instance_set.env_kwargs),
        metric_name=task.metric_name,
        metric_sign=task.metric_sign,
        metric=np.concatenate(metrics),
        reward=np.concatenate(rewards),
        extras={k: np.concatenate(v) for k, v in extras.items()},
        projected_fraction=float(np.concatenate(projected).mean()),
        latency_batched_s=solve_time / n,
        latency_single_s=single,
        trace=trace_mean,
    )


#: Relative change above which the env's action map counts as having projected a design.
PROJECTION_RTOL = 1e-4


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


def _single_latency(agent: Agent, instance_set: InstanceSet, count: int) -> float:
    if count <= 0:
        return float("nan")
    task = agent.task
    times = []
    with torch.no_grad():
        for i in range(min(count, len(instance_set)) + 1):  # +1: the first call warms up
            known = task.known(
                task.validate_instance(instance_set.instances[i % len(instance_set)])
            )
            _sync(task.device)
            t0 = time.perf_counter()
            agent.solve(known)
            _sync(task.device)
            times.append(time.perf_counter() - t0)
    return float(np.median(times[1:])) if len(times) > 1 else float(times[0])
