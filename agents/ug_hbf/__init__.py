"""U-G-HBF-GCN of paper 002: the unrolled greedy hybrid beamformer with a learned error model.

:mod:`agents.ug_hbf.model` (the GCN of eqs. 28-30, the virtual covariances of eq. 27, the
unrolled greedy of eqs. 19-21 with the straight-through softmin of eq. 36, the virtual uplink
problem with its implicit gradient, eqs. 31-34 and 49), :mod:`agents.ug_hbf.train` (the
primal-dual training of Sec. IV-D, eqs. 50-55, Algorithm 1) and :mod:`agents.ug_hbf.agent`
(the registered agents ``ug_hbf_gcn``, ``ug_hbf_fcn`` and ``ufdbf_gcn``).
"""

from agents.ug_hbf import agent, model, train

__all__ = ["agent", "model", "train"]
