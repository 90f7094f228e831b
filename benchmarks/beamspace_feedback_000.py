"""Equal-budget engineered feedback (``beamspace_feedback``) against KD-EDN (paper 000, issue 11).

Two parts:

* ``--tune``: chooses the codec of each (env, link) (window ``L``, quantizer mode and
  amplitude share, gain bits, DFT or identity basis for the hybrid envs, bits per noisy-link
  use, or on the noisy link analog coefficient symbols with their scale and the prior of the
  soft dequantization) by the mean sum-rate over 5/10/15/20 dB on VALIDATION instances (seed
  :data:`VAL_SEED`, never the test seed), writes
  ``benchmarks/results/beamspace_feedback_tuning.json``; the chosen values are copied into
  ``agents.classical.beamspace_feedback.TUNED`` (the script checks they agree);
* the benchmark: on the fixed test sets of ``benchmarks/kd_edn_000.py`` (seed 1_000_003,
  ``--n`` instances per SNR, env defaults), the sum-rate (mean ± 95% CI) and the
  phase-invariant reconstruction NMSE of ``beamspace_feedback`` on both links, beside KD-EDN
  (noisy and noiseless link, where a committed model exists), MMSE+GA(10) and MMSE with perfect
  feedback of the estimate, and the feedback accounting of every feedback agent; writes
  ``benchmarks/results/beamspace_feedback_000.json``.

Usage:
    python benchmarks/beamspace_feedback_000.py            # benchmark, ~1-2 min on 2 cores
    python benchmarks/beamspace_feedback_000.py --tune     # validation tuning, ~7 min
    python benchmarks/beamspace_feedback_000.py --tune --only beamgym/FullyDigitalFDD-v0 noisy
    python benchmarks/beamspace_feedback_000.py --quick    # smoke run (small sets)
"""

from __future__ import annotations

import argparse
import itertools
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

import agents  # noqa: E402, F401
from agents.base import CheckpointError, make_agent  # noqa: E402
from agents.classical.beamspace_feedback import CODEC_DEFAULTS, TUNED  # noqa: E402
from agents.harness import evaluate_agent, mean_ci  # noqa: E402
from beamgym.datasets import make_instance_set, make_task  # noqa: E402

TEST_SEED = 1_000_003  # examples/evaluate.py's and benchmarks/kd_edn_000.py's test seed
VAL_SEED = 7_000_001  # validation instances of the tuning (disjoint from the test seed)
SNRS = (5.0, 10.0, 15.0, 20.0)
ENVS = ("beamgym/FullyDigitalFDD-v0", "beamgym/FarFieldHybrid-v0", "beamgym/NearFieldHybrid-v0")
LINKS = ("noiseless", "noisy")
#: Issue 11's targets (bit/s/Hz at 5/10/15/20 dB, test set, bits = 128, q_infer = 10).
TARGETS = {
    ("beamgym/FullyDigitalFDD-v0", "noiseless"): (49.0, 70.5, 90.0, 106.0),
    ("beamgym/FullyDigitalFDD-v0", "noisy"): (33.5, 42.0, 47.0, 49.0),
    ("beamgym/FarFieldHybrid-v0", "noiseless"): (23.7, 34.5, 45.7, 56.0),
}
CODEC_KEYS = (
    "basis",
    "window",
    "mode",
    "amp_share",
    "gain_bits",
    "symbol_bits",
    "analog",
    "coef_scale",
    "prior_var",
)


def grid(env_id: str, link: str) -> list[dict]:
    """The candidate codecs of one (env, link)."""
    bases = ("dft",) if env_id.endswith("FullyDigitalFDD-v0") else ("dft", "identity")
    if link == "noiseless":
        quantizers = (("polar", 0.3), ("polar", 0.4), ("polar", 0.5), ("cartesian", 0.5))
        windows = (8, 10, 12, 14, 16)
        gains, symbols = (5, 6), (1,)
    else:
        quantizers = (("polar", 0.4), ("polar", 0.5), ("cartesian", 0.5))
        windows = (2, 3, 4, 6)
        gains, symbols = (3, 4), (1, 2)
    out = []
    for basis, L, (mode, share), g, sb in itertools.product(
        bases, windows, quantizers, gains, symbols
    ):
        out.append(
            dict(basis=basis, window=L, mode=mode, amp_share=share, gain_bits=g, symbol_bits=sb)
        )
    if link == "noisy":  # analog coefficient symbols, header at 1 bit per use
        for basis, L, scale, g, prior in itertools.product(
            bases, (6, 8, 9), (1.5, 2.0, 2.5, 3.0), (3, 4), (None, 1.0)
        ):
            out.append(
                dict(
                    basis=basis,
                    window=L,
                    mode="cartesian",
                    amp_share=0.5,
                    gain_bits=g,
                    symbol_bits=1,
                    analog=True,
                    coef_scale=scale,
                    prior_var=prior,
                )
            )
    return [{**{k: CODEC_DEFAULTS.get(k) for k in CODEC_KEYS[6:]}, **c} for c in out]


def tune(n: int, out: Path, only: tuple[str, str] | None = None) -> dict:
    """Tune every (env, link), or only ``only`` (the others kept from the record at ``out``)."""
    record: dict = {"val_seed": VAL_SEED, "n_per_snr": n, "snr_db": list(SNRS), "choices": {}}
    pairs = list(itertools.product(ENVS, LINKS))
    if only is not None:
        if only not in pairs:
            raise ValueError(f"--only must be one of {pairs}, got {only}")
        old = json.loads(out.read_text())
        if old["n_per_snr"] != n or old["val_seed"] != VAL_SEED:
            raise ValueError(f"--n-val must be {old['n_per_snr']} (the record's) with --only")
        record, pairs = old, [only]
    for env_id, link in pairs:
        sets = {s: make_instance_set(env_id, n=n, seed=VAL_SEED, snr_db=s) for s in SNRS}
        tasks = {s: make_task(env_id, snr_db=s) for s in SNRS}
        rows = []
        for cand in grid(env_id, link):
            rates = []
            for s in SNRS:
                agent = make_agent("beamspace_feedback", tasks[s], link=link, **cand)
                res = evaluate_agent(agent, sets[s], single_instances=0)
                rates.append(float(res.metric.mean()))
            rows.append({**cand, "rates": rates, "mean": sum(rates) / len(rates)})
        best = max(rows, key=lambda r: r["mean"])
        key = f"{env_id}|{link}"
        record["choices"][key] = {k: best[k] for k in CODEC_KEYS}
        record[key] = rows
        print(key, {k: best[k] for k in (*CODEC_KEYS, "rates")}, flush=True)
    out.write_text(json.dumps(record, indent=1))
    return record


def check_tuned(path: Path) -> list[str]:
    """Differences between the tuning record and ``TUNED`` (empty when they agree)."""
    if not path.is_file():
        return [f"{path} missing: run --tune"]
    choices = json.loads(path.read_text())["choices"]
    diff = []
    for key, c in choices.items():
        env_id, link = key.split("|")
        tuned = {**CODEC_DEFAULTS, **TUNED[(env_id, link)]}
        mine = {k: tuned[k] for k in CODEC_KEYS}
        if mine != {**{k: CODEC_DEFAULTS.get(k) for k in CODEC_KEYS[6:]}, **c}:
            diff.append(f"{key}: TUNED {mine} vs record {c}")
    return diff


def _nmse_db(agent, ds) -> float:
    """Mean phase-invariant reconstruction NMSE (dB) of a fresh pass over the set."""
    known = agent.task.known(ds.instances)
    agent.solve(known)
    return float(10 * torch.log10(agent.last_info["feedback_nmse"].mean()))


def benchmark(n: int, batch: int) -> dict:
    results: dict = {"n_test": n, "test_seed": TEST_SEED, "snr_db": list(SNRS), "envs": {}}
    for env_id in ENVS:
        table: dict = {}
        for s in SNRS:
            ds = make_instance_set(env_id, n=n, seed=TEST_SEED, snr_db=s)
            task = make_task(env_id, snr_db=s)
            row: dict = {}
            agents_here = {
                f"beamspace_feedback[{link}]": ("beamspace_feedback", {"link": link})
                for link in LINKS
            }
            agents_here |= {
                "kd_edn[noisy]": ("kd_edn", {"link": "noisy"}),
                "kd_edn[noiseless]": ("kd_edn", {"link": "noiseless"}),
                "mmse_ga (perfect feedback)": ("mmse_ga", {}),
                "mmse (perfect feedback)": ("mmse", {}),
            }
            for label, (name, hp) in agents_here.items():
                try:
                    agent = make_agent(name, task, **hp)
                except CheckpointError:
                    continue
                res = evaluate_agent(agent, ds, batch_size=batch, single_instances=0)
                mu, ci = mean_ci(res.metric)
                row[label] = {"mean": mu, "ci95": ci}
                if res.feedback_bits is not None:
                    row[label]["feedback_bits"] = res.summary()["feedback_bits"]
                if name == "beamspace_feedback":
                    agent = make_agent(name, task, **hp)
                    row[label]["nmse_db"] = _nmse_db(agent, ds)
            table[str(s)] = row
            print(env_id, s, {k: round(v["mean"], 2) for k, v in row.items()}, flush=True)
        results["envs"][env_id] = table
    results["targets"] = {f"{e}|{link}": t for (e, link), t in TARGETS.items()}
    return results


def markdown(results: dict) -> str:
    """The BENCHMARKS.md tables from a results dict."""
    lines = []
    snrs = results["snr_db"]
    for env_id, table in results["envs"].items():
        lines += [f"**{env_id}** (mean ± 95% CI, {results['n_test']} test instances per SNR)", ""]
        lines.append("| agent | " + " | ".join(f"{s:g} dB" for s in snrs) + " | bits/user |")
        lines.append("|---|" + "---|" * (len(snrs) + 1))
        for label in table[str(snrs[0])]:
            cells = [table[str(s)][label] for s in snrs]
            fb = cells[0].get("feedback_bits") or {}
            bits = ", ".join(f"{k} {v:.1f}" for k, v in fb.items() if v is not None)
            lines.append(
                f"| {label} | "
                + " | ".join(f"{c['mean']:.2f} ± {c['ci95']:.2f}" for c in cells)
                + f" | {bits} |"
            )
            if "nmse_db" in cells[0]:
                lines.append(
                    "| ↳ NMSE (dB) | " + " | ".join(f"{c['nmse_db']:.1f}" for c in cells) + " | |"
                )
            link = label[label.find("[") + 1 : -1] if label.startswith("beamspace") else None
            target = results["targets"].get(f"{env_id}|{link}")
            if target:
                lines.append("| ↳ target | " + " | ".join(f"≥ {t:g}" for t in target) + " | |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tune", action="store_true", help="validation tuning of the codecs")
    parser.add_argument("--quick", action="store_true", help="smoke run (not reported)")
    parser.add_argument(
        "--only", nargs=2, metavar=("ENV", "LINK"), help="with --tune: re-tune one (env, link)"
    )
    parser.add_argument("--n", type=int, default=500, help="test instances per SNR")
    parser.add_argument("--n-val", type=int, default=100, help="validation instances per SNR")
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    t0 = time.time()
    record = args.out / "beamspace_feedback_tuning.json"
    if args.tune:
        if args.quick:
            tune(8, Path("/dev/null"))
        else:
            tune(args.n_val, record, tuple(args.only) if args.only else None)
        print(f"tuning done in {time.time() - t0:.0f} s")
        return
    diff = check_tuned(record)
    n = 20 if args.quick else args.n
    results = benchmark(n, args.batch)
    results["tuned_matches_record"] = not diff
    results["tuned_differences"] = diff
    results["seconds"] = time.time() - t0
    results["platform"] = {"python": platform.python_version(), "torch": torch.__version__}
    if not args.quick:
        (args.out / "beamspace_feedback_000.json").write_text(json.dumps(results, indent=1))
    print(markdown(results))
    print(f"done in {results['seconds']:.0f} s; TUNED matches the record: {not diff} {diff}")


if __name__ == "__main__":
    main()
