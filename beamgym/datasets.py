"""Fixed, seeded instance sets so every agent is scored on identical instances.

A :class:`InstanceSet` is a batch of instances of one registered environment plus the
environment id, its constructor keywords and the seed that produced it. The same
``(env_id, kwargs, n, seed)`` always gives the same instances, bit for bit on CPU.

Seeding rules (sets and vector envs draw batches, not instance after instance):

* A set is one batched draw: ``make_instance_set(id, 1, seed).instances[0]`` in general
  differs from ``make_instance_set(id, 4, seed).instances[0]``; reproduce a set with the same
  ``n`` and ``chunk_size``.
* The native vector env reset with an int ``seed`` also draws its ``num_envs`` instances as
  one batch (from ``make_generator(np_random(seed))``), so its sub-env ``i`` is not the single
  env reset with ``seed + i`` (which is what Gymnasium's ``SyncVectorEnv`` gives). Reset it with
  one seed per sub-env, ``reset(seed=[s + i for i in range(n)])``, to get exactly the single
  envs' instances (drawn one by one, 3-40x slower for large ``num_envs``).

Example:
    >>> import beamgym
    >>> from beamgym.datasets import make_instance_set
    >>> ds = make_instance_set("beamgym/FullyDigitalFDD-v0", n=8, seed=0)  # doctest: +SKIP
    >>> env = gym.make("beamgym/FullyDigitalFDD-v0")                         # doctest: +SKIP
    >>> obs, info = env.reset(options={"instance": ds.instances[3]})         # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from beamgym._validation import check_int
from beamgym.envs.base import BeamformingEnv, BeamformingTask
from beamgym.structures import TensorDataclass

__all__ = [
    "InstanceSet",
    "make_instance_set",
    "make_task",
    "save_instance_set",
    "load_instance_set",
]

_FORMAT_VERSION = 1
_RESERVED = ("horizon", "render_mode")


@dataclasses.dataclass(frozen=True)
class InstanceSet:
    """A fixed batch of instances of one environment configuration.

    Attributes:
        env_id: Registered id, e.g. ``"beamgym/FullyDigitalFDD-v0"``.
        env_kwargs: Constructor keywords of the env configuration (no ``device``).
        seed: Seed of the CPU generator that drew the instances.
        instances: The batched instances (batch dimension first).
        validated: Whether the instances are known to be valid for the configuration: drawn
            by the env's own sampler (:func:`make_instance_set`) or checked with
            ``task.validate_instance`` (:func:`load_instance_set`). The harness validates a
            set built by hand (``validated=False``) once before scoring it.
    """

    env_id: str
    env_kwargs: dict[str, Any]
    seed: int
    instances: TensorDataclass
    validated: bool = dataclasses.field(default=False, compare=False, repr=False)

    def __len__(self) -> int:
        return self.instances.batch_size

    def batches(self, batch_size: int) -> list[TensorDataclass]:
        """Split the instances into consecutive batches of at most ``batch_size``."""
        batch_size = check_int(batch_size, "batch_size")
        n = len(self)
        return [self.instances[i : min(i + batch_size, n)] for i in range(0, n, batch_size)]


def make_task(
    env_id: str, device: str | torch.device = "cpu", **env_kwargs: Any
) -> BeamformingTask:
    """Build the :class:`BeamformingTask` behind a registered env id without making the env."""
    env = _make_env(env_id, device=device, **env_kwargs)
    return env.task


def _make_env(env_id: str, **kwargs: Any) -> BeamformingEnv:
    if env_id not in gym.registry:
        raise ValueError(f"unknown env id {env_id!r}; beamgym ids: {sorted(_beamgym_ids())}")
    spec = gym.registry[env_id]
    if not isinstance(spec.entry_point, str):
        raise ValueError(f"{env_id} is not a beamgym environment")
    module, name = spec.entry_point.split(":")
    cls = getattr(importlib.import_module(module), name)
    if not issubclass(cls, BeamformingEnv):
        raise ValueError(f"{env_id} is not a beamgym environment")
    return cls(**{**spec.kwargs, **kwargs})


def _beamgym_ids() -> list[str]:
    return [k for k in gym.registry if k.startswith("beamgym/")]


def make_instance_set(
    env_id: str,
    n: int,
    seed: int,
    *,
    device: str | torch.device = "cpu",
    chunk_size: int = 4096,
    **env_kwargs: Any,
) -> InstanceSet:
    """Draw ``n`` instances of ``env_id`` (configured by ``env_kwargs``) from ``seed``.

    Instances are drawn on the CPU in chunks of ``chunk_size`` from one generator, so the set
    depends only on ``(env_id, env_kwargs, n, seed, chunk_size)``, never on the device.

    Args:
        env_id: Registered beamgym id.
        n: Number of instances.
        seed: Non-negative integer seed.
        device: Where the returned instances live.
        chunk_size: Instances drawn per sampler call.
        **env_kwargs: Env configuration keywords (``precision`` included).
    """
    n = check_int(n, "n")
    seed = check_int(seed, "seed", minimum=0)
    chunk_size = check_int(chunk_size, "chunk_size")
    bad = [k for k in _RESERVED if k in env_kwargs]
    if bad:
        raise ValueError(f"{bad} are not instance-set keywords (they do not change instances)")
    task = make_task(env_id, device="cpu", **env_kwargs)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    parts = [task.sample(gen, min(chunk_size, n - i)) for i in range(0, n, chunk_size)]
    inst = type(parts[0]).cat(parts) if len(parts) > 1 else parts[0]
    return InstanceSet(env_id, dict(env_kwargs), seed, inst.to(device), validated=True)


def save_instance_set(path: str | Path, dataset: InstanceSet) -> None:
    """Save an :class:`InstanceSet` with ``torch.save`` (plain tensors and builtins only)."""
    cls = type(dataset.instances)
    torch.save(
        {
            "format_version": _FORMAT_VERSION,
            "env_id": dataset.env_id,
            "env_kwargs": dataset.env_kwargs,
            "seed": dataset.seed,
            "instance_cls": f"{cls.__module__}:{cls.__qualname__}",
            "instances": dataset.instances.to_dict(),
        },
        Path(path),
    )


def load_instance_set(path: str | Path, device: str | torch.device = "cpu") -> InstanceSet:
    """Load a set written by :func:`save_instance_set` (``weights_only=True``: no code runs).

    The instances are validated once here (type, shapes, finiteness) against the stored env
    configuration, so the harness scores the loaded set without checking it again.

    Raises:
        ValueError: naming the file if it is missing, truncated, not a ``torch.save`` file,
            holds objects other than tensors and builtins (a pickle that would run code is
            refused, never executed), is not a beamgym instance set, or holds instances that do
            not fit its env configuration.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a file; pass the file save_instance_set wrote")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path} cannot be loaded safely (weights_only=True refused it: {_reason(err)}); it is "
            "not a beamgym instance set or it holds objects other than tensors and builtins"
        ) from err
    except (RuntimeError, EOFError, OSError, ValueError, TypeError, KeyError) as err:
        raise ValueError(
            f"{path} is not a readable torch.save file (truncated or corrupt: {_reason(err)}); "
            "regenerate it with save_instance_set"
        ) from err
    if not isinstance(data, dict) or data.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"{path} is not a beamgym instance set (format {_FORMAT_VERSION})")
    module, name = data["instance_cls"].split(":")
    if not module.startswith("beamgym."):
        raise ValueError(f"{path}: refusing instance class outside beamgym: {module}")
    cls = getattr(importlib.import_module(module), name)
    inst = cls.from_dict(data["instances"])
    task = make_task(data["env_id"], **data["env_kwargs"])
    inst = task.validate_instance(inst)
    return InstanceSet(
        data["env_id"], data["env_kwargs"], data["seed"], inst.to(device), validated=True
    )


def _reason(err: BaseException) -> str:
    """The informative line of a ``torch.load`` error (its messages run over many lines)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for key in ("GLOBAL", "Unsupported", "failed", "Error", "error"):
        for ln in lines:
            if key in ln and not ln.startswith(("Weights only load failed", "Please file")):
                return ln.split(". ")[0]
    return lines[0] if lines else type(err).__name__
