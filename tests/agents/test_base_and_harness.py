"""The agent contract, the registry and the common harness, over every registered agent."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy import stats

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
    try:
        res = evaluate_agent(agent, ds, batch_size=3, trace=True, single_instances=1)
    except CheckpointError as exc:  # a learned agent without a model for this configuration
        if not agent.learnable or "train one with: python examples/train.py" not in str(exc):
            raise
        pytest.skip(f"{name} has no model for {env_id} {kw}")
    assert res.mode == "solve"
    assert res.metric.shape == (4,) and np.isfinite(res.metric).all()
    assert res.latency_batched_s > 0 and res.latency_single_s > 0
    assert res.trace is not None and np.isfinite(res.trace).all()
    # every agent returns feasible, full-power designs: the env's action map leaves them as is
    assert res.projected_fraction == 0.0
    assert name in res.agent
    summary = res.summary()
    assert summary["n"] == 4 and np.isfinite(summary["metric_mean"])
    json.dumps(summary, allow_nan=False)  # results.json stays valid JSON
    # the Gymnasium path (observation -> predict -> env action map) scores the same designs as
    # the batched solve path, on the same instances (fresh agents: the same random draws)
    via_solve = evaluate_agent(make_agent(name, task), ds, mode="solve", single_instances=0)
    via_predict = evaluate_agent(make_agent(name, task), ds, mode="predict", single_instances=1)
    assert via_predict.mode == "predict" and via_predict.latency_single_s > 0
    np.testing.assert_allclose(via_predict.metric, via_solve.metric, rtol=1e-5, atol=1e-6)
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
    with pytest.raises(TypeError, match="instance_set must be a beamgym.datasets.InstanceSet"):
        evaluate_agent(make_agent("random", env_id), [1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="agent must be a beamgym Agent or have predict"):
        evaluate_agent(object(), ds)
    with pytest.raises(ValueError, match="mode must be"):
        evaluate_agent(make_agent("random", env_id), ds, mode="fast")  # type: ignore[arg-type]
    # an agent built for another configuration is refused, naming the differing keywords
    with pytest.raises(ValueError, match=r"another configuration .*K: agent 8 vs instance set 20"):
        evaluate_agent(make_agent("random", make_task(env_id, K=8)), ds)
    with pytest.raises(ValueError, match=r"precision: agent 'double' vs instance set 'single'"):
        evaluate_agent(make_agent("random", make_task(env_id, precision="double")), ds)


@pytest.mark.parametrize("n", [2, 5, 40])
def test_mean_ci_is_the_student_t_interval(n: int) -> None:
    x = np.random.default_rng(n).normal(3.0, 2.0, n)
    m, ci = mean_ci(x)
    lo, hi = stats.t.interval(0.95, n - 1, loc=x.mean(), scale=stats.sem(x))
    assert m == pytest.approx(x.mean()) and ci == pytest.approx((hi - lo) / 2, rel=1e-12)
    assert ci > 1.96 * x.std(ddof=1) / np.sqrt(n)  # wider than the normal interval


def test_mean_ci_of_one_sample_is_undefined_and_json_safe() -> None:
    m, ci = mean_ci(np.array([2.5]))
    assert m == 2.5 and ci is None
    with pytest.raises(ValueError, match="at least one sample"):
        mean_ci(np.array([]))
    env_id = "beamgym/ModularUplink-v0"
    ds = make_instance_set(env_id, n=1, seed=1)
    s = evaluate_agent(make_agent("random", env_id, seed=3), ds, single_instances=0).summary()
    assert s["metric_ci95"] is None and s["latency_single_us"] is None
    assert json.loads(json.dumps(s, allow_nan=False))["metric_mean"] == s["metric_mean"]


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


def test_registry_aliases_build_the_agent_under_its_registry_name(monkeypatch) -> None:
    from agents import base

    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    monkeypatch.setattr(base, "_ALIASES", dict(base._ALIASES))

    def new_class() -> type[Agent]:
        class Tiny(Agent):
            def solve(self, known):  # pragma: no cover - never called
                raise AssertionError

        return Tiny

    env_ids = ("beamgym/FullyDigitalFDD-v0",)
    cls = base.register_agent("tiny_new", env_ids, "t", aliases=("tiny_old",))(new_class())
    assert "tiny_new" in base.registered_agents() and "tiny_old" not in base.registered_agents()
    assert base.registered_agents()["tiny_new"].aliases == ("tiny_old",)
    assert base.canonical_agent_name("tiny_new") == "tiny_new"
    with pytest.warns(DeprecationWarning, match="'tiny_old' is deprecated; use 'tiny_new'"):
        agent = make_agent("tiny_old", "beamgym/FullyDigitalFDD-v0")
    assert type(agent) is cls and agent.name == "tiny_new"
    with pytest.warns(DeprecationWarning):
        assert base.agent_spec("tiny_old") is base.registered_agents()["tiny_new"]
    with pytest.raises(ValueError, match="'tiny_old' is already registered"):
        base.register_agent("tiny_old", env_ids, "t")(new_class())
    with pytest.raises(ValueError, match=r"alias\(es\) \['mmse'\] are already registered"):
        base.register_agent("tiny_2", env_ids, "t", aliases=("mmse",))(new_class())
    with pytest.raises(ValueError, match="tuple of names"):
        base.register_agent("tiny_3", env_ids, "t", aliases="tiny_4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown agent 'nope'"):
        base.canonical_agent_name("nope")
