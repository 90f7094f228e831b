"""Throughput of each env's batched ``evaluate`` against a per-instance Python loop.

For every registered env at its default size: draw a fixed instance set, map random actions to
beamformers once, then time (a) one batched ``task.evaluate`` call over the whole batch and (b)
a Python loop that evaluates the same instances one at a time. Reports instances per second of
both and their ratio. Target (issue 2): batched >= 50x the loop for FullyDigitalFDD-v0 at
N=64, K=16 with a batch of 4096.

With ``--large``, measures instead how the fully digital and the hybrid env scale to large
arrays, N in {64, 256, 1024} antennas and K in {16, 64} users (FarFieldHybrid-v0 with
N_RF = K): one env step (draw the instances, map random actions, evaluate) at growing batch
sizes, reporting instances/s, the peak memory per instance (peak resident memory above the
baseline while stepping, sampled every millisecond with glibc's mmap threshold fixed at 64 kB so
that freed tensors leave the resident set; on CUDA ``torch.cuda.max_memory_allocated``) beside
the bytes of the instances and beamformers themselves,
how many instances fit in the memory available, and the exponent of the cost's growth with N
and K. A size stops growing its batch once a step takes longer than ``--step-limit`` seconds.

Usage:
    python benchmarks/env_throughput.py [--batch 4096] [--repeats 5] [--out PATH.json]
    python benchmarks/env_throughput.py --large [--device cuda] [--step-limit 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

import beamgym
from beamgym.datasets import make_instance_set, make_task


def _best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_env(env_id: str, batch: int, loop_n: int, repeats: int, seed: int) -> dict:
    task = make_task(env_id)
    ds = make_instance_set(env_id, n=batch, seed=seed)
    inst = ds.instances
    rng = np.random.default_rng(seed)
    actions = torch.as_tensor(rng.uniform(-1, 1, (batch, task.action_dim)), dtype=task.rdtype)
    with torch.no_grad():
        bf, _ = task.action_to_beamformer(actions, inst)

        def batched() -> None:
            task.evaluate(bf, inst)

        singles = [(bf[i : i + 1], inst[i : i + 1]) for i in range(loop_n)]

        def loop() -> None:
            for b, x in singles:
                task.evaluate(b, x)

        t_batch = _best_time(batched, repeats)
        t_loop = _best_time(loop, max(1, repeats // 2))
        # consistency: the loop and the batch give the same metric
        ref = task.evaluate(bf[:loop_n], inst[:loop_n])["metric"]
        got = torch.cat([task.evaluate(b, x)["metric"] for b, x in singles])
        max_rel = float(((ref - got).abs() / ref.abs().clamp_min(1e-12)).max())
    batched_ips = batch / t_batch
    loop_ips = loop_n / t_loop
    return {
        "env_id": env_id,
        "batch": batch,
        "loop_instances": loop_n,
        "batched_instances_per_s": batched_ips,
        "loop_instances_per_s": loop_ips,
        "speedup": batched_ips / loop_ips,
        "batched_seconds": t_batch,
        "max_rel_diff_loop_vs_batch": max_rel,
    }


#: The large-array grid of ``--large``: envs (fully digital, hybrid), antennas N, users K.
LARGE_ENVS = ("beamgym/FullyDigitalFDD-v0", "beamgym/FarFieldHybrid-v0")
LARGE_N = (64, 256, 1024)
LARGE_K = (16, 64)


def _rss_bytes() -> int:
    """Resident memory of this process (Linux ``/proc/self/statm``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return 0


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class _PeakMemory:
    """Peak memory above the baseline while the ``with`` block runs (RSS sampled, or CUDA)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0

    def __enter__(self) -> _PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return self
        self.base = _rss_bytes()
        self._stop = threading.Event()
        self._max = self.base

        def sample() -> None:
            while not self._stop.is_set():
                self._max = max(self._max, _rss_bytes())
                time.sleep(0.001)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device) - self.base
            return
        self._max = max(self._max, _rss_bytes())
        self._stop.set()
        self._thread.join()
        self.peak = self._max - self.base


def _nbytes(x: object) -> int:
    """Bytes of the tensors of ``x`` (a tensor, a tensor dataclass, or a tuple of them)."""
    if isinstance(x, torch.Tensor):
        return x.nelement() * x.element_size()
    if isinstance(x, tuple | list):
        return sum(_nbytes(v) for v in x)
    items = getattr(x, "_tensor_items", None)
    return sum(_nbytes(t) for _, t in items()) if callable(items) else 0


def large_config(env_id: str, n: int, k: int) -> dict:
    """Env keywords of a large array: N antennas, K users (hybrid: N_RF = K RF chains)."""
    kw = {"N": n, "K": k}
    if env_id == "beamgym/FarFieldHybrid-v0":
        kw["N_RF"] = k
    return kw


def bench_large(
    env_id: str,
    n: int,
    k: int,
    *,
    device: str = "cpu",
    step_limit_s: float = 3.0,
    target_s: float = 1.0,
    max_batch: int = 1024,
    seed: int = 0,
) -> dict:
    """One env step (sample, action map, evaluate) of an N x K array at growing batch sizes.

    The batch doubles from 8 until a step takes ``target_s`` or the batch reaches
    ``max_batch``; a step slower than ``step_limit_s`` stops the size there (``stopped``).
    """
    dev = torch.device(device)
    kw = large_config(env_id, n, k)
    task = make_task(env_id, device=dev, **kw)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    rng = np.random.default_rng(seed)
    batch, rows, stopped = 8, [], None
    while True:
        actions = torch.as_tensor(
            rng.uniform(-1, 1, (batch, task.action_dim)), dtype=task.rdtype, device=dev
        )
        with torch.no_grad(), _PeakMemory(dev) as mem:
            t0 = time.perf_counter()
            inst = task.sample(gen, batch).to(dev)
            t1 = time.perf_counter()
            bf, _ = task.action_to_beamformer(actions, inst)
            out = task.evaluate(bf, inst)["metric"]
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            t2 = time.perf_counter()
        assert bool(torch.isfinite(out).all()), f"{env_id} {kw}: non-finite metric"
        held = _nbytes(inst) + _nbytes(bf)
        step = t2 - t0
        rows.append(
            {
                "batch": batch,
                "step_seconds": step,
                "sample_seconds": t1 - t0,
                "map_and_evaluate_seconds": t2 - t1,
                "peak_bytes": mem.peak,
                "instance_and_beamformer_bytes": held,
            }
        )
        del inst, bf, out, actions
        if step > step_limit_s:
            stopped = f"a step of batch {batch} took {step:.1f} s > {step_limit_s} s"
            break
        if step >= target_s or batch >= max_batch:
            break
        batch *= 2
    last = rows[-1]
    per_instance = last["peak_bytes"] / last["batch"]
    available = _available_bytes(dev)
    return {
        "env_id": env_id,
        "env_kwargs": kw,
        "N": n,
        "K": k,
        "device": str(dev),
        "batch": last["batch"],
        "instances_per_s": last["batch"] / last["step_seconds"],
        "seconds_per_instance": last["step_seconds"] / last["batch"],
        "sample_share": last["sample_seconds"] / last["step_seconds"],
        "peak_bytes_per_instance": per_instance,
        "instance_and_beamformer_bytes_per_instance": last["instance_and_beamformer_bytes"]
        / last["batch"],
        "available_bytes": available,
        "max_instances_in_memory": int(available / per_instance) if per_instance > 0 else None,
        "stopped": stopped,
        "steps": rows,
    }


def _growth(rows: list[dict]) -> list[dict]:
    """Log-log slope of the time and memory per instance against N (per K) and K (per N)."""
    out = []
    for env_id in dict.fromkeys(r["env_id"] for r in rows):
        sub = [r for r in rows if r["env_id"] == env_id]
        for axis, other in (("N", "K"), ("K", "N")):
            for v in sorted({r[other] for r in sub}):
                pts = sorted((r[axis], r) for r in sub if r[other] == v)
                if len(pts) < 2:
                    continue
                x = np.log([p[0] for p in pts])
                t = np.log([p[1]["seconds_per_instance"] for p in pts])
                m = np.log([max(p[1]["peak_bytes_per_instance"], 1.0) for p in pts])
                out.append(
                    {
                        "env_id": env_id,
                        "axis": axis,
                        f"at_{other}": v,
                        "time_exponent": float(np.polyfit(x, t, 1)[0]),
                        "memory_exponent": float(np.polyfit(x, m, 1)[0]),
                    }
                )
    return out


def main_large(args: argparse.Namespace) -> None:
    if args.device == "cpu" and os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:
        # glibc then maps every block above 64 kB on its own and unmaps it when freed, so the
        # resident memory follows the live tensors and the sampled peak is the step's own
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    rows = []
    for env_id in LARGE_ENVS:
        for k in LARGE_K:
            for n in LARGE_N:
                row = bench_large(
                    env_id, n, k, device=args.device, step_limit_s=args.step_limit, seed=args.seed
                )
                rows.append(row)
                note = f"  STOPPED: {row['stopped']}" if row["stopped"] else ""
                print(
                    f"{env_id:28s} N={n:5d} K={k:3d} batch {row['batch']:5d} "
                    f"{row['instances_per_s']:>10,.1f} inst/s "
                    f"{row['peak_bytes_per_instance'] / 2**20:8.3f} MiB/inst "
                    f"fits {row['max_instances_in_memory'] or 0:>10,d}{note}"
                )
    result = {
        "command": (
            f"python benchmarks/env_throughput.py --large --device {args.device} "
            f"--step-limit {args.step_limit} --threads {args.threads}"
        ),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "threads": args.threads,
            "device": args.device,
        },
        "results": rows,
        "growth": _growth(rows),
    }
    out = args.out
    if out == Path("benchmarks/results/env_throughput.json"):
        out = Path(f"benchmarks/results/env_throughput_large_{args.device.split(':')[0]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--loop", type=int, default=1024, help="instances in the per-instance loop")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/env_throughput.json"))
    p.add_argument("--large", action="store_true", help="large arrays N x K instead")
    p.add_argument("--device", default="cpu", help="--large: cpu or cuda")
    p.add_argument("--step-limit", type=float, default=3.0, help="--large: seconds per step")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.large:
        main_large(args)
        return
    rows = []
    for env_id in beamgym.ENV_IDS:
        row = bench_env(env_id, args.batch, min(args.loop, args.batch), args.repeats, args.seed)
        rows.append(row)
        print(
            f"{env_id:32s} batched {row['batched_instances_per_s']:>12,.0f}/s  "
            f"loop {row['loop_instances_per_s']:>10,.0f}/s  speedup {row['speedup']:7.1f}x"
        )
    result = {
        "command": (
            "python benchmarks/env_throughput.py "
            f"--batch {args.batch} --loop {args.loop} --repeats {args.repeats} "
            f"--threads {args.threads}"
        ),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "threads": args.threads,
        },
        "target": "FullyDigitalFDD-v0 batched >= 50x loop at batch 4096",
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
