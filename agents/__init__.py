"""beamgym agents: the papers' solvers and learned optimizers behind one contract.

Importing :mod:`agents` registers every built-in agent; see :func:`agents.base.make_agent`
and ``python examples/evaluate.py --list``.
"""

# importing the agent modules registers the agents (the update rules first: agents.common,
# which the agents use, builds on them)
from agents import base, rules  # noqa: F401
from agents.base import Agent, AgentSpec, make_agent, register_agent, registered_agents
from agents.classical import (  # noqa: F401
    beamspace_feedback,
    fully_digital,
    modular,
    outage,
    pga_hybrid,
    random_agent,
)

# the learned agents: one package each, registered by its agent.py
from agents.kd_edn import agent as kd_edn_agent  # noqa: F401  (000 KD-EDN and ablations)
from agents.kd_edn_plus import agent as kd_edn_plus_agent  # noqa: F401  (issue 11 KD-EDN+)
from agents.modular_cnn import agent as modular_cnn_agent  # noqa: F401  (004 Sec. V-A CNN)
from agents.rl import agent as rl_agent  # noqa: F401  (SB3 PPO / SAC / TD3 baselines)
from agents.ug_hbf import agent as ug_hbf_agent  # noqa: F401  (002 U-G-HBF-GCN and variants)
from agents.unfolded_pga import agent as unfolded_pga_agent  # noqa: F401  (003 unfolded PGA)
from agents.upga_m import agent as upga_m_agent  # noqa: F401  (004 U-PGA+M)

__all__ = ["Agent", "AgentSpec", "base", "make_agent", "register_agent", "registered_agents"]
