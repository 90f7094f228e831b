"""The one training-run layer: shared options, progress, and the run folder every trainer writes.

Every learned agent's trainer (``register_agent(..., trainer="agents.<family>.train:main")``)
parses its arguments with :func:`run_parser` (the options every trainer shares: ``--agent``,
``--env``, ``--env-kw``, ``--out``, ``--no-progress``, ``--threads``) plus its own training
dataclass (:func:`agents.cli.add_dataclass_arguments`), trains, and hands the result to
:func:`write_run`, which writes the model folder:

* ``checkpoint.pt`` and ``config.json`` (:func:`agents.pretrained.write_checkpoint`; the
  config adds the exact command, the training seconds and the torch threads);
* ``train_log.csv``: one row per logged step, the family's columns;
* ``train_curve.png``: the family's panels (when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import csv
import shlex
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from agents.cli import TRAIN_SCRIPT, output_folder, positive_int
from agents.pretrained import write_checkpoint

__all__ = ["Panel", "Series", "loss_and_rate_panels", "progress_bar", "run_parser", "write_run"]


class Series(NamedTuple):
    """One line of a :class:`Panel`: ``label``, x values, y values."""

    label: str
    x: Sequence[float]
    y: Sequence[float]


class Panel(NamedTuple):
    """One subplot of ``train_curve.png``."""

    title: str
    xlabel: str
    ylabel: str
    series: Sequence[Series]


def loss_and_rate_panels(
    title: str, history: Sequence[dict], rate_label: str, train_label: str
) -> tuple[Panel, Panel]:
    """The two panels of an epoch-based trainer: training loss, and train / validation rate.

    Args:
        title: Title of the loss panel (agent and env).
        history: Rows with ``epoch``, ``loss``, ``train_rate`` and ``val_rate``; row 0 is the
            evaluation before training (no loss, no training rate).
        rate_label: y-axis label of the rate panel (with its unit).
        train_label: Legend of the training-rate line.
    """
    ep = [r["epoch"] for r in history]
    return (
        Panel(
            title, "epoch", "training loss", [Series("", ep[1:], [r["loss"] for r in history[1:]])]
        ),
        Panel(
            "rate",
            "epoch",
            rate_label,
            [
                Series(train_label, ep[1:], [r["train_rate"] for r in history[1:]]),
                Series("validation (hard projection)", ep, [r["val_rate"] for r in history]),
            ],
        ),
    )


def run_parser(
    agents: Sequence[str], env_ids: Sequence[str], description: str, *, env_kw: bool = True
) -> argparse.ArgumentParser:
    """The options every trainer shares (``--agent``, ``--env``, ``--env-kw``, ``--out``, ...).

    Args:
        agents: The agents this trainer trains (the first is the default).
        env_ids: The envs it trains on (the first is the default).
        description: The parser's description.
        env_kw: Whether to offer ``--env-kw key=value ...`` (families whose env keywords are
            training options set it to ``False``).
    """
    p = argparse.ArgumentParser(
        prog=f"examples/train.py --agent {agents[0]}", description=description
    )
    p.add_argument("--agent", default=agents[0], choices=tuple(agents), help="agent to train")
    p.add_argument("--env", default=env_ids[0], choices=tuple(env_ids), help="env id")
    if env_kw:
        p.add_argument(
            "--env-kw",
            nargs="*",
            default=[],
            help="env configuration key=value (Python literals), e.g. placement=spatial-division",
        )
    p.add_argument(
        "--out", type=output_folder, default=None, help="output folder (default runs/<agent>)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=positive_int, default=None, help="torch intra-op threads")
    return p


def progress_bar(total: int, desc: str, enabled: bool) -> Callable[..., None]:
    """A progress callback ``update(n=1, **postfix)`` (a no-op without tqdm or when disabled).

    Call ``update.close()`` at the end.
    """
    bar = None
    if enabled:
        try:
            from tqdm import tqdm

            bar = tqdm(total=total, desc=desc)
        except ImportError:  # tqdm is in the "viz" extra
            bar = None

    def update(n: int = 1, **postfix: Any) -> None:
        if bar is not None:
            bar.update(n)
            if postfix:
                bar.set_postfix(postfix)

    update.close = (lambda: bar.close()) if bar is not None else (lambda: None)  # type: ignore[attr-defined]
    return update


def write_run(
    out: str | Path,
    *,
    state: dict[str, torch.Tensor],
    config: dict[str, Any],
    argv: Sequence[str],
    seconds: float,
    rows: Sequence[dict[str, Any]],
    fields: Sequence[str],
    panels: Sequence[Panel] = (),
) -> Path:
    """Write a training run's model folder (module docstring) and return it.

    Args:
        out: The folder.
        state: The trained weights (flat dict of tensors).
        config: The checkpoint configuration (``agent``, ``env_id``, ``env_kwargs``,
            ``env_config``, ``train_config``, and family extras).
        argv: The ``examples/train.py`` arguments of the run (stored as the exact command).
        seconds: Training wall-clock time.
        rows: The log rows (``train_log.csv``).
        fields: The log columns.
        panels: The panels of ``train_curve.png``.
    """
    out = Path(out)
    meta = {
        **config,
        "command": f"{TRAIN_SCRIPT} {shlex.join([str(a) for a in argv])}",
        "train_seconds": float(seconds),
        "torch_threads": torch.get_num_threads(),
        "trained_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_checkpoint(out, state, meta)
    with open(out / "train_log.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})
    if panels:
        _plot(panels, out / "train_curve.png")
    return out


def _plot(panels: Sequence[Panel], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # the "viz" extra is not installed
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for s in panel.series:
            ax.plot(list(s.x), list(s.y), label=s.label)
        ax.set(xlabel=panel.xlabel, ylabel=panel.ylabel, title=panel.title)
        if len(panel.series) > 1:
            ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
