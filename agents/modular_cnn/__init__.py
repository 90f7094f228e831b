"""The modular-receiver CNN of paper 004 Sec. V-A (after its ref. [27]), a learned baseline.

:mod:`agents.modular_cnn.model` (the network), :mod:`agents.modular_cnn.train` (training on the
rate and its command line behind ``examples/train.py``) and :mod:`agents.modular_cnn.agent`
(the registered agent ``modular_cnn`` with its committed model).
"""

from agents.modular_cnn import agent, model, train

__all__ = ["agent", "model", "train"]
