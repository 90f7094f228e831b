r"""Action parameterizations for RL on the beamgym envs (any RL library).

Raw-action RL on beamforming is weak (PPO on FullyDigitalFDD-v0 barely beats random); an
action that carries the problem's structure makes it useful. Each wrapper maps a float32
``Box(-1, 1)`` action plus the observation the agent acted on to the env's raw action, via a
pure batched map in :mod:`beamgym.wrappers.maps`; the maps read the observation only
(:meth:`~beamgym.envs.base.BeamformingTask.decode_observation`), never the true channel.

==============================  ==========================  =================================
Wrapper                         Envs                        Action
==============================  ==========================  =================================
:class:`RawAction`              all                         the env's own action
:class:`ResidualAction`         FullyDigitalFDD-v0,         correction on the MMSE start
                                FarField-, NearFieldHybrid  (phase-shifter FarField: on the
                                                            eq. (12)-(13) start), ``scale``
:class:`OptimalStructureAction` FullyDigitalFDD-v0 (M = 1), ``2K``: (λ, p) of Björnson 2014
                                steering FarFieldHybrid,    on the estimated (effective)
                                NearFieldHybrid             channel
:class:`PhaseAction`            ModularUplink-v0            one phase per phase shifter
==============================  ==========================  =================================

Single envs: ``ResidualAction(gym.make("beamgym/FullyDigitalFDD-v0"))``. Native vector envs:
the same names in :mod:`beamgym.wrappers.vector`. A model trained in a wrapper is scored by
``agents.harness.evaluate_agent`` through :class:`MappedPolicy` (raw actions out).

The raw actions are: FullyDigitalFDD / FarFieldHybrid / NearFieldHybrid, the packed (digital)
beamformer; ModularUplink, the packed complex panels (``PhaseAction`` halves it to the
phases); OutageHybrid, the ``M`` codeword scores and ``K`` stream powers. Per-user SINR
margins on top of paper 002's greedy rule are ``agents.rl.MarginAction``: the greedy lives in
``agents/`` (layering: agents -> beamgym), so that wrapper does too.

Refinement (``horizon > 1``): every env takes ``horizon=T`` (``gym.make(id, horizon=T)``):
the coherence interval lasts ``T`` steps on the same instance, and the observation then
carries the task observation, the previous RAW action, the per-user feedback (rates) of the
previous step and the step fraction ``t/T``. That is the RL refinement option: a policy
improves its beamformer from the feedback. The wrappers work with it (they decode the first
``task.obs_dim`` entries of the observation).
"""

from beamgym.wrappers.action import (
    MappedAction,
    OptimalStructureAction,
    PhaseAction,
    RawAction,
    ResidualAction,
    task_of,
)
from beamgym.wrappers.maps import (
    ActionMap,
    MappedPolicy,
    OptimalStructureMap,
    PhaseMap,
    RawMap,
    ResidualMap,
)

__all__ = [
    "ActionMap",
    "MappedAction",
    "MappedPolicy",
    "OptimalStructureAction",
    "OptimalStructureMap",
    "PhaseAction",
    "PhaseMap",
    "RawAction",
    "RawMap",
    "ResidualAction",
    "ResidualMap",
    "task_of",
]
