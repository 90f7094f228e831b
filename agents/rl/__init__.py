"""RL action parameterizations that need the agents' rules (layering: agents -> beamgym).

The generic wrappers live in :mod:`beamgym.wrappers`; :class:`MarginAction` builds on the
greedy rule of :mod:`agents.rules.greedy`, which beamgym cannot import, so it lives here.
:class:`StartBaselineReward` is the trainer's reward option (``--reward-baseline``).
"""

from agents.rl.wrappers import MarginAction, MarginMap, StartBaselineReward, VectorMarginAction

__all__ = ["MarginAction", "MarginMap", "StartBaselineReward", "VectorMarginAction"]
