r"""The ``unfolded_pga`` agent: paper 003's unfolded PGA with committed trained step sizes.

The agent loads a checkpoint made by ``examples/train.py --agent unfolded_pga`` (default: the
committed model of the env's SNR, :func:`default_checkpoint`) and runs
:class:`~agents.unfolded_pga.model.UnfoldedPGA` on the BS's channel estimate.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from agents.base import Agent, CheckpointError, register_agent
from agents.cli import train_command
from agents.pretrained import PRETRAINED_DIR, check_env_config, pretrained_dir, resolve_checkpoint
from agents.rules.pga import check_pga_known, check_pga_task
from agents.unfolded_pga.train import (
    COMMITTED_RECIPE,
    ENV_ID,
    checkpoint_config,
    load_checkpoint,
    train_unfolded_pga,
)
from beamgym.envs.far_field_hybrid import FarFieldHybridTask
from beamgym.structures import HybridBeamformer, TensorDataclass

__all__ = ["CONFIG_KEYS", "DEFAULT_SNR_DB", "UnfoldedPGAAgent", "default_checkpoint", "snr_variant"]

#: SNR (dB) of the main committed model (the env's phase-shifter default, Fig. 2(a)).
DEFAULT_SNR_DB = 10.0
#: Env-config fields a checkpoint must share with the env (model shape and channel law);
#: the SNR is checked separately (:func:`_check_snr`).
CONFIG_KEYS: tuple[str, ...] = ("analog", "N", "N_RF", "K", "n_paths", "normalization")


def _snrs(value: Any) -> list[float]:
    return [float(v) for v in (value if isinstance(value, list | tuple) else [value])]


def snr_variant(snr_db: Any) -> str:
    """Name of the committed per-SNR model folder suffix, e.g. ``"20dB"`` or ``"0-20dB"``."""
    vals = _snrs(snr_db)
    return f"{vals[0]:g}dB" if len(vals) == 1 else f"{min(vals):g}-{max(vals):g}dB"


def default_checkpoint(task: FarFieldHybridTask) -> tuple[Path | None, str]:
    """The committed model for ``task`` and the command that (re)makes it.

    The env's default SNR (10 dB) uses ``agents/pretrained/unfolded_pga/FarFieldHybrid-v0/``;
    another SNR ``s`` uses the variant folder ``FarFieldHybrid-v0-<s>dB/`` when it exists.
    """
    snr = task.config.snr_db
    variant = "" if _snrs(snr) == [DEFAULT_SNR_DB] else snr_variant(snr)
    out = pretrained_dir("unfolded_pga", ENV_ID, variant)
    rel = out.relative_to(PRETRAINED_DIR.parents[1])
    cmd = train_command(
        "unfolded_pga", ENV_ID, snr_db=tuple(_snrs(snr)), **COMMITTED_RECIPE, out=rel
    )
    if (out / "checkpoint.pt").is_file():
        return out / "checkpoint.pt", cmd
    return None, cmd


def _check_snr(saved: Any, task: FarFieldHybridTask, path: Path, command: str) -> None:
    """A single-SNR model serves exactly its SNR; an SNR-set model serves SNRs in its range."""
    trained, env = _snrs(saved), _snrs(task.config.snr_db)
    if len(trained) == 1:
        ok = set(env) == set(trained)
    else:
        ok = all(min(trained) <= s <= max(trained) for s in env)
    if not ok:
        raise CheckpointError(
            f"{path} was trained at snr_db={trained} and does not serve snr_db={env} (the step "
            f"sizes are SNR specific); make the env with snr_db={saved!r}, or train a fitting "
            f"model: {command}"
        )


@register_agent(
    "unfolded_pga",
    env_ids=(ENV_ID,),
    env_kwargs={ENV_ID: {"analog": "phase-shifter"}},
    description=(
        "deep-unfolded PGA, paper 003 Sec. III-B (Algorithm 1, eq. (6)-(14), trained step "
        "sizes mu (I x J), lambda (I)); committed models per SNR, phase-shifter analog"
    ),
    trainer="agents.unfolded_pga.train:main",
    checkpoint=None,
)
class UnfoldedPGAAgent(Agent):
    r"""Paper 003's unfolded PGA (Algorithm 1 with the learned step sizes).

    Runs :class:`~agents.unfolded_pga.model.UnfoldedPGA` on ``known.H_est`` with the power
    budget and unit noise: ``I`` layers of ``J`` projected analog steps (eq. (6)-(7)) and one
    digital step (eq. (8)-(9)) with Theorem 1's closed-form gradients from the start of eq.
    (12)-(13). Never reads the true channel.

    Args:
        env: FarFieldHybrid-v0 with ``analog="phase-shifter"`` and ``N_RF = K``.
        checkpoint: Path of a checkpoint (file or folder) made by ``examples/train.py --agent
            unfolded_pga``; ``None`` loads the committed model of the env's SNR
            (:func:`default_checkpoint`).

    Attributes:
        model: The loaded :class:`UnfoldedPGA` (on the env's device).
        train_config: The checkpoint's :class:`UnfoldedPGATrainConfig`.
        checkpoint_path: The file the model was loaded from.
        last_info: After :meth:`solve`, ``{}`` (kept for symmetry with ``pga``).

    Raises:
        CheckpointError: missing, unreadable or foreign checkpoint, or one trained for another
            configuration (sizes, channel law, SNR); the message names the train command.
        ValueError: for another env, the steering mode or ``N_RF != K``.
    """

    learnable = True

    def __init__(self, env: Any, checkpoint: str | None = None) -> None:
        if checkpoint is not None and not isinstance(checkpoint, str | Path):
            raise ValueError(f"checkpoint must be a path or None, got {checkpoint!r}")
        super().__init__(env, checkpoint=None if checkpoint is None else str(checkpoint))
        self.task = check_pga_task(self.task, self.registry_name)
        if checkpoint is None:
            found, command = default_checkpoint(self.task)
            path = resolve_checkpoint(found, "unfolded_pga", ENV_ID, command)
        else:
            snr = tuple(_snrs(self.task.config.snr_db))
            command = train_command("unfolded_pga", ENV_ID, snr_db=snr)
            path = resolve_checkpoint(checkpoint, "unfolded_pga", ENV_ID, command)
        model, config, meta = load_checkpoint(path, command)
        check_env_config(meta.get("env_config", {}), self.task, CONFIG_KEYS, path, command)
        _check_snr(meta["env_config"].get("snr_db"), self.task, path, command)
        self.model = model.to(self.task.device)
        self.train_config = config
        self.checkpoint_path = path
        self.model_config: dict[str, Any] = dict(meta)
        self.last_info: dict[str, torch.Tensor] = {}

    def _run(self, known: TensorDataclass) -> list[HybridBeamformer]:
        known = check_pga_known(self.task, known)
        with torch.no_grad():
            return self.model(known.H_est, known.power, known.noise_var)

    def solve(self, known: TensorDataclass) -> HybridBeamformer:
        """The output ``(F_(I), W_(I))`` of the unfolded network for a batch of known CSI."""
        return self._run(known)[-1]

    def solve_trace(self, known: TensorDataclass) -> list[HybridBeamformer]:
        """All layer outputs ``[(F_(0), W_(0)), ..., (F_(I), W_(I))]`` (Fig. 2(a))."""
        return self._run(known)

    def learn(self, **overrides: Any) -> UnfoldedPGAAgent:
        """Retrain the step sizes from scratch with the stored recipe and return ``self``.

        Runs :func:`~agents.unfolded_pga.train.train_unfolded_pga` (fresh steps initialized
        by the recipe's ``init``) with the model's :class:`UnfoldedPGATrainConfig`, fields
        replaced by keyword arguments (e.g. ``epochs=5``: the training budget); with none it
        reproduces the recipe. The env sizes stay those of the checkpoint.
        """
        config = dataclasses.replace(self.train_config, **overrides)
        model, history = train_unfolded_pga(config)
        self.model = model.to(self.task.device)
        self.train_config = config
        self.model_config = {
            **checkpoint_config(config, history),
            "command": f"UnfoldedPGAAgent.learn(**{overrides!r}) from the recipe of: "
            f"{self.model_config.get('command')}",
        }
        return self

    def checkpoint_config(self) -> dict[str, Any]:
        """The model's configuration (its training env, recipe and command) and the hparams."""
        return {**self.model_config, "agent": self.registry_name, "hparams": {}}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The trained step parameters ``raw_mu`` ``[I, J]`` and ``raw_lam`` ``[I]``."""
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict` (same ``I``, ``J``); raises CheckpointError otherwise."""
        want = {k: tuple(v.shape) for k, v in self.model.state_dict().items()}
        got = {k: tuple(v.shape) for k, v in state.items()}
        if want != got:
            raise CheckpointError(
                f"{self.name}: state {got} does not fit the model's parameters {want}"
            )
        dtype = self.model.raw_mu.dtype
        self.model.load_state_dict({k: v.to(dtype) for k, v in state.items()})
