"""End-to-end check of examples/evaluate.py, the harness CLI behind the README's main command."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "examples" / "evaluate.py")


#: The subprocesses import this checkout's packages, not an installed copy.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def _run(*args: str, script: str = SCRIPT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True, env=ENV)


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


def test_unknown_agent_and_unsupported_env_fail_clearly(tmp_path: Path) -> None:
    out = _run("--agent", "nope")
    assert out.returncode == 2 and "--agent" in out.stderr and "'nope'" in out.stderr
    assert "Traceback" not in out.stderr
    out = _run("--agent", "mmse", "--env", "beamgym/ModularUplink-v0")
    assert out.returncode == 2 and "--env" in out.stderr and "Traceback" not in out.stderr
    (tmp_path / "file").write_text("")
    out = _run("--agent", "mmse", "--out", str(tmp_path / "file"))  # refused before any work
    assert out.returncode == 2 and "--out" in out.stderr.splitlines()[-1]


# ---- every README command line parses and dispatches ------------------------------------------
def _readme_commands(script: str) -> list[list[str]]:
    import re
    import shlex

    text = (ROOT / "README.md").read_text()
    found = re.findall(rf"python examples/{script}\.py([^\n`#]*)", text)
    return [shlex.split(a) for a in found if "NAME" not in a]  # placeholders are not commands


def _load_script(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        f"example_{name}", ROOT / "examples" / f"{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_readme_evaluate_commands_parse_and_dispatch() -> None:
    from agents.base import registered_agents

    commands = _readme_commands("evaluate")
    assert len(commands) >= 5
    evaluate = _load_script("evaluate")
    specs = registered_agents()
    for argv in commands:
        args, list_only = evaluate.parse_args(argv)
        if list_only:
            continue
        env_id = args.env or specs[args.agent].env_ids[0]
        for name, _kw in evaluate.agent_entries(args):
            assert name in specs and env_id in specs[name].env_ids, (argv, name)
    args, _ = evaluate.parse_args(["--agent", "kd_edn"])  # the preset of the main command
    assert "edn_unsupervised" in args.compare and args.snr_db == (5.0, 10.0, 15.0, 20.0)
    # issue 11: the engineered feedback on both links and KD-EDN on the noiseless link
    assert {"beamspace_feedback", "beamspace_feedback:link=noiseless"} <= set(args.compare)
    assert ("kd_edn", {"link": "noiseless"}) in evaluate.agent_entries(args)


def test_agent_keywords_reach_the_agent_and_bad_ones_name_their_flag(capsys) -> None:
    evaluate = _load_script("evaluate")
    args, _ = evaluate.parse_args(
        ["--agent", "mmse_ga", "--agent-kw", "steps=3", "--compare", "ga:steps=2,eta=0.1"]
    )
    assert evaluate.agent_entries(args) == [
        ("mmse_ga", {"steps": 3}),
        ("ga", {"steps": 2, "eta": 0.1}),
    ]
    for argv, flag in [
        (["--agent", "mmse_ga", "--agent-kw", "steps"], "agent-kw"),
        (["--agent", "mmse_ga", "--agent-kw", "no_such=1"], "--agent"),
        (["--agent", "mmse_ga", "--compare", "ga:steps"], "--compare"),
        (["--agent", "mmse_ga", "--compare", "ga:steps=-1"], "--compare"),
    ]:
        with pytest.raises(SystemExit) as exc:
            evaluate.parse_args(argv)
        assert exc.value.code == 2
        assert flag in capsys.readouterr().err, argv
    args, _ = evaluate.parse_args(["--agent", "pga", "--env-kw", "analog=phase-shifter"])
    assert args.env_kw == ("analog=phase-shifter",) and args.compare == ()


class _Parsed(Exception):
    pass


def test_readme_train_commands_parse_and_dispatch(monkeypatch) -> None:
    from agents.kd_edn import train as kd
    from agents.modular_cnn import train as mc
    from agents.unfolded_pga import train as up
    from agents.upga_m import train as um

    seen = []

    def stop(*args, **kwargs):
        seen.append(args)
        raise _Parsed

    trainers = (
        (kd, "train_kd_edn"),
        (up, "train_unfolded_pga"),
        (um, "train_upga_m"),
        (mc, "train_cnn"),
    )
    for mod, fn in trainers:
        monkeypatch.setattr(mod, fn, stop)
    train = _load_script("train")
    commands = _readme_commands("train") + [
        shlex_split(line)
        for line in (train.__doc__ or "").splitlines()
        if line.startswith("    python examples/train.py")
    ]
    assert commands
    for argv in commands:
        with pytest.raises(_Parsed):
            train.main(argv)
    assert len(seen) == len(commands)
    with pytest.raises(SystemExit, match="no trainer for agent 'mmse'"):
        train.main(["--agent", "mmse"])


def _docstring_commands(doc: str, script: str) -> list[list[str]]:
    """The ``python examples/<script>.py ...`` lines of a docstring (``\\`` continuations)."""
    import shlex

    text = re.sub(r"\\+\n\s*", " ", doc)  # "\" or (raw docstrings) "\\" continuations
    found = re.findall(rf"python examples/{script}\.py([^\n]*)", text)
    return [shlex.split(a) for a in found if "NAME" not in a and "ARGS" not in a]


def test_docstring_evaluate_commands_parse_and_dispatch() -> None:
    from agents.base import registered_agents

    evaluate = _load_script("evaluate")
    commands = _docstring_commands(evaluate.__doc__ or "", "evaluate")
    assert len(commands) >= 4
    specs = registered_agents()
    for argv in commands:
        args, list_only = evaluate.parse_args(argv)  # every check of the CLI runs here
        if not list_only:
            assert args.agent in specs and all(c in specs for c in args.compare), argv


def test_docstring_train_commands_parse_and_dispatch(monkeypatch) -> None:
    """Every usage line of examples/train.py and the trainers' docstrings reaches its trainer."""
    import importlib

    from agents.base import registered_agents

    trainers = {s.trainer for s in registered_agents().values() if s.trainer}
    docs = [(_load_script("train").__doc__ or "")]
    for t in sorted(trainers):
        module, func = t.split(":")
        mod = importlib.import_module(module)
        docs += [mod.__doc__ or "", getattr(mod, func).__doc__ or ""]
    stops = [  # the training functions the trainers call once the command line is parsed
        (mod, name)
        for mod_name, mod in list(sys.modules.items())
        if mod_name.startswith("agents.")
        for name, obj in vars(mod).items()
        if name.startswith("train_")
        and name != "train_command"
        and callable(obj)
        and getattr(obj, "__module__", None) == mod_name
    ]

    seen = []

    def stop(*args, **kwargs):
        seen.append(args)
        raise _Parsed

    for mod, name in stops:
        monkeypatch.setattr(mod, name, stop)
    train = _load_script("train")
    commands = [c for d in docs for c in _docstring_commands(d, "train")]
    assert len(commands) >= 12
    for argv in commands:
        with pytest.raises(_Parsed):
            train.main(argv)
    assert len(seen) == len(commands)


def shlex_split(line: str) -> list[str]:
    import shlex

    return shlex.split(line.split("examples/train.py", 1)[1])


def test_train_help_lists_the_registered_trainers() -> None:
    train = str(ROOT / "examples" / "train.py")
    out = _run("--help", script=train)
    assert out.returncode == 0 and "kd_edn" in out.stdout and "modular_cnn" in out.stdout
    assert "cnn_004" not in out.stdout  # a deprecated alias is not listed
    out = _run("--agent", "upga_m", "--help", script=train)
    assert out.returncode == 0 and "--s-max" in out.stdout and "--J" in out.stdout


def test_an_agent_without_a_trained_model_ends_with_one_error_line(capsys, tmp_path) -> None:
    evaluate = _load_script("evaluate")
    argv = ["--agent", "sac", "--env-kw", "channel=rayleigh", "N=4", "K=4", "--episodes", "2"]
    with pytest.raises(SystemExit) as exc:
        evaluate.main([*argv, "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error: no committed sac model" in err and "python examples/train.py --agent sac" in err
    assert not (tmp_path / "out").exists()
