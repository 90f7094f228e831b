"""Greedy correction hybrid beamforming of paper 002 (ref. [35] Alg. 2), as an update rule.

The rule lives in :mod:`beamgym.physics.greedy` because OutageHybrid-v0 runs it on the true
channel to decide which instances are removed (paper 002 Sec. V-A-4), and beamgym does not
import ``agents``. This module is its name among the update rules of :mod:`agents.rules`.
"""

from beamgym.physics.greedy import (
    SCREENINGS,
    GreedySolution,
    finalize_hybrid_design,
    gram_uplink_power,
    greedy_hybrid_beamforming,
)

__all__ = [
    "SCREENINGS",
    "GreedySolution",
    "finalize_hybrid_design",
    "gram_uplink_power",
    "greedy_hybrid_beamforming",
]
