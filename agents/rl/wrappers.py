r"""``MarginAction`` for OutageHybrid-v0: per-user SINR margins on top of the greedy rule.

OutageHybrid-v0's raw action (the one :class:`beamgym.wrappers.RawAction` passes through) is
``M`` codeword scores (the ``M_rf`` largest pick the analog beams) followed by ``K`` stream
powers. :class:`MarginMap` instead lets the agent choose a margin per user in dB:

.. math:: m_i = \frac{a_i + 1}{2}\, m_{\max} \in [0, m_{\max}], \qquad
          \gamma_i' = \gamma_i\, 10^{m_i/10}

and runs paper 002's greedy correction hybrid beamforming
(:func:`agents.rules.greedy.greedy_hybrid_beamforming`, ``L_rf = 2 M_rf``, the G-HBF of
Sec. V-A-3) on the KNOWN CSI ``h_est`` (decoded from the observation) with the raised targets
:math:`\gamma'`, in float64 as the ``ghbf_perf`` agent does; the design goes through the env's
own ``beamformer_to_action``. ``a = -1`` is the plain greedy (agent ``ghbf_perf``); one margin
for all users is agent ``ghbf_marg``'s structure, here learned per user and per instance.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.rules.greedy import greedy_hybrid_beamforming
from beamgym.envs.base import BeamformingTask
from beamgym.structures import HybridBeamformer
from beamgym.wrappers import MappedAction, task_of
from beamgym.wrappers.maps import ActionMap
from beamgym.wrappers.vector import MappedAction as VectorMappedAction

__all__ = ["MarginAction", "MarginMap", "StartBaselineReward", "VectorMarginAction"]

OUTAGE = "beamgym/OutageHybrid-v0"


class MarginMap(ActionMap):
    r"""Per-user margins in dB -> the greedy's hybrid design (see the module docstring).

    Args:
        task: The OutageHybrid-v0 task.
        max_margin_db: Largest margin :math:`m_{\max} > 0` in dB (at ``a_i = 1``).
    """

    name = "margin"

    def __init__(self, task: BeamformingTask, max_margin_db: float = 6.0) -> None:
        """Bind to ``task``; see the class docstring."""
        super().__init__(task)
        if task.env_id != OUTAGE:
            raise ValueError(f"MarginAction supports {OUTAGE}, got {task.env_id}")
        if not (
            isinstance(max_margin_db, int | float)
            and math.isfinite(max_margin_db)
            and max_margin_db > 0
        ):
            raise ValueError(
                f"max_margin_db must be a positive finite number, got {max_margin_db!r}"
            )
        self.max_margin_db = float(max_margin_db)
        self.dim = task.num_users

    def margins_db(self, action: Any) -> torch.Tensor:
        """Real ``[B, K]`` margins in dB of ``[B, K]`` actions."""
        a = self._check_action(action).to(torch.float64)
        return (a + 1.0) / 2.0 * self.max_margin_db

    def beamformer(self, action: Any, observation: Any) -> HybridBeamformer:
        """The greedy design for the raised targets (task dtype)."""
        known = self.known(observation)
        c = self.task.config
        margin = self.margins_db(action).to(known.gamma.device)
        gamma = known.gamma.to(torch.float64) * 10.0 ** (margin / 10.0)
        sol = greedy_hybrid_beamforming(
            known.h_est.to(torch.complex128),
            gamma,
            self.task.codebook.to(torch.complex128),
            c.num_rf,
            c.p_max,
        )
        cd = self.task.cdtype
        return HybridBeamformer(
            analog=sol.beamformer.analog.to(cd), digital=sol.beamformer.digital.to(cd)
        )


class MarginAction(MappedAction, gym.utils.RecordConstructorArgs):
    """Single-env wrapper: per-user margins on the greedy (OutageHybrid-v0)."""

    def __init__(self, env: gym.Env, max_margin_db: float = 6.0) -> None:
        """Wrap an OutageHybrid-v0 ``env``."""
        gym.utils.RecordConstructorArgs.__init__(self, max_margin_db=max_margin_db)
        super().__init__(env, MarginMap(task_of(env), max_margin_db=max_margin_db))


class VectorMarginAction(VectorMappedAction):
    """Vector-env wrapper: per-user margins on the greedy (OutageHybrid-v0, batched)."""

    def __init__(self, env: gym.vector.VectorEnv, max_margin_db: float = 6.0) -> None:
        """Wrap a native OutageHybrid-v0 vector ``env``."""
        super().__init__(env, MarginMap(task_of(env), max_margin_db=max_margin_db))


class StartBaselineReward(gym.vector.VectorWrapper):
    r"""Training reward relative to the action map's start design (a control variate).

    With the structured action ``a`` on the current instance, the reward becomes

    .. math:: r'(s, a) = r(s, a) - r(s, \mathbf 0),

    where :math:`r(s, \mathbf 0)` is the env's reward of the map's ``a = 0`` design (MMSE for
    the optimal-structure and residual maps, the greedy with half the largest margin for the
    margin map) on the same TRUE instance. The subtracted term does not depend on the action,
    so every policy's ranking, and thus the optimal policy, is unchanged (with ``horizon > 1``
    the instance is fixed for the interval, so the term is action-independent too); what goes
    away is the spread of the reward across channel instances, which otherwise dominates the
    policy-gradient and critic targets. ``info["metric"]`` keeps the env's own metric, so the
    logged learning curve stays in the env's unit. For training only: it reads the native
    env's current instance.

    Args:
        env: A :class:`beamgym.wrappers.vector.MappedAction` (or subclass) over a native
            beamgym vector env.
    """

    def __init__(self, env: VectorMappedAction) -> None:
        """See the class docstring."""
        if not isinstance(env, VectorMappedAction):
            raise ValueError(
                f"env must be a beamgym.wrappers.vector.MappedAction, got {type(env).__name__}"
            )
        super().__init__(env)
        self.action_map = env.action_map
        self._obs: np.ndarray | None = None

    def reset(
        self, *, seed: Any = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the env and keep the observations."""
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs = np.asarray(obs, dtype=np.float32)
        return obs, info

    def start_reward(self) -> np.ndarray:
        """``[num_envs]`` env rewards of the ``a = 0`` design on the current instances."""
        if self._obs is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        task = self.action_map.task
        inst = self.env.unwrapped.instance
        zero = np.zeros((self.num_envs, self.action_map.dim), dtype=np.float32)
        raw = torch.as_tensor(self.action_map.to_raw(zero, self._obs), device=task.device)
        with torch.no_grad():
            bf, _ = task.action_to_beamformer(raw.to(task.rdtype), inst)
            reward = task.evaluate(bf, inst, check_feasible=False)["reward"]
        return reward.detach().cpu().numpy().astype(np.float64)

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        """Step the env; the reward minus the start design's reward on the same instance."""
        base = self.start_reward()
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self._obs = np.asarray(obs, dtype=np.float32)
        return obs, np.asarray(reward, dtype=np.float64) - base, terminated, truncated, info
