"""The committed-model helpers of agents/pretrained.py."""

from __future__ import annotations

import pytest
import torch

from agents import pretrained
from agents.base import CheckpointError
from beamgym.datasets import make_task

ENV = "beamgym/FullyDigitalFDD-v0"


def _save(folder, task, fmt="fmt/1") -> None:
    folder.mkdir(parents=True)
    blob = {"format": fmt, "env_config": pretrained.env_config_dict(task), "state_dict": {}}
    torch.save(blob, folder / "checkpoint.pt")


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


def test_resolve_load_and_check_errors_name_the_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(pretrained, "PRETRAINED_DIR", tmp_path)
    task = make_task(ENV, K=4)
    with pytest.raises(CheckpointError, match="no committed model .* train one with: CMD"):
        pretrained.resolve_checkpoint(None, "a", ENV, "CMD")
    with pytest.raises(CheckpointError, match="no checkpoint"):
        pretrained.resolve_checkpoint(tmp_path / "x.pt", "a", ENV, "CMD")
    _save(tmp_path / "a" / "FullyDigitalFDD-v0", task)
    path = pretrained.resolve_checkpoint(None, "a", ENV, "CMD")
    assert pretrained.resolve_checkpoint(path.parent, "a", ENV, "CMD") == path  # a folder works
    blob = pretrained.load_blob(path, "fmt/1", "CMD")
    with pytest.raises(CheckpointError, match="not a other/1 checkpoint.*CMD"):
        pretrained.load_blob(path, "other/1", "CMD")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        pretrained.load_blob(tmp_path / "junk.pt", "fmt/1", "CMD")
    pretrained.check_env_config(
        blob["env_config"], make_task(ENV, K=4, snr_db=5.0), ("K",), path, "C"
    )
    with pytest.raises(CheckpointError, match="K: checkpoint 4 vs env 6.*C"):
        pretrained.check_env_config(blob["env_config"], make_task(ENV, K=6), ("K", "N"), path, "C")
