"""examples/train_rl.py: trains on BatchedVecEnv with a tiny budget and scores beside MMSE."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = str(ROOT / "examples" / "train_rl.py")
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    "OMP_NUM_THREADS": "1",
}
TINY = ["--num-envs", "16", "--total-timesteps", "128", "--n-steps", "4", "--batch-size", "32"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, SCRIPT, *args], capture_output=True, text=True, env=ENV, timeout=120
    )


def test_tiny_ppo_run_scores_the_policy_beside_mmse(tmp_path: Path) -> None:
    out = _run(*TINY, "--test-instances", "32", "--save", str(tmp_path / "m"))
    assert out.returncode == 0, out.stderr
    rows = dict(
        re.findall(r"^(\S+)\s+sum_rate = ([0-9.]+) ± [0-9.]+ \(95% CI\)$", out.stdout, re.M)
    )
    assert set(rows) == {"ppo+optimal-structure", "mmse"}, out.stdout
    # the optimal-structure action keeps even an untrained policy near MMSE, far above random
    assert float(rows["ppo+optimal-structure"]) > 0.5 * float(rows["mmse"]) > 2.0
    assert (tmp_path / "m.zip").exists()
    assert re.search(r"^run FullyDigitalFDD-v0__ppo-optimal-structure__1__\d+$", out.stdout, re.M)


def test_bad_option_exits_2_naming_the_flag() -> None:
    out = _run("--algo", "a2c")
    assert out.returncode == 2 and "--algo" in out.stderr and "ppo" in out.stderr


def test_readme_command_parses() -> None:
    sys.path.insert(0, str(ROOT / "examples"))
    try:
        import train_rl
    finally:
        sys.path.pop(0)
    from agents.cli import dataclass_from_args

    text = (ROOT / "README.md").read_text()
    commands = re.findall(r"^python examples/train_rl\.py(.*)$", text, re.M)
    commands += re.findall(r"python examples/train_rl\.py(.*)$", train_rl.__doc__, re.M)
    assert len(commands) >= 4
    parser = train_rl.dataclass_parser(train_rl.Args)
    for cmd in commands:
        args = dataclass_from_args(train_rl.Args, parser.parse_args(shlex.split(cmd)))
        assert args.algo in train_rl.ALGOS


def test_readme_snippet_runs_with_tiny_sizes() -> None:
    """The README's "Training your own RL agent" code, at 8 sub-envs and 64 steps."""
    import numpy as np

    text = (ROOT / "README.md").read_text()
    section = text.split("### Training your own RL agent", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    for big, small in (
        ("num_envs=512", "num_envs=8"),
        ("total_timesteps=50_000", "total_timesteps=64"),
    ):
        assert code.count(big) == 1, f"README snippet changed: {big!r} not found once"
        code = code.replace(big, small)
    ns: dict = {}
    exec(compile(code, "README.md", "exec"), ns)
    obs = ns["venv"].reset()
    action, _ = ns["policy"].predict(obs)
    assert action.shape == (8, 32) and np.all(np.abs(action) <= 1.0)
