"""Train a learned beamgym agent; writes its checkpoint, configuration and training curve.

Usage:
    python examples/train.py --agent kd_edn --env beamgym/FullyDigitalFDD-v0
    python examples/train.py --agent kd_edn --N 8 --K 2 --L 2 --epochs 40 --out runs/tiny
    python examples/train.py --agent unfolded_pga --env beamgym/FarFieldHybrid-v0
    python examples/train.py --agent upga_m --env beamgym/ModularUplink-v0

Each family has its own options (``python examples/train.py --agent NAME --help``). Every run
writes to ``--out`` (default ``runs/<agent>``): ``checkpoint.pt``, ``config.json`` (the training
configuration and the exact command), ``train_log.csv`` and ``train_curve.png``. The committed
models under ``agents/pretrained/<agent>/<env>/`` were made this way; their ``config.json``
holds the command.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

#: Agent name -> module whose ``main(argv)`` trains it.
TRAINERS: dict[str, str] = {
    "kd_edn": "agents.kd_edn.cli",
    "edn_unsupervised": "agents.kd_edn.cli",
    "edn_supervised": "agents.kd_edn.cli",
    "kd_edn_q0": "agents.kd_edn.cli",
    "unfolded_pga": "agents.unfolded_pga.cli",
    "upga_m": "agents.upga_m.cli",
    "upga_m_sparse": "agents.upga_m.cli",
    "upga_m_quantized": "agents.upga_m.cli",
    "cnn_004": "agents.upga_m.cli",
}


def _agent_of(argv: list[str]) -> str | None:
    for i, a in enumerate(argv):
        if a == "--agent" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--agent="):
            return a.split("=", 1)[1]
    return None


def main(argv: list[str] | None = None) -> Path:
    """Dispatch to the trainer of ``--agent`` (default ``kd_edn``); returns the output folder."""
    argv = sys.argv[1:] if argv is None else list(argv)
    agent = _agent_of(argv)
    if agent is None and any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        print("agents:", ", ".join(sorted(TRAINERS)))
        raise SystemExit(0)
    agent = agent or "kd_edn"
    if agent not in TRAINERS:
        raise SystemExit(f"error: no trainer for agent {agent!r}; trainable: {sorted(TRAINERS)}")
    return importlib.import_module(TRAINERS[agent]).main(argv)


if __name__ == "__main__":
    main()
