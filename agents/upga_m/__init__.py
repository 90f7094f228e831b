"""U-PGA+M of paper 004: unfolded PGA with momentum and its power-aware variants.

:mod:`agents.upga_m.model` (the unfolded optimizer as pure functions of (state, theta), the
surrogate projections, the loss, the transfer across panels), :mod:`agents.upga_m.train`
(Algorithm 2 and its command line behind ``examples/train.py``) and :mod:`agents.upga_m.agent`
(the registered agents ``upga_m``, with variants ``scenario4`` / ``scenario5`` for the
transfers to Scenarios 3 and 6, ``upga_m_sparse`` and ``upga_m_quantized``).
"""

from agents.upga_m import agent, model, train

__all__ = ["agent", "model", "train"]
