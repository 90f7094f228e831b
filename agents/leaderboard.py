"""A leaderboard from a sweep's results table: ranked Markdown tables and metric-vs-SNR plots.

:func:`write_leaderboard` turns the Parquet table of :func:`agents.sweep.run_sweep` into a
Markdown page with one section per env group of the sweep. Each section ranks the agents by
the env's headline metric at one SNR (mean and Student-t 95% CI), shows the other SNRs, the
batched and single-instance latency, the feedback bits per user where an agent has a feedback
link, and the paper's number where the paper prints one (:data:`PAPER_NUMBERS`); then a plot
of the metric against SNR and the agents that were skipped, with the reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agents.harness import TEST_SEED
from beamgym.datasets import make_task

__all__ = ["PAPER_NUMBERS", "PaperNumber", "headline_snr", "leaderboard_markdown", "paper_number"]


@dataclasses.dataclass(frozen=True)
class PaperNumber:
    """A number a paper prints for an agent at one env configuration.

    Attributes:
        agent: Registry name of the agent that implements the paper's method.
        env_id: Env id.
        setting: The env keywords of the paper's configuration (without ``snr_db``); a row
            matches when its keywords are exactly these.
        snr_db: SNR of the printed number (``None`` for envs without an SNR keyword).
        value: The printed value, in the env's metric unit.
        source: Where the paper prints it (and where beamgym compares against it).
    """

    agent: str
    env_id: str
    setting: Mapping[str, Any]
    snr_db: float | None
    value: float
    source: str


#: The papers' printed numbers that BENCHMARKS.md already compares against. Papers 000 and 003
#: print their results only as figures, so their envs have none.
PAPER_NUMBERS: tuple[PaperNumber, ...] = (
    PaperNumber(
        "upga_m", "beamgym/ModularUplink-v0", {}, 0.0, 0.95, "004 Table I, Scenario 1, U-PGA+M"
    ),
    PaperNumber(
        "line_search",
        "beamgym/ModularUplink-v0",
        {},
        0.0,
        0.92,
        "004 Table I, Scenario 1, line search (10)",
    ),
    PaperNumber("mo", "beamgym/ModularUplink-v0", {}, 0.0, 0.75, "004 Table I, Scenario 1, MO"),
    PaperNumber(
        "modular_cnn", "beamgym/ModularUplink-v0", {}, 0.0, 0.73, "004 Table I, Scenario 1, CNN"
    ),
    PaperNumber(
        "ghbf_marg",
        "beamgym/OutageHybrid-v0",
        {"constraint_groups": True},
        None,
        8.86,
        "002 Table 2, G-HBF-marg, P_pil in [10, 24] dB (outage 10.03%)",
    ),
)


def paper_number(agent: str, env_id: str, setting: Mapping[str, Any], snr_db: float | None):
    """The :class:`PaperNumber` for this agent and configuration, or ``None``."""
    for p in PAPER_NUMBERS:
        same_snr = (p.snr_db is None and snr_db is None) or (
            p.snr_db is not None and snr_db is not None and math.isclose(p.snr_db, snr_db)
        )
        if p.agent == agent and p.env_id == env_id and dict(p.setting) == dict(setting):
            if same_snr:
                return p
    return None


def headline_snr(env_id: str, snrs: list[float]) -> float | None:
    """The SNR a group is ranked at: the env's default if swept, else the (upper) median."""
    values = sorted(s for s in snrs if not math.isnan(s))
    if not values:
        return None
    default = getattr(make_task(env_id).config, "snr_db", None)
    if default is not None and any(math.isclose(default, s) for s in values):
        return float(default)
    return values[len(values) // 2]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def _fmt(v: float, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.{digits}g}" if abs(v) >= 1e4 else f"{v:.{digits}f}".rstrip("0").rstrip(".")


def _metric(mean: float, ci: float, digits: int) -> str:
    ci_text = "n/a" if math.isnan(ci) else f"{ci:.{digits}f}"
    return f"{mean:.{digits}f} ± {ci_text}"


def _bits(text: str) -> str:
    fb = json.loads(text) if text else None
    if not fb:
        return "–"
    out = f"{fb['symbols_x_bits']:.0f}"
    if fb.get("entropy_coded") is not None:
        out += f" (coded {fb['entropy_coded']:.1f})"
    elif fb.get("noisy_link_upper_bound") is not None:
        out += f" (≤ {fb['noisy_link_upper_bound']:.1f})"
    return out


def _us(v: float) -> str:
    if v is None or math.isnan(v):
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def _digits(df: Any) -> int:
    scale = df["metric_mean"].abs().max()
    return 2 if scale >= 10 else 3 if scale >= 1 else 4


def leaderboard_markdown(
    df: Any,
    *,
    image_dir: str | Path | None = None,
    image_link: str = "",
    header: str = "",
) -> str:
    """The leaderboard page of a results table (one section per env group).

    Args:
        df: The results table (:func:`agents.sweep.read_results`).
        image_dir: Folder for the metric-vs-SNR PNGs (one per group with two or more SNRs,
            plus ``leaderboard.png`` with every such group); ``None``: no plots.
        image_link: How the page links ``image_dir`` (a path relative to the page).
        header: Markdown put under the title (how the table was made).

    Returns:
        The Markdown text.

    Raises:
        ValueError: An empty table.
    """
    if len(df) == 0:
        raise ValueError("the results table is empty: run examples/sweep.py first")
    seeds = sorted(set(df["seed"]))
    seed = TEST_SEED if TEST_SEED in seeds else seeds[0]
    df = df[df["seed"] == seed]
    commits = sorted(set(df["git_commit"]))
    versions = sorted(set(df["beamgym_version"]) - {""})
    episodes = sorted(set(df.loc[df["status"] == "ok", "n"].astype(int)))
    lines = ["# beamgym leaderboard", ""]
    if header:
        lines += [header, ""]
    lines += [
        f"- Test set: {', '.join(map(str, episodes))} instances per cell, drawn with the fixed "
        f"seed {seed} (`examples/evaluate.py`'s test set), scored by the common harness on the "
        "TRUE channel.",
        f"- beamgym {', '.join(versions) or '?'}, git commit {', '.join(commits)}.",
        "- Each section ranks the agents by the env's headline metric at one SNR (mean ± "
        "Student-t 95% CI over the test instances); the other SNRs follow. Latency is µs per "
        "instance: *batched* solves the whole test set at once, *single* is the median of one "
        "instance at a time (measured on a shared 2-core CPU, so compare within a table). "
        "*Bits/user* is the feedback of agents with a feedback link (fixed-length, then "
        "entropy-coded or the noisy link's bound); *paper* is the number the paper prints.",
        "",
    ]
    plotted: list[tuple[str, Any]] = []
    for group in _groups(df):
        sub = df[df["group"] == group]
        lines += _section(group, sub, image_dir, image_link, plotted)
    if image_dir is not None and plotted:
        _summary_plot(plotted, Path(image_dir) / "leaderboard.png")
    return "\n".join(lines).rstrip() + "\n"


def _groups(df: Any) -> list[str]:
    order = df.reset_index(drop=True)
    return list(dict.fromkeys(order["group"]))


def _section(
    group: str, sub: Any, image_dir: Any, image_link: str, plotted: list[tuple[str, Any]]
) -> list[str]:
    env_id = sub["env_id"].iloc[0]
    setting = json.loads(sub["setting"].iloc[0])
    ok = sub[sub["status"] == "ok"]
    lines = [f"## {group}", ""]
    kw = ", ".join(f"{k}={v!r}" for k, v in setting.items()) or "defaults"
    if ok.empty:
        lines += [f"`{env_id}` ({kw}): no agent ran.", ""]
        return lines + _skipped(sub)
    metric = ok["metric_name"].iloc[0]
    sign = int(ok["metric_sign"].iloc[0])
    snrs = sorted({float(s) for s in ok["snr_db"] if not math.isnan(s)})
    head = headline_snr(env_id, snrs)
    better = "higher" if sign > 0 else "lower"
    at = "" if head is None else f" at {head:g} dB"
    lines += [
        f"`{env_id}` ({kw}); metric `{metric}` ({better} is better), ranked{at}.",
        "",
    ]
    top = ok if head is None else ok[ok["snr_db"] == head]
    env_snr = getattr(make_task(env_id, **setting).config, "snr_db", None)
    top = top.assign(_key=top["metric_mean"] * sign).sort_values("_key", ascending=False)
    others = [s for s in snrs if s != head]
    digits = _digits(ok)
    show_bits = any(_bits(b) != "–" for b in top["feedback_bits"])
    extras = [json.loads(e) for e in top["extras"]]
    show_outage = any("outage_fraction_mean" in e for e in extras)
    cols = ["rank", "agent", f"{metric}{at} (95% CI)"]
    cols += [f"{s:g} dB" for s in others]
    cols += ["outage"] if show_outage else []
    cols += ["batched µs", "single µs"]
    cols += ["bits/user"] if show_bits else []
    cols += ["paper"]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for rank, (row, extra) in enumerate(zip(top.itertuples(), extras, strict=True), 1):
        cells = [
            str(rank),
            f"`{row.agent_name}`",
            _metric(row.metric_mean, row.metric_ci95, digits),
        ]
        for s in others:
            match = ok[(ok["agent_name"] == row.agent_name) & (ok["snr_db"] == s)]
            cells.append(f"{match['metric_mean'].iloc[0]:.{digits}f}" if len(match) else "–")
        if show_outage:
            out = extra.get("outage_fraction_mean")
            cells.append("–" if out is None else f"{100 * out:.1f}%")
        cells += [_us(row.latency_batched_us), _us(row.latency_single_us)]
        if show_bits:
            cells.append(_bits(row.feedback_bits))
        p = paper_number(row.agent, env_id, setting, head if head is not None else env_snr)
        cells.append("–" if p is None else f"{p.value:g} ({p.source})")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if image_dir is not None and len(snrs) > 1:
        name = f"{_slug(group)}.png"
        _group_plot(group, ok, metric, Path(image_dir) / name)
        plotted.append((group, ok))
        link = f"{image_link.rstrip('/')}/{name}" if image_link else name
        lines += [f"![{metric} against SNR: {group}]({link})", ""]
    return lines + _skipped(sub)


def _skipped(sub: Any) -> list[str]:
    lines: list[str] = []
    for status, title in (("skipped", "Skipped"), ("failed", "Failed")):
        rows = sub[sub["status"] == status]
        if rows.empty:
            continue
        reasons: dict[str, str] = {}
        snrs: dict[str, list[float]] = {}
        for r in rows.itertuples():
            reasons.setdefault(r.agent_name, _short(r.reason))
            if not math.isnan(r.snr_db):
                snrs.setdefault(r.agent_name, []).append(r.snr_db)
        all_snrs = sorted({s for s in sub["snr_db"] if not math.isnan(s)})
        lines.append(f"{title} ({len(reasons)} agent{'s' if len(reasons) > 1 else ''}):")
        lines.append("")
        for a, why in sorted(reasons.items()):
            at = sorted(snrs.get(a, []))
            where = "" if at == all_snrs else f" (at {', '.join(f'{s:g}' for s in at)} dB)"
            lines.append(f"- `{a}`{where}: {why}")
        lines.append("")
    return lines


def _short(reason: str, limit: int = 220) -> str:
    text = " ".join(str(reason).split())
    text = text.replace(str(Path(__file__).resolve().parent.parent) + "/", "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: Agents drawn dashed: the learned ones (their colours repeat after 20 agents).
_LINESTYLE_DASHED = {"kd_edn", "kd_edn_q0", "edn_supervised", "edn_unsupervised", "ppo"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _color(agent: str) -> Any:
    """One colour per registered agent, the same in every plot."""
    from agents.base import registered_agents

    plt = _pyplot()
    names = sorted(registered_agents())
    index = names.index(agent) if agent in names else len(names)
    return plt.get_cmap("tab20")(index % 20)


def _draw(ax: Any, ok: Any, metric: str, title: str) -> None:
    for name, g in ok.groupby("agent_name", sort=True):
        g = g.sort_values("snr_db")
        style = "--" if g["agent"].iloc[0] in _LINESTYLE_DASHED else "-"
        ax.errorbar(
            g["snr_db"],
            g["metric_mean"],
            g["metric_ci95"].fillna(0.0),
            label=g["agent"].iloc[0] if name.startswith(g["agent"].iloc[0] + "(") else name[:40],
            color=_color(g["agent"].iloc[0]),
            linestyle=style,
            marker=".",
        )
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel(metric)
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)


def _group_plot(group: str, ok: Any, metric: str, path: Path) -> None:
    plt = _pyplot()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    _draw(ax, ok, metric, group)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _summary_plot(plotted: list[tuple[str, Any]], path: Path) -> None:
    plt = _pyplot()
    n = len(plotted)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols + 2.2, 3.3 * rows), squeeze=False)
    for ax, (group, ok) in zip(axes.flat, plotted, strict=False):
        _draw(ax, ok, ok["metric_name"].iloc[0], group)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    handles: dict[str, Any] = {}
    for ax in axes.flat:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="center right",
        fontsize=7,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0, 0.87, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
