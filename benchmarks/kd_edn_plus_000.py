"""KD-EDN+ against ``beamspace_feedback`` at the same bits and link (issue 11 item 3).

For every scenario of paper 000's Figs. 6-9 (``benchmarks/kd_edn_000.py``'s ``SCENARIOS``:
MISO/MIMO single cell and spatial division, far field, near field), both links and 5/10/15/20
dB, both agents run on the same test instances (seed 1_000_003, ``--n`` per SNR) with the same
link-error generator seed (so the link draws are paired too). Reported per cell: each agent's
mean sum-rate (95% CI), the paired difference KD-EDN+ - beamspace_feedback with its 95% CI
(Student t over the instances), whether that CI excludes zero on the positive side (the
target), and both agents' phase-invariant reconstruction NMSE. A scenario/link without a
committed KD-EDN+ model is listed as missing.

A second opponent is tuned as carefully as KD-EDN+'s BS side: ``beamspace_feedback`` with its
MMSE regularization factor ``reg_scale`` picked per scenario, link and SNR from ``REG_GRID``
by the mean sum-rate on KD-EDN+'s validation instances (seed 2_000_003, ``--n-val`` per SNR;
never the test seed). KD-EDN+ learns the same knob per SNR, so this row shows what of its
gain a tuned classical BS gets as well. Reported beside the first: its test rate, the chosen
factor and the paired difference KD-EDN+ - tuned opponent.

Usage:
    python benchmarks/kd_edn_plus_000.py            # full run, ~11 min on 2 cores
    python benchmarks/kd_edn_plus_000.py --quick    # smoke run (small sets, not written)
    python benchmarks/kd_edn_plus_000.py --only "MISO single cell" noisy   # re-measure one
        # scenario and link (e.g. after retraining its model) and update the written results

Writes benchmarks/results/kd_edn_plus_000.json (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from kd_edn_000 import SCENARIOS, TEST_SEED  # noqa: E402

import agents  # noqa: E402, F401
from agents.base import CheckpointError, make_agent  # noqa: E402
from agents.harness import evaluate_agent, mean_ci  # noqa: E402
from agents.kd_edn_plus.train import VALIDATION_SEED  # noqa: E402
from beamgym.datasets import make_instance_set, make_task  # noqa: E402

SNRS = (5.0, 10.0, 15.0, 20.0)
LINKS = ("noisy", "noiseless")
#: Regularization factors tried for the tuned opponent (1: paper 000's plain MMSE).
REG_GRID = (1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 100.0, 300.0, 1000.0)


def _tune_reg(task, env_id: str, kw: dict, snr: float, link: str, n_val: int, batch: int):
    """The ``reg_scale`` of REG_GRID with the best validation mean, and every grid score."""
    val = make_instance_set(env_id, n=n_val, seed=VALIDATION_SEED, snr_db=snr, **kw)
    scores = {}
    for g in REG_GRID:
        agent = make_agent("beamspace_feedback", task, link=link, reg_scale=g)
        res = evaluate_agent(agent, val, batch_size=batch, single_instances=0)
        scores[g] = float(res.metric.mean())
    return max(scores, key=scores.__getitem__), scores


def _nmse_db(agent, ds) -> float:
    """Mean phase-invariant reconstruction NMSE (dB) of a fresh pass over the set."""
    agent.solve(agent.task.known(ds.instances))
    return float(10 * torch.log10(agent.last_info["feedback_nmse"].mean()))


def benchmark(n: int, batch: int, only: tuple[str, str] | None = None, n_val: int = 256) -> dict:
    out: dict = {"n_test": n, "test_seed": TEST_SEED, "snr_db": list(SNRS), "scenarios": []}
    out["tuned_opponent"] = {
        "reg_grid": list(REG_GRID),
        "n_val": n_val,
        "val_seed": VALIDATION_SEED,
    }
    for label, env_id, kw, fig in SCENARIOS:
        for link in LINKS:
            if only is not None and (label, link) != only:
                continue
            cell: dict = {"label": label, "env_id": env_id, "env_kwargs": kw, "figure": fig}
            cell["link"] = link
            rows: dict = {}
            for s in SNRS:
                task = make_task(env_id, snr_db=s, **kw)
                try:
                    plus = make_agent("kd_edn_plus", task, link=link)
                except CheckpointError:
                    cell["missing"] = True
                    break
                ds = make_instance_set(env_id, n=n, seed=TEST_SEED, snr_db=s, **kw)
                base = make_agent("beamspace_feedback", task, link=link)
                r_plus = evaluate_agent(plus, ds, batch_size=batch, single_instances=0)
                r_base = evaluate_agent(base, ds, batch_size=batch, single_instances=0)
                d_mu, d_ci = mean_ci(r_plus.metric - r_base.metric)
                reg, grid = _tune_reg(task, env_id, kw, s, link, n_val, batch)
                r_tuned = r_base  # reg_scale 1 is the plain opponent, already scored
                if reg != 1.0:
                    tuned = make_agent("beamspace_feedback", task, link=link, reg_scale=reg)
                    r_tuned = evaluate_agent(tuned, ds, batch_size=batch, single_instances=0)
                t_mu, t_ci = mean_ci(r_plus.metric - r_tuned.metric)
                keys = ("mean", "ci95")
                rows[str(s)] = {
                    "kd_edn_plus": dict(zip(keys, mean_ci(r_plus.metric), strict=True)),
                    "beamspace_feedback": dict(zip(keys, mean_ci(r_base.metric), strict=True)),
                    "difference": {"mean": d_mu, "ci95": d_ci},
                    "met": bool(d_mu - (d_ci or 0.0) > 0),
                    "beamspace_feedback_tuned_reg": {
                        **dict(zip(keys, mean_ci(r_tuned.metric), strict=True)),
                        "reg_scale": reg,
                        "validation_means": {str(g): v for g, v in grid.items()},
                    },
                    "difference_vs_tuned": {"mean": t_mu, "ci95": t_ci},
                    "met_vs_tuned": bool(t_mu - (t_ci or 0.0) > 0),
                    "nmse_db": {
                        "kd_edn_plus": _nmse_db(make_agent("kd_edn_plus", task, link=link), ds),
                        "beamspace_feedback": _nmse_db(
                            make_agent("beamspace_feedback", task, link=link), ds
                        ),
                    },
                    "bits_per_user": {
                        "kd_edn_plus": plus.feedback_bits(),
                        "beamspace_feedback": base.feedback_bits(),
                    },
                }
                print(
                    label,
                    link,
                    s,
                    round(d_mu, 3),
                    "±",
                    round(d_ci or 0.0, 3),
                    f"| vs tuned (reg {reg:g}):",
                    round(t_mu, 3),
                    "±",
                    round(t_ci or 0.0, 3),
                    flush=True,
                )
            cell["rows"] = rows
            out["scenarios"].append(cell)
    return summarize(out)


def summarize(out: dict) -> dict:
    """Add the counts of met cells and the missing models to a results dict."""
    cells = [r for c in out["scenarios"] for r in c["rows"].values()]
    out["met_cells"] = sum(r["met"] for r in cells)
    out["met_cells_vs_tuned"] = sum(r.get("met_vs_tuned", False) for r in cells)
    out["cells"] = len(cells)
    out["missing"] = [f"{c['label']} [{c['link']}]" for c in out["scenarios"] if c.get("missing")]
    return out


def _table(results: dict, head: str, cell) -> str:
    """A markdown table with a row per scenario and link and a column per SNR."""
    snrs = results["snr_db"]
    lines = [
        "| scenario (figure) | link | " + " | ".join(f"{s:g} dB: {head}" for s in snrs) + " |",
        "|---|---|" + "---|" * len(snrs),
    ]
    for c in results["scenarios"]:
        row = f"| {c['label']} ({c['figure']}) | {c['link']} | "
        if c.get("missing"):
            lines.append(row + " | ".join("no model" for _ in snrs) + " |")
            continue
        lines.append(row + " | ".join(cell(c["rows"][str(s)]) for s in snrs) + " |")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    """The BENCHMARKS.md table: paired difference per scenario, link and SNR."""

    def cell(r: dict) -> str:
        d, mark = r["difference"], "" if r["met"] else " ✗"
        return (
            f"{d['mean']:+.2f} ± {d['ci95']:.2f}{mark} "
            f"({r['kd_edn_plus']['mean']:.2f} / {r['beamspace_feedback']['mean']:.2f})"
        )

    return _table(results, "Δ ± CI (plus / base)", cell)


def markdown_tuned(results: dict) -> str:
    """The second table: KD-EDN+ against the opponent with its regularization tuned."""

    def cell(r: dict) -> str:
        if "difference_vs_tuned" not in r:
            return "not measured"
        d, t = r["difference_vs_tuned"], r["beamspace_feedback_tuned_reg"]
        mark = "" if r["met_vs_tuned"] else " ✗"
        return (
            f"{d['mean']:+.2f} ± {d['ci95']:.2f}{mark} "
            f"({r['kd_edn_plus']['mean']:.2f} / {t['mean']:.2f}, {t['reg_scale']:g})"
        )

    return _table(results, "Δ ± CI (plus / tuned, factor)", cell)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run (not written)")
    parser.add_argument("--n", type=int, default=500, help="test instances per SNR")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument(
        "--n-val", type=int, default=256, help="validation instances per SNR (tuned opponent)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    parser.add_argument(
        "--only", nargs=2, metavar=("LABEL", "LINK"), help="re-measure one scenario and link"
    )
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    t0 = time.time()
    only = tuple(args.only) if args.only else None
    results = benchmark(
        20 if args.quick else args.n, args.batch, only, 16 if args.quick else args.n_val
    )
    if only is not None:  # merge into the written results
        path = args.out / "kd_edn_plus_000.json"
        old = json.loads(path.read_text())
        if old["n_test"] != results["n_test"] or not results["scenarios"]:
            raise SystemExit(f"error: --only needs --n {old['n_test']} and a known LABEL/LINK")
        new = results["scenarios"][0]
        old["scenarios"] = [new if (c["label"], c["link"]) == only else c for c in old["scenarios"]]
        old.setdefault("remeasured", []).append(list(only))
        results = summarize(old)
    results["remeasure_seconds" if only else "seconds"] = time.time() - t0
    results["platform"] = {"python": platform.python_version(), "torch": torch.__version__}
    if not args.quick:
        (args.out / "kd_edn_plus_000.json").write_text(json.dumps(results, indent=1))
    print(markdown(results))
    print(markdown_tuned(results))
    print(
        f"done in {time.time() - t0:.0f} s; {results['met_cells']}/{results['cells']} cells "
        f"met ({results['met_cells_vs_tuned']} against the tuned-regularization opponent); "
        f"missing: {results['missing']}"
    )


if __name__ == "__main__":
    main()
