"""The suite reproduces the independently checked reference values (benchmarks/reference_values.py).

Each row is a Monte-Carlo mean over a few hundred seeded instances; it must lie within three
combined standard errors of the reference (whose own sample size is similar to ours).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_values.py"
_spec = importlib.util.spec_from_file_location("reference_values", _PATH)
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)  # type: ignore[union-attr]

ROWS = ref.fdd_rows(7) + ref.far_rows(7) + ref.modular_rows(7)


@pytest.mark.parametrize(
    "row", [r for r in ROWS if r["reference"] is not None], ids=lambda r: r["quantity"][:40]
)
def test_matches_reference_within_monte_carlo_error(row: dict) -> None:
    se = row["ci95"] / 1.96
    tol = 3 * math.sqrt(2) * se  # Monte-Carlo error of both estimates, nothing else
    assert abs(row["mean"] - row["reference"]) <= max(tol, 0.02), row


def test_literal_eq12_is_far_worse_than_the_aligned_start() -> None:
    by = {r["quantity"]: r for r in ROWS}
    aligned = next(v for k, v in by.items() if k.startswith("PGA start"))
    literal = next(v for k, v in by.items() if k.startswith("eq. (12) taken literally"))
    assert literal["mean"] < 0.5 * aligned["mean"]
