"""KD-EDN of paper 000: encoder-decoder beamforming network with knowledge distillation.

:mod:`agents.kd_edn.model` (networks, quantizer, feedback error, semi-amortized steps,
losses), :mod:`agents.kd_edn.train` (Algorithm 1 on the three envs, and its command line
behind ``examples/train.py``) and :mod:`agents.kd_edn.agent` (the registered agents ``kd_edn``,
``edn_unsupervised``, ``edn_supervised``, ``kd_edn_q0`` with their committed models).
"""
