"""Committed trained models of the learned agents, and the checks that they fit an env.

Every learned agent (KD-EDN, unfolded PGA, U-PGA+M, CNN) ships trained parameters produced by
``examples/train.py`` and committed under ``agents/pretrained/<agent>/<env-name>/``:

* ``checkpoint.pt``: a weights-only ``torch.save`` dict (tensors and builtins only) with at
  least ``format`` (the family's format tag), ``agent``, ``env_id``, ``env_config`` (the
  ``dataclasses.asdict`` of the env configuration it was trained for, see
  :func:`env_config_dict`), ``train_config`` and ``state_dict``;
* ``config.json``: the exact command that produced it, the training configuration and the
  training time on the machine that made it;
* ``train_log.csv`` (and ``train_curve.png``): the training curve.

An agent built without an explicit ``checkpoint=`` loads the committed model of its env; when
it is missing, unreadable or made for another configuration, :class:`CheckpointError` says so
and names the command that trains a fitting one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from agents.base import CheckpointError
from beamgym.envs.base import BeamformingTask

__all__ = [
    "PRETRAINED_DIR",
    "check_env_config",
    "env_config_dict",
    "env_name",
    "find_committed",
    "load_blob",
    "pretrained_dir",
    "resolve_checkpoint",
]

#: Root folder of the committed models.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


def env_name(env_id: str) -> str:
    """Folder name of an env id: ``"beamgym/FullyDigitalFDD-v0"`` -> ``"FullyDigitalFDD-v0"``."""
    return env_id.rsplit("/", 1)[-1]


def pretrained_dir(agent: str, env_id: str, variant: str = "") -> Path:
    """Folder of the committed model of ``agent`` on ``env_id`` (optionally a named variant)."""
    name = env_name(env_id) + (f"-{variant}" if variant else "")
    return PRETRAINED_DIR / agent / name


def env_config_dict(task: BeamformingTask) -> dict[str, Any]:
    """The env configuration as builtins (tuples as lists), to store in a checkpoint."""
    cfg = dataclasses.asdict(task.config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def resolve_checkpoint(
    checkpoint: str | Path | None, agent: str, env_id: str, train_command: str, variant: str = ""
) -> Path:
    """The checkpoint file to load: ``checkpoint`` if given, else the committed model.

    Raises:
        CheckpointError: The file does not exist; the message names ``train_command``.
    """
    path = (
        Path(checkpoint)
        if checkpoint is not None
        else pretrained_dir(agent, env_id, variant) / "checkpoint.pt"
    )
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        where = "committed model" if checkpoint is None else "checkpoint"
        raise CheckpointError(
            f"no {where} for {agent!r} on {env_id} at {path}; train one with: {train_command}"
        )
    return path


def load_blob(path: Path, fmt: str, train_command: str) -> dict[str, Any]:
    """Read a weights-only checkpoint dict and check its ``format`` tag.

    Raises:
        CheckpointError: Unreadable file or another format; the message names ``train_command``.
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign file
        raise CheckpointError(f"cannot read {path} ({exc}); retrain with: {train_command}") from exc
    if not isinstance(blob, dict) or blob.get("format") != fmt:
        got = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
        raise CheckpointError(
            f"{path} is not a {fmt} checkpoint (found {got!r}); retrain with: {train_command}"
        )
    return blob


def find_committed(
    agent: str, env_id: str, task: BeamformingTask, keys: tuple[str, ...] | None = None
) -> Path | None:
    """The committed model of ``agent`` whose env configuration fits ``task``, if any.

    Looks at ``agents/pretrained/<agent>/<env-name>*/checkpoint.pt`` (the default folder
    first, then the variants in name order) and returns the first whose stored ``env_config``
    agrees with ``task`` on ``keys`` (default: every field but ``snr_db``).
    """
    root = PRETRAINED_DIR / agent
    base = env_name(env_id)
    if not root.is_dir():
        return None
    folders = sorted(
        (f for f in root.iterdir() if f.name == base or f.name.startswith(base + "-")),
        key=lambda f: (f.name != base, f.name),
    )
    want = env_config_dict(task)
    for folder in folders:
        path = folder / "checkpoint.pt"
        if not path.is_file():
            continue
        try:
            saved = torch.load(path, map_location="cpu", weights_only=True).get("env_config", {})
        except Exception:  # unreadable: the explicit load reports it
            continue
        ks = keys if keys is not None else tuple(k for k in want if k != "snr_db")
        if all(_norm(saved.get(k)) == _norm(want.get(k)) for k in ks):
            return path
    return None


def check_env_config(
    saved: dict[str, Any],
    task: BeamformingTask,
    keys: tuple[str, ...],
    path: Path,
    train_command: str,
) -> None:
    """Reject a checkpoint trained for another env configuration.

    Only ``keys`` must agree (the fields that fix the model's shapes or the distribution it
    was trained on); the others (e.g. the evaluation SNR of a model trained over an SNR set)
    may differ.

    Raises:
        CheckpointError: Naming every differing field, the checkpoint and ``train_command``.
    """
    want = env_config_dict(task)
    diff = [k for k in keys if _norm(saved.get(k)) != _norm(want.get(k))]
    if diff:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs env {want.get(k)!r}" for k in diff)
        raise CheckpointError(
            f"{path} was trained for another environment configuration ({detail}); "
            f"make the env with the checkpoint's values, or train a fitting model: {train_command}"
        )


def _norm(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_norm(x) for x in v]
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    return v
