"""What the benchmark prints and writes: progress lines, results.md, results.png, results.json.

Text written under bench/ is scrubbed of this machine's paths and ports first.
"""
import json
import os
import re
import shutil
import statistics
import tempfile

from . import BENCH_DIR, REPO
from .chart import chart_via_peers, write_chart
from .figures import all_limits, best_peer, median_rps
from .peers import OURS
from .scenarios import SCENARIOS


def log(msg=""):
    print(msg, flush=True)


def fmt_rps(x):
    return f"{x:,.0f}"


STATUS_MARK = {"fail-start": "FAIL (start)", "fail-check": "FAIL (bad response)",
               "fail-crash": "FAIL (crashed)", "fail-wrk": "FAIL (wrk)", "unavailable": "n/a",
               "unsupported": "n/a"}


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


def write_markdown(path, data):
    lines = (header_lines(data) + main_table(data) + spread_table(data) + legend_lines()
             + scenario_lines(data) + framework_lines(data) + thread_lines(data) + rss_lines(data)
             + failure_lines(data) + command_lines(data))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def header_lines(data):
    meta = data["meta"]
    L = ["# fastwsgi peer benchmark\n", f"- date: {meta['date']}",
         f"- machine: {meta['cpu']}, {meta['ncpu']} cores, Linux {meta['kernel']}, Python {meta['python']}",
         (f"- method: server pinned to core {meta['server_cpu']}, wrk ({meta['wrk_version']}) "
          f"pinned to core {meta['wrk_cpu']} with -t{meta['threads']}; "
          f"{meta['warmup']} s warm-up, then {meta['repeats']} × {meta['duration']} s runs; "
          "cell = **median requests/s** (higher is better)")]
    for m in meta.get("merges", []):
        what = (", ".join(m["cells"]) if "cells" in m
                else f"{', '.join(m.get('servers', []))} × {', '.join(m.get('scenarios', []))}")
        L.append(f"- re-measured {m['date']} ({m['warmup']:g} s warm-up, {m['repeats']} × "
                 f"{m['duration']:g} s): {what or 'nothing'}")
    L.append("- versions: " + ", ".join(f"{s} {data['versions'].get(s, '?')}" for s in data["servers"]))
    L.append("")
    return L


def row_cell_text(data, server, scenario):
    """A cell of the main table; '—' where the row does not apply to the server."""
    row = SCENARIOS.get(scenario)
    if row is not None and not row.applies_to(server):
        return "—"
    return cell_text(data["results"].get(server, {}).get(scenario))


def main_table(data):
    results, servers, scenarios = data["results"], data["servers"], data["scenarios"]
    limits = data.get("limits") or {}
    head = ["scenario"] + servers + ["best peer", "fastwsgi / best peer"]
    if limits:
        head += ["limit", "fastwsgi / limit"]
    L = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for sc in scenarios:
        row = [sc] + [row_cell_text(data, s, sc) for s in servers]
        bp = best_peer(results, sc, servers)
        row.append(f"{bp[0]} {fmt_rps(bp[1])}" if bp else "—")
        ours = results.get(OURS, {}).get(sc)
        if bp and ours and ours["status"] == "ok" and ours.get("median_rps"):
            row.append(f"**{ours['median_rps'] / bp[1]:.2f}×**")
        else:
            row.append("—")
        if limits:
            limit = limits.get(sc)
            row.append(fmt_rps(limit["rps"]) if limit else "—")
            row.append(f"**{limit['ours_fraction']:.2f}**" if limit and limit["ours_fraction"] else "—")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    return L


def spread_table(data):
    results, servers = data["results"], data["servers"]
    L = ["Run-to-run spread, (max − min) / median of the measured runs:\n",
         "| scenario | " + " | ".join(servers) + " |",
         "|" + "|".join(["---"] + ["---:"] * len(servers)) + "|"]
    for sc in data["scenarios"]:
        row = [sc]
        for s in servers:
            r = results.get(s, {}).get(sc) or {}
            rps = [x["rps"] for x in r.get("runs", []) if x.get("rps")]
            row.append(f"{100 * (max(rps) - min(rps)) / statistics.median(rps):.0f}%" if len(rps) > 1 else "")
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    return L


def legend_lines():
    return [("Peers = every server except fastwsgi (ours) and nginx (the C reference, "
             "serving the same bytes from `return`/static files)."),
            ("⚠ = wrk saw socket errors or non-2xx responses (details below); "
             "✗ = server failed part of the scenario; FAIL = no usable measurement; "
             "n/a = the server is not installed, or does not serve what the row needs (below); "
             "— = the row does not apply to the server; "
             "~ = every run of the cell had other processes busy on the machine (noisy); "
             "otherwise the median is over the clean runs only. "
             "limit = the most a server can reach on the row (below); fastwsgi / limit is ours as a fraction of it."),
            ""]


def scenario_lines(data):
    L = ["## Scenarios\n"]
    for sc in data["scenarios"]:
        L.append(f"- **{sc}**: {SCENARIOS[sc].desc}" if sc in SCENARIOS else f"- **{sc}**")
    return L


def framework_lines(data):
    """The app's in-process cost, the limit it sets with the C ceiling, and ours against it."""
    limits = data.get("limits") or {}
    rows = [sc for sc in data["scenarios"] if limits.get(sc, {}).get("kind") == "app cost + C ceiling"]
    costs = data.get("app_cost") or {}
    unmeasured = [sc for sc in data["scenarios"] if sc in costs and sc not in rows]
    if not rows and not unmeasured:
        return []
    L = ["\n## Frameworks: the app's own cost and the limit it sets\n",
         ("app = the app called in a loop in one process with the environ a server builds for the "
          "row's request, its response iterated and closed (median µs per call of the timed runs, "
          "and their spread, (max − min) / median); C ceiling = 1 / nginx's req/s on the same row in this run; "
          "limit = 1 / (app + C ceiling).\n"),
         ("| scenario | app µs/call (spread) | nginx req/s | C ceiling µs/req | limit req/s | fastwsgi req/s "
          "| fastwsgi / limit |"),
         "|---|---:|---:|---:|---:|---:|---:|"]
    for sc in rows:
        lim, cost = limits[sc], costs[sc]
        ours = median_rps(data, OURS, sc)
        L.append(f"| {sc} | {lim['app_us']:.1f} ({cost['spread_pct']:.0f}%)"
                 + (" ~" if cost.get("noisy") else "")
                 + f" | {fmt_rps(lim['ceiling_rps'])} | {lim['ceiling_us']:.1f} | {fmt_rps(lim['rps'])} | "
                 + (f"{fmt_rps(ours)} | **{lim['ours_fraction']:.2f}**" if ours else "— | —") + " |")
    for sc in unmeasured:
        cost = costs[sc]
        what = cost.get("error") or (f"{cost['us_per_call']:.1f} µs/call; no nginx figure on the row"
                                     if cost.get("us_per_call") else "not measured")
        L.append(f"| {sc} | {what} | | | | | |")
    measured = [costs[sc] for sc in rows if costs[sc].get("frameworks")]
    if measured:
        versions = {k: v for c in measured for k, v in c["frameworks"].items()}
        L.append("")
        L.append(f"App costs measured with Python {measured[0].get('python', '?')} ("
                 + ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
                 + f"), on the server's core; ~ = other processes used more than "
                 f"{data['meta'].get('max_noise', 15):g}% of a core meanwhile.")
    return L


def thread_lines(data):
    """Each server's 8-thread hello against its 1-thread hello, and the blocking row against its limit."""
    servers = data["servers"]
    limits = data.get("limits") or {}
    have = set(data["scenarios"])
    L = []
    if {"hello-threads1", "hello-threads8"} <= have:
        cells = [(s, median_rps(data, s, "hello-threads8"), median_rps(data, s, "hello-threads1"))
                 for s in servers if SCENARIOS["hello-threads8"].applies_to(s)]
        L.append("\n## Threads\n")
        L.append("hello with 8 worker threads against the same server's 1-thread hello "
                 "(one worker process, one core):\n")
        L.append("| server | 8 threads | 1 thread | 8 / 1 |")
        L.append("|---|---:|---:|---:|")
        for s, eight, one in cells:
            L.append(f"| {s} | {fmt_rps(eight) if eight else 'n/a'} | {fmt_rps(one) if one else 'n/a'} | "
                     + (f"{eight / one:.2f}" if eight and one else "—") + " |")
    if "blocking" in limits:
        lim = limits["blocking"]
        if not L:
            L.append("\n## Threads\n")
        L.append("")
        L.append(f"blocking: the physical limit is {fmt_rps(lim['rps'])} req/s ({lim['basis']}); "
                 + ", ".join(f"{s} {median_rps(data, s, 'blocking') / lim['rps']:.2f} of it"
                             for s in servers if median_rps(data, s, "blocking")) + ".")
    return L


def rss_lines(data):
    """Worker RSS after the check request and after --rss-requests more, per row and server."""
    cells = [(sc, s, data["results"][s][sc]["rss"]) for sc in data["scenarios"] for s in data["servers"]
             if (data["results"].get(s, {}).get(sc) or {}).get("rss")]
    if not cells:
        return []
    L = ["\n## Worker RSS\n",
         ("Resident memory of the worker process (the master excluded), after start and one request, "
          "then after the given number of requests (before the warm-up and the measured runs):\n"),
         "| scenario | server | at rest MiB | after MiB | requests | growth MiB |",
         "|---|---|---:|---:|---:|---:|"]
    for sc, s, rss in cells:
        L.append(f"| {sc} | {s} | {rss['at_rest_kib'] / 1024:.1f} | {rss['after_kib'] / 1024:.1f} | "
                 f"{rss['requests']:,} | {(rss['after_kib'] - rss['at_rest_kib']) / 1024:+.1f} |")
    return L


def failure_lines(data):
    notes = []
    for sc in data["scenarios"]:
        for s in data["servers"]:
            r = data["results"].get(s, {}).get(sc)
            if r and (r["status"] != "ok" or sum(r.get("errors_total", {}).values()) or r.get("non2xx_total")):
                notes.append((s, sc, r))
    if not notes:
        return []
    L = ["\n## Errors and failures\n"]
    for s, sc, r in notes:
        if r["status"] != "ok":
            err = (r.get("error") or "").strip().splitlines()
            L.append(f"- {s} / {sc}: **{STATUS_MARK.get(r['status'], r['status'])}** — {err[0] if err else ''}")
        e = r.get("errors_total", {})
        if sum(e.values()) or r.get("non2xx_total"):
            L.append(f"- {s} / {sc}: socket errors connect {e.get('connect', 0)}, read {e.get('read', 0)}, "
                     f"write {e.get('write', 0)}, timeout {e.get('timeout', 0)}; non-2xx "
                     f"{r.get('non2xx_total', 0)} (of {r.get('requests_total', 0):,} responses, all measured runs)")
    return L


def command_lines(data):
    """The first command line of every server, and those of rows that start it otherwise; wrk's per row."""
    results, servers, scenarios = data["results"], data["servers"], data["scenarios"]
    L = ["\n## Commands\n"]
    for s in servers:
        shown = set()
        for sc in scenarios:
            r = results.get(s, {}).get(sc)
            if not (r and r.get("command")):
                continue
            shape = re.sub(r"\b\w+_app:\w+|apps[:.]\w+", "APP", r["command"])
            if shape not in shown:
                shown.add(shape)
                L.append(f"- {s} / {sc}: `{r['command']}`")
    for sc in scenarios:
        wrk = next((r.get("wrk_command") for s in servers
                    for r in [results.get(s, {}).get(sc)] if r and r.get("wrk_command")), None)
        if wrk:
            L.append(f"- wrk / {sc}: `{wrk}`")
    return L


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


def write_reports(args, data):
    data["limits"] = all_limits(data)
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
