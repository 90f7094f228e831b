"""The one command-line layer (agents/cli.py): the training command every family names."""

from __future__ import annotations

import shlex

import pytest

import agents  # noqa: F401  (registers the agents)
from agents.base import CheckpointError, make_agent, registered_agents
from agents.cli import TRAIN_SCRIPT, parse_env_kwargs, train_command
from beamgym.datasets import make_task


def test_train_command_writes_env_keywords_and_options_in_order() -> None:
    cmd = train_command(
        "kd_edn",
        "beamgym/FullyDigitalFDD-v0",
        {"placement": "spatial-division", "N": 8, "snr_db": [5.0, 10.0]},
        snr_db=(20.0, 2.5),
        batch_size=25,
        lr=0.123456789,
        init=None,
        feedback_noise=False,
        trace=True,
        out="runs/x y",
    )
    argv = shlex.split(cmd)
    assert cmd.startswith(TRAIN_SCRIPT + " ")
    assert argv[2:] == [
        "--agent",
        "kd_edn",
        "--env",
        "beamgym/FullyDigitalFDD-v0",
        "--env-kw",
        "N=8",
        "placement=spatial-division",
        "snr_db=(5.0, 10.0)",
        "--snr-db",
        "20",
        "2.5",
        "--batch-size",
        "25",
        "--lr",
        "0.123456789",  # no precision lost
        "--no-feedback-noise",
        "--trace",
        "--out",
        "runs/x y",  # quoted for the shell, one argument
    ]
    # the env keywords read back as they were given
    kw = parse_env_kwargs(argv[7:10])
    assert kw == {"N": 8, "placement": "spatial-division", "snr_db": (5.0, 10.0)}
    assert train_command("a", "e") == "python examples/train.py --agent a --env e"


def test_train_command_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="agent and an env id"):
        train_command("", "beamgym/FullyDigitalFDD-v0")
    with pytest.raises(ValueError, match="option lr: cannot write"):
        train_command("a", "e", lr={"x": 1})


class _Parsed(Exception):
    pass


def _stop(*args, **kwargs):
    raise _Parsed(args, kwargs)


def _named_command(exc: pytest.ExceptionInfo) -> list[str]:
    """The argv after ``examples/train.py`` of the command a CheckpointError names last."""
    text = str(exc.value)
    assert TRAIN_SCRIPT in text, text
    return shlex.split(text.rsplit(TRAIN_SCRIPT, 1)[1])


@pytest.mark.parametrize(
    ("agent", "env_id", "env_kw", "hparams", "trainer_fn"),
    [
        ("kd_edn", "beamgym/FullyDigitalFDD-v0", {"N": 8, "K": 3}, {}, "train_kd_edn"),
        (
            "unfolded_pga",
            "beamgym/FarFieldHybrid-v0",
            {"analog": "phase-shifter", "snr_db": 7.0},
            {},
            "train_unfolded_pga",
        ),
        (
            "upga_m",
            "beamgym/ModularUplink-v0",
            {"P": 8, "L": 1, "N": 4, "K": 50},
            {"checkpoint": "missing"},
            "train_upga_m",
        ),
        (
            "modular_cnn",
            "beamgym/ModularUplink-v0",
            {"K": 5},
            {"checkpoint": "missing"},
            "train_cnn",
        ),
    ],
)
def test_every_named_train_command_parses_with_the_agents_trainer(
    agent, env_id, env_kw, hparams, trainer_fn, monkeypatch, tmp_path
) -> None:
    """The command an error message names runs the agent's trainer on the env it names."""
    import importlib

    task = make_task(env_id, **env_kw)
    if "checkpoint" in hparams:
        hparams = {**hparams, "checkpoint": str(tmp_path / hparams["checkpoint"])}
    with pytest.raises(CheckpointError) as exc:
        make_agent(agent, task, **hparams)
    argv = _named_command(exc)
    assert argv[:4] == ["--agent", agent, "--env", env_id]
    spec = registered_agents()[agent]
    module = importlib.import_module(spec.trainer.split(":")[0])
    monkeypatch.setattr(module, trainer_fn, _stop)
    with pytest.raises(_Parsed) as parsed:
        spec.load_trainer()(argv + ["--no-progress"])
    first = parsed.value.args[0][0]  # the trainer's task, or its config that fixes the task
    if hasattr(first, "config"):
        trained = first
    elif hasattr(first, "make_task"):
        trained = first.make_task()
    else:
        trained = module.make_train_task(first)
    for k, v in env_kw.items():
        got = getattr(trained.config, k)
        assert got == v or got == (v,), (k, got, v)


def test_parse_env_kwargs_reads_lowercase_bools() -> None:
    kw = parse_env_kwargs(["constraint_groups=true", "reject_infeasible=FALSE", "x=True", "s=t"])
    assert kw == {"constraint_groups": True, "reject_infeasible": False, "x": True, "s": "t"}
    assert all(type(kw[k]) is bool for k in ("constraint_groups", "reject_infeasible", "x"))
