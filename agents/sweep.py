"""Sweeps: agents × envs × env-keyword grids × SNRs × seeds, one harness evaluation per cell.

A sweep spec (a TOML or YAML file, or the flags of ``examples/sweep.py``) lists env groups;
each group names an env, a grid of env keywords, SNRs and the agents to score. The spec
expands into *cells*, each one :func:`agents.harness.evaluate_agent` call on the fixed, seeded
test set of its env configuration, exactly what ``examples/evaluate.py`` does for the same
agent, env configuration, seed and episode count (:func:`run_cell`). Cells run serially
(``backend="local"``) or as Ray tasks (``backend="ray"``: a local Ray instance by default, an
existing cluster with ``address``; a task whose worker dies is retried).

Every finished cell is one row of a Parquet table (:data:`COLUMNS`): the env id and keywords,
the agent with its hyperparameters, the metric's mean, 95% CI and n, latencies, the package
version and the git commit. The table is rewritten (atomically) as cells finish, so a sweep
that is stopped and started again skips the cells already in it (*resumable*). A cell whose
agent has no trained model for its configuration is kept as a ``skipped`` row with the reason;
a cell that raises is kept as a ``failed`` row and retried by the next run.

Spec format (TOML; YAML has the same keys)::

    episodes = 100                 # test instances per cell (default 200)
    seeds = [1000003]              # test-set seeds (default: TEST_SEED)
    batch = 512                    # instances per batched solve
    snr_db = [5.0, 10.0]           # default SNR grid of the groups (envs with snr_db)
    device = "cpu"                 # torch device of every cell ("cuda", "cuda:1")
    threads = 1                    # torch intra-op threads per cell

    [[envs]]
    id = "beamgym/FullyDigitalFDD-v0"
    label = "hard: Rayleigh N=4 K=4" # leaderboard section title (optional)
    agents = ["mmse", "wmmse", "ga:steps=20"]  # or "all": every agent supporting the env
    snr_db = [5.0, 10.0, 15.0, 20.0]
    kwargs = { channel = ["rayleigh"], N = [4], K = [4] }  # each value: list of alternatives

Every key is checked before any cell runs (:func:`spec_from_dict`, :func:`expand`): an unknown
key, agent, env or env keyword, an agent that does not support its env, or a bad value is
refused with one :class:`SpecError` naming the field (``envs[1].kwargs.N``).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import itertools
import json
import math
import os
import socket
import subprocess
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import beamgym
from agents.base import agent_spec, make_agent, registered_agents
from agents.cli import parse_agent_entry
from agents.harness import TEST_SEED, VALIDATION_SEED, evaluate_agent
from agents.pretrained import CheckpointError
from beamgym.datasets import make_instance_set, make_task

__all__ = [
    "COLUMNS",
    "Cell",
    "EnvGroup",
    "MEASURED_COLUMNS",
    "SpecError",
    "SweepSpec",
    "comparable",
    "expand",
    "load_spec",
    "provenance",
    "read_results",
    "read_spec_file",
    "run_cell",
    "run_sweep",
    "skipped_row",
    "spec_from_dict",
]

#: The columns of a results table, in order.
COLUMNS: tuple[str, ...] = (
    "cell_id",
    "status",
    "reason",
    "group",
    "env_id",
    "env_kwargs",
    "setting",
    "snr_db",
    "seed",
    "episodes",
    "agent",
    "agent_kwargs",
    "agent_name",
    "agent_hparams",
    "mode",
    "metric_name",
    "metric_sign",
    "metric_mean",
    "metric_ci95",
    "n",
    "reward_mean",
    "reward_ci95",
    "projected_fraction",
    "extras",
    "feedback_bits",
    "latency_batched_us",
    "latency_single_us",
    "cell_wall_s",
    "worker",
    "attempt_pid",
    "finished_at",
    "beamgym_version",
    "git_commit",
)
#: Columns that are measurements of the run (timings, where and when it ran): two runs of the
#: same spec agree on every other column (:func:`comparable`).
MEASURED_COLUMNS: tuple[str, ...] = (
    "latency_batched_us",
    "latency_single_us",
    "cell_wall_s",
    "worker",
    "attempt_pid",
    "finished_at",
)
_TOP_KEYS = {"episodes", "seeds", "batch", "snr_db", "envs", "device", "threads"}
_GROUP_KEYS = {"id", "label", "agents", "kwargs", "snr_db"}


class SpecError(ValueError):
    """A sweep spec that cannot run; the message names the field and how to fix it."""


@dataclasses.dataclass(frozen=True)
class EnvGroup:
    """One env of a sweep: its keyword grid, SNRs and agents.

    Attributes:
        env_id: Registered env id (``beamgym/FullyDigitalFDD-v0``).
        agents: Agent entries, ``name`` or ``name:key=value,...`` (hyperparameters).
        kwargs: Env keyword -> alternatives; the group runs their Cartesian product.
        snr_db: SNRs in dB (one setting each; empty: the env's default / no SNR keyword).
        label: Title of the group in result tables and the leaderboard.
        auto_agents: ``True`` when ``agents = "all"``: agents that cannot be built for a
            setting are listed as skipped instead of refusing the spec.
    """

    env_id: str
    agents: tuple[str, ...]
    kwargs: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    snr_db: tuple[float, ...] = ()
    label: str = ""
    auto_agents: bool = False

    def settings(self) -> list[dict[str, Any]]:
        """Every env configuration of the group: the keyword grid times the SNRs."""
        names = [k for k, _ in self.kwargs]
        grid = [dict(zip(names, values, strict=True)) for values in _product(self.kwargs)]
        if not self.snr_db:
            return grid
        return [{**kw, "snr_db": s} for kw in grid for s in self.snr_db]


def _product(kwargs: tuple[tuple[str, tuple[Any, ...]], ...]) -> Iterable[tuple[Any, ...]]:
    return itertools.product(*(values for _, values in kwargs))


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    """A validated sweep spec (:func:`spec_from_dict`, :func:`load_spec`).

    Attributes:
        groups: The env groups.
        episodes: Test instances per cell (``examples/evaluate.py --episodes``).
        seeds: Test-set seeds; one cell per seed (default: the harness's fixed TEST_SEED).
        batch: Instances per batched ``solve`` call.
        device: Torch device of the cells (``"cpu"`` or ``"cuda"``).
        threads: Torch intra-op threads per cell.
    """

    groups: tuple[EnvGroup, ...]
    episodes: int = 200
    seeds: tuple[int, ...] = (TEST_SEED,)
    batch: int = 512
    device: str = "cpu"
    threads: int = 1


@dataclasses.dataclass(frozen=True)
class Cell:
    """One harness evaluation: one agent on the seeded test set of one env configuration.

    Attributes:
        env_id: Env id.
        env_kwargs: Env keywords (the instance set's and the agent's configuration).
        agent: Registry name.
        agent_kwargs: The agent's hyperparameters given in the spec (the rest: defaults).
        seed: Test-set seed.
        episodes: Test instances.
        batch: Instances per batched solve.
        group: Label of the env group the cell belongs to.
        device: Torch device.
        threads: Torch intra-op threads.
    """

    env_id: str
    env_kwargs: Mapping[str, Any]
    agent: str
    agent_kwargs: Mapping[str, Any]
    seed: int
    episodes: int
    batch: int = 512
    group: str = ""
    device: str = "cpu"
    threads: int = 1

    @property
    def cell_id(self) -> str:
        """Stable id of what the cell computes (not of how or where it runs)."""
        key = {
            "env_id": self.env_id,
            "env_kwargs": _jsonable(dict(self.env_kwargs)),
            "agent": self.agent,
            "agent_kwargs": _jsonable(dict(self.agent_kwargs)),
            "seed": self.seed,
            "episodes": self.episodes,
            "batch": self.batch,
            "device": self.device,
        }
        text = json.dumps(key, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:16]


# ---- spec -----------------------------------------------------------------------------------
def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep spec file (``.toml``; ``.yaml``/``.yml`` with PyYAML).

    Raises:
        SpecError: An unreadable file or an invalid spec (the message names the field).
    """
    return spec_from_dict(read_spec_file(path))


def read_spec_file(path: str | Path) -> dict[str, Any]:
    """The raw keys of a spec file, not yet validated (``examples/sweep.py`` overrides some).

    Raises:
        SpecError: Not a file, not valid TOML/YAML, or another format.
    """
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"spec {str(path)!r} is not a file; pass a .toml or .yaml sweep spec")
    text = path.read_text()
    if path.suffix == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10: the sweep extra installs tomli
            import tomli as tomllib  # type: ignore[no-redef]
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpecError(f"spec {path}: not valid TOML ({exc})") from None
    elif path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise SpecError(
                f"spec {path}: reading YAML needs PyYAML (pip install pyyaml), or write the "
                "spec as TOML"
            ) from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"spec {path}: not valid YAML ({exc})") from None
    else:
        raise SpecError(f"spec {path}: unknown format {path.suffix!r}; use .toml or .yaml")
    if not isinstance(data, dict):
        raise SpecError(f"spec {path}: expected a table of keys, got {type(data).__name__}")
    return dict(data)


def spec_from_dict(data: Mapping[str, Any]) -> SweepSpec:
    """Validate a spec read from TOML/YAML (or built in code); see the module docstring.

    Checks names and types only; :func:`expand` builds every env configuration and agent
    before any cell runs.

    Raises:
        SpecError: Naming the first bad field.
    """
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise SpecError(f"unknown spec key(s) {unknown}; valid keys: {sorted(_TOP_KEYS)}")
    episodes = _int(data.get("episodes", 200), "episodes", 1)
    batch = _int(data.get("batch", 512), "batch", 1)
    threads = _int(data.get("threads", 1), "threads", 1)
    seeds_raw = data.get("seeds", [TEST_SEED])
    seeds = tuple(_int(s, f"seeds[{i}]", 0) for i, s in enumerate(_list(seeds_raw, "seeds")))
    if len(set(seeds)) != len(seeds):
        raise SpecError(f"seeds has duplicates: {list(seeds)}; list each seed once")
    device = data.get("device", "cpu")
    if device not in ("cpu", "cuda") and not (isinstance(device, str) and device[:5] == "cuda:"):
        raise SpecError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    default_snr = _snrs(data.get("snr_db", []), "snr_db")
    envs = _list(data.get("envs"), "envs")
    groups = tuple(_group(g, f"envs[{i}]", default_snr) for i, g in enumerate(envs))
    return SweepSpec(groups, episodes, seeds, batch, device, threads)


def _group(g: Any, where: str, default_snr: tuple[float, ...]) -> EnvGroup:
    if not isinstance(g, Mapping):
        raise SpecError(f"{where} must be a table with id, agents, kwargs, snr_db")
    unknown = sorted(set(g) - _GROUP_KEYS)
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown}; valid: {sorted(_GROUP_KEYS)}")
    env_id = g.get("id")
    if env_id not in beamgym.ENV_IDS:
        raise SpecError(f"{where}.id must be one of {list(beamgym.ENV_IDS)}, got {env_id!r}")
    config_fields = _config_fields(env_id)
    kwargs_raw = g.get("kwargs", {})
    if not isinstance(kwargs_raw, Mapping):
        raise SpecError(f"{where}.kwargs must be a table of keyword -> list of alternatives")
    kwargs = []
    for key, values in kwargs_raw.items():
        field = f"{where}.kwargs.{key}"
        if key not in config_fields:
            raise SpecError(
                f"{field}: {env_id} has no keyword {key!r}; valid: {sorted(config_fields)}"
            )
        if key == "snr_db":
            raise SpecError(f"{field}: give SNRs as {where}.snr_db, not as a keyword")
        alternatives = _list(values, field)
        kwargs.append((str(key), tuple(_from_spec(v) for v in alternatives)))
    snr = _snrs(g["snr_db"], f"{where}.snr_db") if "snr_db" in g else default_snr
    if snr and "snr_db" not in config_fields:
        raise SpecError(
            f"{where}.snr_db: {env_id} has no snr_db keyword; leave snr_db out for this env"
        )
    agents_raw = g.get("agents")
    specs = registered_agents()
    auto = agents_raw == "all"
    if auto:
        entries = tuple(n for n, s in sorted(specs.items()) if env_id in s.env_ids)
    else:
        entries = tuple(_list(agents_raw, f"{where}.agents"))
        for j, entry in enumerate(entries):
            field = f"{where}.agents[{j}]"
            if not isinstance(entry, str):
                raise SpecError(f"{field} must be a string name or name:key=value,...")
            try:
                name, akw = parse_agent_entry(entry, field)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    spec = agent_spec(name)
            except ValueError as exc:
                raise SpecError(f"{field}: {exc}") from None
            if env_id not in spec.env_ids:
                raise SpecError(
                    f"{field}: agent {name!r} does not support {env_id}; it supports "
                    f"{list(spec.env_ids)}"
                )
            params = _hparam_names(spec.name)
            bad = sorted(k for k in akw if params is not None and k not in params)
            if bad:
                raise SpecError(
                    f"{field}: agent {name!r} has no hyperparameter(s) {bad}; valid: "
                    f"{sorted(params or ())}"
                )
    if len(set(entries)) != len(entries):
        raise SpecError(f"{where}.agents lists an agent twice: {list(entries)}")
    label = g.get("label", "")
    if not isinstance(label, str):
        raise SpecError(f"{where}.label must be a string, got {label!r}")
    return EnvGroup(env_id, entries, tuple(kwargs), snr, label, auto)


def _hparam_names(name: str) -> set[str] | None:
    """The keywords the agent's factory names (``None``: it takes ``**kwargs``)."""
    import inspect

    spec = registered_agents()[name]
    try:
        params = inspect.signature(spec.factory).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return None  # make_agent checks them when expand builds the agent
    return {n for n in params if n not in ("self", "env")} | set(spec.defaults)


def _config_fields(env_id: str) -> set[str]:
    task = make_task(env_id)
    return {f.name for f in dataclasses.fields(task.config)} | {"precision"}


def _list(v: Any, field: str) -> list[Any]:
    if isinstance(v, str) or not isinstance(v, list | tuple) or not v:
        raise SpecError(f"{field} must be a non-empty list, got {v!r}")
    return list(v)


def _int(v: Any, field: str, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise SpecError(f"{field} must be an integer >= {minimum}, got {v!r}")
    return v


def _snrs(v: Any, field: str) -> tuple[float, ...]:
    if v == []:
        return ()
    values = _list(v, field)
    for i, s in enumerate(values):
        if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s):
            raise SpecError(f"{field}[{i}] must be a finite number of dB, got {s!r}")
    if len(set(values)) != len(values):
        raise SpecError(f"{field} has duplicates: {values}")
    return tuple(float(s) for s in values)


def _from_spec(v: Any) -> Any:
    """A keyword value from TOML/YAML: lists become the tuples the configs take."""
    if isinstance(v, list):
        return tuple(_from_spec(x) for x in v)
    return v


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in sorted(v.items())}
    return v


# ---- expansion: every configuration and agent checked before any cell runs -------------------
def expand(spec: SweepSpec) -> tuple[list[Cell], list[dict[str, Any]]]:
    """The cells of ``spec``, checked: every env configuration and agent is built once.

    Each distinct env configuration is built (``make_task``), and each agent entry is built
    on the first SNR of each keyword combination, as ``examples/evaluate.py`` checks its
    arguments. A learned agent without a trained model for a configuration
    (:class:`~agents.pretrained.CheckpointError`) is not an error of the spec: its cells run
    and are recorded as ``skipped`` with the reason. With ``agents = "all"``, an agent that
    the configuration rules out (e.g. PGA needs ``analog="phase-shifter"``) is skipped too.

    Returns:
        ``(cells, skipped)``: the cells to run, and one row (:func:`skipped_row`) per cell
        left out of an ``agents = "all"`` group, with the reason.

    Raises:
        SpecError: An env configuration the env rejects, or an explicitly listed agent that
            cannot be built for it (naming ``envs[i].kwargs`` / ``envs[i].agents[j]``).
    """
    cells: list[Cell] = []
    skipped: list[dict[str, Any]] = []
    for i, group in enumerate(spec.groups):
        where = f"envs[{i}]"
        label = group.label or group.env_id.removeprefix("beamgym/")
        tasks = {}
        for kw in group.settings():
            key = json.dumps(_jsonable(kw), sort_keys=True)
            try:
                tasks[key] = make_task(group.env_id, **kw)
            except (ValueError, TypeError) as exc:
                raise SpecError(
                    f"{where}.kwargs / snr_db: {group.env_id} with {kw}: {exc}"
                ) from None
        for j, entry in enumerate(group.agents):
            name, akw = parse_agent_entry(entry, f"{where}.agents[{j}]")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                name = agent_spec(name).name
            unusable: dict[str, str] = {}  # setting without snr -> reason
            checked: set[str] = set()
            for kw in group.settings():
                base = {k: v for k, v in kw.items() if k != "snr_db"}
                base_key = json.dumps(_jsonable(base), sort_keys=True)
                if base_key not in checked:  # built on the first SNR of each setting
                    checked.add(base_key)
                    task = tasks[json.dumps(_jsonable(kw), sort_keys=True)]
                    try:
                        make_agent(name, task, **akw)
                    except CheckpointError:
                        pass  # recorded per cell by run_cell, with its reason
                    except (ValueError, TypeError) as exc:
                        if not group.auto_agents:
                            raise SpecError(
                                f"{where}.agents[{j}]: {entry!r} on {group.env_id} with {kw}: {exc}"
                            ) from None
                        unusable[base_key] = f"cannot be built for this setting: {exc}"
                for seed in spec.seeds:
                    cell = Cell(
                        group.env_id,
                        dict(kw),
                        name,
                        dict(akw),
                        seed,
                        spec.episodes,
                        spec.batch,
                        label,
                        spec.device,
                        spec.threads,
                    )
                    if base_key in unusable:
                        skipped.append(skipped_row(cell, unusable[base_key]))
                    else:
                        cells.append(cell)
    ids = [c.cell_id for c in cells]
    if len(set(ids)) != len(ids):
        raise SpecError("the spec lists the same cell twice (an env group repeated); merge them")
    return cells, skipped


# ---- one cell ---------------------------------------------------------------------------------
def run_cell(cell: Cell) -> dict[str, Any]:
    """Evaluate one cell exactly as ``examples/evaluate.py`` does; one table row.

    ``make_instance_set(env_id, n=episodes, seed=seed, **env_kwargs)``, the agent built with
    ``make_agent`` on ``make_task(env_id, **env_kwargs)``, calibrated on its validation set
    (``VALIDATION_SEED``) if it has one, and scored by ``evaluate_agent``. A learned agent
    without a trained model for the configuration gives a ``skipped`` row; any other error a
    ``failed`` row (both with the reason); a worker that dies raises (Ray retries the task).
    """
    import torch

    torch.set_num_threads(cell.threads)
    t0 = time.perf_counter()
    kw = dict(cell.env_kwargs)
    try:
        task = make_task(cell.env_id, device=cell.device, **kw)
        agent = make_agent(cell.agent, task, **cell.agent_kwargs)
        ds = make_instance_set(cell.env_id, n=cell.episodes, seed=cell.seed, **kw)
        ds = dataclasses.replace(ds, instances=ds.instances.to(cell.device))
        n_val = registered_agents()[cell.agent].validation_size
        if n_val > 0:  # calibrate on held-out instances, never on the test set
            agent.learn(make_instance_set(cell.env_id, n=n_val, seed=VALIDATION_SEED, **kw))
        result = evaluate_agent(agent, ds, batch_size=cell.batch)
    except CheckpointError as exc:  # built lazily by some agents (RL): no model, not a failure
        return skipped_row(cell, f"no trained model: {exc}")
    except Exception as exc:  # noqa: BLE001 - a failed cell is a row, the sweep goes on
        row = _base_row(cell, "failed", f"{type(exc).__name__}: {exc}")
        row["cell_wall_s"] = time.perf_counter() - t0
        return row
    s = result.summary()
    row = _base_row(cell, "ok", "")
    extras = {
        k: s[k]
        for k in s
        if k.endswith(("_mean", "_ci95")) and not k.startswith(("metric_", "reward_"))
    }
    row.update(
        agent_name=result.agent,
        agent_hparams=json.dumps(_jsonable(dict(agent.hparams)), sort_keys=True, default=str),
        mode=result.mode,
        metric_name=result.metric_name,
        metric_sign=int(result.metric_sign),
        metric_mean=s["metric_mean"],
        metric_ci95=_nan(s["metric_ci95"]),
        n=result.n,
        reward_mean=s["reward_mean"],
        reward_ci95=_nan(s["reward_ci95"]),
        projected_fraction=float(result.projected_fraction),
        extras=json.dumps(extras, sort_keys=True),
        feedback_bits=json.dumps(s.get("feedback_bits"), sort_keys=True),
        latency_batched_us=_nan(s["latency_batched_us"]),
        latency_single_us=_nan(s["latency_single_us"]),
        cell_wall_s=time.perf_counter() - t0,
    )
    return row


def _nan(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _base_row(cell: Cell, status: str, reason: str) -> dict[str, Any]:
    kw = dict(cell.env_kwargs)
    setting = {k: v for k, v in kw.items() if k != "snr_db"}
    return {
        "cell_id": cell.cell_id,
        "status": status,
        "reason": reason,
        "group": cell.group,
        "env_id": cell.env_id,
        "env_kwargs": json.dumps(_jsonable(kw), sort_keys=True),
        "setting": json.dumps(_jsonable(setting), sort_keys=True),
        "snr_db": float(kw["snr_db"]) if "snr_db" in kw else float("nan"),
        "seed": int(cell.seed),
        "episodes": int(cell.episodes),
        "agent": cell.agent,
        "agent_kwargs": json.dumps(_jsonable(dict(cell.agent_kwargs)), sort_keys=True),
        "agent_name": cell.agent,
        "agent_hparams": "{}",
        "mode": "",
        "metric_name": "",
        "metric_sign": 0,
        "metric_mean": float("nan"),
        "metric_ci95": float("nan"),
        "n": 0,
        "reward_mean": float("nan"),
        "reward_ci95": float("nan"),
        "projected_fraction": float("nan"),
        "extras": "{}",
        "feedback_bits": "null",
        "latency_batched_us": float("nan"),
        "latency_single_us": float("nan"),
        "cell_wall_s": 0.0,
        "worker": socket.gethostname(),
        "attempt_pid": os.getpid(),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "beamgym_version": "",
        "git_commit": "",
    }


def skipped_row(cell: Cell, reason: str) -> dict[str, Any]:
    """The ``skipped`` row of a cell that cannot run, with the reason."""
    return _base_row(cell, "skipped", reason)


# ---- provenance ---------------------------------------------------------------------------------
def provenance() -> dict[str, str]:
    """``beamgym_version`` (installed metadata, else ``beamgym.__version__``) and ``git_commit``.

    The commit is the checkout's ``HEAD``, with ``+dirty`` when tracked files differ from it,
    and ``unknown`` outside a git checkout.
    """
    try:
        from importlib.metadata import PackageNotFoundError, version

        ver = version("beamgym")
    except PackageNotFoundError:
        ver = beamgym.__version__
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"beamgym_version": ver, "git_commit": "unknown"}
    return {"beamgym_version": ver, "git_commit": head + ("+dirty" if dirty else "")}


# ---- the results table -------------------------------------------------------------------
def _pandas() -> Any:
    try:
        import pandas as pd
        import pyarrow  # noqa: F401
    except ImportError:
        raise ImportError(
            "sweeps write Parquet tables with pandas and pyarrow: pip install 'beamgym[sweep]'"
        ) from None
    return pd


def read_results(path: str | Path) -> Any:
    """The results table at ``path`` as a ``pandas.DataFrame``.

    Empty, with :data:`COLUMNS`, if the file does not exist yet.

    Raises:
        ValueError: The file is not a sweep table.
    """
    pd = _pandas()
    path = Path(path)
    if not path.exists():
        return pd.DataFrame({c: [] for c in COLUMNS})
    df = pd.read_parquet(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path} is not a beamgym sweep table (missing columns {missing}); pass another "
            "--out or delete the file"
        )
    return df


def _write(rows: Sequence[dict[str, Any]], path: Path) -> None:
    pd = _pandas()
    df = pd.DataFrame(list(rows), columns=list(COLUMNS))
    df = df.sort_values(["group", "env_id", "setting", "snr_db", "agent", "agent_kwargs", "seed"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    df.reset_index(drop=True).to_parquet(tmp, index=False)
    os.replace(tmp, path)  # atomic: a killed driver leaves the previous table intact


def comparable(df: Any) -> Any:
    """``df`` without :data:`MEASURED_COLUMNS`, sorted by cell: what two runs must agree on."""
    out = df.drop(columns=[c for c in MEASURED_COLUMNS if c in df.columns])
    return out.sort_values("cell_id").reset_index(drop=True)


# ---- running -----------------------------------------------------------------------------------
def run_sweep(
    spec: SweepSpec,
    out: str | Path,
    *,
    backend: str = "ray",
    address: str | None = None,
    workers: int | None = None,
    max_retries: int = 3,
    progress: bool = True,
    flush_every_s: float = 2.0,
    on_submit: Callable[[int], None] | None = None,
) -> Any:
    """Run every cell of ``spec`` not yet in the table ``out``; return the full table.

    Args:
        spec: The validated spec (:func:`load_spec`, :func:`spec_from_dict`).
        out: The Parquet table; cells already in it (``ok`` or ``skipped``) are not run again,
            ``failed`` ones are retried.
        backend: ``"ray"`` (Ray tasks) or ``"local"`` (serial, in this process, no Ray).
        address: Ray cluster to join (``ray.init(address=...)``); ``None``: a local Ray
            instance with ``workers`` CPUs (every CPU when ``None``). Ignored when Ray is
            already initialized in this process (the running session is used).
        workers: Local Ray worker processes (CPUs); ``backend="local"`` needs ``None`` or 1.
        max_retries: Ray retries of a cell whose worker process dies.
        progress: Show a tqdm progress bar over cells.
        flush_every_s: Rewrite the table at most this often while cells finish (and at the end).
        on_submit: Called with the number of cells about to run (tests use it).

    Returns:
        The results table (``pandas.DataFrame``, one row per cell, :data:`COLUMNS`).

    Raises:
        ValueError: A bad ``backend``, ``workers`` or ``max_retries``.
        SpecError: An invalid spec (:func:`expand`), before any cell runs.
    """
    if backend not in ("ray", "local"):
        raise ValueError(f"backend must be 'ray' or 'local', got {backend!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise ValueError(f"workers must be an integer >= 1 or None, got {workers!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be an integer >= 1 or None, got {workers!r}")
    if backend == "local" and workers not in (None, 1):
        raise ValueError(f"backend='local' runs cells serially: workers must be 1, got {workers}")
    if backend == "local" and address is not None:
        raise ValueError("address joins a Ray cluster: use backend='ray' with it")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
    out = Path(out)
    cells, skipped = expand(spec)
    prov = provenance()
    table = read_results(out)
    rows = {r["cell_id"]: r for r in table.to_dict("records")}
    finished = {cid for cid, r in rows.items() if r["status"] in ("ok", "skipped")}
    for r in skipped:
        if r["cell_id"] not in finished:
            rows[r["cell_id"]] = {**r, **prov}
    todo = [c for c in cells if c.cell_id not in finished]
    if on_submit is not None:
        on_submit(len(todo))
    bar = _bar(len(cells), len(cells) - len(todo), progress)
    last = [time.monotonic()]

    def done(row: dict[str, Any]) -> None:
        rows[row["cell_id"]] = {**row, **prov}
        bar.update(1)
        bar.set_postfix_str(f"{row['agent']} {row['status']}", refresh=False)
        if time.monotonic() - last[0] >= flush_every_s:
            _write(list(rows.values()), out)
            last[0] = time.monotonic()

    try:
        if backend == "local":
            for cell in todo:
                done(run_cell(cell))
        elif todo:
            _run_ray(todo, done, address, workers, max_retries)
    finally:
        bar.close()
        _write(list(rows.values()), out)
    return read_results(out)


def _bar(total: int, initial: int, enabled: bool) -> Any:
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is in the viz extra; the sweep runs without a bar
        enabled = False
    if not enabled:

        class _NoBar:
            def update(self, n: int = 1) -> None: ...
            def set_postfix_str(self, s: str, refresh: bool = True) -> None: ...
            def close(self) -> None: ...

        return _NoBar()
    return tqdm(total=total, initial=initial, unit="cell", desc="sweep")


def _run_ray(
    todo: list[Cell],
    done: Callable[[dict[str, Any]], None],
    address: str | None,
    workers: int | None,
    max_retries: int,
) -> None:
    try:
        import ray
    except ImportError:
        raise ImportError(
            "backend='ray' needs Ray: pip install 'beamgym[sweep]', or run with --backend local"
        ) from None
    started = not ray.is_initialized()
    if started:
        if address is not None:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        remote = ray.remote(num_cpus=1, max_retries=max_retries)(run_cell)
        pending = {remote.remote(c): c for c in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                cell = pending.pop(ref)
                try:
                    row = ray.get(ref)
                except ray.exceptions.RayError as exc:  # the worker died max_retries + 1 times
                    row = _base_row(cell, "failed", f"{type(exc).__name__}: {exc}"[:2000])
                done(row)
    finally:
        if started:
            ray.shutdown()
