"""agents.rl.wrappers.PGAResidualAction: a bounded phase correction on PGA+M(J) (ModularUplink)."""

from __future__ import annotations

import dataclasses
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env

import beamgym  # noqa: F401
from agents.base import make_agent
from agents.rl import PGAResidualAction, PGAResidualMap, VectorPGAResidualAction
from agents.rl.model import RLModelConfig, make_action_map, make_vec_env
from agents.rl.train import RLTrainConfig
from agents.rules.pga_momentum import pga_momentum, random_unit_modulus_panels
from beamgym.datasets import make_instance_set, make_task
from beamgym.wrappers import task_of

MODULAR = "beamgym/ModularUplink-v0"


@pytest.fixture(scope="module")
def task():
    return make_task(MODULAR)


def _obs(task, n: int, seed: int) -> tuple[np.ndarray, object]:
    known = task.known(make_instance_set(MODULAR, n, seed=seed).instances)
    return task.observe(known).numpy(), known


def test_zero_action_is_the_pga_m_agents_design(task) -> None:
    """On one seeded instance, a = 0 reproduces the pga_m agent (J=10, Table I constants)."""
    obs, known = _obs(task, 1, seed=11)
    m = PGAResidualMap(task)
    W = m.beamformer(np.zeros((1, m.dim), np.float32), obs)
    ref = make_agent("pga_m", task).solve(known)
    torch.testing.assert_close(W, ref, rtol=0, atol=0)
    # and through the env's own action map (pack -> project -> unpack): same design, same rate
    raw = torch.as_tensor(m.to_raw(np.zeros((1, m.dim), np.float32), obs))
    inst = make_instance_set(MODULAR, 1, seed=11).instances
    bf, _ = task.action_to_beamformer(raw, known)
    torch.testing.assert_close(bf, ref, rtol=1e-5, atol=1e-5)
    r_map = task.evaluate(bf, inst)["reward"]
    r_ref = task.evaluate(ref, inst)["reward"]
    torch.testing.assert_close(r_map, r_ref, rtol=1e-5, atol=1e-6)


def test_batch_shares_one_start_so_design_depends_on_observation_only(task) -> None:
    obs, known = _obs(task, 3, seed=4)
    m = PGAResidualMap(task, J=4)
    W0 = random_unit_modulus_panels(0, 1, task.panel_shape, dtype=task.cdtype)
    ref = pga_momentum(task, known, J=4, mu=1.0, beta=0.9, W0=W0.expand(3, *task.panel_shape))
    W = m.beamformer(np.zeros((3, m.dim), np.float32), obs)
    torch.testing.assert_close(W, ref[-1])
    # row 1 alone gives the same design as row 1 of the batch
    W1 = PGAResidualMap(task, J=4).beamformer(np.zeros((1, m.dim), np.float32), obs[1:2])
    torch.testing.assert_close(W1[0], W[1], rtol=1e-5, atol=1e-5)


def test_action_turns_each_phase_by_pi_scale_a(task) -> None:
    obs, _ = _obs(task, 2, seed=7)
    m = PGAResidualMap(task, scale=0.25, J=2)
    a = np.random.default_rng(0).uniform(-1, 1, (2, m.dim)).astype(np.float32)
    W0 = m.start(obs)
    W = m.beamformer(a, obs)
    assert W.shape == (2, *task.panel_shape) and W.dtype == task.cdtype
    torch.testing.assert_close(W.abs(), W0.abs())  # unit modulus kept
    turn = torch.angle(W * W0.conj()).reshape(2, -1)
    torch.testing.assert_close(turn, torch.as_tensor(math.pi * 0.25 * a), rtol=1e-4, atol=1e-5)
    assert m.to_raw(a, obs).shape == (2, task.action_dim)


def test_spaces_env_checker_and_vector_matches_single(task) -> None:
    env = PGAResidualAction(gym.make(MODULAR), scale=0.2, J=3)
    space = env.action_space
    assert space.dtype == np.float32 and space.shape == (int(np.prod(task.panel_shape)),)
    assert np.all(space.low == -1.0) and np.all(space.high == 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(env, skip_render_check=True)
    venv = VectorPGAResidualAction(
        gym.make_vec(MODULAR, num_envs=2, vectorization_mode="vector_entry_point"),
        scale=0.2,
        J=3,
    )
    venv.reset(seed=[5, 6])
    a = np.random.default_rng(1).uniform(-1, 1, (2, space.shape[0])).astype(np.float32)
    _, rew, *_ = venv.step(a)
    for i in range(2):
        env = PGAResidualAction(gym.make(MODULAR), scale=0.2, J=3)
        env.reset(seed=5 + i)
        assert env.step(a[i])[1] == pytest.approx(rew[i], rel=1e-4)


def test_design_uses_the_observation_only(task) -> None:
    env = PGAResidualAction(gym.make(MODULAR), J=2)
    inst = task.sample(torch.Generator().manual_seed(3), 1)
    other = dataclasses.replace(inst, H=inst.H * 0.5)  # true channel only; H_est unchanged
    a = np.full(env.action_space.shape, 0.3, np.float32)
    raws, rewards = [], []
    for i in (inst, other):
        env.reset(options={"instance": i})
        rewards.append(env.step(a)[1])
        raws.append(env.last_raw_action)
    np.testing.assert_array_equal(raws[0], raws[1])
    assert rewards[0] != rewards[1]


def test_start_baseline_reward_is_zero_at_zero_action() -> None:
    model = RLModelConfig(algo="ppo", wrapper="pga-residual", pga_iters=3)
    venv = make_vec_env(MODULAR, {}, model, num_envs=4, seed=3, reward_baseline=True)
    venv.reset()
    dim = venv.action_space.shape[0]
    _, r0, _, infos = venv.step(np.zeros((4, dim), np.float32))
    np.testing.assert_allclose(r0, 0.0, atol=1e-5)
    assert all(i["metric"] > 0 for i in infos)


@pytest.mark.parametrize("scale", [0.0, -0.1, 1.5, math.nan, math.inf, True])
def test_bad_scale_is_named(task, scale) -> None:
    with pytest.raises(ValueError, match="scale"):
        PGAResidualMap(task, scale=scale)


def test_bad_inputs_and_config(task) -> None:
    with pytest.raises(ValueError, match="J"):
        PGAResidualMap(task, J=0)
    with pytest.raises(ValueError, match="seed"):
        PGAResidualMap(task, seed=-1)
    with pytest.raises(ValueError, match="ModularUplink"):
        PGAResidualMap(make_task("beamgym/FullyDigitalFDD-v0"))
    with pytest.raises(ValueError, match="phase_scale"):
        RLModelConfig(wrapper="pga-residual", phase_scale=2.0)
    with pytest.raises(ValueError, match="pga_iters"):
        RLTrainConfig(wrapper="pga-residual", pga_iters=0)
    m = make_action_map(task, RLModelConfig(wrapper="pga-residual", phase_scale=0.3, pga_iters=5))
    assert isinstance(m, PGAResidualMap) and (m.scale, m.J) == (0.3, 5)
    obs, _ = _obs(task, 2, seed=1)
    with pytest.raises(ValueError, match="action"):
        m.beamformer(np.zeros((2, 3), np.float32), obs)
    with pytest.raises(ValueError, match="batch"):
        m.beamformer(np.zeros((1, m.dim), np.float32), obs)
    assert task_of(PGAResidualAction(gym.make(MODULAR))) is not None
