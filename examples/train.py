"""Train a learned beamgym agent; writes its checkpoint, configuration and training curve.

Usage:
    python examples/train.py --agent kd_edn --env beamgym/FullyDigitalFDD-v0
    python examples/train.py --agent kd_edn --env-kw N=8 K=2 L=2 --epochs 40 --out runs/tiny
    python examples/train.py --agent unfolded_pga --env beamgym/FarFieldHybrid-v0
    python examples/train.py --agent upga_m --env beamgym/ModularUplink-v0

The trainer of each agent is the one its registration declares (``register_agent(...,
trainer="module:function")``); ``python examples/train.py --agent NAME --help`` lists its
options. Every run writes the model folder of ``agents.runs.write_run`` to ``--out`` (default
``runs/<agent>``): ``checkpoint.pt`` (weights only), ``config.json`` (env, training
configuration and the exact command), ``train_log.csv`` and ``train_curve.png``. The committed
models under ``agents/pretrained/<agent>/<env>/`` were made this way.
"""

from __future__ import annotations

import sys
from pathlib import Path

import agents  # noqa: F401  (registers the agents)
from agents.base import agent_spec, registered_agents

#: Agent trained when ``--agent`` is not given.
DEFAULT_AGENT = "kd_edn"


def _agent_of(argv: list[str]) -> str | None:
    for i, a in enumerate(argv):
        if a == "--agent" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--agent="):
            return a.split("=", 1)[1]
    return None


def _with_agent(argv: list[str], name: str) -> list[str]:
    """``argv`` with the ``--agent`` value replaced by the registry name ``name``."""
    out = list(argv)
    for i, a in enumerate(out):
        if a == "--agent" and i + 1 < len(out):
            out[i + 1] = name
        elif a.startswith("--agent="):
            out[i] = f"--agent={name}"
    return out


def trainable() -> list[str]:
    """The registered agents that declare a trainer."""
    return sorted(n for n, s in registered_agents().items() if s.trainer)


def main(argv: list[str] | None = None) -> Path:
    """Run the registered trainer of ``--agent`` (default ``kd_edn``); returns its folder."""
    argv = sys.argv[1:] if argv is None else list(argv)
    agent = _agent_of(argv)
    if agent is None and any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        print("agents:", ", ".join(trainable()))
        raise SystemExit(0)
    agent = agent or DEFAULT_AGENT
    try:
        spec = agent_spec(agent)  # a deprecated alias warns and trains its agent
    except ValueError:
        spec = None
    if spec is None or spec.trainer is None:
        raise SystemExit(f"error: no trainer for agent {agent!r}; trainable: {trainable()}")
    return spec.load_trainer()(_with_agent(argv, spec.name))


if __name__ == "__main__":
    main()
