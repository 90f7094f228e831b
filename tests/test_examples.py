"""End-to-end check of examples/evaluate.py, the harness CLI behind the README's main command."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "examples" / "evaluate.py")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True)


def test_list_prints_the_registry() -> None:
    out = _run("--list")
    assert out.returncode == 0, out.stderr
    assert "random" in out.stdout and "envs:" in out.stdout


def test_evaluate_writes_results_and_plots(tmp_path: Path) -> None:
    args = ["--agent", "mmse", "--compare", "random", "--snr-db", "5", "15", "--episodes", "16"]
    out = _run(*args, "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    rows = json.loads((tmp_path / "results.json").read_text())
    assert len(rows) == 4 and {r["env_id"] for r in rows} == {"beamgym/FullyDigitalFDD-v0"}
    by = {(r["agent"].split("(")[0], r["env_kwargs"]["snr_db"]): r for r in rows}
    for snr in (5.0, 15.0):
        assert by[("mmse", snr)]["metric_mean"] > 10 * by[("random", snr)]["metric_mean"]
    assert by[("mmse", 15.0)]["metric_mean"] > by[("mmse", 5.0)]["metric_mean"]
    with (tmp_path / "results.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (tmp_path / "metric_vs_snr.png").stat().st_size > 0
    # same test seed -> same instances -> same numbers (float32 reductions may differ in the
    # last bits across processes with other thread schedules)
    again = _run(*args, "--out", str(tmp_path / "b"))
    rows_b = json.loads((tmp_path / "b" / "results.json").read_text())
    a = [r["metric_mean"] for r in rows]
    assert [r["metric_mean"] for r in rows_b] == pytest.approx(a, rel=1e-5), again.stderr


def test_unknown_agent_and_unsupported_env_fail_clearly() -> None:
    out = _run("--agent", "nope")
    assert out.returncode != 0 and "unknown agent" in out.stderr
