"""The leaderboard of a sweep table: ranking by the metric's sign, paper numbers, skips, plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
pytest.importorskip("matplotlib")

import agents  # noqa: E402, F401
from agents.harness import TEST_SEED  # noqa: E402
from agents.leaderboard import headline_snr, leaderboard_markdown, paper_number  # noqa: E402
from agents.sweep import COLUMNS, Cell, skipped_row  # noqa: E402


def _row(env_id, kw, agent, mean, *, sign=1, status="ok", reason="", group="g", **extra):
    row = skipped_row(Cell(env_id, kw, agent, {}, TEST_SEED, 50, group=group), reason)
    row.update(status=status, agent_name=agent, git_commit="abc", beamgym_version="0.1.0")
    if status == "ok":
        row.update(
            metric_name="m",
            metric_sign=sign,
            metric_mean=mean,
            metric_ci95=0.1,
            n=50,
            latency_batched_us=12.0,
            latency_single_us=345.0,
            **extra,
        )
    return row


def _table(rows):
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_ranking_follows_metric_sign_and_lists_skips(tmp_path: Path) -> None:
    fdd, outage = "beamgym/FullyDigitalFDD-v0", "beamgym/OutageHybrid-v0"
    rows = [
        _row(fdd, {"snr_db": s}, a, v + s, group="rate")
        for a, v in (("mrt", 1.0), ("mmse", 3.0), ("zf", 2.0))
        for s in (5.0, 15.0, 20.0)
    ]
    rows.append(
        _row(fdd, {"snr_db": 15.0}, "kd_edn", 0, status="skipped", reason="no model", group="rate")
    )
    og = {"constraint_groups": True}
    outage_extras = json.dumps({"outage_fraction_mean": 0.05})
    rows += [
        _row(outage, og, "ghbf_marg", 9.0, sign=-1, group="power", extras=outage_extras),
        _row(outage, og, "random", 30.0, sign=-1, group="power", extras=outage_extras),
        _row(outage, og, "ghbf_perf", 7.0, sign=-1, group="power", extras=outage_extras),
    ]
    md = leaderboard_markdown(_table(rows), image_dir=tmp_path, image_link="img")
    rate = md.split("## rate")[1].split("## power")[0]
    power = md.split("## power")[1]
    # higher is better: mmse, zf, mrt; ranked at the env's default 15 dB, other SNRs after
    assert "ranked at 15 dB" in rate
    assert [line.split("|")[2].strip() for line in rate.splitlines() if line.startswith("| ")][
        1:
    ] == ["`mmse`", "`zf`", "`mrt`"]
    assert "| 1 | `mmse` | 18.00 ± 0.10 | 8.00 | 23.00 |" in rate
    assert "- `kd_edn` (at 15 dB): no model" in rate
    # lower is better: the smallest power first, with the outage and the paper's 8.86
    order = [line.split("|")[2].strip() for line in power.splitlines() if line.startswith("| ")]
    assert order[1:] == ["`ghbf_perf`", "`ghbf_marg`", "`random`"]
    assert "5.0%" in power and "8.86 (002 Table 2" in power
    # plots: one per group with several SNRs, and the summary picture
    assert "![m against SNR: rate](img/rate.png)" in rate
    assert (tmp_path / "rate.png").stat().st_size > 0
    assert (tmp_path / "leaderboard.png").stat().st_size > 0
    assert "seed 1000003" in md and "git commit abc" in md


def test_paper_numbers_and_headline() -> None:
    p = paper_number("upga_m", "beamgym/ModularUplink-v0", {}, 0.0)
    assert p is not None and p.value == 0.95 and "Table I" in p.source
    assert paper_number("upga_m", "beamgym/ModularUplink-v0", {"K": 10}, 0.0) is None
    assert paper_number("mmse", "beamgym/FullyDigitalFDD-v0", {}, 15.0) is None
    assert headline_snr("beamgym/FullyDigitalFDD-v0", [5.0, 10.0, 20.0]) == 10.0
    assert headline_snr("beamgym/FullyDigitalFDD-v0", [5.0, 15.0]) == 15.0
    assert headline_snr("beamgym/OutageHybrid-v0", []) is None


def test_empty_table_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        leaderboard_markdown(_table([]))
