"""Stable-Baselines3 ``VecEnv`` backed by a native batched beamgym vector env.

SB3's ``DummyVecEnv`` steps ``n`` single envs in a Python loop and ``SubprocVecEnv`` in
processes; :class:`BatchedVecEnv` steps all ``n`` instances in ONE batched physics call of the
native vector env (``gym.make_vec(id, num_envs=n, vectorization_mode="vector_entry_point")``),
so one process runs thousands of instances per step. Example::

    from stable_baselines3 import PPO
    from beamgym.sb3 import BatchedVecEnv

    venv = BatchedVecEnv("beamgym/FullyDigitalFDD-v0", num_envs=512, seed=0, K=4, N=4)
    PPO("MlpPolicy", venv, n_steps=8).learn(10_000)

Seeding: ``seed(s)`` seeds the next ``reset()``. By default (``per_env_seeds=False``) the
native env gets the int ``s``: one generator draws the whole batch in one call per interval
(fast, reproducible, but another stream than ``DummyVecEnv``). With ``per_env_seeds=True``
sub-env ``i`` gets ``s + i`` exactly as ``DummyVecEnv`` seeds its envs (the native env's
per-sub-env seed list, which equals the single env reset with that seed), so the same seeds
give the same rollouts as a ``DummyVecEnv`` of single envs, autoresets included; each
interval then draws its instances one sub-env at a time (slower: on FullyDigitalFDD-v0
defaults the sampling dominates a step, about 4x slower at 512 sub-envs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from beamgym._validation import check_int

__all__ = ["BatchedVecEnv"]


class BatchedVecEnv(VecEnv):
    """An SB3 ``VecEnv`` over a native beamgym vector env (one batched call per step).

    Args:
        env: A registered beamgym id (the native vector env is made with ``num_envs`` and
            ``env_kwargs``, autoreset ``"SameStep"``), or an already made native vector env
            (possibly wrapped, e.g. by :mod:`beamgym.wrappers.vector`) whose
            ``metadata["autoreset_mode"]`` is ``SameStep`` (SB3's convention: the observation
            after a done is the next interval's, the final one is in
            ``info["terminal_observation"]``).
        num_envs: Number of sub-envs (with an id only).
        seed: Optional base seed of the first ``reset()`` (as :meth:`seed`).
        per_env_seeds: Seed sub-env ``i`` with ``seed + i`` (``DummyVecEnv``-identical
            rollouts, one sampling call per sub-env) instead of one batched generator.
        **env_kwargs: Env configuration (with an id only), e.g. ``K=4, N=4``.

    ``infos[i]`` holds ``"metric"`` (the env's metric of that step), ``"TimeLimit.truncated"``
    and, on done, ``"terminal_observation"``.
    """

    def __init__(
        self,
        env: str | gym.vector.VectorEnv,
        num_envs: int | None = None,
        *,
        seed: int | None = None,
        per_env_seeds: bool = False,
        **env_kwargs: Any,
    ) -> None:
        """See the class docstring."""
        if isinstance(env, str):
            n = check_int(num_envs, "num_envs", minimum=1)
            env = gym.make_vec(
                env,
                num_envs=n,
                vectorization_mode="vector_entry_point",
                autoreset_mode=AutoresetMode.SAME_STEP,
                **env_kwargs,
            )
        elif isinstance(env, gym.vector.VectorEnv):
            if num_envs is not None and num_envs != env.num_envs:
                raise ValueError(
                    f"num_envs={num_envs} differs from the given vector env's {env.num_envs}; "
                    "leave num_envs unset"
                )
            if env_kwargs:
                raise ValueError(
                    f"env_kwargs {sorted(env_kwargs)} apply only when env is an id; configure "
                    "the vector env when you make it"
                )
        else:
            raise ValueError(
                f"env must be a registered beamgym id or a native vector env, got "
                f"{type(env).__name__}"
            )
        mode = env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"the vector env must use autoreset_mode='SameStep' (SB3's convention), got "
                f"{mode!r}; make it with gym.make_vec(..., autoreset_mode='SameStep')"
            )
        if not isinstance(per_env_seeds, bool):
            raise ValueError(f"per_env_seeds must be a bool, got {per_env_seeds!r}")
        self.per_env_seeds = per_env_seeds
        self.venv = env
        self.render_mode = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        if seed is not None:
            self.seed(check_int(seed, "seed", minimum=0))
        self._actions: np.ndarray | None = None

    # ---- core -------------------------------------------------------------------------------
    def reset(self) -> VecEnvObs:
        """Reset all sub-envs (seeded by :meth:`seed`, see the module docstring)."""
        seeds: Any = None
        if any(s is not None for s in self._seeds):
            seeds = list(self._seeds) if self.per_env_seeds else self._seeds[0]
        if any(self._options):
            raise ValueError(
                "BatchedVecEnv supports no reset options (all sub-envs share one interval); "
                "call set_options(None)"
            )
        obs, info = self.venv.reset(seed=seeds)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return np.asarray(obs, dtype=np.float32)

    def step_async(self, actions: np.ndarray) -> None:
        """Store the ``[num_envs, action_dim]`` actions for :meth:`step_wait`."""
        self._actions = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, -1)

    def step_wait(self) -> VecEnvStepReturn:
        """One batched step: ``(obs [n, obs_dim] float32, rewards [n], dones [n], infos)``."""
        if self._actions is None:
            raise RuntimeError("call step_async(actions) before step_wait()")
        obs, rew, term, trunc, info = self.venv.step(self._actions)
        self._actions = None
        obs = np.asarray(obs, dtype=np.float32)
        dones = np.logical_or(term, trunc)
        metric = info.get("metric", rew)
        infos: list[dict[str, Any]] = [
            {"metric": float(metric[i]), "TimeLimit.truncated": bool(trunc[i] and not term[i])}
            for i in range(self.num_envs)
        ]
        if dones.any():
            final = info.get("final_obs")
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = np.asarray(final[i], dtype=np.float32)
        return obs, np.asarray(rew, dtype=np.float32), dones, infos

    def close(self) -> None:
        """Close the vector env."""
        self.venv.close()

    # ---- attributes (all sub-envs share the vector env) --------------------------------------
    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """``getattr`` on the vector env's unwrapped env, once per requested index."""
        target = getattr(self.venv, attr_name) if hasattr(self.venv, attr_name) else None
        if target is None:
            target = getattr(self.venv.unwrapped, attr_name)
        return [target for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the vector env (shared by all sub-envs: ``indices`` must be all)."""
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError("the sub-envs share one vector env: set attributes on all of them")
        setattr(self.venv.unwrapped, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        """Call a method of the vector env once; its result is given for every index."""
        out = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [out for _ in self._get_indices(indices)]

    def env_is_wrapped(
        self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None
    ) -> list[bool]:
        """Whether ``wrapper_class`` wraps the vector env (the same for every index)."""
        env, found = self.venv, False
        while isinstance(env, gym.vector.VectorWrapper):
            found = found or isinstance(env, wrapper_class)
            env = env.env
        return [found for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        """No rendering through SB3 (use the beamgym env's own ``render``)."""
        return [None for _ in range(self.num_envs)]
