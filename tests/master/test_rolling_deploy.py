"""A rolling deploy across three hosts behind nginx (bench/rolling_deploy.py): each host
restarted by TERM and then by USR2 + TERM under steady load, in network namespaces the
test makes; no request may fail or be served twice."""
from __future__ import annotations

import sys

import pytest
from support import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import rolling_deploy  # noqa: E402

pytestmark = pytest.mark.slow


def test_no_request_fails_or_runs_twice_while_every_host_restarts():
    why = rolling_deploy.missing_requirements()
    if why:
        pytest.skip(why)
    figures = rolling_deploy.deploy(["term", "usr2"], hosts=3, workers=2, rate=200.0,
                                    connections=12, settle=1.0, graceful_timeout=10.0)
    assert figures["requests"] > 1000, figures
    # when each failed, first: nginx's error page would fill the message
    assert figures["failures"] == 0, ([(failed["method"], failed["status"], failed["error"],
                                        failed["after_restart_s"]) for failed in figures["failed"]],
                                      figures["nginx_errors"])
    assert figures["served_twice"] == 0
    assert figures["answered_unrecorded"] == 0
    # every host served, before and after its restarts
    assert set(figures["by_host"]) == {"host1", "host2", "host3"}, figures["by_host"]
