"""Seeded, batched channel samplers of the four papers (batch dimension first).

Every sampler takes an explicit ``torch.Generator`` (CPU) and draws all randomness from it, so
the same seed gives the same channels bit for bit.

References:
    [000] Zhang, Johnston, Wang, "An Encoder-Decoder Network for Beamforming over Sparse
          Large-Scale MIMO Channels".
    [002] Schynol, Pesavento, "Hybrid Downlink Beamforming with Outage Constraints under
          Imperfect CSI using Model-Driven Deep Learning".
    [003] Nguyen et al., "Fast Deep Unfolded Hybrid Beamforming in Multiuser Large MIMO Systems".
    [004] Levy, Shlezinger, "Rapid and Power-Aware Learned Optimization for Modular Receive
          Beamforming".
"""

from __future__ import annotations

import math

import torch

from beamgym._validation import check_int, check_positive, check_tensor
from beamgym.config import Precision, complex_dtype, real_dtype

__all__: list[str] = []


# ==========================================================================================
# SECTION paper 000: sparse mmWave geometric channel (owner: helper-000) -- keep all code of this section between its markers
# ==========================================================================================
# END SECTION paper 000: sparse mmWave geometric channel

# ==========================================================================================
# SECTION paper 000: near-field channel (owner: helper-000) -- keep all code of this section between its markers
# ==========================================================================================
# END SECTION paper 000: near-field channel

# ==========================================================================================
# SECTION paper 003: extended Saleh-Valenzuela channel (owner: helper-003) -- keep all code of this section between its markers
# ==========================================================================================
# END SECTION paper 003: extended Saleh-Valenzuela channel

# ==========================================================================================
# SECTION paper 004: i.i.d. Rayleigh multi-band uplink channel (owner: helper-004) -- keep all code of this section between its markers
# ==========================================================================================
# END SECTION paper 004: i.i.d. Rayleigh multi-band uplink channel

# ==========================================================================================
# SECTION paper 002: spatially correlated UPA channel (owner: helper-002) -- keep all code of this section between its markers
# ==========================================================================================
# END SECTION paper 002: spatially correlated UPA channel
