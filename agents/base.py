r"""The one agent contract of beamgym, and the agent registry.

Modelled on stable-baselines3's ``BaseAlgorithm`` (``predict`` / ``learn`` / ``save`` /
``load``) and on learned_optimization's split of a learned optimizer into its update rule and
its meta-parameters. Every agent — model-based solver, learned optimizer, or RL policy —

* is built for one environment configuration (a :class:`~beamgym.envs.base.BeamformingTask`);
* solves a *batch* of problems with :meth:`Agent.solve`, from what the transmitter/receiver
  knows only (:meth:`BeamformingTask.known`: estimated CSI, SNR, targets, ...), returning the
  env's structured beamformer;
* acts in Gymnasium with :meth:`Agent.predict` (``obs -> (action, state)``, SB3's signature);
* :meth:`Agent.learn`\ s: a learned agent (``learnable = True``, with learned weights and a
  trainer declared at registration) retrains with its trainer; a calibrating agent
  (``validation_size > 0``) calibrates on validation data; a model-based solver has nothing
  to learn (``learnable = False``) and ``learn`` is a documented no-op returning ``self``;
* :meth:`Agent.save`\ s and :meth:`Agent.load`\ s through the one checkpoint format of
  :mod:`agents.pretrained` (a folder with weights-only ``checkpoint.pt`` and ``config.json``);
  a checkpoint that is corrupt, unsafe, of another agent or made for another configuration is
  rejected with :class:`CheckpointError`.

Agents register themselves with :func:`register_agent` (a learned agent also names its trainer,
``"module:function"``, which ``examples/train.py`` dispatches to); :func:`make_agent` builds
one by name.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import importlib
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from agents.pretrained import (
    CheckpointError,
    env_config_dict,
    read_checkpoint,
    write_checkpoint,
)
from beamgym.datasets import make_task
from beamgym.envs.base import BeamformingTask
from beamgym.structures import TensorDataclass

__all__ = [
    "Agent",
    "AgentSpec",
    "CheckpointError",
    "agent_spec",
    "canonical_agent_name",
    "make_agent",
    "register_agent",
    "registered_agents",
    "task_of",
]


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
    #: ``True`` for agents with learned weights made by a trainer (``register_agent(...,
    #: trainer=...)``): :meth:`learn` trains them (or raises ``NotImplementedError`` naming the
    #: train command). ``False`` (model-based solvers): :meth:`learn` is a no-op.
    learnable: ClassVar[bool] = False

    def __init__(self, env: Any, **hparams: Any) -> None:
        self.task = task_of(env)
        self.hparams: dict[str, Any] = dict(hparams)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Wrap every subclass's ``solve`` / ``solve_trace`` to check ``known`` first."""
        super().__init_subclass__(**kwargs)
        for method in ("solve", "solve_trace"):
            fn = cls.__dict__.get(method)
            if fn is not None and not getattr(fn, "_checks_known", False):
                setattr(cls, method, _checking_known(fn))

    def check_known(self, known: Any) -> TensorDataclass:
        """``known`` if it is what this agent's task tells the transmitter/receiver.

        Raises:
            ValueError: Naming ``known``: not the task's ``Known`` dataclass (e.g. the true
                instance, or another env's), fields of another configuration's sizes or of
                different batch sizes, an empty batch, or NaN/inf entries.
        """
        ref = self.__dict__.get("_known_reference")
        if ref is None or ref[0] is not self.task:
            sample = self.task.sample(torch.Generator().manual_seed(0), 1)
            ref = (self.task, self.task.known(sample))
            self.__dict__["_known_reference"] = ref
        want = ref[1]
        if type(known) is not type(want):
            raise ValueError(
                f"known must be a {type(want).__name__}, what the BS knows "
                "(task.known(instance) or task.decode_observation(obs)); got "
                f"{type(known).__name__}: never pass the true instance"
            )
        try:
            known.check_batch()
        except ValueError as exc:
            raise ValueError(f"known: {exc}") from exc
        for (name, t), (_, r) in zip(known._tensor_items(), want._tensor_items(), strict=True):
            if t.shape[1:] != r.shape[1:] or t.shape[0] == 0:
                raise ValueError(
                    f"known.{name} has shape {tuple(t.shape)}; {self.name} was built for "
                    f"[B >= 1, {', '.join(map(str, r.shape[1:]))}] (its env configuration): "
                    "use the known quantities of an env of that configuration"
                )
            if (t.is_floating_point() or t.is_complex()) and not bool(
                torch.isfinite(torch.view_as_real(t) if t.is_complex() else t).all()
            ):
                raise ValueError(f"known.{name} contains NaN or inf")
        return known

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

        Args:
            observation: One observation ``[L]`` or a batch ``[B, L]`` (real numbers), as an
                env of the agent's task returns it: ``L = obs_dim`` (``horizon=1``), or
                ``L = obs_dim + action_dim + num_users + 1`` (``horizon > 1``: the previous
                action, the per-user feedback and the elapsed fraction are appended and
                ignored here).
            state: Returned unchanged (no recurrent state).
            episode_start: Ignored (SB3's signature).
            deterministic: Ignored (the agents are deterministic).

        Raises:
            ValueError: Naming ``observation``: not a real numeric array, not 1-D or 2-D, an
                empty batch, a length no env of this task produces, or NaN/inf entries.
        """
        obs = torch.as_tensor(self._check_observation(observation), device=self.task.device)
        single = obs.ndim == 1
        if single:
            obs = obs.unsqueeze(0)
        obs = obs[:, : self.task.obs_dim].to(self.task.rdtype)
        known = self.task.decode_observation(obs)
        with torch.no_grad():
            action = self.task.beamformer_to_action(self.solve(known), known)
        out = action.detach().cpu().numpy().astype(np.float32)
        return (out[0] if single else out), state

    def _check_observation(self, observation: Any) -> np.ndarray:
        """``observation`` as a numpy array, checked (see :meth:`predict`)."""
        if isinstance(observation, torch.Tensor):
            observation = observation.detach().cpu().numpy()
        try:
            arr = np.asarray(observation)
        except (TypeError, ValueError) as exc:  # ragged nested sequences
            raise ValueError(
                f"observation must be an array [obs_len] or [B, obs_len] of real numbers ({exc})"
            ) from exc
        if arr.dtype == np.bool_ or not (
            np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
        ):
            raise ValueError(
                f"observation must hold real numbers (float32, as the env returns it), got "
                f"dtype {arr.dtype}"
            )
        t = self.task
        # the lengths beamgym.envs.base._spaces gives an env of this task: horizon 1, and
        # horizon > 1 (previous action, per-user feedback and the elapsed fraction appended)
        lengths = (t.obs_dim, t.obs_dim + t.action_dim + t.num_users + 1)
        if arr.ndim not in (1, 2) or arr.shape[-1] not in lengths or arr.size == 0:
            env_id = getattr(t, "env_id", type(t).__name__)
            raise ValueError(
                f"observation has shape {arr.shape}; {self.name} was built for {env_id} "
                f"observations of length {lengths[0]} (horizon 1) or {lengths[1]} (horizon > "
                "1): pass shape (L,) or (B, L) with B >= 1, from an env of the agent's "
                "configuration"
            )
        if not np.isfinite(arr).all():
            raise ValueError(
                f"observation contains NaN or inf ({int((~np.isfinite(arr)).sum())} of "
                f"{arr.size} entries)"
            )
        return arr

    # ---- learning and persistence ---------------------------------------------------------------
    def learn(self, *args: Any, **kwargs: Any) -> Agent:
        """Train the agent and return ``self``.

        Model-based solvers (``learnable = False``) have nothing to learn: a no-op returning
        ``self``. Learned agents override it to train with their trainer; one that cannot
        train in process raises ``NotImplementedError`` naming ``examples/train.py``.
        """
        if self.learnable:
            raise NotImplementedError(
                f"{self.name} does not train in process; train it with: python "
                f"examples/train.py --agent {self.registry_name} --help"
            )
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Learned parameters (empty for model-based solvers)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore learned parameters from :meth:`state_dict`."""
        if state:
            raise CheckpointError(f"{self.name} has no learned parameters, got {sorted(state)}")

    def checkpoint_config(self) -> dict[str, Any]:
        """The ``config.json`` that :meth:`save` writes beside the weights.

        Holds the agent name, the env id, the env keywords and full configuration, and the
        hyperparameters; learned agents add their model's training configuration and command.
        """
        return {
            "agent": self.registry_name,
            "env_id": self.task.env_id,
            "env_kwargs": self.task.env_kwargs,
            "env_config": env_config_dict(self.task),
            "hparams": self.hparams,
        }

    def save(self, path: str | Path) -> Path:
        """Save to the model folder ``path``: weights-only ``checkpoint.pt`` and ``config.json``.

        Returns:
            The ``checkpoint.pt`` path (:mod:`agents.pretrained` documents the format).
        """
        return write_checkpoint(path, self.state_dict(), self.checkpoint_config())

    @classmethod
    def load(cls, path: str | Path, env: Any) -> Agent:
        """Load an agent saved by :meth:`save` (a model folder or its ``checkpoint.pt``).

        A learned agent is rebuilt with ``checkpoint=path``, so its own check of the env
        configuration applies (e.g. one KD-EDN model serves its SNR set); any other agent
        needs the very env configuration it was saved with.

        Raises:
            CheckpointError: Naming the file and the problem: missing, truncated or corrupt,
                not weights-only, another agent, or another environment configuration.
        """
        ckpt = read_checkpoint(path)
        saved = _ALIASES.get(str(ckpt.config.get("agent")), ckpt.config.get("agent"))
        name = cls.registry_name or str(saved)
        if saved != name or name not in _REGISTRY:
            raise CheckpointError(
                f"{ckpt.path} holds agent {ckpt.config.get('agent')!r}, not {name!r}"
            )
        task = task_of(env)
        hparams = {k: _from_json(v) for k, v in ckpt.config.get("hparams", {}).items()}
        if _REGISTRY[name].factory.learnable:
            return make_agent(name, task, **{**hparams, "checkpoint": str(ckpt.path)})
        want = (task.env_id, env_config_dict(task))
        got = (ckpt.config.get("env_id"), ckpt.config.get("env_config", {}))
        if want != got:
            diff = sorted(k for k in set(want[1]) | set(got[1]) if want[1].get(k) != got[1].get(k))
            if want[0] != got[0]:
                diff.insert(0, f"env_id: checkpoint {got[0]!r} vs env {want[0]!r}")
            detail = ", ".join(
                d
                if d.startswith("env_id")
                else f"{d}: checkpoint {got[1].get(d)!r} vs env {want[1].get(d)!r}"
                for d in diff
            )
            raise CheckpointError(
                f"{ckpt.path} was made for another environment configuration ({detail}); "
                "make the env with the checkpoint's env_kwargs (config.json)"
            )
        agent = make_agent(name, task, **hparams)
        agent.load_state_dict(ckpt.state)
        return agent


def _checking_known(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn(self, known, ...)`` that first runs ``self.check_known(known)``."""

    @functools.wraps(fn)
    def wrapper(self: Agent, known: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(self, self.check_known(known), *args, **kwargs)

    wrapper._checks_known = True  # type: ignore[attr-defined]
    return wrapper


def _from_json(v: Any) -> Any:
    """A hyperparameter read back from JSON (lists as the tuples they were saved from)."""
    if isinstance(v, list):
        return tuple(_from_json(x) for x in v)
    if isinstance(v, dict):
        return {k: _from_json(x) for k, x in v.items()}
    return v


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


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
        trainer: For a learned agent, ``"module:function"`` of its training entry point,
            ``function(argv) -> Path`` (``examples/train.py --agent NAME ARGS`` calls it with
            ``ARGS`` and it writes a model folder); ``None`` for agents without one.
        aliases: Deprecated former names that still build this agent
            (:func:`canonical_agent_name`); result tables always show :attr:`name`.
    """

    name: str
    factory: Callable[..., Agent]
    env_ids: tuple[str, ...]
    description: str
    defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    env_kwargs: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    validation_size: int = 0
    trainer: str | None = None
    aliases: tuple[str, ...] = ()

    def load_trainer(self) -> Callable[[list[str]], Path]:
        """The training entry point ``function(argv) -> Path`` named by :attr:`trainer`.

        Raises:
            ValueError: The agent has no trainer.
        """
        if self.trainer is None:
            trainable = sorted(n for n, s in _REGISTRY.items() if s.trainer)
            raise ValueError(f"agent {self.name!r} has no trainer; trainable agents: {trainable}")
        module, func = self.trainer.split(":")
        return getattr(importlib.import_module(module), func)

    def default_env_kwargs(self, env_id: str) -> dict[str, Any]:
        """The env configuration this agent runs on by default for ``env_id``."""
        return dict(self.env_kwargs.get(env_id, {}))


_REGISTRY: dict[str, AgentSpec] = {}
#: Deprecated alias -> registry name.
_ALIASES: dict[str, str] = {}


def register_agent(
    name: str,
    env_ids: tuple[str, ...],
    description: str,
    *,
    env_kwargs: dict[str, dict[str, Any]] | None = None,
    validation_size: int = 0,
    trainer: str | None = None,
    aliases: tuple[str, ...] = (),
    **defaults: Any,
) -> Callable[[type[Agent]], type[Agent]]:
    """Class decorator registering an :class:`Agent` subclass under ``name``.

    Args:
        name: Registry name.
        env_ids: Supported env ids (the first is the agent's paper default).
        description: One line for ``--list``.
        env_kwargs: Optional per-env default configuration (see :class:`AgentSpec`).
        validation_size: Validation instances the agent calibrates on (see :class:`AgentSpec`).
        trainer: ``"module:function"`` training entry point of a learned agent (see
            :class:`AgentSpec`); required exactly when the class sets ``learnable = True``.
        aliases: Deprecated former names of the agent: :func:`make_agent`, ``Agent.load`` and
            ``examples/train.py`` accept them (with a ``DeprecationWarning``), while
            :func:`registered_agents` and the agent's :attr:`~Agent.name` give ``name`` only.
        **defaults: Default hyperparameters.
    """
    if isinstance(aliases, str):
        raise ValueError(f"aliases must be a tuple of names, got the string {aliases!r}")

    def deco(cls: type[Agent]) -> type[Agent]:
        if name in _REGISTRY or name in _ALIASES:
            raise ValueError(f"agent {name!r} is already registered")
        taken = [a for a in aliases if a in _REGISTRY or a in _ALIASES or a == name]
        if taken:
            raise ValueError(f"agent {name!r}: alias(es) {taken} are already registered names")
        unknown = set(env_kwargs or {}) - set(env_ids)
        if unknown:
            raise ValueError(f"env_kwargs for unsupported env ids {sorted(unknown)}")
        if bool(trainer) != cls.learnable:
            raise ValueError(
                f"agent {name!r}: a learned agent (learnable = True) must declare its trainer "
                f"and only a learned one may (learnable={cls.learnable}, trainer={trainer!r})"
            )
        if trainer is not None and (trainer.count(":") != 1 or not all(trainer.split(":"))):
            raise ValueError(f"trainer must be 'module:function', got {trainer!r}")
        cls.registry_name = name
        _REGISTRY[name] = AgentSpec(
            name,
            cls,
            tuple(env_ids),
            description,
            dict(defaults),
            dict(env_kwargs or {}),
            int(validation_size),
            trainer,
            tuple(aliases),
        )
        _ALIASES.update(dict.fromkeys(aliases, name))
        return cls

    return deco


def registered_agents() -> dict[str, AgentSpec]:
    """All registered agents by registry name (deprecated aliases are not listed).

    Importing :mod:`agents` registers the built-in ones.
    """
    return dict(_REGISTRY)


def canonical_agent_name(name: str) -> str:
    """The registry name of ``name``: ``name`` itself, or the agent a deprecated alias names.

    An alias warns with a ``DeprecationWarning`` naming the registry name to use instead.

    Raises:
        ValueError: ``name`` is neither a registered agent nor an alias.
    """
    return _resolve(name)


def agent_spec(name: str) -> AgentSpec:
    """The :class:`AgentSpec` of a registered agent or of a deprecated alias.

    Raises:
        ValueError: Unknown name (the message lists the registered agents).
    """
    return _REGISTRY[_resolve(name)]


def _resolve(name: str) -> str:
    """Registry name of ``name``; the warning points at the caller of the public function."""
    if name in _REGISTRY:
        return name
    if name in _ALIASES:
        new = _ALIASES[name]
        warnings.warn(
            f"agent name {name!r} is deprecated; use {new!r}", DeprecationWarning, stacklevel=3
        )
        return new
    raise ValueError(f"unknown agent {name!r}; registered: {sorted(_REGISTRY)}")


def make_agent(name: str, env: Any, **hparams: Any) -> Agent:
    """Build the registered agent ``name`` for ``env`` (a beamgym env, vector env or task).

    ``name`` may be a deprecated alias (:func:`canonical_agent_name`). ``env`` may also be an
    env id string, in which case the env's default configuration is used.
    """
    spec = _REGISTRY[_resolve(name)]
    name = spec.name
    task = make_task(env) if isinstance(env, str) else task_of(env)
    env_id = getattr(type(task), "env_id", None)
    if env_id is not None and env_id not in spec.env_ids:
        raise ValueError(f"agent {name!r} does not support {env_id}; it supports {spec.env_ids}")
    return spec.factory(task, **{**spec.defaults, **hparams})
