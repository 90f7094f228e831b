"""The one checkpoint format of beamgym agents, its safe loader and the committed models.

Checkpoint format (``FORMAT_VERSION`` 2): a **folder** holding two files,

* ``checkpoint.pt``: ``torch.save`` of a flat ``dict[str, torch.Tensor]``, the agent's
  :meth:`~agents.base.Agent.state_dict` on the CPU and nothing else (no optimizer state, no
  pickled objects). It is read with ``torch.load(..., weights_only=True)``, so a file that
  carries code is refused, never executed.
* ``config.json``: everything else, as JSON: ``format_version``, ``agent`` (registry name),
  ``env_id`` and ``env_kwargs`` (``gym.make(env_id, **env_kwargs)`` rebuilds the env the model
  was made for), ``env_config`` (that env's full configuration, which a loading agent
  compares with its own env), ``hparams`` (the agent's hyperparameters), and for a trained
  model ``train_config`` (the training configuration), ``command`` (the exact
  ``examples/train.py`` command that produced it), ``model`` (the architecture fields a family
  needs to rebuild its network before the weights go in) and the training results.

A training run (:func:`agents.runs.write_run`) adds ``train_log.csv`` and
``train_curve.png`` to the folder. :meth:`~agents.base.Agent.save` writes this format and
:meth:`~agents.base.Agent.load` reads it; both go through :func:`write_checkpoint` /
:func:`read_checkpoint`, the only code that touches the files.

Committed models live under ``agents/pretrained/<agent>/<env-name>[-variant]/``. An agent built
without an explicit ``checkpoint=`` loads the committed model that fits its env
(:func:`find_committed`); when there is none, or a file is missing, truncated, corrupt, of
another agent, made for another configuration or not weights-only, :class:`CheckpointError`
names the file, the problem and the command that trains a fitting model.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import torch

from beamgym.envs.base import BeamformingTask

__all__ = [
    "CHECKPOINT_FILE",
    "CONFIG_FILE",
    "FORMAT_VERSION",
    "PRETRAINED_DIR",
    "Checkpoint",
    "CheckpointError",
    "check_env_config",
    "env_config_dict",
    "env_name",
    "find_committed",
    "load_module_state",
    "module_state",
    "pretrained_dir",
    "read_checkpoint",
    "read_config",
    "rebuild_model",
    "resolve_checkpoint",
    "write_checkpoint",
]

#: Version of the checkpoint format written by :func:`write_checkpoint`.
FORMAT_VERSION = 2
#: Name of the weights file inside a model folder.
CHECKPOINT_FILE = "checkpoint.pt"
#: Name of the JSON configuration inside a model folder.
CONFIG_FILE = "config.json"
#: Root folder of the committed models.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, unsafe, or does not fit the agent or the env."""


class Checkpoint(NamedTuple):
    """A checkpoint read by :func:`read_checkpoint`.

    Attributes:
        state: The weights, a flat ``{name: tensor}`` dict on the CPU.
        config: The parsed ``config.json``.
        path: The ``checkpoint.pt`` file it was read from.
    """

    state: dict[str, torch.Tensor]
    config: dict[str, Any]
    path: Path


def env_name(env_id: str) -> str:
    """Folder name of an env id: ``"beamgym/FullyDigitalFDD-v0"`` -> ``"FullyDigitalFDD-v0"``."""
    return env_id.rsplit("/", 1)[-1]


def pretrained_dir(agent: str, env_id: str, variant: str = "") -> Path:
    """Folder of the committed model of ``agent`` on ``env_id`` (optionally a named variant)."""
    name = env_name(env_id) + (f"-{variant}" if variant else "")
    return PRETRAINED_DIR / agent / name


def env_config_dict(task: BeamformingTask) -> dict[str, Any]:
    """The env configuration as JSON builtins (tuples as lists), to store in a checkpoint."""
    cfg = dataclasses.asdict(task.config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.items()}


def _jsonable(value: Any) -> Any:
    """``value`` as JSON builtins (tuples as lists, non-finite floats as strings)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise CheckpointError(f"cannot store {type(value).__name__} {value!r} in config.json")


def write_checkpoint(
    folder: str | Path, state: dict[str, torch.Tensor], config: dict[str, Any]
) -> Path:
    """Write a model folder: ``checkpoint.pt`` (weights only) and ``config.json``.

    Args:
        folder: Output folder (created); a path ending in ``checkpoint.pt`` means its folder.
        state: Flat ``{name: tensor}`` dict of the learned parameters (may be empty).
        config: JSON configuration; must hold ``agent``, ``env_id``, ``env_kwargs`` and
            ``env_config``; ``format_version`` is set here.

    Returns:
        The ``checkpoint.pt`` path.

    Raises:
        CheckpointError: ``state`` is not a flat dict of tensors, or ``config`` lacks a key.
    """
    folder = Path(folder)
    if folder.name == CHECKPOINT_FILE:
        folder = folder.parent
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError("the state to save must be a flat dict of {str: torch.Tensor}")
    missing = [k for k in ("agent", "env_id", "env_kwargs", "env_config") if k not in config]
    if missing:
        raise CheckpointError(f"checkpoint config for {folder} lacks {missing}")
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"format_version": FORMAT_VERSION, **_jsonable(config)}
    meta["format_version"] = FORMAT_VERSION
    weights = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    torch.save(weights, folder / CHECKPOINT_FILE)
    (folder / CONFIG_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder / CHECKPOINT_FILE


def read_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a model folder (or of the folder of a ``checkpoint.pt``).

    Raises:
        CheckpointError: Missing or unparsable file, or another format version.
    """
    path = Path(path)
    folder = path.parent if path.name == CHECKPOINT_FILE or path.suffix == ".pt" else path
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(
            f"{cfg_path} is missing: a beamgym checkpoint is a folder with "
            f"{CHECKPOINT_FILE} and {CONFIG_FILE}"
        )
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{cfg_path} is not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or config.get("format_version") != FORMAT_VERSION:
        got = config.get("format_version") if isinstance(config, dict) else type(config).__name__
        raise CheckpointError(
            f"{cfg_path} has format_version {got!r}, not {FORMAT_VERSION}: not a beamgym "
            "checkpoint of this version"
        )
    return config


def read_checkpoint(path: str | Path, agent: str | None = None) -> Checkpoint:
    """Read and check a model folder (or its ``checkpoint.pt``) safely.

    Args:
        path: The model folder or its ``checkpoint.pt``.
        agent: If given, the registry name the checkpoint must belong to.

    Returns:
        The :class:`Checkpoint`.

    Raises:
        CheckpointError: Naming the file and the problem: missing, truncated or corrupt file,
            a pickle that carries code (refused by ``weights_only=True``), content other than
            a flat dict of tensors, a ``config.json`` of another format, or another agent.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    config = read_config(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = [
            ln.strip()
            for ln in str(exc).splitlines()
            if "GLOBAL" in ln or "Unsupported global" in ln
        ]
        if detail:  # the pickle names a callable: code, refused by weights_only=True
            raise CheckpointError(
                f"{path} is not a weights-only checkpoint: it would run code or build objects "
                f"other than tensors, refused unread ({detail[0]})"
            ) from exc
        raise CheckpointError(f"{path} cannot be read: truncated or corrupt file") from exc
    except Exception as exc:  # truncated or corrupt zip, foreign file
        raise CheckpointError(
            f"{path} cannot be read: truncated or corrupt file ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise CheckpointError(f"{path} does not hold a flat dict of tensors")
    if agent is not None and config.get("agent") != agent:
        raise CheckpointError(f"{path} holds agent {config.get('agent')!r}, not {agent!r}")
    return Checkpoint(state, config, path)


def module_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of ``module``'s tensors: what an agent's ``state_dict`` returns."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def load_module_state(module: torch.nn.Module, state: dict[str, torch.Tensor], owner: str) -> None:
    """Load ``state`` into ``module``; CheckpointError naming ``owner`` if it does not fit."""
    try:
        module.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"{owner}: state does not fit the model ({exc})") from exc


_C = TypeVar("_C")
_M = TypeVar("_M", bound=torch.nn.Module)


def rebuild_model(
    ckpt: Checkpoint,
    config_cls: Callable[..., _C],
    build: Callable[[_C], _M],
    what: str,
    retrain: str,
) -> tuple[_M, _C]:
    """The model of a checkpoint read by :func:`read_checkpoint`, in eval mode.

    Args:
        ckpt: The checkpoint.
        config_cls: The training configuration class; built from the stored ``train_config``.
        build: Builds the (untrained) model of a configuration.
        what: The model's name in the error message (e.g. ``"KD-EDN"``).
        retrain: The command that trains a fitting model, quoted in the error message.

    Returns:
        ``(model, config)``.

    Raises:
        CheckpointError: The stored configuration or the weights do not fit the model.
    """
    try:
        config = config_cls(**ckpt.config["train_config"])
        model = build(config)
        model.load_state_dict(ckpt.state)
    except (TypeError, ValueError, RuntimeError, KeyError, AttributeError) as exc:
        raise CheckpointError(
            f"{ckpt.path} does not fit {what} ({exc}); retrain with: {retrain}"
        ) from exc
    return model.eval(), config


def resolve_checkpoint(
    checkpoint: str | Path | None, agent: str, env_id: str, train_command: str, variant: str = ""
) -> Path:
    """The ``checkpoint.pt`` to load: ``checkpoint`` (file or folder), else the committed one.

    Raises:
        ValueError: ``checkpoint`` is neither ``None`` nor a path (names ``checkpoint``).
        CheckpointError: The file does not exist; the message names ``train_command``.
    """
    if checkpoint is not None and not isinstance(checkpoint, str | os.PathLike):
        raise ValueError(
            f"checkpoint must be None (the committed model) or a path to a checkpoint file or "
            f"folder, got {type(checkpoint).__name__} {checkpoint!r}"
        )
    path = (
        Path(checkpoint)
        if checkpoint is not None
        else pretrained_dir(agent, env_id, variant) / CHECKPOINT_FILE
    )
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    if not path.is_file():
        where = "committed model" if checkpoint is None else "checkpoint"
        raise CheckpointError(
            f"no {where} for {agent!r} on {env_id} at {path}; train one with: {train_command}"
        )
    return path


def find_committed(
    agent: str, env_id: str, task: BeamformingTask, keys: tuple[str, ...] | None = None
) -> Path | None:
    """The committed model of ``agent`` whose env configuration fits ``task``, if any.

    Looks at ``agents/pretrained/<agent>/<env-name>*/`` (the default folder first, then the
    variants in name order) and returns the ``checkpoint.pt`` of the first whose stored
    ``env_config`` agrees with ``task`` on ``keys`` (default: every field but ``snr_db``, so
    one model serves the SNR set it was trained over).
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
    ks = keys if keys is not None else tuple(k for k in want if k != "snr_db")
    for folder in folders:
        if not (folder / CHECKPOINT_FILE).is_file():
            continue
        try:
            config = read_config(folder)
        except CheckpointError:  # unreadable: the explicit load reports it
            continue
        saved = config.get("env_config", {})
        if config.get("env_id") != env_id:
            continue
        if all(_norm(saved.get(k)) == _norm(want.get(k)) for k in ks):
            return folder / CHECKPOINT_FILE
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
