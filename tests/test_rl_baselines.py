"""benchmarks/rl_baselines.py: rows, paired differences, targets and curves of the models."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

import agents  # noqa: F401  (registers the agents)
from agents.base import make_agent
from beamgym.datasets import make_task

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("rl_baselines", ROOT / "benchmarks/rl_baselines.py")
rb = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = rb  # dataclasses look their module up
_spec.loader.exec_module(rb)  # type: ignore[union-attr]

HARD = next(s for s in rb.SETTINGS if s.key == "fdd-hard")


@pytest.fixture(scope="module")
def group() -> dict:
    """The hard FDD setting on 8 test instances, PPO beside MMSE and RZF."""
    return rb.run_setting(dataclasses.replace(HARD, classical=("rzf", "mmse")), n=8, batch=4)


def test_rows_hold_the_committed_model_and_paired_differences(group) -> None:
    names = [r["agent"] for r in group["rows"]]
    assert names == ["ppo", "rzf", "mmse"]  # sac/td3 have no model here: left out
    ppo, rzf, mmse = group["rows"]
    assert ppo["n"] == 8 and ppo["wrapper"] == "optimal-structure"
    model = make_agent("ppo", make_task(HARD.env_id, **HARD.env_kwargs))
    assert ppo["command"] == model.checkpoint_config()["command"]
    assert ppo["train_steps"] == model.checkpoint_config()["num_timesteps"]
    # the paired mean difference is the difference of the means (same instances)
    for other in (rzf, mmse):
        diff, half = ppo["paired_difference"][other["agent"]]
        assert diff == pytest.approx(ppo["mean"] - other["mean"], abs=1e-9) and half > 0
    assert "paired_difference" not in mmse


def test_curves_are_the_trainers_log(group) -> None:
    curve = group["curves"]["ppo"]
    steps = np.array(curve["steps"])
    assert np.all(np.diff(steps) > 0) and np.all(np.diff(curve["seconds"]) > 0)
    assert len(curve["mean_metric"]) == len(steps) and np.isfinite(curve["mean_metric"]).all()
    assert steps[-1] == group["rows"][0]["train_steps"]


def test_targets_compare_the_best_rl_row_with_mmse(group) -> None:
    t = rb.targets([group])["fdd-hard"]
    ppo, _, mmse = group["rows"]
    assert t["best_rl"] == "ppo" and t["mmse"] == mmse["mean"]
    assert t["met"] == (ppo["mean"] >= mmse["mean"])
    assert t["ratio_to_wmmse"] is None  # no WMMSE row in this group


def test_committed_results_match_the_committed_models() -> None:
    """benchmarks/results/rl_baselines.json was made with the models now committed."""
    data = json.loads((ROOT / "benchmarks/results/rl_baselines.json").read_text())
    assert data["test_seed"] == rb.TEST_SEED
    for g in data["groups"]:
        task = make_task(g["env_id"], **g["env_kwargs"])
        for row in g["rows"]:
            if "wrapper" in row:
                cfg = make_agent(row["agent"], task).checkpoint_config()
                assert row["command"] == cfg["command"], (g["key"], row["agent"])
                assert row["n"] >= 200
