r"""SB3 policies for the RL baselines: algorithm, action wrapper, and their flat weights.

An RL baseline is an SB3 algorithm (PPO, SAC or TD3, ``"MlpPolicy"``) trained on a beamgym
env seen through one action parameterization (:mod:`beamgym.wrappers`,
:class:`agents.rl.wrappers.MarginAction`). This module builds, from the configuration alone,

* the action map of the wrapper (:func:`make_action_map`), which turns the policy's
  structured action in ``[-1, 1]^{dim}`` plus the observation into the env's beamformer;
* the training env (:func:`make_vec_env`: the native vector env, the wrapper,
  :class:`beamgym.sb3.BatchedVecEnv`) and the SB3 algorithm on it (:func:`make_algorithm`);
* the bare policy (:func:`make_policy`, no env needed), which is what a checkpoint restores.

Checkpoint mapping (the one format of :mod:`agents.pretrained`): the weights are SB3's own
``policy.state_dict()`` (a flat ``{str: Tensor}`` dict, float32; PPO: the actor-critic
``mlp_extractor.*``, ``action_net.*``, ``value_net.*``, ``log_std``; SAC: ``actor.*``,
``critic.*``, ``critic_target.*``; TD3: ``actor.*``, ``actor_target.*``, ``critic.*``,
``critic_target.*``), and ``config.json`` holds the :class:`RLModelConfig` (algorithm,
wrapper and its options, network sizes), from which :func:`make_policy` rebuilds the same
modules before ``load_state_dict``; nothing is pickled, so the file loads with
``weights_only=True``. The SB3 ``.zip`` format is not used.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy

from agents.rl.wrappers import MarginMap, PGAResidualMap, StartBaselineReward
from beamgym.envs.base import BeamformingTask
from beamgym.sb3 import BatchedVecEnv
from beamgym.wrappers import (
    ActionMap,
    OptimalStructureMap,
    PhaseMap,
    RawMap,
    ResidualMap,
    task_of,
)
from beamgym.wrappers.vector import MappedAction as VectorMappedAction

__all__ = [
    "ALGORITHMS",
    "DEFAULT_WRAPPER",
    "ENV_IDS",
    "WRAPPERS",
    "RLModelConfig",
    "load_policy_state",
    "make_action_map",
    "make_algorithm",
    "make_policy",
    "make_vec_env",
    "policy_state",
]

#: SB3 algorithm of each registered RL agent.
ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC, "td3": TD3}
#: The action wrappers an RL agent can be trained in (``--wrapper``).
WRAPPERS = ("raw", "residual", "optimal-structure", "phase", "margin", "pga-residual")
#: The envs the RL agents support, with the default wrapper of each.
DEFAULT_WRAPPER: dict[str, str] = {
    "beamgym/FullyDigitalFDD-v0": "optimal-structure",
    "beamgym/FarFieldHybrid-v0": "residual",
    "beamgym/NearFieldHybrid-v0": "residual",
    "beamgym/ModularUplink-v0": "pga-residual",
    "beamgym/OutageHybrid-v0": "margin",
}
ENV_IDS = tuple(DEFAULT_WRAPPER)


@dataclasses.dataclass(frozen=True)
class RLModelConfig:
    """What rebuilds an RL policy before its weights go in (stored in ``config.json``)."""

    algo: str = "ppo"
    """SB3 algorithm: ``ppo``, ``sac`` or ``td3``."""
    wrapper: str = "optimal-structure"
    """Action wrapper: raw, residual, optimal-structure, phase, margin or pga-residual."""
    residual_scale: float = 0.5
    """Correction size ``s`` of the residual wrapper (dimensionless)."""
    decades: float = 2.0
    """Range ``d`` of the optimal-structure wrapper's exponential maps (decades)."""
    max_margin_db: float = 6.0
    """Largest per-user margin of the margin wrapper (dB)."""
    net_arch: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the policy and value/critic MLPs (SB3's default 64, 64)."""
    phase_scale: float = 0.05
    """Largest phase turn of the pga-residual wrapper, as a fraction s of pi (0 < s <= 1; the
    value the validation runs chose)."""
    pga_iters: int = 10
    """PGA+M iterations J of the pga-residual wrapper's start."""

    def __post_init__(self) -> None:
        if self.algo not in ALGORITHMS:
            raise ValueError(f"algo must be one of {sorted(ALGORITHMS)}, got {self.algo!r}")
        if self.wrapper not in WRAPPERS:
            raise ValueError(f"wrapper must be one of {WRAPPERS}, got {self.wrapper!r}")
        for name in ("residual_scale", "decades", "max_margin_db", "phase_scale"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"{name} must be a finite number > 0, got {v!r}")
            if v <= 0:
                raise ValueError(f"{name} must be > 0, got {v!r}")
        if self.phase_scale > 1:
            raise ValueError(
                f"phase_scale must be <= 1 (a turn of at most pi), got {self.phase_scale!r}"
            )
        J = self.pga_iters
        if isinstance(J, bool) or not isinstance(J, int) or J < 1:
            raise ValueError(f"pga_iters must be an int >= 1, got {J!r}")
        arch = tuple(self.net_arch)
        if not arch or not all(isinstance(w, int) and not isinstance(w, bool) for w in arch):
            raise ValueError(f"net_arch must be one or more layer widths, got {self.net_arch!r}")
        if min(arch) < 1:
            raise ValueError(f"net_arch widths must be >= 1, got {self.net_arch!r}")
        object.__setattr__(self, "net_arch", arch)

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON builtins."""
        return {**dataclasses.asdict(self), "net_arch": list(self.net_arch)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RLModelConfig:
        """Inverse of :meth:`to_json` (raises ``ValueError``/``TypeError`` on bad content)."""
        return cls(**{**data, "net_arch": tuple(data.get("net_arch", (64, 64)))})


def make_action_map(task: BeamformingTask, config: RLModelConfig) -> ActionMap:
    """The action map of ``config.wrapper`` bound to ``task``.

    Raises:
        ValueError: The wrapper does not apply to the env (the map's own message says why).
    """
    if config.wrapper == "raw":
        return RawMap(task)
    if config.wrapper == "residual":
        return ResidualMap(task, scale=config.residual_scale)
    if config.wrapper == "optimal-structure":
        return OptimalStructureMap(task, decades=config.decades)
    if config.wrapper == "phase":
        return PhaseMap(task)
    if config.wrapper == "pga-residual":
        return PGAResidualMap(task, scale=config.phase_scale, J=config.pga_iters)
    return MarginMap(task, max_margin_db=config.max_margin_db)


def observation_space(task: BeamformingTask) -> spaces.Box:
    """The float32 ``Box`` of the task observation (horizon 1), as the env declares it."""
    low, high = task.observation_bounds()
    return spaces.Box(low, high, (task.obs_dim,), dtype=np.float32)


def make_vec_env(
    env_id: str,
    env_kwargs: dict[str, Any],
    config: RLModelConfig,
    num_envs: int,
    seed: int,
    *,
    reward_baseline: bool = False,
) -> BatchedVecEnv:
    """Native vector env -> the wrapper's action map -> SB3 ``VecEnv`` (seeded ``seed``).

    With ``reward_baseline`` the reward is taken relative to the map's ``a = 0`` design on the
    same instance (:class:`agents.rl.wrappers.StartBaselineReward`).
    """
    venv = gym.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        autoreset_mode=AutoresetMode.SAME_STEP,
        **env_kwargs,
    )
    wrapped: gym.vector.VectorEnv = VectorMappedAction(venv, make_action_map(task_of(venv), config))
    if reward_baseline:
        wrapped = StartBaselineReward(wrapped)
    return BatchedVecEnv(wrapped, seed=seed)


def _policy_kwargs(config: RLModelConfig) -> dict[str, Any]:
    return {"net_arch": list(config.net_arch)}


def make_algorithm(
    config: RLModelConfig,
    env: BatchedVecEnv,
    *,
    seed: int,
    init_kwargs: dict[str, Any] | None = None,
    **algo_kwargs: Any,
) -> BaseAlgorithm:
    """The SB3 algorithm of ``config.algo`` (``"MlpPolicy"``, CPU) on ``env``.

    Args:
        config: The model configuration.
        env: The training env (:func:`make_vec_env`).
        seed: Seed of the model's initialization and exploration.
        init_kwargs: Policy keywords that set initial values only, not the modules (e.g.
            ``log_std_init``), so a checkpoint does not need them to be rebuilt.
        **algo_kwargs: Further SB3 constructor arguments (learning rate, batch size, ...).
    """
    return ALGORITHMS[config.algo](
        "MlpPolicy",
        env,
        device="cpu",
        verbose=0,
        seed=seed,
        policy_kwargs={**_policy_kwargs(config), **(init_kwargs or {})},
        **algo_kwargs,
    )


def make_policy(task: BeamformingTask, config: RLModelConfig, seed: int = 0) -> BasePolicy:
    """The bare SB3 policy of ``config`` for ``task`` (no env, no optimizer use), eval mode.

    Its modules and ``state_dict`` keys are exactly those of ``make_algorithm(...).policy``,
    so a checkpoint's weights load into it; ``seed`` fixes its initial weights.
    """
    cls = ALGORITHMS[config.algo].policy_aliases["MlpPolicy"]
    amap = make_action_map(task, config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        policy = cls(
            observation_space(task),
            amap.action_space,
            lambda _: 0.0,
            **_policy_kwargs(config),
        )
    policy.set_training_mode(False)
    return policy


def policy_state(policy: BasePolicy) -> dict[str, torch.Tensor]:
    """SB3's ``policy.state_dict()`` as a flat dict of detached float32 CPU tensors."""
    return {k: v.detach().cpu().clone() for k, v in policy.state_dict().items()}


def load_policy_state(policy: BasePolicy, state: dict[str, torch.Tensor]) -> None:
    """Load :func:`policy_state` weights into ``policy`` (strict: every key, every shape).

    Raises:
        RuntimeError: Missing or unexpected keys, or shapes that differ (torch's message).
    """
    policy.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=True)
    policy.set_training_mode(False)
