"""Paper 003's deep-unfolded PGA for hybrid beamforming (model, training with its CLI, agent).

Importing this package registers the ``unfolded_pga`` agent.
"""

from agents.unfolded_pga.agent import UnfoldedPGAAgent
from agents.unfolded_pga.model import UnfoldedPGA, unfolded_pga_loss
from agents.unfolded_pga.train import (
    UnfoldedPGATrainConfig,
    load_checkpoint,
    save_checkpoint,
    train_unfolded_pga,
)

__all__ = [
    "UnfoldedPGA",
    "UnfoldedPGAAgent",
    "UnfoldedPGATrainConfig",
    "load_checkpoint",
    "save_checkpoint",
    "train_unfolded_pga",
    "unfolded_pga_loss",
]
