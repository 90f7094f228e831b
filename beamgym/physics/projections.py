"""Feasible sets and projections of the four papers (batched, differentiable where possible).

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
# SECTION paper 000: total and hybrid power constraints (owner: helper-000) -- keep all code of this section between its markers
# ==========================================================================================
# END SECTION paper 000: total and hybrid power constraints

# ==========================================================================================
# SECTION paper 003: unit-modulus analog precoder and digital normalization (owner: helper-003) -- keep all code of this section between its markers
# ==========================================================================================
# END SECTION paper 003: unit-modulus analog precoder and digital normalization

# ==========================================================================================
# SECTION paper 004: block-diagonal panels, sparse and quantized phase shifters (owner: helper-004) -- keep all code of this section between its markers
# ==========================================================================================
# END SECTION paper 004: block-diagonal panels, sparse and quantized phase shifters
