"""Which OutageHybrid-v0 instances are removed, and what the rule does to mean powers.

Paper 002 Sec. V-A-4 removes "instances that are infeasible under perfect CSI". OutageHybrid-v0
offers two tests (``removal_rule``, docs/readings.md#002-removed-instances):

* ``"greedy"`` (default, the paper's reading): G-HBF-perf, the greedy of Sec. III with
  ``L_rf = 2 M_rf``, run on the TRUE channel, cannot meet every target within ``P_max``;
* ``"analog-start"``: the eq. (35) analog start with the virtual-uplink fixed point and eq. (22)
  cannot (sufficient, stricter).

For each setting this script draws ``--n`` instances with ``reject_infeasible=False`` (test
seed), applies both tests to the same draws, and reports the removed fraction of each and the
mean G-HBF-perf power ||p||_1 (on the true channel) over the instances each rule keeps, with
95% confidence intervals. The difference of the two means is the bias the stricter rule puts
into every method's mean power.

Usage (about 2 minutes on the 2-core CPU machine):
    python benchmarks/removed_instances_002.py --n 4000
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch

from agents.harness import mean_ci
from beamgym.envs.outage_hybrid import OutageHybridConfig, OutageHybridTask
from beamgym.physics.greedy import greedy_hybrid_beamforming

TEST_SEED = 1_000_003

#: (label, OutageHybridConfig keywords): Table 2's setting, and Table 3's user counts at
#: M_rf = 8, where the rules differ most, at two angular spreads.
SETTINGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Table 2 (defaults, constraint_groups=True)", {"constraint_groups": True}),
    ("I=4, M_rf=5, sigma_as=10 deg", {"num_users": 4}),
    ("I=4, M_rf=5, sigma_as=5 deg", {"num_users": 4, "sigma_as_deg": 5.0}),
    ("Table 3: I=3, M_rf=8", {"num_users": 3, "num_rf": 8}),
    ("Table 3: I=4, M_rf=8", {"num_users": 4, "num_rf": 8}),
    ("I=4, M_rf=8, sigma_as=5 deg", {"num_users": 4, "num_rf": 8, "sigma_as_deg": 5.0}),
)


def measure(kwargs: dict[str, Any], n: int, seed: int) -> dict[str, Any]:
    """Removed fractions and kept-instance G-HBF-perf powers of both rules on ``n`` draws."""
    tasks = {
        rule: OutageHybridTask(
            OutageHybridConfig(reject_infeasible=False, removal_rule=rule, **kwargs),
            precision="double",
        )
        for rule in ("greedy", "analog-start")
    }
    task = tasks["greedy"]
    inst = task.sample(torch.Generator().manual_seed(seed), n)
    sol = greedy_hybrid_beamforming(
        inst.h.to(torch.complex128),
        inst.gamma.to(torch.float64),
        task.codebook.to(torch.complex128),
        task.config.num_rf,
        task.config.p_max,
    )
    out: dict[str, Any] = {"kwargs": kwargs, "n": n}
    for rule, t in tasks.items():
        keep = t._feasible_perfect_csi(inst)
        power = sol.power[keep].double().numpy()
        m, ci = mean_ci(power)
        out[rule] = {
            "removed_fraction": float((~keep).double().mean()),
            "removed": int((~keep).sum()),
            "ghbf_perf_power_mean": m,
            "ghbf_perf_power_ci95": ci,
            "kept": int(keep.sum()),
        }
    g, s = out["greedy"]["ghbf_perf_power_mean"], out["analog-start"]["ghbf_perf_power_mean"]
    out["analog_start_power_bias_pct"] = 100.0 * (s - g) / g
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=4000, help="instances per setting")
    p.add_argument("--seed", type=int, default=TEST_SEED)
    p.add_argument("--threads", type=int, default=2)
    default_out = Path("benchmarks/results/removed_instances_002.json")
    p.add_argument("--out", type=Path, default=default_out)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    rows = []
    t0 = time.perf_counter()
    for label, kw in SETTINGS:
        r = measure(kw, a.n, a.seed)
        r["setting"] = label
        rows.append(r)
        g, s = r["greedy"], r["analog-start"]
        print(
            f"{label:45s} removed: greedy {100 * g['removed_fraction']:.2f}%  "
            f"analog-start {100 * s['removed_fraction']:.2f}% | G-HBF-perf power kept: "
            f"{g['ghbf_perf_power_mean']:.3f} ± {g['ghbf_perf_power_ci95']:.3f} vs "
            f"{s['ghbf_perf_power_mean']:.3f} ± {s['ghbf_perf_power_ci95']:.3f} "
            f"({r['analog_start_power_bias_pct']:+.1f}%)"
        )
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(
        json.dumps(
            {
                "command": f"python benchmarks/removed_instances_002.py --n {a.n} --seed {a.seed}",
                "seconds": time.perf_counter() - t0,
                "machine": platform.platform(),
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
