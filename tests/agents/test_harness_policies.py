"""The harness scores any policy with SB3's ``predict``, exactly as ``env.step`` would."""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import json
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

import beamgym  # noqa: F401
from agents.base import make_agent
from agents.harness import PolicyPredictor, evaluate_agent
from beamgym.datasets import (
    InstanceSet,
    load_instance_set,
    make_instance_set,
    make_task,
    save_instance_set,
)

ROOT = Path(__file__).resolve().parents[2]
ENV = "beamgym/FullyDigitalFDD-v0"
SMALL = {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10.0}


class Constant:
    """A hand-written policy: only ``predict``, the same action for every observation."""

    def __init__(self, action: np.ndarray) -> None:
        self.action = np.asarray(action, dtype=np.float32)
        self.calls: list[tuple[int, ...]] = []

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        obs = np.asarray(observation)
        self.calls.append(obs.shape)
        return np.tile(self.action, (obs.shape[0], 1)), state


@pytest.fixture(scope="module")
def ppo() -> PPO:
    """An untrained SB3 PPO model on a small FDD configuration."""
    return PPO("MlpPolicy", gym.make(ENV, **SMALL), n_steps=32, batch_size=32, seed=0, device="cpu")


def _env_loop(policy: Any, ds: Any, **env_kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Reference: one ``env.reset(options={"instance": x})`` / ``env.step`` per instance."""
    env = gym.make(ds.env_id, **env_kwargs)
    rewards, projected = [], []
    for i in range(len(ds)):
        obs, _ = env.reset(options={"instance": ds.instances[i]})
        action = policy.predict(obs[None], deterministic=True)[0][0]  # a batch of one
        clipped = np.clip(action, -1.0, 1.0)
        _, reward, terminated, _, info = env.step(clipped)
        assert terminated
        rewards.append(reward)
        projected.append(bool(info["projected"]) or bool(np.any(clipped != action)))
    return np.array(rewards), np.array(projected)


def test_an_sb3_model_is_scored_exactly_as_env_step_scores_it(ppo: PPO) -> None:
    assert isinstance(ppo, PolicyPredictor)
    ds = make_instance_set(ENV, n=7, seed=3, **SMALL)
    res = evaluate_agent(ppo, ds, batch_size=3, single_instances=2)
    assert res.mode == "predict" and res.agent == "PPO" and res.n == 7
    rewards, projected = _env_loop(ppo, ds, **SMALL)
    np.testing.assert_allclose(res.reward, rewards, rtol=1e-5)
    np.testing.assert_allclose(res.metric, rewards, rtol=1e-5)
    assert res.projected_fraction == pytest.approx(projected.mean())
    assert res.latency_batched_s > 0 and res.latency_single_s > 0
    assert res.extras["feasible"].all()
    json.dumps(res.summary(), allow_nan=False)
    # the same result with the env passed explicitly, or the name overridden
    again = evaluate_agent(ppo, ds, env=gym.make(ENV, **SMALL), name="ppo-untrained")
    np.testing.assert_allclose(again.metric, res.metric, rtol=1e-5)  # other batch sizes
    assert again.agent == "ppo-untrained"


def test_a_plain_policy_is_observed_batched_and_its_actions_are_clipped() -> None:
    ds = make_instance_set(ENV, n=5, seed=4, **SMALL)
    dim = make_task(ENV, **SMALL).action_dim
    ones = Constant(np.ones(dim))
    res = evaluate_agent(ones, ds, batch_size=2, single_instances=1)
    assert res.agent == "Constant"
    # batched observations of the horizon-1 layout, then batches of one for the latency
    obs_dim = gym.make(ENV, **SMALL).observation_space.shape[0]
    assert ones.calls == [(2, obs_dim), (2, obs_dim), (1, obs_dim), (1, obs_dim), (1, obs_dim)]
    np.testing.assert_allclose(res.metric, _env_loop(ones, ds, **SMALL)[0], rtol=1e-6)
    # out-of-range actions are clipped to the action space (as SB3 does) and count as
    # projected; clipping 3 gives 1, so the designs and the metric are the same
    big = evaluate_agent(Constant(3.0 * np.ones(dim)), ds)
    np.testing.assert_array_equal(big.metric, res.metric)
    assert big.projected_fraction == 1.0


def test_an_agents_predict_and_solve_paths_agree() -> None:
    kw = {"snr_db": 10.0}
    ds = make_instance_set(ENV, n=6, seed=2, **kw)
    agent = make_agent("wmmse", make_task(ENV, **kw))
    assert evaluate_agent(agent, ds).mode == "solve"  # auto prefers the batched solve
    by_solve = evaluate_agent(agent, ds, batch_size=4, single_instances=0)
    by_predict = evaluate_agent(agent, ds, mode="predict", batch_size=4, single_instances=0)
    np.testing.assert_allclose(by_predict.metric, by_solve.metric, rtol=1e-5)
    np.testing.assert_allclose(by_predict.reward, by_solve.reward, rtol=1e-5)
    assert by_solve.projected_fraction == 0.0  # feasible, full-power beamformers


def test_policies_for_another_configuration_or_bad_output_are_refused(ppo: PPO) -> None:
    ds = make_instance_set(ENV, n=3, seed=0, **SMALL)
    other = make_instance_set(ENV, n=3, seed=0, **{**SMALL, "N": 6})
    with pytest.raises(ValueError, match=r"observation_space of shape \(\d+,\)"):
        evaluate_agent(ppo, other)
    with pytest.raises(ValueError, match=r"another configuration .*snr_db: agent 15.0 vs"):
        evaluate_agent(ppo, ds, env=gym.make(ENV, **{**SMALL, "snr_db": 15.0}))
    with pytest.raises(ValueError, match="horizon=2"):
        evaluate_agent(ppo, ds, env=gym.make(ENV, horizon=2, **SMALL))
    with pytest.raises(TypeError, match="mode='solve' needs"):
        evaluate_agent(ppo, ds, mode="solve")
    with pytest.raises(ValueError, match="trace=True needs the solve path"):
        evaluate_agent(ppo, ds, trace=True)
    dim = make_task(ENV, **SMALL).action_dim
    with pytest.raises(ValueError, match=r"shape \(3, 2\) .* expected \(3, \d+\)"):
        evaluate_agent(Constant(np.ones(2)), ds)
    with pytest.raises(ValueError, match="NaN or inf actions for 3 of 3"):
        evaluate_agent(Constant(np.full(dim, np.nan)), ds)

    class NoState:
        def predict(self, observation: np.ndarray, **_: Any) -> np.ndarray:
            return np.zeros((len(observation), dim), np.float32)

    with pytest.raises(TypeError, match=r"predict must return \(action, state\)"):
        evaluate_agent(NoState(), ds)


def test_infeasible_designs_get_no_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = make_instance_set(ENV, n=6, seed=1)
    agent = make_agent("mmse", make_task(ENV))
    evaluate = agent.task.evaluate

    def two_infeasible(bf: Any, instance: Any) -> dict[str, torch.Tensor]:
        m = evaluate(bf, instance)
        m["feasible"] = m["feasible"].clone()
        m["feasible"][:2] = False
        return m

    monkeypatch.setattr(agent.task, "evaluate", two_infeasible)
    with pytest.raises(ValueError, match=r"^mmse handed over .* on 2 of 6 instances"):
        evaluate_agent(agent, ds)

    def nan_metric(bf: Any, instance: Any) -> dict[str, torch.Tensor]:
        m = evaluate(bf, instance)
        m["metric"] = torch.full_like(m["metric"], float("nan"))
        return m

    monkeypatch.setattr(agent.task, "evaluate", nan_metric)
    with pytest.raises(ValueError, match="on 6 of 6 instances"):
        evaluate_agent(agent, ds)

    def rejects(bf: Any, instance: Any) -> dict[str, torch.Tensor]:
        raise ValueError("beamformer must have dtype torch.complex64")

    monkeypatch.setattr(agent.task, "evaluate", rejects)
    with pytest.raises(ValueError, match="mmse: the env's evaluate rejected the design"):
        evaluate_agent(agent, ds)


def test_instances_are_validated_once_per_set(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    ds = make_instance_set(ENV, n=6, seed=1, **SMALL)
    save_instance_set(tmp_path / "set.pt", ds)
    task = make_task(ENV, **SMALL)
    calls = []
    validate = type(task).validate_instance

    def counting(self: Any, instance: Any) -> Any:
        calls.append(instance.batch_size)
        return validate(self, instance)

    monkeypatch.setattr(type(task), "validate_instance", counting)
    loaded = load_instance_set(tmp_path / "set.pt")
    assert calls == [6] and loaded.validated and ds.validated  # load checks, sampling needs not
    calls.clear()
    policy = Constant(np.ones(task.action_dim))
    for s in (ds, loaded):  # not per batch, not for the single-instance latency
        evaluate_agent(make_agent("mmse", task), s, batch_size=2, single_instances=3)
        evaluate_agent(policy, s, batch_size=2, single_instances=3)
    assert calls == []
    by_hand = InstanceSet(ds.env_id, ds.env_kwargs, ds.seed, ds.instances)
    res = evaluate_agent(make_agent("mmse", task), by_hand, batch_size=2, single_instances=3)
    assert calls == [6]  # a hand-built set: checked once
    np.testing.assert_array_equal(res.metric, evaluate_agent(make_agent("mmse", task), ds).metric)
    bad = dataclasses.replace(ds.instances, H=ds.instances.H * float("nan"))
    with pytest.raises(ValueError, match="NaN or inf"):
        evaluate_agent(make_agent("mmse", task), InstanceSet(ENV, ds.env_kwargs, 0, bad))


def _readme_snippet() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Scoring your own policy", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match is not None, "README: no python block under 'Scoring your own policy'"
    return match.group(1)


#: The README's training and test sizes, and the tiny ones the test runs instead.
TINY = {
    'PPO("MlpPolicy", env, seed=0)': (
        'PPO("MlpPolicy", env, seed=0, n_steps=32, batch_size=32, n_epochs=1, device="cpu")'
    ),
    "total_timesteps=20_000": "total_timesteps=64",
    "n=500": "n=12",
}


def test_readme_snippet_scores_an_sb3_model_and_a_plain_policy() -> None:
    code = _readme_snippet()
    for big, tiny in TINY.items():
        assert code.count(big) == 1, f"README snippet changed: {big!r} not found once"
        code = code.replace(big, tiny)
    ns: dict[str, Any] = {"__name__": "readme_snippet"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), ns)
    printed = [ast.literal_eval(line) for line in out.getvalue().splitlines()]
    assert [p["agent"] for p in printed] == ["ppo", "Uniform"]
    assert all(p["mode"] == "predict" and p["n"] == 12 for p in printed)
    assert all(np.isfinite(p["metric_mean"]) and p["metric_ci95"] > 0 for p in printed)
    # the snippet's numbers are the env's own: the same as stepping the env instance by instance
    test, cfg = ns["test"], ns["cfg"]
    rewards, _ = _env_loop(ns["Uniform"](), test, **cfg)
    assert printed[1]["metric_mean"] == pytest.approx(rewards.mean(), rel=1e-6)
