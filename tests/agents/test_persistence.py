"""The one checkpoint format (agents/pretrained.py): safe loading, committed models, size cap."""

from __future__ import annotations

import json
import os

import pytest
import torch

from agents import pretrained
from agents.base import Agent, CheckpointError, make_agent
from agents.pretrained import PRETRAINED_DIR, read_checkpoint, write_checkpoint
from beamgym.datasets import make_task

ENV = "beamgym/FullyDigitalFDD-v0"
#: Cap of one committed checkpoint (weights only, float32) and of agents/pretrained/.
MAX_CHECKPOINT_BYTES = 2 * 2**20
#: The total holds ~50 model folders (checkpoint, config, training log and curve); KD-EDN's
#: 23 folders (kd_edn and its three ablations of paper 000, 0.8-1.7 MB each) are most of it.
MAX_TOTAL_BYTES = 40 * 2**20


def _config(task, agent="a") -> dict:
    return {
        "agent": agent,
        "env_id": task.env_id,
        "env_kwargs": task.env_kwargs,
        "env_config": pretrained.env_config_dict(task),
    }


def _save(folder, task, agent="a") -> None:
    write_checkpoint(folder, {"w": torch.ones(2)}, _config(task, agent))


def test_write_and_read_round_trip(tmp_path) -> None:
    task = make_task(ENV, K=4)
    path = write_checkpoint(tmp_path / "m", {"w": torch.arange(3.0)}, _config(task))
    ckpt = read_checkpoint(tmp_path / "m")
    assert ckpt.path == path and torch.equal(ckpt.state["w"], torch.arange(3.0))
    assert ckpt.config["format_version"] == pretrained.FORMAT_VERSION
    assert ckpt.config["env_kwargs"] == {"K": 4}
    with pytest.raises(CheckpointError, match="holds agent 'a', not 'b'"):
        read_checkpoint(path, agent="b")
    with pytest.raises(CheckpointError, match="flat dict"):
        write_checkpoint(tmp_path / "x", {"w": 1.0}, _config(task))


def test_truncated_corrupt_mismatched_and_malicious_files_raise(tmp_path) -> None:
    task = make_task(ENV, K=4)
    agent = make_agent("mmse", task)
    good = agent.save(tmp_path / "good")
    raw = good.read_bytes()
    # truncated
    trunc = agent.save(tmp_path / "trunc")
    trunc.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match=rf"{trunc}.*truncated or corrupt"):
        Agent.load(tmp_path / "trunc", task)
    # corrupted (bytes flipped in the middle of the zip)
    bad = agent.save(tmp_path / "bad")
    bad.write_bytes(b"not a zip at all" + raw[16:])
    with pytest.raises(CheckpointError, match=rf"{bad}.*truncated or corrupt"):
        Agent.load(tmp_path / "bad", task)
    # mismatched: another env configuration, another agent
    with pytest.raises(CheckpointError, match=r"another environment configuration.*K:"):
        Agent.load(tmp_path / "good", make_task(ENV, K=6))
    with pytest.raises(CheckpointError, match="holds agent 'mmse'"):
        type(make_agent("mrt", task)).load(tmp_path / "good", task)
    # malicious: a pickle that runs code when unpickled
    evil = agent.save(tmp_path / "evil")
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"w": Exploit()}, evil)  # a zip checkpoint whose pickle calls os.system
    with pytest.raises(CheckpointError, match=rf"{evil}.*not a weights-only checkpoint"):
        Agent.load(tmp_path / "evil", task)
    assert not marker.exists()
    # missing config / another format version
    (tmp_path / "good" / "config.json").write_text(json.dumps({"format_version": 1}))
    with pytest.raises(CheckpointError, match="format_version 1"):
        Agent.load(tmp_path / "good", task)
    with pytest.raises(CheckpointError, match="does not exist"):
        Agent.load(tmp_path / "nowhere", task)


def test_find_committed_picks_the_fitting_variant(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    default, sd = make_task(ENV, K=4), make_task(ENV, K=4, placement="spatial-division")
    _save(tmp_path / "a" / "FullyDigitalFDD-v0", default)
    _save(tmp_path / "a" / "FullyDigitalFDD-v0-sd", sd)
    _save(tmp_path / "a" / "FullyDigitalFDD-v0x", make_task(ENV, K=5))  # another env name
    # the SNR may differ (one model serves an SNR set); the placement may not
    got = pretrained.find_committed("a", ENV, make_task(ENV, K=4, snr_db=5.0))
    assert got == tmp_path / "a" / "FullyDigitalFDD-v0" / "checkpoint.pt"
    got = pretrained.find_committed("a", ENV, make_task(ENV, K=4, placement="spatial-division"))
    assert got == tmp_path / "a" / "FullyDigitalFDD-v0-sd" / "checkpoint.pt"
    assert pretrained.find_committed("a", ENV, make_task(ENV, K=5)) is None
    assert pretrained.find_committed("nobody", ENV, default) is None


def test_resolve_and_check_errors_name_the_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    task = make_task(ENV, K=4)
    with pytest.raises(CheckpointError, match="no committed model .* train one with: CMD"):
        pretrained.resolve_checkpoint(None, "a", ENV, "CMD")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        pretrained.resolve_checkpoint(tmp_path / "x.pt", "a", ENV, "CMD")
    _save(tmp_path / "a" / "FullyDigitalFDD-v0", task)
    path = pretrained.resolve_checkpoint(None, "a", ENV, "CMD")
    assert pretrained.resolve_checkpoint(path.parent, "a", ENV, "CMD") == path  # a folder works
    saved = read_checkpoint(path).config["env_config"]
    pretrained.check_env_config(saved, make_task(ENV, K=4, snr_db=5.0), ("K",), path, "C")
    with pytest.raises(CheckpointError, match="K: checkpoint 4 vs env 6.*C"):
        pretrained.check_env_config(saved, make_task(ENV, K=6), ("K", "N"), path, "C")


def test_committed_models_are_weights_only_float32_and_under_the_cap() -> None:
    files = sorted(PRETRAINED_DIR.glob("*/*/checkpoint.pt"))
    assert files
    total = 0
    for f in files:
        rel = f.relative_to(PRETRAINED_DIR).as_posix()
        ckpt = read_checkpoint(f)  # a flat dict of tensors: no optimizer state, no objects
        assert not any(v.dtype == torch.float64 for v in ckpt.state.values()), rel
        assert not any("optim" in k or k in ("state", "param_groups") for k in ckpt.state), rel
        assert "command" in ckpt.config and "train_config" in ckpt.config, rel
        for extra in ("train_log.csv", "train_curve.png"):
            assert (f.parent / extra).is_file(), f"{rel}: {extra} missing"
        size = f.stat().st_size
        assert size <= MAX_CHECKPOINT_BYTES, f"{rel} is {size / 2**20:.2f} MB > 2 MB"
        total += sum(p.stat().st_size for p in f.parent.iterdir())
    assert total <= MAX_TOTAL_BYTES, f"agents/pretrained/ is {total / 2**20:.1f} MB > 40 MB"
