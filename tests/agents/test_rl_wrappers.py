"""agents.rl.wrappers: MarginAction (the greedy with per-user margins on OutageHybrid-v0) and
the start-baseline training reward."""

from __future__ import annotations

import dataclasses
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import beamgym  # noqa: F401
from agents.base import make_agent
from agents.harness import evaluate_agent
from agents.rl import MarginAction, MarginMap, VectorMarginAction
from agents.rl.model import RLModelConfig, make_vec_env
from agents.rl.wrappers import StartBaselineReward
from beamgym.datasets import make_instance_set, make_task
from beamgym.wrappers import MappedPolicy, task_of

OUTAGE = "beamgym/OutageHybrid-v0"
FDD = "beamgym/FullyDigitalFDD-v0"


def test_spaces_and_env_checkers() -> None:
    env = MarginAction(gym.make(OUTAGE))
    space = env.action_space
    assert space.dtype == np.float32 and space.shape == (task_of(env).num_users,)
    assert np.all(space.low == -1.0) and np.all(space.high == 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=False)


def test_margin_map() -> None:
    m = MarginMap(task_of(gym.make(OUTAGE)), max_margin_db=4.0)
    got = m.margins_db(np.array([[-1.0, 0.0, 1.0]], np.float32))
    torch.testing.assert_close(got, torch.tensor([[0.0, 2.0, 4.0]], dtype=torch.float64))
    with pytest.raises(ValueError, match="max_margin_db"):
        MarginMap(m.task, max_margin_db=0.0)
    with pytest.raises(ValueError, match="OutageHybrid"):
        MarginAction(gym.make("beamgym/FullyDigitalFDD-v0"))


def test_no_margin_is_the_greedy_agent_exactly() -> None:
    class Low:
        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            return -np.ones((len(obs), 3), np.float32), state

    env = gym.make(OUTAGE)
    iset = make_instance_set(OUTAGE, 8, seed=0)
    ours = evaluate_agent(MappedPolicy(Low(), MarginMap(task_of(env))), iset, single_instances=0)
    ref = evaluate_agent(make_agent("ghbf_perf", env), iset, single_instances=0)
    np.testing.assert_allclose(ours.metric, ref.metric, rtol=1e-5)


def test_design_uses_the_observation_only() -> None:
    env = MarginAction(gym.make(OUTAGE))
    task = task_of(env)
    inst = task.sample(torch.Generator().manual_seed(3), 1)
    other = dataclasses.replace(inst, h=inst.h * 0.1, R=inst.R * 0.01)  # true CSI only
    a = np.array([0.2, -0.5, 1.0], np.float32)
    raws, rewards = [], []
    for i in (inst, other):
        env.reset(options={"instance": i})
        rewards.append(env.step(a)[1])
        raws.append(env.last_raw_action)
    np.testing.assert_array_equal(raws[0], raws[1])
    assert rewards[0] != rewards[1]


def test_vector_wrapper_matches_single() -> None:
    venv = VectorMarginAction(
        gym.make_vec(OUTAGE, num_envs=2, vectorization_mode="vector_entry_point")
    )
    obs, _ = venv.reset(seed=[5, 6])
    a = np.array([[0.0, 1.0, -1.0], [0.5, 0.5, 0.5]], np.float32)
    _, rew, *_ = venv.step(a)
    for i in range(2):
        env = MarginAction(gym.make(OUTAGE))
        env.reset(seed=5 + i)
        assert env.step(a[i])[1] == pytest.approx(rew[i], rel=1e-5)


def test_start_baseline_reward_subtracts_the_start_designs_reward() -> None:
    """Reward minus the a = 0 design's reward on the same instance; a = 0 itself scores 0."""
    kw = {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10}
    model = RLModelConfig(algo="ppo", wrapper="optimal-structure")
    plain = make_vec_env(FDD, kw, model, num_envs=6, seed=3)
    based = make_vec_env(FDD, kw, model, num_envs=6, seed=3, reward_baseline=True)
    assert isinstance(based.venv, StartBaselineReward)
    obs_p, obs_b = plain.reset(), based.reset()
    np.testing.assert_array_equal(obs_p, obs_b)
    # a = 0 is MMSE on the estimated channel: the shaped reward is 0 to rounding
    _, r0, _, infos0 = based.step(np.zeros((6, 8), dtype=np.float32))
    np.testing.assert_allclose(r0, 0.0, atol=1e-4)
    mmse = make_agent("mmse", make_task(FDD, **kw))
    assert all(i["metric"] > 0 for i in infos0)  # the env's metric is kept in info
    # a random action on the next (same) instances: shaped = plain - the MMSE sum rate
    plain.step(np.zeros((6, 8), dtype=np.float32))
    a = np.random.default_rng(0).uniform(-1, 1, (6, 8)).astype(np.float32)
    task = based.venv.action_map.task
    inst = based.venv.unwrapped.instance
    start = task.evaluate(mmse.solve(task.known(inst)), inst)["reward"].numpy()
    _, rp, _, _ = plain.step(a)
    _, rb, _, infos = based.step(a)
    np.testing.assert_allclose(rb, rp - start, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose([i["metric"] for i in infos], rp, rtol=1e-6)
    with pytest.raises(ValueError, match="MappedAction"):
        StartBaselineReward(plain.venv.env)
