"""beamgym: the reference Gymnasium benchmark suite for beamforming optimizers.

``import beamgym`` registers the environments (``beamgym/FullyDigitalFDD-v0`` and friends).
"""

from beamgym import envs as envs  # registers the environments
from beamgym.envs import ENV_IDS

__all__ = ["ENV_IDS", "envs", "__version__"]
__version__ = "0.1.0"
