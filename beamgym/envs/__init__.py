"""The registered beamgym environments.

Every ``register()`` call lives here and runs on ``import beamgym``. IDs are namespaced
(``beamgym/NearFieldHybrid-v0``); each has a native batched ``vector_entry_point`` so that
``gym.make_vec(id, num_envs=n, vectorization_mode="vector_entry_point")`` evaluates all ``n``
instances in one batched call.
"""

from __future__ import annotations

from gymnasium.envs.registration import register

__all__ = ["ENV_IDS"]

_ENVS = {
    "FullyDigitalFDD-v0": "fully_digital_fdd:FullyDigitalFDD",
    "FarFieldHybrid-v0": "far_field_hybrid:FarFieldHybrid",
    "NearFieldHybrid-v0": "near_field_hybrid:NearFieldHybrid",
    "ModularUplink-v0": "modular_uplink:ModularUplink",
    "OutageHybrid-v0": "outage_hybrid:OutageHybrid",
}

#: The namespaced ids of all registered environments.
ENV_IDS: tuple[str, ...] = tuple(f"beamgym/{name}" for name in _ENVS)

for _name, _target in _ENVS.items():
    register(
        id=f"beamgym/{_name}",
        entry_point=f"beamgym.envs.{_target}Env",
        vector_entry_point=f"beamgym.envs.{_target}VectorEnv",
        disable_env_checker=False,
    )
