"""RL action parameterizations that need the agents' rules (layering: agents -> beamgym).

The generic wrappers live in :mod:`beamgym.wrappers`; :class:`MarginAction` builds on the
greedy rule of :mod:`agents.rules.greedy` and :class:`PGAResidualAction` on PGA+M
(:mod:`agents.rules.pga_momentum`), which beamgym cannot import, so they live here.
:class:`StartBaselineReward` is the trainer's reward option (``--reward-baseline``).
"""

from agents.rl.wrappers import (
    MarginAction,
    MarginMap,
    PGAResidualAction,
    PGAResidualMap,
    StartBaselineReward,
    VectorMarginAction,
    VectorPGAResidualAction,
)

__all__ = [
    "MarginAction",
    "MarginMap",
    "PGAResidualAction",
    "PGAResidualMap",
    "StartBaselineReward",
    "VectorMarginAction",
    "VectorPGAResidualAction",
]
