r"""Action maps that run an ``agents`` rule inside the map (beamgym itself cannot import them).

* :class:`MarginAction` (OutageHybrid-v0): per-user SINR margins on top of the greedy rule.
* :class:`PGAResidualAction` (ModularUplink-v0): a bounded phase correction on PGA+M(J).
* :class:`StartBaselineReward`: the training reward minus the ``a = 0`` design's reward.

MarginAction
------------

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

PGAResidualAction
-----------------
:class:`PGAResidualMap` starts from paper 004's PGA with momentum (Algorithm 1,
:func:`agents.rules.pga_momentum.pga_momentum`) run for ``J`` iterations with the ``pga_m``
agent's constants (:math:`\mu = 1`, :math:`\beta = 0.9`, Table I's "PGA+M, J = 10") on the
KNOWN channel ``H_est`` decoded from the observation, and lets the agent turn every phase
shifter by a bounded angle:

.. math:: \mathbf W = \mathbf W_J \odot e^{j\pi s\, a}, \qquad a \in [-1, 1]^{PNL}

with :math:`s` = ``scale``. ``a = 0`` is PGA+M(J) exactly.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.rules.greedy import greedy_hybrid_beamforming
from agents.rules.pga_momentum import pga_momentum, random_unit_modulus_panels
from beamgym.envs.base import BeamformingTask
from beamgym.structures import HybridBeamformer
from beamgym.wrappers import MappedAction, task_of
from beamgym.wrappers.maps import ActionMap
from beamgym.wrappers.vector import MappedAction as VectorMappedAction

__all__ = [
    "MarginAction",
    "MarginMap",
    "PGAResidualAction",
    "PGAResidualMap",
    "StartBaselineReward",
    "VectorMarginAction",
    "VectorPGAResidualAction",
]

OUTAGE = "beamgym/OutageHybrid-v0"
MODULAR = "beamgym/ModularUplink-v0"


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


class PGAResidualMap(ActionMap):
    r"""A bounded phase correction on PGA+M(J) (ModularUplink-v0; see the module docstring).

    The start :math:`\mathbf W_J` is :func:`agents.rules.pga_momentum.pga_momentum` with
    ``J`` iterations, :math:`\mu = 1`, :math:`\beta = 0.9` (the ``pga_m`` agent's defaults)
    on the known channel of the observation, from the random unit-modulus start
    :func:`~agents.rules.pga_momentum.random_unit_modulus_panels` of ``seed``. The ``pga_m``
    agent draws one start per row of its batch; here ONE draw (batch 1, the ``pga_m`` agent's
    start of a single instance) is shared by every row, so the start, and hence the design,
    is a function of the observation alone (a policy cannot see its row in the batch). For a
    single instance ``a = 0`` therefore gives exactly the ``pga_m`` agent's design.

    The action turns each phase shifter by :math:`\pi s a_{p,n,l}` (``[B, P*N*L]`` in
    ``[-1, 1]``, reshaped to ``[B, P, N, L]``); the env's own action map then applies its
    projection (a unit-modulus design is a fixed point of eq. (10)).

    Args:
        task: The ModularUplink-v0 task.
        scale: Correction size :math:`s \in (0, 1]` (largest turn :math:`s\pi` radians).
        J: PGA+M iterations of the start (:math:`J \ge 1`, default 10).
        seed: Seed of the shared random start (default 0, the ``pga_m`` agent's).
    """

    name = "pga-residual"

    def __init__(
        self, task: BeamformingTask, scale: float = 0.05, J: int = 10, seed: int = 0
    ) -> None:
        """Bind to ``task``; see the class docstring."""
        super().__init__(task)
        if task.env_id != MODULAR:
            raise ValueError(f"PGAResidualAction supports {MODULAR}, got {task.env_id}")
        if not (
            isinstance(scale, int | float)
            and not isinstance(scale, bool)
            and math.isfinite(scale)
            and 0 < scale <= 1
        ):
            raise ValueError(f"scale must be a finite number in (0, 1], got {scale!r}")
        for name, v in (("J", J), ("seed", seed)):
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "J" else 0):
                raise ValueError(f"{name} must be an int >= {1 if name == 'J' else 0}, got {v!r}")
        self.scale = float(scale)
        self.J = J
        self.seed = seed
        self.dim = int(np.prod(task.panel_shape))
        self._cache: tuple[np.ndarray, torch.Tensor] | None = None

    def start(self, observation: Any) -> torch.Tensor:
        """PGA+M(J) on the observations' known channels, complex ``[B, P, N, L]``.

        The last batch's result is kept: the reward baseline and the step that follows it map
        the same observations, so PGA+M runs once per step.
        """
        obs = np.asarray(observation, dtype=np.float32)
        if self._cache is not None and np.array_equal(self._cache[0], obs):
            return self._cache[1]
        known = self.known(obs)
        t = self.task
        W0 = random_unit_modulus_panels(
            self.seed, 1, t.panel_shape, dtype=t.cdtype, device=t.device
        ).expand(obs.shape[0], *t.panel_shape)
        with torch.no_grad():
            W = pga_momentum(t, known, J=self.J, mu=1.0, beta=0.9, W0=W0)[-1]
        self._cache = (obs.copy(), W)
        return W

    def beamformer(self, action: Any, observation: Any) -> torch.Tensor:
        r"""The start with every phase turned by :math:`\pi s a`, complex ``[B, P, N, L]``."""
        a = self._check_action(action)
        W = self.start(observation)
        if a.shape[0] != W.shape[0]:
            raise ValueError(
                f"action and observation batch sizes differ: {a.shape[0]} vs {W.shape[0]}"
            )
        turn = torch.polar(torch.ones_like(a), math.pi * self.scale * a)
        return W * turn.reshape(W.shape).to(W.dtype)


class PGAResidualAction(MappedAction, gym.utils.RecordConstructorArgs):
    """Single-env wrapper: a phase correction on PGA+M(J) (ModularUplink-v0)."""

    def __init__(self, env: gym.Env, scale: float = 0.05, J: int = 10, seed: int = 0) -> None:
        """Wrap a ModularUplink-v0 ``env``."""
        gym.utils.RecordConstructorArgs.__init__(self, scale=scale, J=J, seed=seed)
        super().__init__(env, PGAResidualMap(task_of(env), scale=scale, J=J, seed=seed))


class VectorPGAResidualAction(VectorMappedAction):
    """Vector-env wrapper: a phase correction on PGA+M(J) (ModularUplink-v0, batched)."""

    def __init__(
        self, env: gym.vector.VectorEnv, scale: float = 0.05, J: int = 10, seed: int = 0
    ) -> None:
        """Wrap a native ModularUplink-v0 vector ``env``."""
        super().__init__(env, PGAResidualMap(task_of(env), scale=scale, J=J, seed=seed))


class StartBaselineReward(gym.vector.VectorWrapper):
    r"""Training reward relative to the action map's start design (a control variate).

    With the structured action ``a`` on the current instance, the reward becomes

    .. math:: r'(s, a) = r(s, a) - r(s, \mathbf 0),

    where :math:`r(s, \mathbf 0)` is the env's reward of the map's ``a = 0`` design (MMSE for
    the optimal-structure and residual maps, the greedy with half the largest margin for the
    margin map, PGA+M(J) for the PGA residual map) on the same TRUE instance. The subtracted
    term does not depend on the action,
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
