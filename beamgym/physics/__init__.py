"""Pure, batched, differentiable torch physics of beamgym (batch dimension first).

Modules, split by domain:

* :mod:`~beamgym.physics.arrays`: ULA / UPA array responses.
* :mod:`~beamgym.physics.channels`: seeded channel samplers of papers 000, 002, 003, 004.
* :mod:`~beamgym.physics.csi`: CSI degradation (estimation error, MMSE pilots, feedback).
* :mod:`~beamgym.physics.metrics`: rates, SINRs, powers, outage and closed-form gradients.
* :mod:`~beamgym.physics.projections`: feasible sets and projections.
* :mod:`~beamgym.physics.analog`: steering and TTD+PS analog beams (paper 000).
* :mod:`~beamgym.physics.codebooks`: DFT codebooks and codeword selection (paper 002).
* :mod:`~beamgym.physics.power`: virtual uplink and downlink power allocation (paper 002).
* :mod:`~beamgym.physics.modular`: connectivity and block-diagonal panels (paper 004).
"""

from beamgym.physics import (
    analog,
    arrays,
    channels,
    codebooks,
    csi,
    metrics,
    modular,
    power,
    projections,
)

__all__ = [
    "analog",
    "arrays",
    "channels",
    "codebooks",
    "csi",
    "metrics",
    "modular",
    "power",
    "projections",
]
