"""Figures derived from the measured cells: a row's best peer, the limit it can reach, ours against both.

Limits:
- A row with a physical limit (the blocking app: threads / sleep) has it as a constant.
- A row with an in-process app cost: a server spends at least the app's cost and
  the C ceiling's cost per request, 1 / (nginx's req/s on the same row, measured
  in the same run), so it cannot pass 1 / (app cost + C ceiling cost).
"""
from __future__ import annotations

from typing import Any

from .peers import OURS, REFERENCE
from .scenarios import SCENARIOS

CEILING = "nginx"


def median_rps(data: dict[str, Any], server: str, scenario: str) -> float | None:
    cell = data["results"].get(server, {}).get(scenario) or {}
    return cell.get("median_rps") if cell.get("status") == "ok" else None


def best_peer(results: dict[str, Any], scenario: str, servers: list[str]) -> tuple[str, float] | None:
    """(server, median req/s) of the fastest peer on the row: neither ours nor the reference."""
    best = None
    for s in servers:
        if s == OURS or s in REFERENCE:
            continue
        r = results.get(s, {}).get(scenario)
        if r and r["status"] == "ok" and r.get("median_rps") and (best is None or r["median_rps"] > best[1]):
            best = (s, r["median_rps"])
    return best


def row_limit(data: dict[str, Any], scenario: str) -> dict[str, Any] | None:
    """The limit of one row, with what it was computed from; None when the row has none."""
    row = SCENARIOS.get(scenario)
    if row is None:
        return None
    if row.physical_limit is not None:
        limit = {"kind": "physical", "rps": row.physical_limit,
                 "basis": f"{row.threads} threads / {1e3 * row.threads / row.physical_limit:g} ms per request"}
    elif row.app_cost:
        cost = (data.get("app_cost") or {}).get(scenario) or {}
        ceiling_rps = median_rps(data, CEILING, scenario)
        if not cost.get("us_per_call") or not ceiling_rps:
            return None
        ceiling_us = 1e6 / ceiling_rps
        limit = {"kind": "app cost + C ceiling", "rps": 1e6 / (cost["us_per_call"] + ceiling_us),
                 "app_us": cost["us_per_call"], "app_spread_pct": cost.get("spread_pct"),
                 "ceiling_rps": ceiling_rps, "ceiling_us": ceiling_us,
                 "basis": f"1 / ({cost['us_per_call']:.1f} µs app + {ceiling_us:.1f} µs nginx)"}
    else:
        return None
    ours = median_rps(data, OURS, scenario)
    limit["ours_fraction"] = ours / limit["rps"] if ours else None
    return limit


def all_limits(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    limits = {}
    for scenario in data["scenarios"]:
        limit = row_limit(data, scenario)
        if limit is not None:
            limits[scenario] = limit
    return limits
