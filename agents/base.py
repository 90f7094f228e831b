"""The one agent contract of beamgym, and the agent registry.

Modelled on stable-baselines3's ``BaseAlgorithm`` (``predict`` / ``learn`` / ``save`` /
``load``) and on learned_optimization's split of a learned optimizer into its update rule and
its meta-parameters. Every agent — model-based solver, learned optimizer, or RL policy —

* is built for one environment configuration (a :class:`~beamgym.envs.base.BeamformingTask`);
* solves a *batch* of problems with :meth:`Agent.solve`, from what the transmitter/receiver
  knows only (:meth:`BeamformingTask.known`: estimated CSI, SNR, targets, ...), returning the
  env's structured beamformer;
* acts in Gymnasium with :meth:`Agent.predict` (``obs -> (action, state)``, SB3's signature);
* may :meth:`Agent.learn`; model-based solvers make it a no-op;
* saves weights only (``torch.save`` of tensors and builtins, loaded with
  ``weights_only=True``); a checkpoint made for another configuration is rejected with a clear
  message.

Agents register themselves with :func:`register_agent`; :func:`make_agent` builds one by name.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from beamgym.datasets import make_task
from beamgym.envs.base import BeamformingTask
from beamgym.structures import TensorDataclass

__all__ = [
    "Agent",
    "AgentSpec",
    "CheckpointError",
    "make_agent",
    "register_agent",
    "registered_agents",
    "task_of",
]

_FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint does not fit the agent or the environment configuration."""


def task_of(env: Any) -> BeamformingTask:
    """The :class:`BeamformingTask` behind a task or a (wrapped or vector) beamgym env."""
    if isinstance(env, BeamformingTask):
        return env
    inner = getattr(env, "unwrapped", env)
    task = getattr(inner, "task", None)
    if not isinstance(task, BeamformingTask):
        raise ValueError(
            f"expected a beamgym env or BeamformingTask, got {type(env).__name__}; "
            "build one with gym.make('beamgym/...')"
        )
    return task


class Agent(abc.ABC):
    """Base class of every beamgym agent.

    Args:
        env: The environment (or its task) the agent acts in; fixes sizes, device, precision.
        **hparams: The agent's hyperparameters (builtins only; they appear in :attr:`name`).
    """

    #: Registry name (set by :func:`register_agent`).
    registry_name: ClassVar[str] = ""

    def __init__(self, env: Any, **hparams: Any) -> None:
        self.task = task_of(env)
        self.hparams: dict[str, Any] = dict(hparams)

    # ---- identity ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """Name for result tables, encoding the hyperparameters, e.g. ``ga(steps=10,eta=0.01)``."""
        base = self.registry_name or type(self).__name__
        shown = {k: v for k, v in self.hparams.items() if v is not None}  # None: the default
        if not shown:
            return base
        inner = ",".join(f"{k}={_fmt(v)}" for k, v in sorted(shown.items()))
        return f"{base}({inner})"

    # ---- solving ------------------------------------------------------------------------------
    @abc.abstractmethod
    def solve(self, known: TensorDataclass) -> Any:
        """Beamformers for a batch, from what the transmitter/receiver knows.

        Args:
            known: ``task.known(instance)``: estimated CSI and side information, batch first.

        Returns:
            The env's structured beamformer (a tensor or a
            :class:`~beamgym.structures.TensorDataclass`), batch first; feasible after
            ``task.action_to_beamformer(task.beamformer_to_action(...))``.
        """

    def solve_trace(self, known: TensorDataclass) -> list[Any]:
        """Iterates ``[W_0, W_1, ..., W_final]`` of an iterative solver (default: just the result).

        The harness evaluates each iterate on the true channel to draw metric-vs-iteration curves.
        """
        return [self.solve(known)]

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """Gymnasium use (SB3's signature): observation(s) -> normalized action(s).

        Decodes the observation (:meth:`BeamformingTask.decode_observation`), solves, and maps
        the beamformer to the env's action with ``beamformer_to_action``.
        """
        obs = torch.as_tensor(np.asarray(observation), device=self.task.device)
        single = obs.ndim == 1
        if single:
            obs = obs.unsqueeze(0)
        obs = obs[:, : self.task.obs_dim].to(self.task.rdtype)
        known = self.task.decode_observation(obs)
        with torch.no_grad():
            action = self.task.beamformer_to_action(self.solve(known), known)
        out = action.detach().cpu().numpy().astype(np.float32)
        return (out[0] if single else out), state

    # ---- learning and persistence ---------------------------------------------------------------
    def learn(self, *args: Any, **kwargs: Any) -> Agent:
        """Train the agent; model-based solvers have nothing to learn and return ``self``."""
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Learned parameters (empty for model-based solvers)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore learned parameters from :meth:`state_dict`."""
        if state:
            raise CheckpointError(f"{self.name} has no learned parameters, got {sorted(state)}")

    def save(self, path: str | Path) -> None:
        """Save hyperparameters, the env configuration and the learned tensors (weights only)."""
        torch.save(
            {
                "format_version": _FORMAT_VERSION,
                "agent": self.registry_name,
                "hparams": self.hparams,
                "env_config": _config_dict(self.task),
                "state_dict": {k: v.detach().cpu() for k, v in self.state_dict().items()},
            },
            Path(path),
        )

    @classmethod
    def load(cls, path: str | Path, env: Any) -> Agent:
        """Load an agent saved by :meth:`save` for ``env``'s configuration.

        Raises:
            CheckpointError: if the file is missing, is not a beamgym checkpoint, belongs to
                another agent, or was made for another environment configuration.
        """
        path = Path(path)
        if not path.exists():
            raise CheckpointError(f"checkpoint {path} does not exist")
        data = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(data, dict) or data.get("format_version") != _FORMAT_VERSION:
            raise CheckpointError(f"{path} is not a beamgym agent checkpoint")
        task = task_of(env)
        name = cls.registry_name or data["agent"]
        if data["agent"] != name:
            raise CheckpointError(f"{path} holds agent {data['agent']!r}, not {name!r}")
        want, got = _config_dict(task), data["env_config"]
        if want != got:
            diff = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
            detail = ", ".join(
                f"{k}: checkpoint {got.get(k)!r} vs env {want.get(k)!r}" for k in diff
            )
            raise CheckpointError(
                f"{path} was made for another environment configuration ({detail}); "
                "train a model for this configuration, or make the env with the checkpoint's "
                "keywords"
            )
        agent = (
            make_agent(data["agent"], task, **data["hparams"])
            if cls is Agent
            else cls(task, **data["hparams"])
        )
        agent.load_state_dict(data["state_dict"])
        return agent


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _config_dict(task: BeamformingTask) -> dict[str, Any]:
    cfg = dataclasses.asdict(task.config)
    cfg["__class__"] = type(task.config).__name__
    return cfg


# ---- registry ----------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """A registered agent.

    Attributes:
        name: Registry name (``examples/evaluate.py --agent NAME``).
        factory: Callable ``(env_or_task, **hparams) -> Agent``.
        env_ids: Environment ids the agent supports.
        description: One line for ``--list`` (cite the paper and equation/algorithm).
        defaults: Default hyperparameters.
        env_kwargs: Per env id, the env configuration the agent needs by default (e.g. paper
            003's PGA needs ``FarFieldHybrid-v0`` with ``analog="phase-shifter"``); the
            harness uses it when no configuration is given.
        validation_size: If > 0, the agent calibrates on held-out data before it is scored:
            the harness CLI calls ``agent.learn(validation_set)`` with this many instances
            drawn from a validation seed distinct from the test seed (e.g. G-HBF-marg's margin).
    """

    name: str
    factory: Callable[..., Agent]
    env_ids: tuple[str, ...]
    description: str
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    env_kwargs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    validation_size: int = 0

    def default_env_kwargs(self, env_id: str) -> dict[str, Any]:
        """The env configuration this agent runs on by default for ``env_id``."""
        return dict(self.env_kwargs.get(env_id, {}))


_REGISTRY: dict[str, AgentSpec] = {}


def register_agent(
    name: str,
    env_ids: tuple[str, ...],
    description: str,
    *,
    env_kwargs: dict[str, dict[str, Any]] | None = None,
    validation_size: int = 0,
    **defaults: Any,
) -> Callable[[type[Agent]], type[Agent]]:
    """Class decorator registering an :class:`Agent` subclass under ``name``.

    Args:
        name: Registry name.
        env_ids: Supported env ids (the first is the agent's paper default).
        description: One line for ``--list``.
        env_kwargs: Optional per-env default configuration (see :class:`AgentSpec`).
        validation_size: Validation instances the agent calibrates on (see :class:`AgentSpec`).
        **defaults: Default hyperparameters.
    """

    def deco(cls: type[Agent]) -> type[Agent]:
        if name in _REGISTRY:
            raise ValueError(f"agent {name!r} is already registered")
        unknown = set(env_kwargs or {}) - set(env_ids)
        if unknown:
            raise ValueError(f"env_kwargs for unsupported env ids {sorted(unknown)}")
        cls.registry_name = name
        _REGISTRY[name] = AgentSpec(
            name,
            cls,
            tuple(env_ids),
            description,
            dict(defaults),
            dict(env_kwargs or {}),
            int(validation_size),
        )
        return cls

    return deco


def registered_agents() -> dict[str, AgentSpec]:
    """All registered agents by name (importing :mod:`agents` registers the built-in ones)."""
    return dict(_REGISTRY)


def make_agent(name: str, env: Any, **hparams: Any) -> Agent:
    """Build the registered agent ``name`` for ``env`` (a beamgym env, vector env or task).

    ``env`` may also be an env id string, in which case the env's default configuration is used.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown agent {name!r}; registered: {sorted(_REGISTRY)}")
    spec = _REGISTRY[name]
    task = make_task(env) if isinstance(env, str) else task_of(env)
    env_id = _env_id_of(task)
    if env_id is not None and env_id not in spec.env_ids:
        raise ValueError(f"agent {name!r} does not support {env_id}; it supports {spec.env_ids}")
    return spec.factory(task, **{**spec.defaults, **hparams})


def _env_id_of(task: BeamformingTask) -> str | None:
    from beamgym.envs import ENV_IDS

    module = type(task).__module__.rsplit(".", 1)[-1]
    for env_id in ENV_IDS:
        import gymnasium as gym

        entry = gym.registry[env_id].entry_point
        if isinstance(entry, str) and entry.split(":")[0].endswith(module):
            return env_id
    return None
