"""beamgym agents: the papers' solvers and learned optimizers behind one contract.

Importing :mod:`agents` registers every built-in agent; see :func:`agents.base.make_agent`
and ``python examples/evaluate.py --list``.
"""

# importing the agent modules registers the agents
from agents import base, unfolded_pga, upga_m  # noqa: F401  (003 unfolded PGA; 004 U-PGA+M, CNN)
from agents.base import Agent, AgentSpec, make_agent, register_agent, registered_agents
from agents.classical import (  # noqa: F401
    fully_digital,
    modular,
    outage,
    pga_hybrid,
    random_agent,
)
from agents.kd_edn import agent as kd_edn_agent  # noqa: F401  (000 KD-EDN and ablations)

__all__ = ["Agent", "AgentSpec", "base", "make_agent", "register_agent", "registered_agents"]
