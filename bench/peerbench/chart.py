"""results.png: grouped bars per scenario, each server's median relative to the row's best peer,
with the row's limit where it has one."""
from __future__ import annotations

import os
import subprocess
import tempfile

from . import BENCH_DIR
from .figures import best_peer
from .peers import OURS, REFERENCE


def write_chart(path, data):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not importable by this interpreter"
    results, servers, scenarios = data["results"], data["servers"], data["scenarios"]
    colors = {"fastwsgi": "#d62728", "nginx": "#7f7f7f", "bjoern": "#1f77b4", "granian": "#2ca02c",
              "gunicorn": "#9467bd", "waitress": "#8c564b", "pypi-fastwsgi": "#ff7f0e"}
    # only servers that produced at least one number (or failed visibly) get a bar group
    shown = [s for s in servers
             if any((results.get(s, {}).get(sc) or {}).get("status", "unavailable") != "unavailable"
                    for sc in scenarios)]
    n = len(shown)
    width = 0.8 / max(n, 1)
    floor = 0.02          # ratios below this are drawn at the floor, labelled with the real value
    fig, ax = plt.subplots(figsize=(max(8, 1.9 * len(scenarios) + 2), 5.5))
    ymin, ymax = 1.0, 1.0
    for i, s in enumerate(shown):
        xs, ys, labels = [], [], []
        for j, sc in enumerate(scenarios):
            r = results.get(s, {}).get(sc)
            bp = best_peer(results, sc, servers)
            x = j - 0.4 + width * (i + 0.5)
            if r and r.get("median_rps") and bp:
                ratio = r["median_rps"] / bp[1]
                xs.append(x); ys.append(max(ratio, floor)); labels.append((r["median_rps"], ratio < floor))
                ymin, ymax = min(ymin, max(ratio, floor)), max(ymax, ratio)
            elif r and r["status"] not in ("ok", "unavailable"):
                ax.text(x, 1.0, "n/a" if r["status"] == "unsupported" else "FAIL", ha="center",
                        va="bottom", color=colors.get(s, "k"), fontsize=7, rotation=90)
        bars = ax.bar(xs, ys, width * 0.92, label=s, color=colors.get(s, "#333333"),
                      hatch="//" if s in REFERENCE else None,
                      edgecolor="black" if s == OURS else None, linewidth=1.2 if s == OURS else 0)
        for b, (v, clipped) in zip(bars, labels):
            txt = f"{v / 1000:.0f}k" if v >= 10000 else (f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}")
            ax.text(b.get_x() + b.get_width() / 2, b.get_height() * 1.04, txt + (" ↓" if clipped else ""),
                    ha="center", va="bottom", fontsize=6.5, rotation=90)
    for ratio in draw_limits(ax, data):
        ymin, ymax = min(ymin, ratio), max(ymax, ratio)
    ax.set_yscale("log")
    ax.set_ylim(ymin / 1.3, ymax * 2.2)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels([tick_label(data, sc) for sc in scenarios], fontsize=8)
    ax.set_ylabel("requests/s relative to best peer (log scale; 1.0 = best peer)")
    ax.set_title("WSGI servers, median req/s (on bars), normalised to the best peer per scenario\n"
                 "server on one core, wrk on the other; '↓' = below the axis floor\n"
                 "black line = the row's limit (app cost + C ceiling, or threads / sleep)", fontsize=10)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}×"))
    ax.legend(ncol=max(1, min(n, 7)), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), frameon=False)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return None


def chart_via_peers(args, json_path, png_path):
    """Draw the chart with the peers venv's matplotlib if ours lacks it."""
    py = os.path.join(args.peers_venv, "bin", "python")
    if not os.path.exists(py):
        return "no matplotlib: install it, or run setup_peers.sh"
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); from peerbench import chart; "
            "print(chart.write_chart(sys.argv[3], json.load(open(sys.argv[2]))) or '', end='')")
    try:
        p = subprocess.run([py, "-c", code, BENCH_DIR, json_path, png_path], capture_output=True, text=True,
                           cwd=tempfile.gettempdir(), timeout=120, check=False)
    except subprocess.TimeoutExpired:
        return "the peers' interpreter drew no chart within 120 s"
    if p.returncode != 0:
        return p.stderr.strip()[-500:] or "failed"
    return p.stdout.strip() or None


def tick_label(data, scenario):
    """The row's name, its best peer and, for a framework row, the app's own cost."""
    label = scenario
    bp = best_peer(data["results"], scenario, data["servers"])
    if bp:
        label += f"\n(best peer: {bp[0]})"
    cost = (data.get("app_cost") or {}).get(scenario) or {}
    if cost.get("us_per_call"):
        label += f"\napp {cost['us_per_call']:.0f} µs/call"
    limit = (data.get("limits") or {}).get(scenario)
    if limit:
        label += f"\nlimit {limit['rps'] / 1000:.1f}k"
        if limit.get("ours_fraction"):
            label += f", fastwsgi {limit['ours_fraction']:.2f}"
    return label


def draw_limits(ax, data):
    """A black bar across each row that has a limit, at limit / best peer; the ratios drawn."""
    ratios = []
    for j, scenario in enumerate(data["scenarios"]):
        limit = (data.get("limits") or {}).get(scenario)
        bp = best_peer(data["results"], scenario, data["servers"])
        if not limit or not bp:
            continue
        ratio = limit["rps"] / bp[1]
        ax.hlines(ratio, j - 0.42, j + 0.42, colors="black", linewidth=2)
        ratios.append(ratio)
    return ratios
