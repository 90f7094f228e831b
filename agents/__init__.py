"""beamgym agents: the papers' solvers and learned optimizers behind one contract.

Importing :mod:`agents` registers every built-in agent; see :func:`agents.base.make_agent`
and ``python examples/evaluate.py --list``.
"""

from agents import base
from agents.base import Agent, AgentSpec, make_agent, register_agent, registered_agents
from agents.classical import (  # noqa: F401  (imports register the agents)
    fully_digital,
    modular,
    outage,
    pga_hybrid,
    random_agent,
)

__all__ = ["Agent", "AgentSpec", "base", "make_agent", "register_agent", "registered_agents"]
