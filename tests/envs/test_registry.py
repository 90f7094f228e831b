"""Registry-parametrized checks that every beamgym environment must pass.

Modelled on Gymnasium's ``tests/envs/test_envs.py``: env checkers, seeded determinism,
pickling, the native vector env, horizon mechanics, bad input and the instance-set API.
"""

from __future__ import annotations

import pickle
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import beamgym
from beamgym.datasets import load_instance_set, make_instance_set, save_instance_set
from beamgym.envs.base import REQUIRED_METRICS

ENV_IDS = list(beamgym.ENV_IDS)
COMMON_INFO_KEYS = {*REQUIRED_METRICS, "projected", "step"}


def _make(env_id: str, **kw):
    return gym.make(env_id, **kw).unwrapped


def _fields_equal(a, b) -> bool:
    return all(
        torch.equal(x, y)
        for (_, x), (_, y) in zip(a._tensor_items(), b._tensor_items(), strict=True)
    )


def test_all_five_registered() -> None:
    assert len(ENV_IDS) == 5
    for env_id in ENV_IDS:
        assert env_id in gym.registry
        assert gym.registry[env_id].vector_entry_point is not None


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env(env_id: str) -> None:
    env = _make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error", category=UserWarning)
        # channel observations are unbounded by nature (like MuJoCo's); that warning is expected
        warnings.filterwarnings("ignore", message=".*infinit", category=UserWarning)
        gym_check_env(env, skip_render_check=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_check_env(env_id: str) -> None:
    sb3_check_env(_make(env_id), warn=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_docstring_follows_gymnasium_template(env_id: str) -> None:
    doc = type(_make(env_id)).__doc__ or ""
    for section in (
        "## Description",
        "## Action Space",
        "## Observation Space",
        "## Rewards",
        "## Starting State",
        "## Episode End",
        "## Arguments",
        "## Version History",
    ):
        assert section in doc, f"{env_id} docstring lacks {section}"
    assert "paper" in doc.lower()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seeded_determinism_bit_for_bit(env_id: str) -> None:
    e1, e2 = _make(env_id), _make(env_id)
    o1, _ = e1.reset(seed=123)
    o2, _ = e2.reset(seed=123)
    assert np.array_equal(o1, o2)
    assert _fields_equal(e1.instance, e2.instance)
    a = e1.action_space.sample()
    r1 = e1.step(a)
    r2 = e2.step(a)
    assert r1[1] == r2[1]
    o3, _ = e1.reset(seed=124)
    assert not np.array_equal(o1, o3)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_info_and_reward(env_id: str) -> None:
    env = _make(env_id)
    obs, info = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert isinstance(reward, float) and np.isfinite(reward)
    assert terminated and not truncated  # default horizon 1
    assert COMMON_INFO_KEYS <= set(info), COMMON_INFO_KEYS - set(info)
    assert info["per_user"].shape == (env.task.num_users,)
    assert reward == pytest.approx(float(info["reward"]))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_pickle_roundtrip(env_id: str) -> None:
    env = _make(env_id)
    env.reset(seed=5)
    clone = pickle.loads(pickle.dumps(env))
    a = env.action_space.sample()
    assert env.step(a)[1] == clone.step(a)[1]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_horizon_refinement(env_id: str) -> None:
    env = _make(env_id, horizon=3)
    base = _make(env_id)
    t = env.task
    assert env.observation_space.shape == (
        base.observation_space.shape[0] + t.action_dim + t.num_users + 1,
    )
    obs0, _ = env.reset(seed=1)
    a = env.action_space.sample()
    obs1, _, term, _, info = env.step(a)
    assert not term
    # the observation now carries the previous action and the per-user feedback
    d = base.observation_space.shape[0]
    np.testing.assert_allclose(obs1[d : d + t.action_dim], a, rtol=1e-6)
    np.testing.assert_allclose(
        obs1[d + t.action_dim : d + t.action_dim + t.num_users], info["per_user"], rtol=1e-5
    )
    assert np.array_equal(obs0[:d], obs1[:d])  # same coherence interval, same CSI
    env.step(a)
    *_, term, _, _ = env.step(a)
    assert term
    with pytest.raises(gym.error.ResetNeeded):
        env.step(a)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_bad_input_is_rejected(env_id: str) -> None:
    env = _make(env_id)
    with pytest.raises(gym.error.ResetNeeded):
        env.step(env.action_space.sample())
    env.reset(seed=0)
    a = env.action_space.sample()
    nan = a.copy()
    nan[0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        env.step(nan)
    with pytest.raises(ValueError, match="shape"):
        env.step(a[:-1])
    with pytest.raises(ValueError, match="floating"):
        env.step(np.zeros(a.shape, dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        env.step(a * 0 + 2.0)
    with pytest.raises(ValueError, match="unknown keyword"):
        gym.make(env_id, not_a_parameter=3)
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(options={"bogus": 1})
    with pytest.raises(ValueError, match="horizon"):
        _make(env_id, horizon=0)
    two = env.task.sample(torch.Generator().manual_seed(0), 2)
    with pytest.raises(ValueError, match="exactly one instance"):
        env.reset(options={"instance": two})
    with pytest.raises(ValueError, match="instance must be"):
        env.reset(options={"instance": {"H": 1}})


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_roundtrip_and_differentiable_evaluate(env_id: str) -> None:
    env = _make(env_id, precision="double")
    env.reset(seed=3)
    task, inst = env.task, env.instance
    a = torch.as_tensor(
        np.stack([env.action_space.sample() for _ in range(1)]), dtype=torch.float64
    )
    a.requires_grad_(True)
    bf, _ = task.action_to_beamformer(a, inst)
    m = task.evaluate(bf, inst)
    assert m["metric"].dtype == torch.float64
    m["reward"].sum().backward()
    assert a.grad is not None and torch.isfinite(a.grad).all() and a.grad.abs().sum() > 0
    # beamformer -> action -> beamformer is exact on the feasible set
    with torch.no_grad():
        a2 = task.beamformer_to_action(bf, inst)
        assert a2.shape == a.shape and a2.abs().max() <= 1 + 1e-9
        bf2, _ = task.action_to_beamformer(a2, inst)
        m2 = task.evaluate(bf2, inst)
    torch.testing.assert_close(m2["reward"], m["reward"].detach(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_native_vector_env(env_id: str) -> None:
    n = 3
    venv = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point")
    assert venv.num_envs == n
    obs, _ = venv.reset(seed=7)
    assert obs.shape == (n, *venv.single_observation_space.shape)
    assert venv.observation_space.contains(obs)
    obs_again, _ = venv.reset(seed=7)
    assert np.array_equal(obs, obs_again)
    actions = venv.action_space.sample()
    inst = venv.unwrapped.instance
    obs2, rewards, term, trunc, infos = venv.step(actions)
    assert rewards.shape == (n,) and term.all() and not trunc.any()
    assert np.array_equal(infos["final_obs"], obs) and not np.array_equal(
        obs2, obs
    )  # same-step reset
    # batched evaluation equals n single-env evaluations on the same instances
    env = _make(env_id)
    singles = []
    for i in range(n):
        env.reset(options={"instance": inst[i]})
        singles.append(env.step(actions[i])[1])
    np.testing.assert_allclose(rewards, singles, rtol=2e-5, atol=1e-5)
    with pytest.raises(ValueError, match="shape"):
        venv.step(actions[:-1])
    venv.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_instance_set_determinism_and_io(env_id: str, tmp_path) -> None:
    ds1 = make_instance_set(env_id, n=6, seed=11, chunk_size=4)
    ds2 = make_instance_set(env_id, n=6, seed=11, chunk_size=4)
    assert len(ds1) == 6 and _fields_equal(ds1.instances, ds2.instances)
    ds3 = make_instance_set(env_id, n=6, seed=12, chunk_size=4)
    assert not _fields_equal(ds1.instances, ds3.instances)
    path = tmp_path / "set.pt"
    save_instance_set(path, ds1)
    back = load_instance_set(path)
    assert (
        back.env_id == env_id and back.seed == 11 and _fields_equal(back.instances, ds1.instances)
    )
    env = _make(env_id)
    obs, _ = env.reset(options={"instance": ds1.instances[4]})
    expected = env.task.observe(ds1.instances[4])[0].numpy().astype(np.float32)
    assert np.array_equal(obs, expected)
    assert [len(b) for b in ds1.batches(4)] == [4, 2]


@pytest.mark.gpu
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_cuda_matches_cpu(env_id: str) -> None:
    ds = make_instance_set(env_id, n=8, seed=3, precision="double")
    cpu = gym.make_vec(
        env_id, num_envs=8, vectorization_mode="vector_entry_point", precision="double"
    )
    gpu = gym.make_vec(
        env_id,
        num_envs=8,
        vectorization_mode="vector_entry_point",
        precision="double",
        device="cuda",
    )
    cpu.reset(options={"instance": ds.instances})
    gpu.reset(options={"instance": ds.instances.to("cuda")})
    actions = cpu.action_space.sample()
    r_cpu = cpu.step(actions)[1]
    r_gpu = gpu.step(actions)[1]
    np.testing.assert_allclose(r_gpu, r_cpu, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_known_view_decodes_the_observation(env_id: str) -> None:
    task = _make(env_id, precision="double").task
    inst = task.sample(torch.Generator().manual_seed(4), 3)
    known = task.known(inst)
    assert known.batch_size == 3
    shared = [n for n, _ in known._tensor_items() if hasattr(inst, n)]
    assert shared, "the Known view shares no field with the instance"
    for name in shared:
        torch.testing.assert_close(
            getattr(known, name), getattr(inst, name), rtol=1e-12, atol=1e-12
        )
    # the Known view never carries the TRUE channel
    assert not hasattr(known, "H") or torch.equal(known.H, inst.H_est)
    # and the action map accepts it in place of the instance
    a = torch.rand(
        3, task.action_dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    bf_inst = task.action_to_beamformer(a * 2 - 1, inst)[0]
    bf_known = task.action_to_beamformer(a * 2 - 1, known)[0]
    torch.testing.assert_close(
        task.evaluate(bf_known, inst)["metric"], task.evaluate(bf_inst, inst)["metric"]
    )


@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("beamgym/FullyDigitalFDD-v0", {}),
        ("beamgym/FullyDigitalFDD-v0", {"snr_db": (5.0, 10.0), "M": 4, "K": 4}),
        ("beamgym/FarFieldHybrid-v0", {"analog": "phase-shifter"}),
        ("beamgym/NearFieldHybrid-v0", {"K": 8}),
        ("beamgym/ModularUplink-v0", {}),
        ("beamgym/OutageHybrid-v0", {"num_users": 4}),
    ],
)
def test_task_carries_its_env_id_and_kwargs(env_id: str, kwargs: dict) -> None:
    task = _make(env_id, **kwargs).task
    assert task.env_id == env_id
    rebuilt = _make(task.env_id, **task.env_kwargs).task
    assert rebuilt.config == task.config
    assert set(task.env_kwargs) >= set(kwargs)
