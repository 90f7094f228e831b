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
import torch

from agents.rules.greedy import greedy_hybrid_beamforming
from beamgym.envs.base import BeamformingTask
from beamgym.structures import HybridBeamformer
from beamgym.wrappers import MappedAction, task_of
from beamgym.wrappers.maps import ActionMap
from beamgym.wrappers.vector import MappedAction as VectorMappedAction

__all__ = ["MarginAction", "MarginMap", "VectorMarginAction"]

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
