"""Gymnasium / stable-baselines3 integration of every env: rendering, vector-env seeding,
autoreset modes with the standard vector wrappers, and ``info`` that owns its memory."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode
from gymnasium.wrappers.vector import NormalizeObservation, RecordEpisodeStatistics

import beamgym
from beamgym.envs.base import make_generator, render_bars

ENV_IDS = list(beamgym.ENV_IDS)
#: Small configurations (fast sampling); OutageHybrid keeps its defaults.
SMALL: dict[str, dict] = {
    "beamgym/FullyDigitalFDD-v0": {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10.0},
    "beamgym/FarFieldHybrid-v0": {"N": 8, "N_RF": 2, "K": 2},
    "beamgym/NearFieldHybrid-v0": {"K": 2, "S": 4, "n": 2},
    "beamgym/ModularUplink-v0": {"P": 2, "N": 3, "L": 2, "T": 3, "B": 1, "K": 3},
    "beamgym/OutageHybrid-v0": {},
}


def _native(env_id: str, n: int, **kw) -> gym.vector.VectorEnv:
    return gym.make_vec(
        env_id, num_envs=n, vectorization_mode="vector_entry_point", **SMALL[env_id], **kw
    )


def _sync(env_id: str, n: int, mode: AutoresetMode, **kw) -> gym.vector.VectorEnv:
    return gym.make_vec(
        env_id,
        num_envs=n,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": mode},
        **SMALL[env_id],
        **kw,
    )


def _actions(space: gym.Space, seed: int, n: int) -> list[np.ndarray]:
    space.seed(seed)
    return [space.sample() for _ in range(n)]


# ---- rendering ------------------------------------------------------------------------------
def test_render_bars_draws_one_bar_per_value_scaled_by_the_largest() -> None:
    img = render_bars(np.array([1.0, 0.5, 0.0, 2.0]), height=40)
    assert img.dtype == np.uint8 and img.shape == (40, 42, 3)
    blue = (img == np.array([31, 119, 180], dtype=np.uint8)).all(-1)
    heights = [int(blue[:, 2 + k * 10].sum()) for k in range(4)]
    assert heights == [19, 10, 0, 38]  # span 38 px for the largest value
    signed = render_bars(np.array([-1.0, 1.0]), height=40)
    blue = (signed == np.array([31, 119, 180], dtype=np.uint8)).all(-1)
    assert blue[21:, 2].any() and not blue[:20, 2].any()  # negative bars hang below the middle
    assert render_bars(np.array([np.nan, np.inf])).max() == 255  # non-finite values draw as 0


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rgb_array_render_shows_the_last_feedback(env_id: str) -> None:
    env = gym.make(env_id, render_mode="rgb_array", **SMALL[env_id])
    assert "rgb_array" in env.metadata["render_modes"] and env.metadata["render_fps"] > 0
    env.reset(seed=0)
    blank = env.render()
    assert blank.dtype == np.uint8 and blank.ndim == 3 and blank.shape[2] == 3
    _, _, _, _, info = env.step(env.action_space.sample())
    frame = env.render()
    assert frame.shape == blank.shape
    np.testing.assert_array_equal(frame, render_bars(info["per_user"]))
    assert gym.make(env_id, **SMALL[env_id]).unwrapped.render() is None
    with pytest.raises(ValueError, match="render_mode"):
        type(env.unwrapped)(render_mode="ansi", **SMALL[env_id])
    envs = _native(env_id, 2, render_mode="rgb_array")
    envs.reset(seed=0)
    assert len(envs.render()) == 2


# ---- info owns its memory ---------------------------------------------------------------------
def _scribble(info: dict) -> None:
    """Overwrite every numpy array of ``info`` in place (what a careless user might do)."""
    for v in info.values():
        if isinstance(v, np.ndarray) and v.flags.writeable and v.dtype != object:
            v.fill(7)
        elif isinstance(v, dict):
            _scribble(v)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_mutating_info_does_not_change_the_next_observation(env_id: str) -> None:
    a, b = (gym.make(env_id, horizon=3, **SMALL[env_id]).unwrapped for _ in range(2))
    act = _actions(a.action_space, 0, 2)
    a.reset(seed=3)
    b.reset(seed=3)
    _, _, _, _, info = a.step(act[0])
    b.step(act[0])
    _scribble(info)
    np.testing.assert_array_equal(a.step(act[1])[0], b.step(act[1])[0])
    va, vb = _native(env_id, 2, horizon=3), _native(env_id, 2, horizon=3)
    acts = _actions(va.action_space, 0, 2)
    va.reset(seed=3)
    vb.reset(seed=3)
    _scribble(va.step(acts[0])[4])
    vb.step(acts[0])
    np.testing.assert_array_equal(va.step(acts[1])[0], vb.step(acts[1])[0])


# ---- vector-env seeding -----------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seed_list_makes_sub_env_i_the_single_env_seeded_seed_i(env_id: str) -> None:
    """``reset(seed=[s, s+1, ...])`` of the native env equals SyncVectorEnv ``reset(seed=s)``,
    also over autoresets (each sub-env keeps its own generator)."""
    native = _native(env_id, 3)
    sync = _sync(env_id, 3, AutoresetMode.SAME_STEP)
    obs_n, _ = native.reset(seed=[5, 6, 7])
    obs_s, _ = sync.reset(seed=5)
    np.testing.assert_array_equal(obs_n, obs_s)
    single = gym.make(env_id, **SMALL[env_id])
    np.testing.assert_array_equal(single.reset(seed=6)[0], obs_n[1])
    for act in _actions(native.action_space, 1, 2):
        on, rn, *_ = native.step(act)
        os_, rs, *_ = sync.step(act)
        np.testing.assert_allclose(rn, rs, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(on, os_)  # the next intervals' instances
    with pytest.raises(ValueError, match="seed"):
        native.reset(seed=[1, 2])
    with pytest.raises(ValueError, match=r"seed\[1\]"):
        native.reset(seed=[1, -2, 3])


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_int_seed_draws_one_batch_from_one_generator(env_id: str) -> None:
    """The documented rule: an int seed samples all sub-envs in one batched call."""
    native = _native(env_id, 3)
    obs, _ = native.reset(seed=11)
    task = native.unwrapped.task
    want = task.sample(make_generator(seeding.np_random(11)[0]), 3)
    np.testing.assert_array_equal(obs, task.observe(want).numpy().astype(np.float32))
    obs2, _ = native.reset(seed=[4, None, 6])  # None: a fresh generator for that sub-env
    np.testing.assert_array_equal(obs2[0], gym.make(env_id, **SMALL[env_id]).reset(seed=4)[0])
    obs3, _ = native.reset(seed=11)  # back to the batched generator
    np.testing.assert_array_equal(obs3, obs)


# ---- autoreset modes and the standard vector wrappers ---------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_next_step_autoreset_matches_the_sync_vector_env(env_id: str) -> None:
    native = _native(env_id, 2, horizon=2, autoreset_mode="NextStep")
    assert native.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    sync = _sync(env_id, 2, AutoresetMode.NEXT_STEP, horizon=2)
    np.testing.assert_array_equal(native.reset(seed=[1, 2])[0], sync.reset(seed=1)[0])
    for k, act in enumerate(_actions(native.action_space, 2, 6)):
        on, rn, tn, trn, _ = native.step(act)
        os_, rs, ts, trs, _ = sync.step(act)
        np.testing.assert_allclose(on, os_, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(rn, rs, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(tn, ts)
        np.testing.assert_array_equal(trn, trs)
        assert bool(tn.all()) == (k % 3 == 1)  # steps 2, 5 end the interval
        if k % 3 == 2:  # the reset step: reward 0, actions ignored
            assert (rn == 0).all()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_standard_vector_wrappers_work_on_the_native_env(env_id: str) -> None:
    envs = _native(env_id, 2, horizon=2, autoreset_mode=AutoresetMode.NEXT_STEP)
    envs = RecordEpisodeStatistics(NormalizeObservation(envs))
    envs.reset(seed=0)
    total = np.zeros(2)
    for act in _actions(envs.action_space, 0, 2):
        obs, reward, terminated, _, info = envs.step(act)
        total += reward
        assert np.isfinite(obs).all()
    assert terminated.all()
    np.testing.assert_allclose(info["episode"]["r"], total, rtol=1e-5)
    np.testing.assert_array_equal(info["episode"]["l"], [2, 2])
    with pytest.raises(ValueError, match="autoreset_mode"):
        _native(env_id, 2, autoreset_mode="sometimes")


def test_disabled_autoreset_needs_an_explicit_reset() -> None:
    env_id = "beamgym/FullyDigitalFDD-v0"
    envs = _native(env_id, 2, autoreset_mode=AutoresetMode.DISABLED)
    envs.reset(seed=0)
    act = envs.action_space.sample()
    _, _, terminated, _, info = envs.step(act)
    assert terminated.all() and "final_obs" not in info
    with pytest.raises(gym.error.ResetNeeded, match="Disabled"):
        envs.step(act)
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.array([True, False])})
    envs.reset(options={"reset_mask": np.array([True, True])})
    assert np.isfinite(envs.step(act)[1]).all()


def test_same_step_stays_the_default() -> None:
    envs = _native("beamgym/FullyDigitalFDD-v0", 2)
    assert envs.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs0, _ = envs.reset(seed=0)
    obs1, _, terminated, _, info = envs.step(envs.action_space.sample())
    assert terminated.all()
    np.testing.assert_array_equal(info["final_obs"], obs0)
    assert not np.array_equal(obs1, obs0)


# ---- stable-baselines3 from the string id -----------------------------------------------------
def test_sb3_ppo_trains_from_the_string_id() -> None:
    """SB3 makes string ids with ``render_mode="rgb_array"`` (and no keywords): default size."""
    from stable_baselines3 import PPO

    model = PPO(
        "MlpPolicy",
        "beamgym/FullyDigitalFDD-v0",
        n_steps=64,
        batch_size=64,
        n_epochs=1,
        seed=0,
        device="cpu",
        tensorboard_log=None,
    )
    model.learn(total_timesteps=256)
    assert model.num_timesteps == 256
    assert model.get_env().render_mode == "rgb_array"


def test_sb3_make_vec_env_from_the_string_id() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    env_id = "beamgym/ModularUplink-v0"
    vec = make_vec_env(env_id, n_envs=2, seed=0, env_kwargs=SMALL[env_id])
    model = PPO("MlpPolicy", vec, n_steps=32, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=128)
    frames = vec.get_images()
    assert len(frames) == 2 and frames[0].dtype == np.uint8 and frames[0].shape[2] == 3
    obs = vec.reset()
    assert (
        obs.shape == (2, vec.observation_space.shape[0])
        and torch.isfinite(torch.as_tensor(obs)).all()
    )
