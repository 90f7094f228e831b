"""stable-baselines3 trains on beamgym envs unchanged (the Box spaces are SB3-ready)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO

import beamgym  # noqa: F401

SMALL = {
    "beamgym/FullyDigitalFDD-v0": {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10.0},
    "beamgym/ModularUplink-v0": {"P": 2, "N": 3, "L": 2, "T": 3, "B": 1, "K": 3},
}


@pytest.mark.parametrize("env_id", sorted(SMALL))
def test_ppo_learns_a_few_steps(env_id: str, tmp_path) -> None:
    env = gym.make(env_id, **SMALL[env_id])
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=32, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=64)
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action.astype(np.float32))
    _, reward, terminated, _, _ = env.step(action)
    assert np.isfinite(reward) and terminated
    model.save(tmp_path / "ppo")
    assert (tmp_path / "ppo.zip").exists()
