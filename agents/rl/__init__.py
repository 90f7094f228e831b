"""RL action parameterizations that need the agents' rules (layering: agents -> beamgym).

The generic wrappers live in :mod:`beamgym.wrappers`; :class:`MarginAction` builds on the
greedy rule of :mod:`agents.rules.greedy`, which beamgym cannot import, so it lives here.
"""

from agents.rl.wrappers import MarginAction, MarginMap, VectorMarginAction

__all__ = ["MarginAction", "MarginMap", "VectorMarginAction"]
