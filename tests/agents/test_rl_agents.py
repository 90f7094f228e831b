"""The RL baselines (ppo, sac, td3) as registered agents: training, checkpoints, harness paths."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import agents  # noqa: F401  (registers the agents)
from agents.base import Agent, CheckpointError, make_agent
from agents.harness import evaluate_agent
from agents.pretrained import read_checkpoint
from agents.rl import train as cli
from agents.rl.agent import SMALL_FDD, variant_name
from agents.rl.model import DEFAULT_WRAPPER, RLModelConfig, make_action_map, make_policy
from agents.rl.train import VALIDATION_SEED, RLTrainConfig
from beamgym.datasets import make_instance_set, make_task

FDD = "beamgym/FullyDigitalFDD-v0"
TINY = [
    "--total-steps",
    "64",
    "--num-envs",
    "8",
    "--n-steps",
    "8",
    "--batch-size",
    "32",
    "--n-epochs",
    "1",
    "--learning-starts",
    "16",
    "--buffer-size",
    "256",
    "--n-val",
    "8",
    "--log-every",
    "16",
    "--no-progress",
]
ENV_KW = ["--env-kw", *(f"{k}={v}" for k, v in SMALL_FDD.items())]


@pytest.fixture(scope="module", params=["ppo", "sac", "td3"])
def trained(request, tmp_path_factory) -> tuple[str, str]:
    """(agent, model folder) of a tiny training run through examples/train.py's entry point."""
    out = tmp_path_factory.mktemp(request.param) / "m"
    folder = cli.main(["--agent", request.param, "--env", FDD, *ENV_KW, *TINY, "--out", str(out)])
    return request.param, str(folder)


def _task():
    return make_task(FDD, **SMALL_FDD)


def test_tiny_training_run_writes_a_loadable_checkpoint(trained) -> None:
    name, folder = trained
    ckpt = read_checkpoint(folder, agent=name)  # weights_only=True inside
    cfg = ckpt.config
    assert cfg["model"]["algo"] == name and cfg["model"]["wrapper"] == "optimal-structure"
    assert cfg["command"].startswith(f"python examples/train.py --agent {name} --env {FDD}")
    assert cfg["train_config"]["total_steps"] == 64 and cfg["num_timesteps"] >= 64
    assert all(v.dtype == torch.float32 for v in ckpt.state.values())
    rows = open(f"{folder}/train_log.csv").read().splitlines()
    assert rows[0] == "steps,seconds,mean_reward,mean_metric" and len(rows) >= 3
    steps = [int(r.split(",")[0]) for r in rows[1:]]
    assert steps == sorted(steps) and steps[-1] >= 64
    assert not list(__import__("pathlib").Path(folder).glob("*.zip"))  # not SB3's zip format
    agent = make_agent(name, _task(), checkpoint=folder)
    assert agent.state_dict().keys() == ckpt.state.keys()
    assert all(torch.equal(agent.state_dict()[k], v) for k, v in ckpt.state.items())


def test_save_load_round_trip_is_identical(trained, tmp_path) -> None:
    name, folder = trained
    agent = make_agent(name, _task(), checkpoint=folder)
    agent.save(tmp_path / "copy")
    loaded = Agent.load(tmp_path / "copy", agent.task)
    assert type(loaded) is type(agent)
    inst = make_instance_set(FDD, n=16, seed=11, **SMALL_FDD).instances
    known = agent.task.known(inst)
    assert torch.equal(agent.solve(known), loaded.solve(known))
    obs = agent.task.observe(inst).numpy().astype(np.float32)
    np.testing.assert_array_equal(agent.predict(obs)[0], loaded.predict(obs)[0])


def test_predict_equals_solve_through_the_harness(trained) -> None:
    name, folder = trained
    agent = make_agent(name, _task(), checkpoint=folder)
    test = make_instance_set(FDD, n=64, seed=5, **SMALL_FDD)
    by_solve = evaluate_agent(agent, test, mode="solve", single_instances=0)
    by_predict = evaluate_agent(agent, test, mode="predict", single_instances=0)
    np.testing.assert_allclose(by_solve.metric, by_predict.metric, rtol=1e-5, atol=1e-5)
    # a single observation gives the raw env action of that row
    obs = agent.task.observe(test.instances[:3]).numpy().astype(np.float32)
    batch = agent.predict(obs)[0]
    assert batch.shape == (3, agent.task.action_dim) and batch.dtype == np.float32
    np.testing.assert_allclose(agent.predict(obs[1])[0], batch[1], rtol=1e-6, atol=1e-6)


def test_optimal_structure_at_zero_action_is_mmse() -> None:
    """The default FDD wrapper starts at paper 000's MMSE exactly: a = 0 gives its beamformer."""
    task = _task()
    amap = make_action_map(task, RLModelConfig(wrapper="optimal-structure"))
    inst = make_instance_set(FDD, n=32, seed=3, **SMALL_FDD)
    obs = task.observe(inst.instances).numpy().astype(np.float32)
    from beamgym.wrappers import MappedPolicy

    class Zero:
        def predict(self, o, state=None, episode_start=None, deterministic=True):
            return np.zeros((o.shape[0], amap.dim), np.float32), state

    zero = evaluate_agent(MappedPolicy(Zero(), amap), inst, single_instances=0).metric
    mmse = evaluate_agent(make_agent("mmse", task), inst, single_instances=0).metric
    np.testing.assert_allclose(zero, mmse, rtol=1e-4)
    assert obs.shape == (32, task.obs_dim)


def test_missing_committed_model_names_the_train_command(tmp_path) -> None:
    task = make_task(FDD, channel="rayleigh", N=4, K=2, snr_db=10)
    agent = make_agent("sac", task)  # no committed sac model: a fresh policy it will not use
    inst = make_instance_set(FDD, n=2, seed=1, channel="rayleigh", N=4, K=2, snr_db=10)
    cmd = "python examples/train.py --agent sac --env beamgym/FullyDigitalFDD-v0 --env-kw"
    for call in (
        lambda: agent.solve(task.known(inst.instances)),
        lambda: agent.predict(task.observe(inst.instances).numpy()),
        lambda: agent.save(tmp_path / "x"),
    ):
        with pytest.raises(CheckpointError, match="no committed sac model") as exc:
            call()
        assert cmd in str(exc.value) and "--wrapper optimal-structure" in str(exc.value)
    with pytest.raises(CheckpointError, match="train one with: python examples/train.py"):
        make_agent("ppo", task, checkpoint=tmp_path / "nowhere")


def test_checkpoint_of_another_configuration_or_algorithm_is_refused(trained, tmp_path) -> None:
    name, folder = trained
    other = make_task(FDD, channel="rayleigh", N=4, K=4, snr_db=20)
    with pytest.raises(CheckpointError, match="snr_db"):
        make_agent(name, other, checkpoint=folder)
    cfg = json.loads(open(f"{folder}/config.json").read())
    cfg["model"]["algo"] = "td3" if name != "td3" else "sac"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps(cfg))
    (bad / "checkpoint.pt").write_bytes(open(f"{folder}/checkpoint.pt", "rb").read())
    with pytest.raises(CheckpointError, match="policy, not"):
        make_agent(name, _task(), checkpoint=bad)


def test_learn_trains_in_process_and_changes_the_weights() -> None:
    agent = make_agent("td3", _task())
    before = agent.state_dict()
    out = agent.learn(total_steps=64, num_envs=8, batch_size=16, learning_starts=16, n_val=4)
    assert out is agent
    after = agent.state_dict()
    assert any(not torch.equal(after[k], before[k]) for k in before)
    assert "TD3Agent.learn(" in agent.checkpoint_config()["command"]
    assert agent.solve(
        agent.task.known(make_task(FDD, **SMALL_FDD).sample(torch.Generator().manual_seed(0), 2))
    ).shape == (2, 4, 4)


@pytest.mark.parametrize("env_id", sorted(DEFAULT_WRAPPER))
def test_default_wrapper_applies_to_every_supported_env(env_id: str) -> None:
    task = make_task(env_id)
    model = RLModelConfig(algo="ppo", wrapper=DEFAULT_WRAPPER[env_id])
    amap = make_action_map(task, model)
    policy = make_policy(task, model)
    inst = task.sample(torch.Generator().manual_seed(0), 2)
    obs = task.observe(inst).numpy().astype(np.float32)
    action, _ = policy.predict(obs, deterministic=True)
    raw = amap.to_raw(action, obs)
    assert raw.shape == (2, task.action_dim) and np.isfinite(raw).all()


def test_train_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="test seed"):
        RLTrainConfig(seed=1_000_003)
    with pytest.raises(ValueError, match="validation seed"):
        RLTrainConfig(seed=VALIDATION_SEED)
    with pytest.raises(ValueError, match="wrapper must be one of"):
        RLTrainConfig(wrapper="bogus")
    with pytest.raises(ValueError, match="total_steps"):
        RLTrainConfig(total_steps=0)
    with pytest.raises(ValueError, match="gradient_steps"):
        RLTrainConfig(gradient_steps=0)
    for bad in (0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="final_lr_fraction"):
            RLTrainConfig(final_lr_fraction=bad)


def test_learning_rate_decays_linearly_to_the_final_fraction() -> None:
    assert RLTrainConfig().algo_kwargs("ppo")["learning_rate"] == 3e-4  # constant by default
    lr = RLTrainConfig(learning_rate=1e-3, final_lr_fraction=0.1).algo_kwargs("ppo")
    schedule = lr["learning_rate"]
    # SB3 calls the schedule with the remaining progress: 1 at the start, 0 at the end
    assert schedule(1.0) == pytest.approx(1e-3) and schedule(0.0) == pytest.approx(1e-4)
    assert schedule(0.5) == pytest.approx(5.5e-4)
    assert RLTrainConfig(gradient_steps=4).algo_kwargs("td3")["gradient_steps"] == 4


def test_cli_rejects_a_wrapper_that_does_not_apply(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--agent", "ppo", "--env", "beamgym/ModularUplink-v0", "--wrapper", "margin"])
    assert exc.value.code == 2
    assert "MarginAction supports" in capsys.readouterr().err


def test_committed_ppo_model_fits_its_setting() -> None:
    agent = make_agent("ppo", _task())  # the committed model, found by its configuration
    assert agent.checkpoint_path.parent.name == f"FullyDigitalFDD-v0-{variant_name(SMALL_FDD)}"
    cfg = agent.checkpoint_config()
    assert cfg["model"]["wrapper"] == "optimal-structure"
    assert cfg["command"].startswith("python examples/train.py --agent ppo")
    size = agent.checkpoint_path.stat().st_size
    assert size < 2_000_000
    # the Gymnasium path: the raw action steps the unwrapped env
    env = gym.make(FDD, **SMALL_FDD)
    obs, _ = env.reset(seed=0)
    action, state = agent.predict(obs)
    assert state is None and env.action_space.contains(action)
    assert np.isfinite(env.step(action)[1])


@pytest.mark.parametrize("env_id", sorted(DEFAULT_WRAPPER))
def test_ppo_has_a_committed_model_at_every_env_default(env_id: str) -> None:
    """Issue 12: one committed model per env, made by examples/train.py in <= 30 min."""
    agent = make_agent("ppo", env_id)  # found by the env's default configuration
    folder = agent.checkpoint_path.parent
    assert folder.name == env_id.split("/")[1]
    cfg = agent.checkpoint_config()
    assert cfg["env_kwargs"] == {} and cfg["env_id"] == env_id
    assert cfg["command"].startswith(f"python examples/train.py --agent ppo --env {env_id}")
    assert f"--out agents/pretrained/ppo/{folder.name}" in cfg["command"]
    assert f"--wrapper {cfg['model']['wrapper']}" in cfg["command"]
    assert 0 < cfg["train_seconds"] <= 1800 and cfg["num_timesteps"] >= 1000
    assert (folder / "train_log.csv").is_file() and (folder / "train_curve.png").is_file()
    # the committed policy acts: finite designs on a few seeded instances
    ds = make_instance_set(env_id, n=3, seed=11)
    assert np.isfinite(evaluate_agent(agent, ds, single_instances=0).metric).all()
