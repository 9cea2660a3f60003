"""What the benchmark prints and writes: progress lines, results.md, results.png, results.json.

Text written under bench/ is scrubbed of this machine's paths and ports first.
"""
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile

from . import BENCH_DIR, REPO
from .peers import OURS, REFERENCE
from .scenarios import SCENARIOS


def log(msg=""):
    print(msg, flush=True)


def fmt_rps(x):
    return f"{x:,.0f}"


STATUS_MARK = {"fail-start": "FAIL (start)", "fail-check": "FAIL (bad response)",
               "fail-crash": "FAIL (crashed)", "fail-wrk": "FAIL (wrk)", "unavailable": "n/a"}


def cell_text(r):
    if r is None:
        return ""
    if r["status"] != "ok" and r.get("median_rps") is None:
        return STATUS_MARK.get(r["status"], "FAIL")
    txt = fmt_rps(r["median_rps"])
    errs = sum(r.get("errors_total", {}).values()) + r.get("non2xx_total", 0)
    if errs:
        txt += " ⚠"
    runs = [run for run in r.get("runs", []) if run.get("rps")]
    if runs and all(run.get("noisy") for run in runs):
        txt += " ~"
    if r["status"] != "ok":
        txt += " ✗"
    return txt


def best_peer(results, scenario, servers):
    best = None
    for s in servers:
        if s == OURS or s in REFERENCE:
            continue
        r = results.get(s, {}).get(scenario)
        if r and r["status"] == "ok" and r.get("median_rps"):
            if best is None or r["median_rps"] > best[1]:
                best = (s, r["median_rps"])
    return best


def write_markdown(path, data):
    results, servers, scenarios = data["results"], data["servers"], data["scenarios"]
    meta = data["meta"]
    L = []
    L.append("# fastwsgi peer benchmark\n")
    L.append(f"- date: {meta['date']}")
    L.append(f"- machine: {meta['cpu']}, {meta['ncpu']} cores, Linux {meta['kernel']}, Python {meta['python']}")
    L.append(f"- method: server pinned to core {meta['server_cpu']}, wrk ({meta['wrk_version']}) "
             f"pinned to core {meta['wrk_cpu']} with -t{meta['threads']}; "
             f"{meta['warmup']} s warm-up, then {meta['repeats']} × {meta['duration']} s runs; "
             "cell = **median requests/s** (higher is better)")
    for m in meta.get("merges", []):
        what = (", ".join(m["cells"]) if "cells" in m
                else f"{', '.join(m.get('servers', []))} × {', '.join(m.get('scenarios', []))}")
        L.append(f"- re-measured {m['date']} ({m['warmup']:g} s warm-up, {m['repeats']} × "
                 f"{m['duration']:g} s): {what or 'nothing'}")
    L.append("- versions: " + ", ".join(f"{s} {data['versions'].get(s, '?')}" for s in servers))
    L.append("")
    head = ["scenario"] + servers + ["best peer", "fastwsgi / best peer"]
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    notes = []
    for sc in scenarios:
        row = [sc]
        for s in servers:
            r = results.get(s, {}).get(sc)
            row.append(cell_text(r))
            if r and (r["status"] != "ok" or sum(r.get("errors_total", {}).values())
                      or r.get("non2xx_total")):
                notes.append((s, sc, r))
        bp = best_peer(results, sc, servers)
        row.append(f"{bp[0]} {fmt_rps(bp[1])}" if bp else "—")
        ours = results.get(OURS, {}).get(sc)
        if bp and ours and ours["status"] == "ok" and ours.get("median_rps"):
            row.append(f"**{ours['median_rps'] / bp[1]:.2f}×**")
        else:
            row.append("—")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("Run-to-run spread, (max − min) / median of the measured runs:\n")
    L.append("| scenario | " + " | ".join(servers) + " |")
    L.append("|" + "|".join(["---"] + ["---:"] * len(servers)) + "|")
    for sc in scenarios:
        row = [sc]
        for s in servers:
            r = results.get(s, {}).get(sc) or {}
            rps = [x["rps"] for x in r.get("runs", []) if x.get("rps")]
            row.append(f"{100 * (max(rps) - min(rps)) / statistics.median(rps):.0f}%" if len(rps) > 1 else "")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    L.append("Peers = every server except fastwsgi (ours) and nginx (the C reference, "
             "serving the same bytes from `return`/static files).")
    L.append("⚠ = wrk saw socket errors or non-2xx responses (details below); "
             "✗ = server failed part of the scenario; FAIL = no usable measurement; "
             "~ = every run of the cell had other processes busy on the machine (noisy); "
             "otherwise the median is over the clean runs only.")
    L.append("")
    L.append("## Scenarios\n")
    for sc in scenarios:
        L.append(f"- **{sc}**: {SCENARIOS[sc]['desc']}")
    if notes:
        L.append("\n## Errors and failures\n")
        for s, sc, r in notes:
            if r["status"] != "ok":
                err = (r.get("error") or "").strip().splitlines()
                L.append(f"- {s} / {sc}: **{r['status']}** — {err[0] if err else ''}")
            e = r.get("errors_total", {})
            if sum(e.values()) or r.get("non2xx_total"):
                L.append(f"- {s} / {sc}: socket errors connect {e.get('connect', 0)}, read {e.get('read', 0)}, "
                         f"write {e.get('write', 0)}, timeout {e.get('timeout', 0)}; non-2xx "
                         f"{r.get('non2xx_total', 0)} (of {r.get('requests_total', 0):,} responses, all measured runs)")
    L.append("\n## Commands\n")
    for s in servers:
        for sc in scenarios:
            r = results.get(s, {}).get(sc)
            if r and r.get("command"):
                L.append(f"- {s} / {sc}: `{r['command']}`")
                break
    wc = {sc: next((r.get("wrk_command") for s in servers
                    for r in [results.get(s, {}).get(sc)] if r and r.get("wrk_command")), None)
          for sc in scenarios}
    for sc in scenarios:
        if wc[sc]:
            L.append(f"- wrk / {sc}: `{wc[sc]}`")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


_SCRUB = []  # (machine-specific text, neutral text), longest first; filled by main()


def scrub(text, port=None):
    """Make text written under bench/ free of this machine's paths and ports."""
    if not text:
        return text
    for old, new in _SCRUB:
        text = text.replace(old, new)
    if port:
        text = re.sub(rf"\b{port}\b", "PORT", text)
    return re.sub(r"127\.0\.0\.1([:,= ]+|', )\d{2,5}\b", r"127.0.0.1\1PORT", text)


def set_scrub(args, workdir):
    home = os.path.expanduser("~")
    pairs = [(workdir, "$TMP"), (BENCH_DIR, "bench"), (REPO, "."),
             (args.ours_python, "python"), (args.wrk, "wrk"),
             (shutil.which("nginx") or "/usr/sbin/nginx", "nginx"),
             (home, "~"), (tempfile.gettempdir() + os.sep, "$TMPDIR/")]
    pairs = [(a, b) for a, b in pairs if a and len(a) > 1]
    pairs.sort(key=lambda p: -len(p[0]))
    _SCRUB[:] = pairs


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
                ax.text(x, 1.0, "FAIL", ha="center", va="bottom", color=colors.get(s, "k"),
                        fontsize=7, rotation=90)
        bars = ax.bar(xs, ys, width * 0.92, label=s, color=colors.get(s, "#333333"),
                      hatch="//" if s in REFERENCE else None,
                      edgecolor="black" if s == OURS else None, linewidth=1.2 if s == OURS else 0)
        for b, (v, clipped) in zip(bars, labels):
            txt = f"{v / 1000:.0f}k" if v >= 10000 else (f"{v / 1000:.1f}k" if v >= 1000 else f"{v:.0f}")
            ax.text(b.get_x() + b.get_width() / 2, b.get_height() * 1.04, txt + (" ↓" if clipped else ""),
                    ha="center", va="bottom", fontsize=6.5, rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(ymin / 1.3, ymax * 2.2)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    ax.set_xticks(range(len(scenarios)))
    ax.set_xticklabels([f"{sc}\n(best peer: {best_peer(results, sc, servers)[0]})"
                        if best_peer(results, sc, servers) else sc for sc in scenarios], fontsize=8.5)
    ax.set_ylabel("requests/s relative to best peer (log scale; 1.0 = best peer)")
    ax.set_title("WSGI servers, median req/s (on bars), normalised to the best peer per scenario\n"
                 "server on one core, wrk on the other; '↓' = below the axis floor", fontsize=10)
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
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); from peerbench import report; "
            "print(report.write_chart(sys.argv[3], json.load(open(sys.argv[2]))) or '', end='')")
    p = subprocess.run([py, "-c", code, BENCH_DIR, json_path, png_path], capture_output=True, text=True,
                       cwd=tempfile.gettempdir())
    if p.returncode != 0:
        return p.stderr.strip()[-500:] or "failed"
    return p.stdout.strip() or None


def write_reports(args, data):
    json_path = os.path.join(args.out_dir, "results.json")
    with open(json_path, "w") as f:
        json.dump(data, f, indent=1)
    md_path = os.path.join(args.out_dir, "results.md")
    write_markdown(md_path, data)
    png_path = os.path.join(args.out_dir, "results.png")
    err = write_chart(png_path, data)
    if err and "not importable" in err:
        err = chart_via_peers(args, json_path, png_path)
    log("")
    with open(md_path) as f:
        log(f.read().split("\n## Scenarios")[0])
    log(f"wrote {md_path}\nwrote {json_path}")
    log(f"chart: {'not written: ' + err if err else 'wrote ' + png_path}")
