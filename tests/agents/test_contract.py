"""One agent contract over the whole registry: predict, solve, save, load, learn, state_dict."""

from __future__ import annotations

import pytest
import torch

import agents  # noqa: F401  (registers the agents)
from agents.base import Agent, make_agent, registered_agents
from agents.pretrained import PRETRAINED_DIR, read_config
from beamgym.datasets import make_instance_set, make_task

SPECS = registered_agents()
#: Small training budgets that exercise each learned family's learn() quickly.
LEARN_BUDGETS: dict[str, dict] = {
    "kd_edn": {"epochs": 1, "ch_epochs": 1, "batch_size": 4},
    "edn_unsupervised": {"epochs": 1, "ch_epochs": 1, "batch_size": 4},
    "edn_supervised": {"epochs": 1, "ch_epochs": 1, "batch_size": 4},
    "kd_edn_q0": {"epochs": 1, "ch_epochs": 1, "batch_size": 4},
    "kd_edn_plus": {"steps": 1, "batch_size": 4, "n_val": 2, "keep_best": False},
    "unfolded_pga": {"epochs": 1, "n_train": 10, "n_val": 10, "init": "paper"},
    "upga_m": {"epochs": 1, "n_train": 8, "batch_size": 4, "n_val": 4, "init": "fixed"},
    "upga_m_sparse": {"epochs": 1, "n_train": 8, "batch_size": 4, "n_val": 4, "init": "fixed"},
    "upga_m_quantized": {"epochs": 1, "n_train": 8, "batch_size": 4, "n_val": 4, "init": "fixed"},
    "modular_cnn": {"epochs": 1, "steps_per_epoch": 1, "batch_size": 4, "n_val": 4},
    "ppo": {"total_steps": 64, "num_envs": 8, "batch_size": 32, "n_epochs": 1, "n_val": 4},
    "sac": {"total_steps": 64, "num_envs": 8, "batch_size": 16, "learning_starts": 16, "n_val": 4},
    "td3": {"total_steps": 64, "num_envs": 8, "batch_size": 16, "learning_starts": 16, "n_val": 4},
    **dict.fromkeys(
        ("ug_hbf_gcn", "ug_hbf_fcn", "ufdbf_gcn"),
        {"steps": 1, "batch_size": 4, "n_train": 4, "n_val": 4, "val_interval": 1},
    ),
}


def _committed_models() -> list[tuple[str, str, dict, str]]:
    """(agent, env id, env kwargs, folder) of every committed model of a learned agent."""
    out = []
    for name, spec in sorted(SPECS.items()):
        if not spec.factory.learnable:
            continue
        for cfg_path in sorted((PRETRAINED_DIR / name).glob("*/config.json")):
            cfg = read_config(cfg_path.parent)
            if cfg["env_id"] in spec.env_ids:
                out.append((name, cfg["env_id"], cfg["env_kwargs"], str(cfg_path.parent)))
    return out


def _agent(name: str, env_id: str, env_kwargs: dict | None = None, **hparams) -> Agent:
    spec = SPECS[name]
    kwargs = {**spec.default_env_kwargs(env_id), **(env_kwargs or {})}
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return make_agent(name, make_task(env_id, **kwargs), **hparams)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    return all(_same(getattr(a, f), getattr(b, f)) for f in a.__dataclass_fields__)


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_agent_has_the_contract(name: str) -> None:
    spec = SPECS[name]
    cls = spec.factory
    for method in ("predict", "solve", "save", "load", "learn", "state_dict", "load_state_dict"):
        assert callable(getattr(cls, method)), f"{name} lacks {method}"
    assert bool(spec.trainer) == cls.learnable, f"{name}: trainer iff learnable"
    if spec.trainer:
        assert callable(spec.load_trainer())


@pytest.mark.parametrize("name", sorted(SPECS))
def test_learn_is_real_work_a_documented_no_op_or_a_pointer(name: str) -> None:
    spec = SPECS[name]
    agent = _agent(name, spec.env_ids[0])
    before = agent.state_dict()
    if spec.validation_size > 0:  # calibrating agents: learn on validation data
        kw = spec.default_env_kwargs(spec.env_ids[0])
        val = make_instance_set(spec.env_ids[0], n=32, seed=2_000_003, **kw)
        assert agent.learn(val) is agent
        return
    if not spec.factory.learnable:
        # an agent with learned parameters may not hide behind the no-op
        assert before == {}, f"{name} has parameters {sorted(before)} but learnable = False"
        assert agent.learn() is agent and agent.state_dict() == {}
        return
    assert before, f"learned agent {name} exposes no state_dict"
    try:
        out = agent.learn(**LEARN_BUDGETS[name])
    except NotImplementedError as exc:
        assert "examples/train.py" in str(exc)
        return
    assert out is agent
    after = agent.state_dict()
    assert after.keys() == before.keys()
    changed = [k for k in before if not torch.equal(after[k], before[k])]
    assert changed, f"{name}.learn changed nothing"
    assert "learn(" in agent.checkpoint_config()["command"]


def test_every_committed_model_is_tested() -> None:
    assert len(_committed_models()) == len(list(PRETRAINED_DIR.glob("*/*/checkpoint.pt")))


@pytest.mark.parametrize(("name", "env_id", "env_kwargs", "folder"), _committed_models())
def test_learned_agents_round_trip_bit_for_bit(name, env_id, env_kwargs, folder, tmp_path) -> None:
    agent = _agent(name, env_id, env_kwargs, checkpoint=folder)
    state = agent.state_dict()
    assert state and all(v.dtype != torch.float64 for v in state.values())
    agent.save(tmp_path / "m")
    cfg = read_config(tmp_path / "m")
    for key in ("agent", "env_id", "env_kwargs", "format_version", "hparams", "train_config"):
        assert key in cfg, key
    assert cfg["command"].startswith("python examples/train.py")
    loaded = Agent.load(tmp_path / "m", agent.task)
    assert type(loaded) is type(agent)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in env_kwargs.items()}
    inst = make_instance_set(env_id, n=6, seed=7, **kw).instances
    known = agent.task.known(inst)
    fresh = _agent(name, env_id, env_kwargs, checkpoint=folder)  # same generator state
    assert _same(fresh.solve(known), loaded.solve(known))


@pytest.mark.parametrize("name", sorted(n for n, s in SPECS.items() if not s.factory.learnable))
def test_model_based_agents_round_trip(name, tmp_path) -> None:
    spec = SPECS[name]
    agent = _agent(name, spec.env_ids[0])
    agent.save(tmp_path / "m")
    loaded = type(agent).load(tmp_path / "m", agent.task)
    assert loaded.name == agent.name
    assert loaded.state_dict().keys() == agent.state_dict().keys()
