"""Sweeps (agents.sweep): spec checks, evaluate.py-identical cells, resuming, Ray, a killed worker.

Tiny cells (Rayleigh N=4, K=4, a few instances) and one module-scoped Ray session with two
CPUs keep the file near 30 s on two shared cores.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

import agents  # noqa: E402, F401
from agents.harness import TEST_SEED  # noqa: E402
from agents.sweep import (  # noqa: E402
    COLUMNS,
    Cell,
    SpecError,
    comparable,
    expand,
    load_spec,
    read_results,
    run_cell,
    run_sweep,
    spec_from_dict,
)

ROOT = Path(__file__).resolve().parents[2]
HARD = {"channel": ["rayleigh"], "N": [4], "K": [4]}
FDD = "beamgym/FullyDigitalFDD-v0"


def _spec(**top):
    group = {"id": FDD, "agents": ["mmse", "wmmse"], "kwargs": HARD, "snr_db": [5, 10, 15]}
    return spec_from_dict({"episodes": 24, "envs": [group], **top})


def _load_script(name: str):
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


# ---- the spec is refused before any cell runs ---------------------------------------------------
@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"episodes": 0}, "episodes"),
        ({"seeds": [-1]}, "seeds[0]"),
        ({"unknown_key": 1}, "unknown_key"),
        ({"envs": [{"id": "beamgym/Nope-v0", "agents": ["mmse"]}]}, "envs[0].id"),
        ({"envs": [{"id": FDD, "agents": ["nope"]}]}, "envs[0].agents[0]"),
        ({"envs": [{"id": FDD, "agents": ["mmse", "pga"]}]}, "envs[0].agents[1]"),
        ({"envs": [{"id": FDD, "agents": ["wmmse:max_itr=3"]}]}, "envs[0].agents[0]"),
        ({"envs": [{"id": FDD, "agents": ["mmse"], "kwargs": {"Q": [1]}}]}, "envs[0].kwargs.Q"),
        ({"envs": [{"id": FDD, "agents": ["mmse"], "kwargs": {"N": 4}}]}, "envs[0].kwargs.N"),
        ({"envs": [{"id": FDD, "agents": ["mmse"], "snr_db": [float("nan")]}]}, "envs[0].snr_db"),
        (
            {"envs": [{"id": "beamgym/OutageHybrid-v0", "agents": ["random"], "snr_db": [5]}]},
            "envs[0].snr_db",
        ),
    ],
)
def test_bad_spec_names_the_field(change: dict, field: str) -> None:
    data = {"envs": [{"id": FDD, "agents": ["mmse"]}], **change}
    with pytest.raises(SpecError, match=re.escape(field)):
        expand(spec_from_dict(data))


def test_bad_value_refused_by_expand_before_any_cell(tmp_path: Path) -> None:
    bad = spec_from_dict(
        {"envs": [{"id": FDD, "agents": ["mmse"], "kwargs": {"N": [4, -2]}, "snr_db": [5]}]}
    )
    out = tmp_path / "r.parquet"
    with pytest.raises(SpecError, match=r"envs\[0\]\.kwargs.*N must be >= 1"):
        run_sweep(bad, out, backend="local", progress=False)
    assert not out.exists()  # nothing ran, nothing written
    # an agent that rejects the configuration, listed explicitly: refused, naming the entry
    pga = spec_from_dict({"envs": [{"id": "beamgym/FarFieldHybrid-v0", "agents": ["pga"]}]})
    with pytest.raises(SpecError, match=r"envs\[0\]\.agents\[0\].*phase-shifter"):
        expand(pga)


def test_spec_file_toml(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text(
        'episodes = 8\n[[envs]]\nid = "beamgym/FullyDigitalFDD-v0"\nagents = ["mmse", '
        '"ga:steps=3"]\nsnr_db = [5, 10]\nkwargs = { channel = ["rayleigh"], N = [4, 8], '
        "K = [4] }\n"
    )
    spec = load_spec(path)
    cells, skipped = expand(spec)
    assert len(cells) == 2 * 2 * 2 and not skipped
    assert {c.env_kwargs["N"] for c in cells} == {4, 8}
    assert {c.seed for c in cells} == {TEST_SEED}
    assert {dict(c.agent_kwargs).get("steps") for c in cells} == {None, 3}
    assert len({c.cell_id for c in cells}) == len(cells)
    path.write_text("episodes = [")
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(path)


def test_spec_file_yaml(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "s.yaml"
    path.write_text(
        "episodes: 8\nseeds: [1, 2]\nenvs:\n  - id: beamgym/OutageHybrid-v0\n"
        "    agents: [random]\n    kwargs: {constraint_groups: [true, false]}\n"
    )
    cells, _ = expand(load_spec(path))
    assert len(cells) == 2 * 2
    assert {(c.seed, c.env_kwargs["constraint_groups"]) for c in cells} == {
        (1, True),
        (1, False),
        (2, True),
        (2, False),
    }


# ---- a cell is exactly examples/evaluate.py's evaluation ----------------------------------------
def test_cell_identical_to_evaluate_py() -> None:
    ev = _load_script("evaluate")
    args, _ = ev.parse_args(
        ["--agent", "mmse_ga", "--compare", "kd_edn_q0", "--episodes", "16", "--snr-db", "10"]
    )
    reference = {r.agent.split("(")[0]: r.summary() for r in ev.run(args)}
    for name in ("mmse_ga", "kd_edn_q0"):  # a classical solver and a committed learned model
        row = run_cell(Cell(FDD, {"snr_db": 10.0}, name, {}, TEST_SEED, 16))
        ref = reference[name]
        assert row["status"] == "ok", row["reason"]
        assert row["metric_mean"] == ref["metric_mean"]
        assert row["metric_ci95"] == ref["metric_ci95"]
        assert row["reward_mean"] == ref["reward_mean"]
        assert row["n"] == ref["n"] == 16
    assert ev.TEST_SEED == TEST_SEED  # the script and the sweep share the harness's seed


def test_cell_without_model_is_skipped_with_reason() -> None:
    row = run_cell(Cell(FDD, {"channel": "rayleigh", "N": 4, "K": 4}, "kd_edn", {}, 1, 4))
    assert row["status"] == "skipped"
    assert "no trained model" in row["reason"] and "examples/train.py" in row["reason"]
    assert np.isnan(row["metric_mean"])


def test_all_agents_group_skips_unbuildable_with_reason() -> None:
    spec = spec_from_dict({"envs": [{"id": "beamgym/FarFieldHybrid-v0", "agents": "all"}]})
    cells, skipped = expand(spec)
    reasons = {r["agent"]: r["reason"] for r in skipped}
    assert {"pga", "hybrid_zf", "unfolded_pga"} <= set(reasons)
    assert all("phase-shifter" in reasons[a] for a in ("pga", "hybrid_zf"))
    assert "mmse" in {c.agent for c in cells}


# ---- the table: provenance, resuming ---------------------------------------------------------
@pytest.fixture(scope="module")
def local_table(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("sweep") / "local.parquet"
    df = run_sweep(_spec(), out, backend="local", progress=False)
    return out, df


def test_local_table_rows_and_provenance(local_table) -> None:
    _, df = local_table
    assert list(df.columns) == list(COLUMNS)
    assert len(df) == 6 and set(df["status"]) == {"ok"}
    assert set(df["snr_db"]) == {5.0, 10.0, 15.0}
    assert (df["n"] == 24).all() and (df["metric_ci95"] > 0).all()
    assert (df["latency_batched_us"] > 0).all() and (df["latency_single_us"] > 0).all()
    assert df["git_commit"].str.fullmatch(r"[0-9a-f]{40}(\+dirty)?|unknown").all()
    assert (df["beamgym_version"] != "").all()
    wmmse = df[df["agent"] == "wmmse"].iloc[0]
    assert wmmse["agent_name"].startswith("wmmse(") and '"max_iter": 500' in wmmse["agent_hparams"]
    # the rate grows with the SNR for both solvers
    for _, g in df.groupby("agent"):
        assert g.sort_values("snr_db")["metric_mean"].is_monotonic_increasing


def test_resume_skips_finished_cells(local_table, tmp_path: Path) -> None:
    src, df = local_table
    out = tmp_path / "r.parquet"
    out.write_bytes(src.read_bytes())
    counts: list[int] = []
    again = run_sweep(_spec(), out, backend="local", progress=False, on_submit=counts.append)
    assert counts == [0]
    pd.testing.assert_frame_equal(again, df)
    # one cell lost (or failed): exactly that cell runs again, with the same numbers
    df.drop(index=2).to_parquet(out, index=False)
    resumed = run_sweep(_spec(), out, backend="local", progress=False, on_submit=counts.append)
    assert counts == [0, 1]
    pd.testing.assert_frame_equal(comparable(resumed), comparable(df))


def test_read_results_refuses_other_tables(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(path)
    with pytest.raises(ValueError, match="not a beamgym sweep table"):
        read_results(path)


def test_run_sweep_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="backend"):
        run_sweep(_spec(), tmp_path / "a.parquet", backend="dask")
    with pytest.raises(ValueError, match="workers"):
        run_sweep(_spec(), tmp_path / "a.parquet", backend="local", workers=2)
    with pytest.raises(ValueError, match="max_retries"):
        run_sweep(_spec(), tmp_path / "a.parquet", max_retries=-1)


def test_cli_refuses_bad_spec_and_dry_runs(capsys: pytest.CaptureFixture[str]) -> None:
    sweep = _load_script("sweep")
    with pytest.raises(SystemExit) as exc:
        sweep.main(["--env", FDD, "--agent", "mmse", "--env-kw", "Q=1"])
    assert exc.value.code == 2
    assert "--env-kw Q: beamgym/FullyDigitalFDD-v0 has no keyword 'Q'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        sweep.main(["--env", FDD, "--agent", "mmse", "pga"])
    assert "error: --agent: agent 'pga' does not support" in capsys.readouterr().err
    sweep.main(
        ["--env", FDD, "--agent", "mmse", "--env-kw", "N=4", "N=8", "--snr-db", "5", "--dry-run"]
    )
    assert "2 cells to evaluate" in capsys.readouterr().out


# ---- Ray: the same table, and a killed worker loses nothing -----------------------------------
@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def _task_pids() -> list[int]:
    """Ray worker processes running a cell right now (their title is ray::run_cell)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().startswith(b"ray::run_cell"):
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds workers in /proc")
def test_ray_killed_worker_table_identical_to_clean_run(
    ray_session, local_table, tmp_path: Path
) -> None:
    _, clean = local_table
    killed: list[int] = []
    stop = threading.Event()

    def killer() -> None:
        while not stop.is_set() and not killed:
            pids = _task_pids()
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
            time.sleep(0.01)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        out = tmp_path / "ray.parquet"
        df = run_sweep(_spec(), out, backend="ray", max_retries=3, progress=False)
    finally:
        stop.set()
        thread.join()
    assert killed, "no worker was killed: the test did not exercise a retry"
    assert set(df["status"]) == {"ok"} and len(df) == len(clean)
    # complete and identical to a clean serial run (timings and pids aside)
    pd.testing.assert_frame_equal(comparable(df), comparable(clean))
    assert killed[0] not in set(df["attempt_pid"])  # the killed attempt produced no row


@pytest.mark.gpu
def test_cell_on_cuda_matches_cpu() -> None:
    kw = {"channel": "rayleigh", "N": 4, "K": 4, "snr_db": 10.0}
    cpu = run_cell(Cell(FDD, kw, "wmmse", {}, TEST_SEED, 32))
    gpu = run_cell(Cell(FDD, kw, "wmmse", {}, TEST_SEED, 32, device="cuda"))
    assert gpu["status"] == "ok", gpu["reason"]
    assert gpu["metric_mean"] == pytest.approx(cpu["metric_mean"], rel=1e-3)


def test_readme_sweep_commands_parse() -> None:
    import shlex

    from agents.cli import dataclass_from_args, dataclass_parser

    sweep = _load_script("sweep")
    text = (ROOT / "README.md").read_text()
    found = re.findall(r"python examples/sweep\.py([^\n`#]*)", text)
    assert len(found) >= 3
    parser = dataclass_parser(sweep.Args)
    for line in found:
        args = dataclass_from_args(sweep.Args, parser.parse_args(shlex.split(line)), parser=parser)
        spec = sweep.spec_of(args)  # names, keywords and values checked
        assert spec.groups
