"""Single-env action wrappers over :mod:`beamgym.wrappers.maps` (Gymnasium ``Wrapper``)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from beamgym.envs.base import BeamformingTask
from beamgym.wrappers.maps import (
    ActionMap,
    OptimalStructureMap,
    PhaseMap,
    RawMap,
    ResidualMap,
)

__all__ = [
    "MappedAction",
    "OptimalStructureAction",
    "PhaseAction",
    "RawAction",
    "ResidualAction",
    "task_of",
]


def task_of(env: Any) -> BeamformingTask:
    """The :class:`~beamgym.envs.base.BeamformingTask` behind a (wrapped) beamgym env."""
    task = getattr(getattr(env, "unwrapped", None), "task", None)
    if not isinstance(task, BeamformingTask):
        raise ValueError(
            f"env must be a beamgym env (gym.make('beamgym/...') or make_vec), got "
            f"{type(env).__name__}"
        )
    return task


class MappedAction(gym.Wrapper):
    """Act through ``action_map``: the agent's action and its last observation -> raw action.

    The wrapper keeps the observation it last returned; ``step(action)`` maps ``action`` with
    that observation (never with the hidden instance) and steps the env with the raw action,
    which it keeps as ``last_raw_action``.

    Args:
        env: A beamgym env (any wrappers that keep its observation).
        action_map: The map, bound to ``env.unwrapped.task``.
    """

    def __init__(self, env: gym.Env, action_map: ActionMap) -> None:
        """See the class docstring."""
        super().__init__(env)
        if action_map.task is not task_of(env):
            raise ValueError("action_map must be bound to env.unwrapped.task")
        self.action_map = action_map
        self.action_space = action_map.action_space
        self._obs: np.ndarray | None = None
        self.last_raw_action: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env and keep the observation."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = np.asarray(obs, dtype=np.float32)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Map ``action`` with the last observation, then step the env with the raw action."""
        if self._obs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        a = np.asarray(action, dtype=np.float32).reshape(1, -1)
        raw = self.action_map.to_raw(a, self._obs[None])[0]
        self.last_raw_action = raw
        obs, reward, terminated, truncated, info = self.env.step(raw)
        self._obs = np.asarray(obs, dtype=np.float32)
        return obs, reward, terminated, truncated, info


class RawAction(MappedAction, gym.utils.RecordConstructorArgs):
    """The env's own action, unchanged (for symmetry with the structured wrappers).

    FullyDigitalFDD, FarFieldHybrid, NearFieldHybrid: the packed (digital) beamformer;
    ModularUplink: the packed complex panels; OutageHybrid: codeword scores and powers.
    """

    def __init__(self, env: gym.Env) -> None:
        """Wrap ``env``."""
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env, RawMap(task_of(env)))


class ResidualAction(MappedAction, gym.utils.RecordConstructorArgs):
    """A correction on the MMSE start (see :class:`~beamgym.wrappers.maps.ResidualMap`)."""

    def __init__(self, env: gym.Env, scale: float = 0.5) -> None:
        """Wrap a FullyDigitalFDD-v0 ``env``; ``scale`` is the correction size."""
        gym.utils.RecordConstructorArgs.__init__(self, scale=scale)
        super().__init__(env, ResidualMap(task_of(env), scale=scale))


class OptimalStructureAction(MappedAction, gym.utils.RecordConstructorArgs):
    """``2K`` numbers -> the optimal MISO structure (see :class:`OptimalStructureMap`)."""

    def __init__(self, env: gym.Env, decades: float = 2.0) -> None:
        """Wrap a FullyDigitalFDD-v0 ``env`` with ``M = 1``; ``decades`` is the map range."""
        gym.utils.RecordConstructorArgs.__init__(self, decades=decades)
        super().__init__(env, OptimalStructureMap(task_of(env), decades=decades))


class PhaseAction(MappedAction, gym.utils.RecordConstructorArgs):
    """ModularUplink-v0 phases, one number each (see :class:`PhaseMap`)."""

    def __init__(self, env: gym.Env) -> None:
        """Wrap a ModularUplink-v0 ``env``."""
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env, PhaseMap(task_of(env)))
