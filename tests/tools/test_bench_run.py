"""bench/run.py, the peer benchmark, run for real on ours alone for one short wrk run.

It checks the orchestration end to end (server started and checked, wrk run
and parsed, results written, machine paths scrubbed, the server stopped), not
the figure.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT

RUN = ROOT / "bench" / "run.py"

pytestmark = pytest.mark.skipif(
    shutil.which("wrk") is None or shutil.which("taskset") is None,
    reason="wrk and taskset are needed")


def bench(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, FASTWSGI_BENCH_HOME=str(tmp_path / "home"))
    return subprocess.run(
        [sys.executable, str(RUN), "--out-dir", str(tmp_path / "out"), *argv],
        capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path, check=False)


@pytest.fixture(scope="module")
def one_cell(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("bench")
    proc = bench(tmp_path, "--servers", "fastwsgi", "--scenarios", "hello", "--duration", "1",
                 "--repeats", "1", "--warmup", "0", "--quiet-timeout", "0",
                 "--log-dir", str(tmp_path / "logs"))
    return tmp_path, proc


def test_one_cell_is_measured_and_reported(one_cell):
    tmp_path, proc = one_cell
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads((tmp_path / "out" / "results.json").read_text())
    cell = data["results"]["fastwsgi"]["hello"]
    assert cell["status"] == "ok" and cell["median_rps"] > 0
    assert cell["runs"][0]["requests"] > 0 and cell["errors_total"]["connect"] == 0
    assert "[ 1/1] fastwsgi      hello      run 1/1: " in proc.stdout
    md = (tmp_path / "out" / "results.md").read_text()
    assert md.startswith("# fastwsgi peer benchmark")
    assert "\n| hello | " in md


def test_written_results_carry_no_path_of_the_machine(one_cell):
    tmp_path, _ = one_cell
    for name in ("results.md", "results.json"):
        text = (tmp_path / "out" / name).read_text()
        assert str(ROOT) not in text and str(tmp_path) not in text and sys.executable not in text


def test_report_only_rebuilds_the_same_table(one_cell):
    tmp_path, _ = one_cell
    md = tmp_path / "out" / "results.md"
    measured = md.read_text()
    md.unlink()
    proc = bench(tmp_path, "--report-only")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert md.read_text() == measured
