"""The ``modular_cnn`` agent: the CNN of paper 004 Sec. V-A with its committed model.

Registered as ``modular_cnn``; ``cnn_004`` is its deprecated former name (an alias).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from agents.base import Agent, CheckpointError, register_agent, registered_agents
from agents.cli import train_command
from agents.modular_cnn.model import CNN_KEYS, ENV_ID, CNNBeamformer
from agents.modular_cnn.train import CNNTrainConfig, checkpoint_config, train_cnn
from agents.pretrained import (
    PRETRAINED_DIR,
    check_env_config,
    pretrained_dir,
    read_checkpoint,
    resolve_checkpoint,
)
from agents.rules.pga_momentum import check_modular_task
from beamgym.envs.modular_uplink import ModularUplinkKnown, ModularUplinkTask

__all__ = ["CNNAgent"]


@register_agent(
    "modular_cnn",
    env_ids=(ENV_ID,),
    description=(
        "CNN benchmark of paper 004 Sec. V-A (after ref. [27]): conv + FC network mapping "
        "H to the phases of W, trained on eq. (6); committed model (Scenario 1)"
    ),
    trainer="agents.modular_cnn.train:main",
    aliases=("cnn_004",),
    checkpoint=None,
)
class CNNAgent(Agent):
    """The CNN benchmark of paper 004 Sec. V-A (see :mod:`agents.modular_cnn.model`).

    The output goes through the env's hard projection: eq. (10), or eq. (20) for quantized
    phase shifters ("quantizing the produced phases", Sec. V-C2). The network is tied to its
    training sizes: ``T, P, L, N, B, K`` must match the checkpoint's env (the SNR and the
    constraint may differ).

    Args:
        env: A ModularUplink-v0 env or task.
        checkpoint: Checkpoint path (file or folder); ``None`` loads the committed model
            ``agents/pretrained/modular_cnn/ModularUplink-v0/``.

    Raises:
        CheckpointError: Missing, unreadable or foreign checkpoint, or one trained for other
            sizes; the message names the training command.
    """

    learnable = True

    def __init__(self, env: Any, **hparams: Any) -> None:
        hp = {"checkpoint": None, **hparams}
        unknown = set(hp) - {"checkpoint"}
        if unknown:
            raise ValueError(
                f"unknown hyperparameter(s) {sorted(unknown)} for {self.registry_name}"
            )
        task = check_modular_task(env, self.registry_name)
        super().__init__(task)
        self.task: ModularUplinkTask = task
        committed = pretrained_dir(self.registry_name, ENV_ID)
        cmd = train_command(
            self.registry_name,
            ENV_ID,
            {k: v for k, v in task.env_kwargs.items() if k in CNN_KEYS},
            out=committed.relative_to(PRETRAINED_DIR.parents[1])
            if hp["checkpoint"] is None
            else None,
        )
        path = resolve_checkpoint(hp["checkpoint"], self.registry_name, ENV_ID, cmd)
        try:
            ckpt = read_checkpoint(path)
        except CheckpointError as exc:
            raise CheckpointError(f"{exc}; retrain with: {cmd}") from exc
        names = (self.registry_name, *registered_agents()[self.registry_name].aliases)
        if ckpt.config.get("agent") not in names:  # a model saved under the old name fits
            raise CheckpointError(
                f"{path} holds agent {ckpt.config.get('agent')!r}, not {self.registry_name!r}; "
                f"train one with: {cmd}"
            )
        check_env_config(ckpt.config["env_config"], task, CNN_KEYS, path, cmd)
        self._command = cmd
        self._build(ckpt.config["model"])
        self.load_state_dict(ckpt.state)
        self.net.to(task.device).eval()
        self.checkpoint_path: Path = path
        self.model_config: dict[str, Any] = dict(ckpt.config)

    def _build(self, a: dict[str, Any]) -> None:
        self.net = CNNBeamformer(
            a["B"], a["M"], a["K"], tuple(a["panel_shape"]), tuple(a["channels"]), a["hidden"]
        )

    def learn(self, **overrides: Any) -> CNNAgent:
        """Retrain the network from scratch with the stored recipe and return ``self``.

        Runs :func:`~agents.modular_cnn.train.train_cnn` (fresh weights seeded by ``seed``) on
        the env configuration the model was trained for, with the model's
        :class:`~agents.modular_cnn.train.CNNTrainConfig`, fields replaced by keyword
        arguments (e.g. ``epochs=1, steps_per_epoch=4``: the training budget); with none it
        reproduces the recipe.
        """
        from beamgym.datasets import make_task

        recipe = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in self.model_config["train_config"].items()
        }
        config = CNNTrainConfig(**{**recipe, **overrides})
        kw = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in self.model_config.get("env_kwargs", {}).items()
        }
        task = make_task(ENV_ID, precision=self.task.precision, **kw)
        net, _, info = train_cnn(task, config)
        self.net = net.to(self.task.device).eval()
        self.model_config = {
            **checkpoint_config(task, net, config, info),
            "command": f"CNNAgent.learn(**{overrides!r}) from the recipe of: "
            f"{self.model_config.get('command')}",
        }
        return self

    def checkpoint_config(self) -> dict[str, Any]:
        """The model's configuration (its training env, recipe, architecture and command)."""
        return {**self.model_config, "agent": self.registry_name, "hparams": {}}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The network's tensors (weights and batch-norm statistics)."""
        return {k: v.detach().clone() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore the network's tensors."""
        try:
            self.net.load_state_dict(state)
        except (RuntimeError, KeyError) as exc:
            raise CheckpointError(
                f"CNN state does not fit: {exc}; train a fitting model: {self._command}"
            ) from exc

    @property
    def num_parameters(self) -> int:
        """Number of learned scalars of the network."""
        return self.net.num_parameters

    def solve(self, known: ModularUplinkKnown) -> torch.Tensor:
        """Feasible ``[batch, P, N, L]`` panels: the CNN's output, hard-projected."""
        if not isinstance(known, ModularUplinkKnown):
            raise ValueError(
                f"{self.registry_name} takes task.known(instance) (a ModularUplinkKnown), got "
                f"{type(known).__name__}"
            )
        with torch.no_grad():
            W = self.net(known.H_est.to(self.task.device))
        return self.task.project(W.to(self.task.cdtype))
