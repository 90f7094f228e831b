"""Turn a sweep's results table into LEADERBOARD.md and metric-vs-SNR plots.

Usage:
    python examples/sweep.py --spec sweeps/leaderboard.toml --out sweeps/leaderboard.parquet
    python examples/leaderboard.py --table sweeps/leaderboard.parquet --spec sweeps/leaderboard.toml

Per env group of the sweep: agents ranked by the headline metric with its 95% CI, the other
SNRs, batched and single-instance latency, feedback bits where relevant and the paper's number
where one exists (``agents.leaderboard.PAPER_NUMBERS``); a PNG of the metric against SNR; the
agents that were skipped or failed, with the reason.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from agents.cli import dataclass_from_args, dataclass_parser
from agents.leaderboard import leaderboard_markdown
from agents.sweep import read_results


@dataclasses.dataclass(frozen=True)
class Args:
    """Arguments of the leaderboard (CleanRL style: this dataclass is the parser)."""

    table: Path = Path("sweeps/leaderboard.parquet")
    """Results table written by examples/sweep.py."""
    spec: Path | None = None
    """The sweep spec the table came from, named on the page (e.g. sweeps/leaderboard.toml)."""
    out: Path = Path("LEADERBOARD.md")
    """The Markdown page to write."""
    images: Path = Path("docs/leaderboard")
    """Folder for the PNG plots (linked relative to the page)."""

    def __post_init__(self) -> None:
        if not self.table.is_file():
            raise ValueError(
                f"table {str(self.table)!r} does not exist; run examples/sweep.py --out "
                f"{self.table} first"
            )
        if self.out.suffix != ".md":
            raise ValueError(f"out must be a .md file, got {str(self.out)!r}")


def main(argv: list[str] | None = None) -> None:
    parser = dataclass_parser(Args)
    args = dataclass_from_args(Args, parser.parse_args(argv), parser=parser)
    df = read_results(args.table)
    made = f"`python examples/leaderboard.py --table {args.table}`"
    if args.spec is not None:
        made = f"`python examples/sweep.py --spec {args.spec} --out {args.table}` then " + made
    header = f"Generated from `{args.table}` by {made}; do not edit by hand."
    link = os.path.relpath(args.images, args.out.parent)
    text = leaderboard_markdown(df, image_dir=args.images, image_link=link, header=header)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out} and plots in {args.images}/")


if __name__ == "__main__":
    main()
