"""Paper 000's KD-EDN figures with the committed models: Figs. 3-9, feedback cost, time.

What it measures (issue 4), every learned model being the committed one
(``agents/pretrained/<agent>/<env>/``, made by ``examples/train.py``, command in its
``config.json``):

* Figs. 3/4: the training curves of KD-EDN, "Unsupervised" and "Supervised" (sum-rate of
  W_Qt per epoch, channel-decoder NMSE per epoch), read from the committed ``train_log.csv``;
* Fig. 5: sum-rate vs Q_i (0..20) at 15 dB for the models trained with Q_t = 5 (``kd_edn``)
  and Q_t = 0 (``kd_edn_q0``), and MMSE+GA(Q_i) with perfect feedback of the estimate;
* Figs. 6/8/9: sum-rate vs SNR (5-20 dB) for KD-EDN (Q_i = 10), Unsupervised, Supervised,
  KD-EDN Q=0, MMSE+GA(10), MMSE, MRT, and WMMSE with PERFECT CSI (upper reference the paper
  does not show), on every env with committed models; mean and 95% CI over ``--n-test``
  instances of the fixed test seed, paired differences KD-EDN - X with their CI;
* feedback cost per user per coherence interval: KD-EDN's measured entropy-coded bits
  (empirical entropy of the quantized latents on the test set) against sending the estimated
  channel (2MN reals as 32-bit floats, or with the same b-bit uniform quantizer per real);
* training time of each committed model (its ``config.json``) and inference latency per
  instance, batched and single (the harness);
* issue 11 item 2: the stage-1 validation curve of every model trained with ``--val-every``
  (the deployed W_0's true-channel rate on the validation seed) with its gain over the last
  20% of epochs, and the cost of eq. (11)'s oracle: the 300-epoch recipe trained with the Q_t
  steps on the true channel (``kd_edn/FullyDigitalFDD-v0-300-epochs``) against the same
  recipe with the steps on the reconstructed channel
  (``kd_edn/FullyDigitalFDD-v0-ga-reconstructed``), both deployed as the agent runs them.

Usage:
    python benchmarks/kd_edn_000.py                 # full run, ~5-10 min on 2 cores
    python benchmarks/kd_edn_000.py --quick         # smoke run (small sets, not reported)

Writes benchmarks/results/kd_edn_000.json (``--out``) and, with matplotlib,
benchmarks/results/kd_edn_000.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import agents  # noqa: E402, F401
from agents.base import CheckpointError, make_agent, registered_agents  # noqa: E402
from agents.harness import evaluate_agent, mean_ci  # noqa: E402
from agents.pretrained import pretrained_dir  # noqa: E402
from beamgym.datasets import make_instance_set, make_task  # noqa: E402

TEST_SEED = 1_000_003  # examples/evaluate.py's fixed test seed
ENVS = ("beamgym/FullyDigitalFDD-v0", "beamgym/FarFieldHybrid-v0", "beamgym/NearFieldHybrid-v0")
LEARNED = ("kd_edn", "edn_unsupervised", "edn_supervised", "kd_edn_q0")
BASELINES = ("mmse_ga", "mmse", "mrt")


#: (label, env id, env keywords, paper figure): the scenarios with committed KD-EDN models.
SCENARIOS = (
    ("MISO single cell", ENVS[0], {}, "Fig. 6(a)"),
    ("MISO spatial division", ENVS[0], {"placement": "spatial-division"}, "Fig. 6(b)"),
    ("MIMO single cell (K=4, M=4)", ENVS[0], {"K": 4, "M": 4}, "Fig. 7(a)"),
    (
        "MIMO spatial division (K=4, M=4, psi=pi/4)",
        ENVS[0],
        {"K": 4, "M": 4, "placement": "spatial-division", "psi": math.pi / 4},
        "Fig. 7(b)",
    ),
    ("far-field hybrid, single cell", ENVS[1], {}, "Fig. 8(a)"),
    ("far-field hybrid, spatial division", ENVS[1], {"placement": "spatial-division"}, "Fig. 8(b)"),
    ("near-field hybrid, single cell", ENVS[2], {}, "Fig. 9(a)"),
    (
        "near-field hybrid, spatial division",
        ENVS[2],
        {"placement": "spatial-division"},
        "Fig. 9(b)",
    ),
)


def _available(name: str, env_id: str, env_kwargs: dict | None = None) -> bool:
    spec = registered_agents().get(name)
    if spec is None or env_id not in spec.env_ids:
        return False
    if name not in LEARNED:
        return True
    try:
        make_agent(name, make_task(env_id, **(env_kwargs or {})))
    except CheckpointError:  # no committed model for this configuration
        return False
    return True


def training_curves() -> dict:
    out = {}
    for name in LEARNED:
        root = pretrained_dir(name, ENVS[0]).parent
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            log = folder / "train_log.csv"
            if not log.is_file():
                continue
            rows = list(csv.DictReader(log.open()))
            meta = json.loads((folder / "config.json").read_text())
            edn = [
                (int(float(r["epoch"])), float(r["sum_rate"])) for r in rows if r["stage"] == "edn"
            ]
            ch = [
                (int(float(r["epoch"])), float(r["nmse_db"]))
                for r in rows
                if r["stage"] == "channel"
            ]
            ch = ch[::10] + ([ch[-1]] if (len(ch) - 1) % 10 else [])  # every 10th + the last
            out[f"{name}/{folder.name}"] = {
                "command": meta["command"],
                "train_seconds": meta["train_seconds"],
                "edn_sum_rate": edn,
                "channel_nmse_db": ch,
            }
    return out


def rate_vs_snr(env_id: str, kw: dict, snrs: list[float], n: int, batch: int) -> dict:
    names = [a for a in (*LEARNED, *BASELINES) if _available(a, env_id, kw)]
    table: dict = {"env_id": env_id, "env_kwargs": kw, "agents": names, "snr_db": snrs, "rows": {}}
    for snr in snrs:
        ds = make_instance_set(env_id, n=n, seed=TEST_SEED, snr_db=snr, **kw)
        task = make_task(env_id, snr_db=snr, **kw)
        per: dict = {}
        metrics: dict = {}
        for name in names:
            agent = make_agent(name, task)
            res = evaluate_agent(agent, ds, batch_size=batch, single_instances=20)
            s = res.summary()
            metrics[name] = res.metric
            per[name] = {
                "mean": s["metric_mean"],
                "ci95": s["metric_ci95"],
                "latency_batched_us": s["latency_batched_us"],
                "latency_single_us": s["latency_single_us"],
            }
            if name == "kd_edn":
                known = task.known(ds.instances)
                per[name]["feedback"] = agent.feedback_cost(known)
                # the same model over an error-free feedback link (quantization only)
                clean = make_agent(name, task, link="noiseless")
                res = evaluate_agent(clean, ds, batch_size=batch, single_instances=1)
                metrics["kd_edn_no_feedback_error"] = res.metric
                mu, ci = mean_ci(res.metric)
                per["kd_edn_no_feedback_error"] = {"mean": mu, "ci95": ci}
        # WMMSE with perfect CSI (upper reference): same instances, true channel as the estimate
        perfect = make_task(env_id, snr_db=snr, csi_error="perfect", **kw)
        ds_p = make_instance_set(env_id, n=n, seed=TEST_SEED, snr_db=snr, csi_error="perfect", **kw)
        same = bool(torch.equal(ds_p.instances.H, ds.instances.H))  # the same true channels
        wmmse = make_agent("wmmse", perfect)
        res = evaluate_agent(wmmse, ds_p, batch_size=batch, single_instances=5)
        metrics["wmmse_perfect_csi"] = res.metric
        s = res.summary()
        per["wmmse_perfect_csi"] = {
            "mean": s["metric_mean"],
            "ci95": s["metric_ci95"],
            "same_channels_as_test_set": same,
        }
        if "kd_edn" in metrics:
            for other, m in metrics.items():
                if other != "kd_edn":
                    mu, ci = mean_ci(metrics["kd_edn"] - m)
                    per.setdefault("kd_edn_minus", {})[other] = {"mean": mu, "ci95": ci}
        table["rows"][str(snr)] = per
        print(env_id, kw, snr, {k: round(v["mean"], 2) for k, v in per.items() if "mean" in v})
    return table


def rate_vs_qi(n: int, batch: int, qs: list[int]) -> dict:
    env_id = ENVS[0]
    ds = make_instance_set(env_id, n=n, seed=TEST_SEED, snr_db=15.0)
    task = make_task(env_id, snr_db=15.0)
    out: dict = {"q_i": qs}
    qt10 = pretrained_dir("kd_edn", env_id, "qt10") / "checkpoint.pt"
    models = {"kd_edn (Q_t=5)": ("kd_edn", None), "kd_edn_q0 (Q_t=0)": ("kd_edn_q0", None)}
    if qt10.is_file():  # committed model trained with Q_t = 10 (Fig. 5's third curve)
        models["kd_edn (Q_t=10)"] = ("kd_edn", str(qt10))
    for label, (name, ckpt) in models.items():
        if not _available(name, env_id):
            continue
        out[label] = []
        for q in qs:
            agent = make_agent(name, task, q_infer=q, checkpoint=ckpt)
            res = evaluate_agent(agent, ds, batch_size=batch, single_instances=1)
            out[label].append(mean_ci(res.metric))
    out["mmse_ga"] = []
    for q in qs:
        res = evaluate_agent(
            make_agent("mmse_ga", task, steps=q), ds, batch_size=batch, single_instances=1
        )
        out["mmse_ga"].append(mean_ci(res.metric))
    print("Q_i sweep", {k: [round(m, 2) for m, _ in v] for k, v in out.items() if k != "q_i"})
    return out


#: Issue 11 item 2: label -> variant folder of kd_edn on FullyDigitalFDD-v0 ("" = the default).
ORACLE_ABLATION = {
    "plateau (main model)": "",
    "300 epochs, Q_t steps on H (eq. 11)": "300-epochs",
    "300 epochs, Q_t steps on H_hat": "ga-reconstructed",
}


def validation_curves() -> dict:
    """Stage-1 validation curves (``stage == "val"`` rows) of the committed kd_edn models."""
    from agents.kd_edn.train import plateau_gain

    out = {}
    for name in LEARNED:
        root = pretrained_dir(name, ENVS[0]).parent
        for folder in sorted(root.iterdir()) if root.is_dir() else []:
            log = folder / "train_log.csv"
            rows = (
                [r for r in csv.DictReader(log.open()) if r["stage"] == "val"]
                if log.is_file()
                else []
            )
            if len(rows) < 2:
                continue
            epochs = [float(r["epoch"]) for r in rows]
            w0 = [float(r["val_sum_rate"]) for r in rows]
            out[f"{name}/{folder.name}"] = {
                "epoch": epochs,
                "val_sum_rate": w0,
                "val_ga_rate": [float(r["val_ga_rate"]) for r in rows],
                "last_20pct_gain": plateau_gain(w0, epochs),
            }
    return out


def oracle_ablation(snrs: list[float], n: int, batch: int) -> dict:
    """Deployed rate (Q_i = 10 and 0) of the ORACLE_ABLATION models on the test set."""
    env_id = ENVS[0]
    out: dict = {"snr_db": snrs, "models": {}, "paired_hat_minus_true": {}}
    metrics: dict = {}
    for label, variant in ORACLE_ABLATION.items():
        ckpt = pretrained_dir("kd_edn", env_id, variant) / "checkpoint.pt"
        if not ckpt.is_file():
            continue
        out["models"][label] = {"folder": ckpt.parent.name, "q_i_10": [], "q_i_0": []}
        for snr in snrs:
            ds = make_instance_set(env_id, n=n, seed=TEST_SEED, snr_db=snr)
            task = make_task(env_id, snr_db=snr)
            for q in (10, 0):
                agent = make_agent("kd_edn", task, q_infer=q, checkpoint=str(ckpt))
                res = evaluate_agent(agent, ds, batch_size=batch, single_instances=1)
                out["models"][label][f"q_i_{q}"].append(mean_ci(res.metric))
                metrics[(label, snr, q)] = res.metric
    a, b = list(ORACLE_ABLATION)[2], list(ORACLE_ABLATION)[1]
    for q in (10, 0):
        if all((x, s, q) in metrics for x in (a, b) for s in snrs):
            out["paired_hat_minus_true"][f"q_i_{q}"] = [
                mean_ci(metrics[(a, s, q)] - metrics[(b, s, q)]) for s in snrs
            ]
    print(
        "oracle ablation",
        {k: [round(m, 2) for m, _ in v["q_i_10"]] for k, v in out["models"].items()},
    )
    return out


def feedback_reference(env_id: str, kw: dict) -> dict:
    task = make_task(env_id, **kw)
    x = task.known(task.sample(torch.Generator().manual_seed(0), 1))
    from agents.rules.problem import problem_from_known

    H = problem_from_known(task, x).linear_channel
    reals = 2 * int(np.prod(H.shape[2:]))
    return {"channel_reals_per_user": reals, "float32_bits_per_user": 32 * reals}


def plot(results: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    envs = list(results["rate_vs_snr"])
    fig, axes = plt.subplots(1, len(envs) + 1, figsize=(5 * (len(envs) + 1), 4))
    for ax, label in zip(axes, envs, strict=False):
        t = results["rate_vs_snr"][label]
        names = [*t["agents"], "wmmse_perfect_csi"]
        for name in names:
            ys = [t["rows"][str(s)][name]["mean"] for s in t["snr_db"]]
            ax.plot(t["snr_db"], ys, marker="o", label=name)
        ax.set(xlabel="SNR (dB)", ylabel="sum-rate (bit/s/Hz)", title=f"{t['figure']}: {label}")
        ax.legend(fontsize=7)
    ax = axes[-1]
    q = results["rate_vs_qi"]
    for name in [k for k in q if k != "q_i"]:
        ax.plot(q["q_i"], [m for m, _ in q[name]], marker="o", label=name)
    ax.set(xlabel="Q_i", ylabel="sum-rate at 15 dB", title="Fig. 5: rate vs Q_i (FDD MISO)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(results: dict) -> str:
    """The tables of BENCHMARKS.md's KD-EDN section from a results dict."""
    lines = []
    for label, t in results["rate_vs_snr"].items():
        names = [*t["agents"], "kd_edn_no_feedback_error", "wmmse_perfect_csi"]
        names = [x for x in names if x in t["rows"][str(t["snr_db"][0])]]
        lines += [f"**{t['figure']}: {label}** (mean ± 95% CI, {results['n_test']} instances)", ""]
        lines.append("| agent | " + " | ".join(f"{s:g} dB" for s in t["snr_db"]) + " |")
        lines.append("|---|" + "---|" * len(t["snr_db"]))
        for x in names:
            cells = [t["rows"][str(s)][x] for s in t["snr_db"]]
            lines.append(
                f"| {x} | " + " | ".join(f"{c['mean']:.2f} ± {c['ci95']:.2f}" for c in cells) + " |"
            )
        lines.append(
            "| KD-EDN − MMSE+GA(10), paired | "
            + " | ".join(
                f"{t['rows'][str(s)]['kd_edn_minus']['mmse_ga']['mean']:+.2f} ± "
                f"{t['rows'][str(s)]['kd_edn_minus']['mmse_ga']['ci95']:.2f}"
                for s in t["snr_db"]
            )
            + " |"
        )
        fb = t["rows"][str(t["snr_db"][-1])]["kd_edn"].get("feedback")
        ref = results["feedback_reference"][label]
        if fb:
            lines.append("")
            lines.append(
                f"Feedback per user per coherence interval: KD-EDN "
                f"{fb['coded_bits_per_user']:.1f} bits with its Huffman code (designed on training "
                f"data), empirical entropy {fb['bits_per_user']:.1f} bits "
                f"({fb['entropy_bits_per_symbol']:.2f} bits/symbol; "
                f"{fb['fixed_bits_per_user']:.0f} with fixed-length coding) vs the estimated "
                f"channel itself: {ref['channel_reals_per_user']} reals = "
                f"{ref['float32_bits_per_user']} bits as float32."
            )
        lines.append("")
    q = results["rate_vs_qi"]
    lines.append("**Fig. 5: sum-rate vs Q_i at 15 dB, MISO single cell**")
    lines.append("")
    lines.append("| model | " + " | ".join(f"Q_i={x}" for x in q["q_i"]) + " |")
    lines.append("|---|" + "---|" * len(q["q_i"]))
    for k, v in q.items():
        if k != "q_i":
            lines.append(f"| {k} | " + " | ".join(f"{m:.2f} ± {c:.2f}" for m, c in v) + " |")
    lines.append("")
    ab = results.get("oracle_ablation", {})
    if ab.get("models"):
        snrs = ab["snr_db"]
        lines.append("**The oracle of eq. (11): deployed sum-rate, MISO single cell**")
        lines.append("")
        lines.append("| model | Q_i | " + " | ".join(f"{x:g} dB" for x in snrs) + " |")
        lines.append("|---|---|" + "---|" * len(snrs))
        for label, m in ab["models"].items():
            for q in (10, 0):
                cells = " | ".join(f"{mu:.2f} ± {ci:.2f}" for mu, ci in m[f"q_i_{q}"])
                lines.append(f"| {label} | {q} | {cells} |")
        for q, v in ab.get("paired_hat_minus_true", {}).items():
            cells = " | ".join(f"{mu:+.2f} ± {ci:.2f}" for mu, ci in v)
            lines.append(f"| H_hat − H steps, paired | {q.split('_')[-1]} | {cells} |")
        lines.append("")
    for k, v in results.get("validation_curves", {}).items():
        pts = list(zip(v["epoch"], v["val_sum_rate"], strict=True))
        step = max(1, len(pts) // 10)
        shown = pts[::step] + ([pts[-1]] if (len(pts) - 1) % step else [])
        lines.append(
            f"Validation curve of {k} (deployed W_0, Q_i = 0, true channel; gain over the last "
            f"20% of epochs {100 * v['last_20pct_gain']:+.2f}%):"
        )
        lines.append("")
        lines.append("| epoch | " + " | ".join(f"{e:.0f}" for e, _ in shown) + " |")
        lines.append("|---|" + "---|" * len(shown))
        lines.append("| W_0 rate | " + " | ".join(f"{r:.2f}" for _, r in shown) + " |")
        lines.append("")
    lines.append(
        "| committed model | W_Qt rate, last 20 epochs | channel NMSE (dB), last 100 epochs | "
        "training time (s) | command |"
    )
    lines.append("|---|---|---|---|---|")
    for k, v in results["training"].items():
        rate = np.mean([r for _, r in v["edn_sum_rate"][-20:]])
        nmse = np.mean(
            [r for e, r in v["channel_nmse_db"] if e >= v["channel_nmse_db"][-1][0] - 99]
        )
        lines.append(
            f"| {k} | {rate:.2f} | {nmse:.2f} | {v['train_seconds']:.0f} | `{v['command']}` |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--batch", type=int, default=250)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "kd_edn_000.json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    n = 64 if args.quick else args.n_test
    snrs = [5.0, 10.0, 15.0, 20.0]
    t0 = time.perf_counter()
    results: dict = {
        "command": "python benchmarks/kd_edn_000.py" + (" --quick" if args.quick else ""),
        "n_test": n,
        "test_seed": TEST_SEED,
        "machine": {"platform": platform.platform(), "threads": args.threads},
        "training": training_curves(),
        "rate_vs_snr": {},
        "feedback_reference": {},
    }
    for label, env_id, kw, fig in SCENARIOS:
        if not _available("kd_edn", env_id, kw):
            print(f"skipped {label}: no committed kd_edn model")
            continue
        results["rate_vs_snr"][label] = {
            "figure": fig,
            **rate_vs_snr(env_id, kw, snrs, n, args.batch),
        }
        results["feedback_reference"][label] = feedback_reference(env_id, kw)
    results["rate_vs_qi"] = rate_vs_qi(n, args.batch, [0, 1, 2, 5, 10, 20])
    results["validation_curves"] = validation_curves()
    results["oracle_ablation"] = oracle_ablation(snrs, n, args.batch)
    results["seconds"] = time.perf_counter() - t0
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
        plot(results, args.out.with_suffix(".png"))
        print(f"wrote {args.out}")
    print(markdown(results))
    print(f"done in {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
