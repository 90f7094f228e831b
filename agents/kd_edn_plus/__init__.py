"""KD-EDN+: the learned refinement of the engineered beamspace feedback (issue 11 item 3).

:mod:`agents.kd_edn_plus.model` (the pipeline: beamspace encoder with learned gains and a
straight-through quantizer, the link, learned soft dequantization and residual channel
decoder, error-aware MMSE, learned GA steps), :mod:`agents.kd_edn_plus.train` (end-to-end
training on the true-channel sum-rate, ``examples/train.py --agent kd_edn_plus``) and
:mod:`agents.kd_edn_plus.agent` (the registered agent ``kd_edn_plus`` with its committed
models).
"""

__all__: list[str] = []
