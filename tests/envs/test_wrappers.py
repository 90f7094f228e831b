"""beamgym.wrappers: spaces, env checkers, exact structured maps, observation-only actions."""

from __future__ import annotations

import dataclasses
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import beamgym  # noqa: F401
from beamgym.wrappers import (
    MappedPolicy,
    OptimalStructureAction,
    OptimalStructureMap,
    PhaseAction,
    RawAction,
    ResidualAction,
    ResidualMap,
    task_of,
)
from beamgym.wrappers import vector as vw

FDD = "beamgym/FullyDigitalFDD-v0"
FDD_KW = {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10.0}
MOD = "beamgym/ModularUplink-v0"
MOD_KW = {"P": 2, "N": 3, "L": 2, "T": 3, "B": 1, "K": 3}
FAR = "beamgym/FarFieldHybrid-v0"
FAR_KW = {"N": 8, "N_RF": 2, "K": 2}
PS_KW = {"analog": "phase-shifter", "N": 8, "N_RF": 2, "K": 2}
NEAR = "beamgym/NearFieldHybrid-v0"
NEAR_KW = {"K": 2, "S": 4, "n": 2}
#: The envs with a digital design problem (steering FarField, NearField, FullyDigitalFDD).
DIGITAL = {"fdd": (FDD, FDD_KW), "far": (FAR, FAR_KW), "near": (NEAR, {"K": 2, "S": 4})}
# (make_instance_set takes n itself, so the near-field set keeps n at its default 4)

CASES = {
    "raw-fdd": (FDD, FDD_KW, RawAction, {}),
    "raw-modular": (MOD, MOD_KW, RawAction, {}),
    "residual": (FDD, FDD_KW, ResidualAction, {"scale": 0.3}),
    "optimal-structure": (FDD, FDD_KW, OptimalStructureAction, {}),
    "phase": (MOD, MOD_KW, PhaseAction, {}),
    "residual-far": (FAR, FAR_KW, ResidualAction, {}),
    "residual-far-ps": (FAR, PS_KW, ResidualAction, {}),
    "residual-near": (NEAR, NEAR_KW, ResidualAction, {}),
    "optimal-structure-far": (FAR, FAR_KW, OptimalStructureAction, {}),
    "optimal-structure-near": (NEAR, NEAR_KW, OptimalStructureAction, {"decades": 1.0}),
}


def _make(case: str, **extra):
    env_id, kw, wrapper, wkw = CASES[case]
    return wrapper(gym.make(env_id, **kw, **extra), **wkw)


@pytest.mark.parametrize("case", sorted(CASES))
def test_spaces_and_env_checkers(case: str) -> None:
    env = _make(case)
    space = env.action_space
    assert isinstance(space, gym.spaces.Box) and space.dtype == np.float32
    assert np.all(space.low == -1.0) and np.all(space.high == 1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(env, skip_render_check=True)
        sb3_check_env(env, warn=False)
    obs, _ = env.reset(seed=0)
    _, reward, terminated, _, _ = env.step(space.sample())
    assert np.isfinite(reward) and terminated


def test_structured_sizes() -> None:
    assert _make("optimal-structure").action_space.shape == (8,)  # 2K
    assert _make("residual").action_space.shape == (32,)  # 2NK
    assert _make("phase").action_space.shape == (2 * 3 * 2,)  # P N L phases (raw: twice that)


def _mmse_and_map(map_cls, **kw):
    env = gym.make(FDD, **FDD_KW)
    task = task_of(env)
    obs, _ = env.reset(seed=7)
    obs = np.stack([obs, env.reset(seed=8)[0]])
    known = task.decode_observation(torch.as_tensor(obs))
    return task, obs, task.mmse_beamformer(known), map_cls(task, **kw)


def test_optimal_structure_zero_action_is_mmse_exactly() -> None:
    task, obs, W_mmse, m = _mmse_and_map(OptimalStructureMap)
    W = m.beamformer(np.zeros((2, 8), np.float32), obs)
    torch.testing.assert_close(W, W_mmse, rtol=1e-5, atol=1e-6)
    lam, p = m.parameters(np.zeros((2, 8), np.float32), torch.ones(2))
    assert torch.equal(lam, torch.full((2, 4), 0.25)) and torch.allclose(
        p, torch.full((2, 4), 0.25)
    )


def test_optimal_structure_parameter_map_and_budget() -> None:
    task, obs, _, m = _mmse_and_map(OptimalStructureMap, decades=1.5)
    a = np.array([[1, -1, 0.5, 0, 1, -1, 0, 0]] * 2, np.float32)
    lam, p = m.parameters(a, torch.ones(2))
    torch.testing.assert_close(lam[0], 0.25 * 10 ** (1.5 * torch.tensor([1, -1, 0.5, 0.0])))
    torch.testing.assert_close(p.sum(-1), torch.ones(2))
    torch.testing.assert_close(p[0, 0] / p[0, 1], torch.tensor(10.0**3))
    W = m.beamformer(a, obs)
    # per-user powers are p_k and the total is the budget P = 1
    torch.testing.assert_close(W.abs().square().sum(-2), p)


def test_optimal_structure_rejects_mimo_and_other_envs() -> None:
    with pytest.raises(ValueError, match="M=1"):
        OptimalStructureAction(gym.make(FDD, **{**FDD_KW, "M": 2}))
    with pytest.raises(ValueError, match="FullyDigitalFDD"):
        OptimalStructureAction(gym.make(MOD, **MOD_KW))
    with pytest.raises(ValueError, match="steering"):
        OptimalStructureAction(gym.make(FAR, **PS_KW))
    with pytest.raises(ValueError, match="RawAction"):
        ResidualAction(gym.make("beamgym/OutageHybrid-v0"))
    with pytest.raises(ValueError, match="decades"):
        OptimalStructureAction(gym.make(FDD, **FDD_KW), decades=0.0)


def test_residual_zero_action_is_the_start_and_scale_moves_it() -> None:
    task, obs, W_mmse, m = _mmse_and_map(ResidualMap, scale=0.5)
    torch.testing.assert_close(m.start(obs), W_mmse)
    torch.testing.assert_close(m.beamformer(np.zeros((2, 32), np.float32), obs), W_mmse)
    ones = np.ones((2, 32), np.float32)
    step = (m.beamformer(ones, obs) - W_mmse).real
    torch.testing.assert_close(step, torch.full_like(step, 0.5 * (1 / 16) ** 0.5))
    with pytest.raises(ValueError, match="scale"):
        ResidualMap(task, scale=-1.0)


class _Zero:
    """A policy that always outputs the zero structured action."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def predict(self, obs, state=None, episode_start=None, deterministic=False):
        return np.zeros((len(obs), self.dim), np.float32), state


@pytest.mark.parametrize("map_cls", [ResidualMap, OptimalStructureMap])
@pytest.mark.parametrize("env", sorted(DIGITAL))
def test_zero_action_scores_exactly_the_mmse_agent(env: str, map_cls) -> None:
    """Through the harness: the zero action is MMSE (eq. (24) normalization for hybrids)."""
    from agents.base import make_agent
    from agents.harness import evaluate_agent
    from beamgym.datasets import make_instance_set

    env_id, kw = DIGITAL[env]
    single = gym.make(env_id, **kw)
    iset = make_instance_set(env_id, 12, seed=0, **kw)
    m = map_cls(task_of(single))
    ours = evaluate_agent(MappedPolicy(_Zero(m.dim), m), iset, single_instances=0)
    mmse = evaluate_agent(make_agent("mmse", single), iset, single_instances=0)
    np.testing.assert_allclose(ours.metric, mmse.metric, rtol=1e-5)


def test_residual_phase_shifter_zero_action_is_the_eq13_start() -> None:
    from beamgym.physics.projections import hybrid_initialization

    env = _make("residual-far-ps")
    task = task_of(env)
    obs, _ = env.reset(seed=2)
    env.step(np.zeros(env.action_space.shape, np.float32))
    known = task.known(env.unwrapped.instance)
    bf, _ = task.action_to_beamformer(torch.as_tensor(env.last_raw_action)[None], known)
    F0, W0 = hybrid_initialization(known.H_est, known.power, n_rf=2)
    torch.testing.assert_close(bf.analog, F0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(bf.digital, W0, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "case", ["residual", "optimal-structure", "residual-near", "optimal-structure-far"]
)
def test_actions_use_the_observation_only(case: str) -> None:
    """Same estimate, different true channel: same raw action, different reward."""
    env = _make(case)
    task = task_of(env)
    inst = task.sample(torch.Generator().manual_seed(5), 1)
    field = "G" if hasattr(inst, "G") else "H"  # the true (effective) channel
    true = getattr(inst, field)
    other = dataclasses.replace(inst, **{field: true * torch.exp(1j * torch.tensor(0.7)) + 0.3})
    a = env.action_space.sample()
    rewards, raws = [], []
    for i in (inst, other):
        env.reset(options={"instance": i})
        rewards.append(env.step(a)[1])
        raws.append(env.last_raw_action)
    np.testing.assert_array_equal(raws[0], raws[1])
    assert rewards[0] != rewards[1]


def test_phase_action_is_unit_modulus_and_a_fixed_point_of_the_projection() -> None:
    env = _make("phase")
    env.reset(seed=0)
    task = task_of(env)
    a = env.action_space.sample()
    _, _, _, _, info = env.step(a)
    W = torch.polar(torch.ones(a.shape), torch.pi * torch.as_tensor(a)).reshape(
        1, *task.panel_shape
    )
    raw = torch.as_tensor(env.last_raw_action)[None]
    W_env, projected = task.action_to_beamformer(raw, task.known(env.unwrapped.instance))
    torch.testing.assert_close(W_env, W.to(task.cdtype), rtol=1e-5, atol=1e-6)
    assert not bool(projected.any()) and not bool(info["projected"])


def test_vector_wrapper_matches_single_wrappers() -> None:
    n = 3
    venv = vw.OptimalStructureAction(
        gym.make_vec(FDD, num_envs=n, vectorization_mode="vector_entry_point", **FDD_KW)
    )
    assert venv.single_action_space.shape == (8,) and venv.action_space.shape == (n, 8)
    obs_v, _ = venv.reset(seed=[10, 11, 12])
    a = np.random.default_rng(0).uniform(-1, 1, (n, 8)).astype(np.float32)
    _, rew_v, *_ = venv.step(a)
    for i in range(n):
        env = _make("optimal-structure")
        obs, _ = env.reset(seed=10 + i)
        np.testing.assert_array_equal(obs, obs_v[i])
        assert env.step(a[i])[1] == pytest.approx(rew_v[i], rel=1e-6)


def test_ppo_steps_a_wrapped_refinement_env() -> None:
    """``horizon > 1``: the observation carries the raw action and feedback; PPO steps it."""
    env = _make("optimal-structure", horizon=3)
    task = task_of(env)
    assert env.observation_space.shape == (task.obs_dim + task.action_dim + 4 + 1,)
    model = PPO("MlpPolicy", env, n_steps=12, batch_size=12, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=24)
    obs, _ = env.reset(seed=1)
    for t in range(3):
        obs, reward, terminated, _, _ = env.step(model.predict(obs)[0])
        assert np.isfinite(reward) and terminated == (t == 2)


def test_mapped_policy_scores_like_mmse_in_the_harness() -> None:
    from agents.classical.fully_digital import MMSEAgent
    from agents.harness import evaluate_agent
    from beamgym.datasets import make_instance_set

    class Zero:
        def predict(self, obs, state=None, episode_start=None, deterministic=False):
            return np.zeros((len(obs), 8), np.float32), state

    env = gym.make(FDD, **FDD_KW)
    iset = make_instance_set(FDD, 16, seed=0, **FDD_KW)
    policy = MappedPolicy(Zero(), OptimalStructureMap(task_of(env)))
    ours = evaluate_agent(policy, iset, single_instances=0)
    mmse = evaluate_agent(MMSEAgent(env), iset, single_instances=0)
    np.testing.assert_allclose(ours.metric, mmse.metric, rtol=1e-5)
