"""The agent contract, the registry and the common harness, over every registered agent."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents
import beamgym
from agents.base import Agent, CheckpointError, make_agent, registered_agents
from agents.harness import evaluate_agent, mean_ci
from beamgym.datasets import make_instance_set, make_task

PAIRS = [
    (name, env_id) for name, spec in sorted(registered_agents().items()) for env_id in spec.env_ids
]


def test_registry_is_populated_and_valid() -> None:
    specs = registered_agents()
    assert "random" in specs
    for name, spec in specs.items():
        assert spec.env_ids and set(spec.env_ids) <= set(beamgym.ENV_IDS), name
        assert spec.description, name
    assert agents.make_agent is make_agent


def test_make_agent_errors() -> None:
    with pytest.raises(ValueError, match="unknown agent"):
        make_agent("no-such-agent", "beamgym/FullyDigitalFDD-v0")
    with pytest.raises(ValueError, match="beamgym env or BeamformingTask"):
        make_agent("random", object())
    with pytest.raises(ValueError, match="seed"):
        make_agent("random", "beamgym/FullyDigitalFDD-v0", seed=-1)


@pytest.mark.parametrize(("name", "env_id"), PAIRS)
def test_every_agent_runs_through_the_harness_and_predict(name: str, env_id: str) -> None:
    kw = registered_agents()[name].default_env_kwargs(env_id)
    task = make_task(env_id, **kw)
    agent = make_agent(name, task)
    ds = make_instance_set(env_id, n=4, seed=5, **kw)
    res = evaluate_agent(agent, ds, batch_size=3, trace=True, single_instances=1)
    assert res.metric.shape == (4,) and np.isfinite(res.metric).all()
    assert res.latency_batched_s > 0 and res.latency_single_s > 0
    assert res.trace is not None and np.isfinite(res.trace).all()
    # every agent returns feasible, full-power designs: the env's action map leaves them as is
    assert res.projected_fraction == 0.0
    assert name in res.agent
    summary = res.summary()
    assert summary["n"] == 4 and np.isfinite(summary["metric_mean"])
    env = gym.make(env_id, **kw)
    obs, _ = env.reset(seed=0)
    action, state = make_agent(name, env).predict(obs)
    assert state is None and env.action_space.contains(action)
    assert np.isfinite(env.step(action)[1])


def test_harness_is_deterministic_and_checks_its_input() -> None:
    env_id = "beamgym/ModularUplink-v0"
    ds = make_instance_set(env_id, n=6, seed=1)
    r1 = evaluate_agent(make_agent("random", env_id, seed=3), ds, batch_size=4)
    r2 = evaluate_agent(make_agent("random", env_id, seed=3), ds, batch_size=4)
    assert np.array_equal(r1.metric, r2.metric)
    # the random agent's beamformers are already feasible: the env never had to project them
    assert r1.projected_fraction == 0.0
    with pytest.raises(ValueError, match="instance set holds"):
        evaluate_agent(make_agent("random", "beamgym/FullyDigitalFDD-v0"), ds)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_agent(make_agent("random", env_id), ds, batch_size=0)


def test_mean_ci() -> None:
    m, ci = mean_ci(np.array([1.0, 2.0, 3.0, 4.0]))
    assert m == 2.5 and ci == pytest.approx(1.96 * np.std([1, 2, 3, 4], ddof=1) / 2)
    with pytest.raises(ValueError):
        mean_ci(np.array([]))


def test_save_load_roundtrip_and_config_mismatch(tmp_path) -> None:
    env_id = "beamgym/FullyDigitalFDD-v0"
    agent = make_agent("random", env_id, seed=7)
    path = tmp_path / "random"  # a model folder: checkpoint.pt + config.json
    agent.save(path)
    back = Agent.load(path, make_task(env_id))
    assert back.name == agent.name == "random(seed=7)"
    with pytest.raises(CheckpointError, match="another environment configuration"):
        Agent.load(path, make_task(env_id, K=8))
    with pytest.raises(CheckpointError, match="does not exist"):
        Agent.load(tmp_path / "missing.pt", make_task(env_id))
    torch.save({"x": 1}, tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="config.json is missing"):
        Agent.load(tmp_path / "junk.pt", make_task(env_id))
