"""bench/callgrind.py, run for real in a tiny mode so that it keeps working.

Each scenario's server runs under valgrind twice with a handful of requests;
the figures are not judged (a tiny run is start-up dominated), only that every
scenario yields one, that the JSON says what was measured, and that a
baseline comparison fails over its threshold and passes under it.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

CALLGRIND = ROOT / "bench" / "callgrind.py"
SCENARIOS = ("hello", "post16k", "pipeline16", "c1000")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed"),
]


def run_callgrind(tmp_path: Path, baseline: dict, threshold: float) -> tuple[subprocess.CompletedProcess, dict]:
    baseline_path = tmp_path / "baseline.json"
    baseline_path.write_text(json.dumps(baseline))
    out = tmp_path / "callgrind.json"
    proc = subprocess.run(
        [sys.executable, str(CALLGRIND), "--scenarios", ",".join(SCENARIOS), "--requests", "16",
         "--factor", "2", "--repeats", "1", "--timeout", "120", "--out", str(out),
         "--baseline", str(baseline_path), "--threshold", str(threshold)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    return proc, json.loads(out.read_text()) if out.exists() else {}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    # hello's baseline is absurdly cheap (any real run is over it), the others
    # absurdly dear (any real run is under): one run shows both verdicts.
    baseline = {"meta": {"date": "then", "commit": "0" * 40, "python": "3"},
                "scenarios": {"hello": {"instructions_per_request": 1.0},
                              "post16k": {"instructions_per_request": 1e12},
                              "pipeline16": {"instructions_per_request": 1e12},
                              "c1000": {"instructions_per_request": 1e12}}}
    return run_callgrind(tmp_path_factory.mktemp("callgrind"), baseline, threshold=1.0)


def table_row(stdout: str, header: str, scenario: str) -> str:
    """The row of `scenario` in the table that follows the line starting with `header`."""
    section = stdout.split(header, 1)[1]
    return next(line for line in section.splitlines() if line.startswith(f"| {scenario} |"))


def test_every_scenario_yields_instructions_per_request(tiny_run):
    proc, data = tiny_run
    assert set(data["scenarios"]) == set(SCENARIOS), proc.stdout + proc.stderr
    for name in SCENARIOS:
        result = data["scenarios"][name]
        assert result["instructions_per_request"] > 0
        assert len(result["runs"]) == 1
        assert result["runs"][0]["total_big"] > result["runs"][0]["total_small"] > 0
        assert table_row(proc.stdout, "| scenario | instructions/request", name)


def test_requests_are_whole_pipelined_batches(tiny_run):
    _, data = tiny_run
    assert data["scenarios"]["pipeline16"]["requests"] == [16, 32]
    assert data["scenarios"]["hello"]["requests"] == [16, 32]


def test_every_connection_carries_a_request_in_both_runs(tiny_run):
    _, data = tiny_run
    assert data["scenarios"]["c1000"]["requests"] == [1000, 2000]


def test_results_name_what_was_measured_and_no_local_path(tiny_run):
    _, data = tiny_run
    meta = data["meta"]
    assert len(meta["commit"]) == 40
    assert meta["python"].count(".") == 2
    assert "valgrind" in meta["valgrind"] and "cores" in meta["machine"]
    text = json.dumps(data)
    assert str(ROOT) not in text and sys.executable not in text


def test_a_scenario_over_the_threshold_fails_the_run_and_only_it_is_flagged(tiny_run):
    proc, _ = tiny_run
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert table_row(proc.stdout, "| scenario | baseline |", "hello").endswith("**over** |")
    for name in ("post16k", "pipeline16", "c1000"):
        row = table_row(proc.stdout, "| scenario | baseline |", name)
        assert "over" not in row and "-100.00%" in row


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_is_counted_the_same_way(tmp_path):
    out = tmp_path / "nginx.json"
    proc = subprocess.run(
        [sys.executable, str(CALLGRIND), "--server", "nginx", "--scenarios", "hello,pipeline16",
         "--requests", "16", "--factor", "2", "--repeats", "1", "--timeout", "120", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["meta"]["server"] == "nginx"
    for name in ("hello", "pipeline16"):
        run = data["scenarios"][name]["runs"][0]
        assert run["total_big"] > run["total_small"] > 0


def test_nginx_refuses_a_row_it_cannot_answer_alike(tmp_path):
    proc = subprocess.run([sys.executable, str(CALLGRIND), "--server", "nginx", "--scenarios", "post16k"],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "nginx does not answer" in proc.stderr
