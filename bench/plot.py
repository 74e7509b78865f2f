"""Draw ``bench/results/scaling.png`` from a fleet benchmark's ``latest.json``.

Two panels against N (targets): AI API calls and wall time, the engine (``bulkterm apply``)
against the SDK script, both axes logarithmic (calls span three decades); the operator's rows
(one CR of N ids, and the same ids in many CRs) as markers at their N. Drawn from the numbers
of one run only, so the gaps between the lines are ratios measured under the same load.
A row that was not measured (the SDK at 10,000 without ``--full``) is left out of its line,
and the legend says so.

    .venv/bin/python bench/plot.py                          # bench/results/latest.json → scaling.png
    .venv/bin/python bench/plot.py some.json out.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on a CI runner or a VM
import matplotlib.pyplot as plt  # after the backend is chosen
from matplotlib.ticker import FuncFormatter, LogLocator

RESULTS = Path(__file__).resolve().parent / "results"
STYLE = {
    "engine": {"color": "#1f77b4", "marker": "o", "label": "engine (bulkterm apply)"},
    "sdk": {"color": "#d62728", "marker": "s", "label": "SDK script (ai-api-client-sdk)"},
}


def plot(report: dict[str, Any], out: Path) -> Path:
    rows = report["rows"]
    fig, (calls_ax, time_ax) = plt.subplots(1, 2, figsize=(11, 5.2))
    for client, style in STYLE.items():
        points = sorted(
            (r["targets"], r["api_calls"], r["wall_seconds"])
            for r in rows
            if r["client"] == client and r["skipped"] is None
        )
        missing = [r["targets"] for r in rows if r["client"] == client and r["skipped"]]
        label = style["label"] + (
            f" (not run at {', '.join(f'{n:,}' for n in missing)})" if missing else ""
        )
        if not points:
            continue
        ns, calls, walls = zip(*points, strict=True)
        calls_ax.plot(ns, calls, marker=style["marker"], color=style["color"], label=label)
        time_ax.plot(ns, walls, marker=style["marker"], color=style["color"], label=label)
        for n, c, w in points:
            calls_ax.annotate(f"{c:,}", (n, c), textcoords="offset points", xytext=(6, 4))
            time_ax.annotate(f"{w:.0f} s", (n, w), textcoords="offset points", xytext=(6, 4))
    # The operator at the engine's N only (the --limits rows at 100,000 have no engine line).
    engine_sizes = {r["targets"] for r in rows if r["client"] == "engine"} or {
        r["targets"] for r in rows if r["skipped"] is None
    }  # a run without engine rows (--skip engine) plots what it has
    markers = iter(
        zip(["^", "v", "D", "P"], ["#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"], strict=True)
    )
    for r in rows:
        if r["client"] != "operator" or r["skipped"] is not None:
            continue
        if r["targets"] not in engine_sizes:
            continue
        label = (
            f"operator, {r['crs']} CR{'s' if r['crs'] > 1 else ''} x {r['targets'] // r['crs']:,}"
        )
        marker, color = next(markers, ("*", "#7f7f7f"))
        for ax, value in ((calls_ax, r["api_calls"]), (time_ax, r["wall_seconds"])):
            ax.scatter([r["targets"]], [value], marker=marker, color=color, s=60, label=label)
    sizes = sorted(engine_sizes)
    for ax, title, unit in (
        (calls_ax, "AI API calls (token requests left out)", "calls"),
        (time_ax, "wall time (process start-up included)", "seconds"),
    ):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ax.minorticks_off()
        ax.set_xlim(sizes[0] / 1.6, sizes[-1] * 1.6)
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_xlabel("targets (N)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = calls_ax.get_legend_handles_labels()  # the same in both panels
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    setup = report["setup"]
    fig.suptitle(
        f"bulk termination against N, one run ({setup['date']}, {setup['machine']}, "
        f"commit {setup['commit']}; latency {setup['latency_ms']} ms/request)",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    source = Path(args[0]) if args else RESULTS / "latest.json"
    out = Path(args[1]) if len(args) > 1 else source.with_name("scaling.png")
    print(plot(json.loads(source.read_text()), out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
