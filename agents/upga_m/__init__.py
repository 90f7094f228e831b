"""U-PGA+M of paper 004 (unfolded PGA with momentum, power-aware variants) and its CNN baseline.

Registered agents: ``upga_m`` (Scenario 1; variants ``scenario4`` / ``scenario5`` for the
transfers to Scenarios 3 and 6), ``upga_m_sparse``, ``upga_m_quantized`` and ``cnn_004``.
:mod:`agents.upga_m.model` holds the unfolded optimizer, :mod:`agents.upga_m.train` Algorithm 2
and the training command line behind ``examples/train.py``, :mod:`agents.upga_m.cnn` the CNN of
Sec. V-A.
"""

from agents.upga_m import cnn, model

__all__ = ["cnn", "model"]
