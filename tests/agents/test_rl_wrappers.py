"""agents.rl.MarginAction: the greedy with per-user margins on OutageHybrid-v0."""

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
from beamgym.datasets import make_instance_set
from beamgym.wrappers import MappedPolicy, task_of

OUTAGE = "beamgym/OutageHybrid-v0"


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
