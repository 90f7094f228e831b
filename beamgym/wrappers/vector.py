"""Vector action wrappers for the native beamgym vector envs (Gymnasium ``VectorWrapper``).

Same names and maps as :mod:`beamgym.wrappers.action`, on
``gym.make_vec(id, num_envs=n, vectorization_mode="vector_entry_point")``: the whole batch is
mapped in one call. After an autoreset the kept observation is the one the env returned,
i.e. the one the agent acts on next (the new interval's with ``"SameStep"``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

from beamgym.wrappers.action import task_of
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
]


class MappedAction(gym.vector.VectorWrapper):
    """Act through ``action_map`` on a native beamgym vector env (batched).

    Args:
        env: A native beamgym vector env.
        action_map: The map, bound to ``env.unwrapped.task``.
    """

    def __init__(self, env: gym.vector.VectorEnv, action_map: ActionMap) -> None:
        """See the class docstring."""
        super().__init__(env)
        if action_map.task is not task_of(env):
            raise ValueError("action_map must be bound to env.unwrapped.task")
        self.action_map = action_map
        self.single_action_space = action_map.action_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._obs: np.ndarray | None = None
        self.last_raw_action: np.ndarray | None = None

    def reset(
        self, *, seed: Any = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env and keep the observations."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = np.asarray(obs, dtype=np.float32)
        return obs, info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Map the batch with the last observations, then step with the raw actions."""
        if self._obs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        raw = self.action_map.to_raw(np.asarray(actions, dtype=np.float32), self._obs)
        self.last_raw_action = raw
        obs, reward, terminated, truncated, info = self.env.step(raw)
        self._obs = np.asarray(obs, dtype=np.float32)
        return obs, reward, terminated, truncated, info


class RawAction(MappedAction):
    """Vector version of :class:`beamgym.wrappers.action.RawAction`."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        """Wrap ``env``."""
        super().__init__(env, RawMap(task_of(env)))


class ResidualAction(MappedAction):
    """Vector version of :class:`beamgym.wrappers.action.ResidualAction`."""

    def __init__(self, env: gym.vector.VectorEnv, scale: float = 0.5) -> None:
        """Wrap a FullyDigitalFDD-v0 vector ``env``."""
        super().__init__(env, ResidualMap(task_of(env), scale=scale))


class OptimalStructureAction(MappedAction):
    """Vector version of :class:`beamgym.wrappers.action.OptimalStructureAction`."""

    def __init__(self, env: gym.vector.VectorEnv, decades: float = 2.0) -> None:
        """Wrap a FullyDigitalFDD-v0 vector ``env`` with ``M = 1``."""
        super().__init__(env, OptimalStructureMap(task_of(env), decades=decades))


class PhaseAction(MappedAction):
    """Vector version of :class:`beamgym.wrappers.action.PhaseAction`."""

    def __init__(self, env: gym.vector.VectorEnv) -> None:
        """Wrap a ModularUplink-v0 vector ``env``."""
        super().__init__(env, PhaseMap(task_of(env)))
