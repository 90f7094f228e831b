"""beamgym.sb3.BatchedVecEnv: SB3's VecEnv contract, DummyVecEnv equivalence, PPO learns."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecEnv, VecMonitor

import beamgym  # noqa: F401
from beamgym.sb3 import BatchedVecEnv
from beamgym.wrappers import vector as vw

FDD = "beamgym/FullyDigitalFDD-v0"
KW = {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10.0}


def _dummy(n: int, seed: int, **extra) -> DummyVecEnv:
    d = DummyVecEnv([lambda: gym.make(FDD, **KW, **extra) for _ in range(n)])
    d.seed(seed)
    return d


def test_vecenv_contract_and_nan_check() -> None:
    venv = VecCheckNan(BatchedVecEnv(FDD, 5, seed=0, **KW), raise_exception=True)
    assert isinstance(venv.unwrapped, VecEnv) and venv.num_envs == 5
    assert venv.observation_space.shape == (34,) and venv.action_space.shape == (32,)
    obs = venv.reset()
    assert obs.dtype == np.float32 and obs.shape == (5, 34)
    actions = np.stack([venv.action_space.sample() for _ in range(5)])
    obs2, rew, dones, infos = venv.step(actions)
    assert obs2.dtype == np.float32 and obs2.shape == (5, 34)
    assert rew.shape == (5,) and dones.dtype == bool and dones.all()
    assert isinstance(infos, list) and len(infos) == 5
    for i, info in enumerate(infos):
        # horizon 1: every step ends the interval; the final obs is the one acted on
        np.testing.assert_array_equal(info["terminal_observation"], obs[i])
        assert info["metric"] == pytest.approx(float(rew[i]))
        assert info["TimeLimit.truncated"] is False
    assert not np.array_equal(obs2, obs)  # SameStep autoreset: the next interval's obs
    assert venv.get_attr("num_envs", [0, 1]) == [5, 5]
    assert venv.env_is_wrapped(gym.Wrapper) == [False] * 5
    venv.close()


@pytest.mark.parametrize("horizon", [1, 3])
def test_same_seeds_same_rollouts_as_dummy_vec_env(horizon: int) -> None:
    n = 4
    batched = BatchedVecEnv(FDD, n, horizon=horizon, per_env_seeds=True, **KW)
    batched.seed(11)
    dummy = _dummy(n, 11, horizon=horizon)
    np.testing.assert_array_equal(batched.reset(), dummy.reset())
    rng = np.random.default_rng(0)
    for _ in range(2 * horizon + 1):
        a = rng.uniform(-1, 1, (n, 32)).astype(np.float32)
        ob, rb, db, ib = batched.step(a)
        od, rd, dd, id_ = dummy.step(a)
        np.testing.assert_allclose(ob, od, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(rb, rd, rtol=1e-6)
        np.testing.assert_array_equal(db, dd)
        for x, y in zip(ib, id_, strict=True):
            assert ("terminal_observation" in x) == ("terminal_observation" in y)
            if "terminal_observation" in x:
                np.testing.assert_allclose(
                    x["terminal_observation"], y["terminal_observation"], atol=1e-6
                )


@pytest.mark.parametrize("per_env_seeds", [False, True])
def test_seed_is_consumed_by_one_reset(per_env_seeds: bool) -> None:
    venv = BatchedVecEnv(FDD, 2, seed=4, per_env_seeds=per_env_seeds, **KW)
    first = venv.reset()
    assert not np.array_equal(venv.reset(), first)  # generators continue
    venv.seed(4)
    np.testing.assert_array_equal(venv.reset(), first)
    a = np.zeros((2, 32), np.float32) + 0.1
    other = BatchedVecEnv(FDD, 2, seed=4, per_env_seeds=per_env_seeds, **KW)
    np.testing.assert_array_equal(other.reset(), first)
    np.testing.assert_array_equal(venv.step(a)[0], other.step(a)[0])  # autoresets too


def test_batched_seeding_is_the_native_int_seed() -> None:
    venv = BatchedVecEnv(FDD, 3, seed=9, **KW)
    native = gym.make_vec(FDD, num_envs=3, vectorization_mode="vector_entry_point", **KW)
    np.testing.assert_array_equal(venv.reset(), native.reset(seed=9)[0])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="SameStep"):
        BatchedVecEnv(
            gym.make_vec(
                FDD,
                num_envs=2,
                vectorization_mode="vector_entry_point",
                autoreset_mode="NextStep",
                **KW,
            )
        )
    with pytest.raises(ValueError, match="num_envs"):
        BatchedVecEnv(FDD, 0, **KW)
    with pytest.raises(ValueError, match="env must be"):
        BatchedVecEnv(gym.make(FDD, **KW))


def test_ppo_learns_on_a_wrapped_batched_env() -> None:
    """PPO trains through BatchedVecEnv + a vector wrapper (the structure puts it far above
    random raw actions, about 1.6 bit/s/Hz, from the start)."""
    base = gym.make_vec(FDD, num_envs=64, vectorization_mode="vector_entry_point", **KW)
    venv = VecMonitor(BatchedVecEnv(vw.OptimalStructureAction(base), seed=0))
    model = PPO("MlpPolicy", venv, n_steps=4, batch_size=64, n_epochs=2, seed=0, device="cpu")
    model.learn(total_timesteps=64 * 4 * 3)
    obs = venv.reset()
    _, rew, _, _ = venv.step(model.predict(obs, deterministic=True)[0])
    assert np.all(np.isfinite(rew)) and rew.mean() > 3.0  # random raw actions: about 1.6


def test_sac_runs_on_batched_env() -> None:
    venv = BatchedVecEnv(FDD, 8, seed=0, **KW)
    model = SAC("MlpPolicy", venv, learning_starts=16, batch_size=16, seed=0, device="cpu")
    model.learn(total_timesteps=64)
    assert model.num_timesteps >= 64
