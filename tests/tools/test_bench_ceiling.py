"""bench/ceiling.py (fastwsgi against nginx, instructions and system calls per
request), run for real in a tiny mode so that it keeps working; the figures are
not judged, only that both servers yield them and the table shows the ratio."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from support import ROOT

CEILING = ROOT / "bench" / "ceiling.py"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(any(shutil.which(tool) is None for tool in ("valgrind", "strace", "nginx")),
                       reason="needs valgrind, strace and nginx"),
]


def test_both_servers_are_counted_and_compared(tmp_path):
    out = tmp_path / "ceiling.json"
    proc = subprocess.run(
        [sys.executable, str(CEILING), "--scenarios", "pipeline16", "--requests", "32",
         "--factor", "2", "--timeout", "120", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cells = json.loads(out.read_text())["scenarios"]["pipeline16"]
    for server in ("fastwsgi", "nginx"):
        assert cells[server]["instructions_per_request"] > 0
        # every request is read: a recv for each batch of 16 at least
        assert cells[server]["syscalls_per_request"]["recvfrom"] > 0
    assert "| pipeline16 | fastwsgi / nginx |" in proc.stdout


def test_an_strace_summary_is_read_by_call(tmp_path):
    sys.path.insert(0, str(ROOT / "bench"))
    import syscalls
    summary = tmp_path / "summary.txt"
    summary.write_text(
        "% time     seconds  usecs/call     calls    errors syscall\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        " 60.00    0.000600           3       200           epoll_wait\n"
        " 40.00    0.000400           2       199        12 recvfrom\n"
        "------ ----------- ----------- --------- --------- ----------------\n"
        "100.00    0.001000           2       399        12 total\n")
    assert syscalls.read_strace_summary(summary) == {"epoll_wait": 200, "recvfrom": 199}
