"""The modular-receiver CNN of paper 004 Sec. V-A (agents/modular_cnn): network, training, agent."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

import beamgym  # noqa: F401  (registers the envs)
from agents import make_agent
from agents.base import Agent, CheckpointError, agent_spec, registered_agents
from agents.modular_cnn import train as cli
from agents.modular_cnn.agent import CNNAgent
from agents.modular_cnn.model import CNNBeamformer
from agents.modular_cnn.train import CNNTrainConfig, save_checkpoint, train_cnn
from agents.pretrained import PRETRAINED_DIR, read_config
from beamgym.datasets import make_task

ENV = "beamgym/ModularUplink-v0"
#: A tiny scenario (M = 8, LP = 8, T = 5) for fast tests.
TINY = {"P": 2, "L": 4, "N": 4, "B": 1, "K": 4}
ROOT = Path(__file__).resolve().parents[2]


def _data(n: int, seed: int = 3, **kw):
    task = make_task(ENV, **kw)
    inst = task.sample(torch.Generator().manual_seed(seed), n)
    return task, inst, task.known(inst)


def _assert_feasible(task, W: torch.Tensor) -> None:
    assert W.shape[1:] == task.panel_shape
    assert torch.isfinite(torch.view_as_real(W)).all()
    assert bool(((W.abs() - 1).abs() < 1e-5).all())  # unit modulus (C1, C3)
    if task.config.constraint == "quantized":
        k = torch.angle(W) * task.config.q_levels / (2 * math.pi)
        assert (k - k.round()).abs().max() < 1e-4
    assert not bool(task._changed(W, task.project(W)).any())  # the env keeps it as is


def _tiny_model(tmp_path: Path) -> Path:
    task = make_task(ENV, **TINY)
    cfg = CNNTrainConfig(
        epochs=1, steps_per_epoch=2, batch_size=8, channels=(4,), hidden=8, n_val=8
    )
    net, _, info = train_cnn(task, cfg)
    return save_checkpoint(tmp_path / "cnn", task, net, cfg, info).parent


def test_cnn_shapes_training_and_agent(tmp_path) -> None:
    task = make_task(ENV, **TINY)
    net = CNNBeamformer(1, 8, 4, task.panel_shape, (4,), 8)
    H = task.sample(torch.Generator().manual_seed(0), 5).H_est
    W = net(H)
    assert W.shape == (5, 2, 4, 4) and torch.allclose(W.abs(), torch.ones(()), atol=1e-5)
    conv = 2 * 4 * 9 + 4 + 2 * 4
    fc = 4 * 4 * 2 * 8 + 8 + 2 * 8 + 8 * 64 + 64
    assert net.num_parameters == conv + fc
    cfg = CNNTrainConfig(
        epochs=2, steps_per_epoch=4, batch_size=16, channels=(4,), hidden=8, n_val=16, lr=1e-2
    )
    net, hist, info = train_cnn(task, cfg)
    assert len(hist) == 3 and info["num_parameters"] == net.num_parameters
    path = tmp_path / "cnn"
    save_checkpoint(path, task, net, cfg, info)
    assert read_config(path)["agent"] == "modular_cnn"
    qtask, inst, known = _data(3, constraint="quantized", **TINY)
    agent = make_agent("modular_cnn", qtask, checkpoint=str(path))
    _assert_feasible(qtask, agent.solve(known))
    with pytest.raises(CheckpointError, match="K: checkpoint.*--agent modular_cnn.*K=5"):
        make_agent("modular_cnn", make_task(ENV, **{**TINY, "K": 5}), checkpoint=str(path))
    with pytest.raises(CheckpointError, match="no checkpoint .*train one with: python examples"):
        make_agent("modular_cnn", qtask, checkpoint=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="ModularUplinkKnown"):
        agent.solve(inst)
    with pytest.raises(ValueError, match="channels"):
        CNNTrainConfig(channels=())


def test_committed_model_is_found_under_the_registry_name() -> None:
    task, inst, known = _data(16, seed=11)
    agent = make_agent("modular_cnn", task)
    assert agent.checkpoint_path == PRETRAINED_DIR / "modular_cnn" / ENV[8:] / "checkpoint.pt"
    config = read_config(agent.checkpoint_path)
    assert config["agent"] == "modular_cnn"
    assert config["command"].startswith(
        "python examples/train.py --agent modular_cnn --env beamgym/ModularUplink-v0 "
        "--out agents/pretrained/modular_cnn/ModularUplink-v0"
    )
    W = agent.solve(known)
    _assert_feasible(task, W)
    assert float(task.evaluate(W, inst)["metric"].mean()) > 0.5  # trained: ~0.73 nats/user


def test_cnn_004_is_a_deprecated_alias(tmp_path) -> None:
    assert "modular_cnn" in registered_agents() and "cnn_004" not in registered_agents()
    assert registered_agents()["modular_cnn"].aliases == ("cnn_004",)
    with pytest.warns(DeprecationWarning, match="'cnn_004' is deprecated; use 'modular_cnn'"):
        agent = make_agent("cnn_004", ENV)
    assert type(agent) is CNNAgent and agent.name == "modular_cnn"
    with pytest.warns(DeprecationWarning):
        assert agent_spec("cnn_004") is registered_agents()["modular_cnn"]
    # a model saved under the old name (config.json "agent": "cnn_004") still loads
    folder = _tiny_model(tmp_path)
    cfg_path = folder / "config.json"
    cfg_path.write_text(cfg_path.read_text().replace('"modular_cnn"', '"cnn_004"'))
    task = make_task(ENV, **TINY)
    loaded = Agent.load(folder, task)
    assert type(loaded) is CNNAgent and loaded.name == "modular_cnn"
    assert type(make_agent("modular_cnn", task, checkpoint=str(folder))) is CNNAgent


def test_cli_trains_writes_the_run_folder_and_accepts_the_old_name(tmp_path) -> None:
    argv = [
        "--agent",
        "modular_cnn",
        "--env-kw",
        *(f"{k}={v}" for k, v in TINY.items()),
        "--epochs",
        "1",
        "--steps-per-epoch",
        "2",
        "--batch-size",
        "8",
        "--channels",
        "4",
        "--hidden",
        "8",
        "--n-val",
        "8",
        "--no-progress",
    ]
    out = cli.main([*argv, "--out", str(tmp_path / "run")])
    meta = json.loads((out / "config.json").read_text())
    assert meta["agent"] == "modular_cnn"
    assert {k: meta["env_config"][k] for k in TINY} == TINY
    assert meta["command"].startswith("python examples/train.py --agent modular_cnn --env-kw")
    assert (out / "train_log.csv").read_text().count("\n") == 3  # header, epochs 0 and 1
    agent = make_agent("modular_cnn", make_task(ENV, **TINY), checkpoint=str(out))
    assert agent.model_config["train_config"]["hidden"] == 8
    with pytest.raises(SystemExit, match="constraint"):
        cli.main(["--env-kw", "constraint=sparse", "--out", str(tmp_path / "x")])
    # examples/train.py dispatches the deprecated name to this trainer under the new name
    spec = importlib.util.spec_from_file_location("example_train_cnn", ROOT / "examples/train.py")
    train_script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_script)
    old = ["--agent", "cnn_004", *argv[2:], "--out", str(tmp_path / "old")]
    with pytest.warns(DeprecationWarning, match="cnn_004"):
        out = train_script.main(old)
    meta = json.loads((out / "config.json").read_text())
    assert meta["agent"] == "modular_cnn"
    assert meta["command"].startswith("python examples/train.py --agent modular_cnn ")
