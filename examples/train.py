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
from agents.cli import name_flags

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


def _flags_of(argv: list[str]) -> tuple[list[str], list[str]]:
    """``(option names, env keywords)`` that ``argv`` sets (``--snr-db`` -> ``snr_db``)."""
    names = [a[2:].split("=", 1)[0].replace("-", "_") for a in argv if a.startswith("--")]
    keys, in_env_kw = [], False
    for a in argv:
        if a.startswith("-"):
            in_env_kw = a == "--env-kw"
        elif in_env_kw and "=" in a:
            keys.append(a.split("=", 1)[0].strip())
    return names, keys


class UsageError(SystemExit):
    """Exit status 2 (argparse's for a bad argument); ``str()`` is the message."""

    def __init__(self, message: str) -> None:
        super().__init__(2)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _usage_error(message: str) -> UsageError:
    """Print one ``error:`` line (argparse's style) and return the exit (status 2)."""
    message = f"error: {message.removeprefix('error: ')}"
    print(f"train.py: {message}", file=sys.stderr)
    return UsageError(message)


def main(argv: list[str] | None = None) -> Path:
    """Run the registered trainer of ``--agent`` (default ``kd_edn``); returns its folder.

    A bad argument ends the program with one ``error:`` line naming its flag and exit status
    2 (argparse's convention), whether argparse, the training dataclass or the env rejects it.
    """
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
        raise _usage_error(f"--agent: no trainer for agent {agent!r}; trainable: {trainable()}")
    try:
        return spec.load_trainer()(_with_agent(argv, spec.name))
    except SystemExit as exc:
        if not isinstance(exc.code, str):  # argparse's own exit (status 2) or --help (0)
            raise
        # a trainer's "error: ..." line: name the flags that set what it rejects
        names, keys = _flags_of(argv)
        raise _usage_error(name_flags(exc.code, names, env_kw=keys)) from None


if __name__ == "__main__":
    main()
