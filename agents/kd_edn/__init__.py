"""KD-EDN of paper 000 (encoder-decoder beamforming network), first increment.

Library only (no registered agent yet): :mod:`agents.kd_edn.model` (networks, quantizer,
feedback error, semi-amortized steps, losses) and :mod:`agents.kd_edn.train`
(Algorithm 1).
"""
