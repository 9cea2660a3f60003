"""Without setproctitle, the master and its workers still say what they are in the
kernel's 15-byte command name, which ps -o comm and top show."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def test_master_and_worker_are_named_in_their_comm(serve):
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn names its processes only with setproctitle")
    if importlib.util.find_spec("setproctitle") is not None:
        pytest.skip("setproctitle sets the whole title")
    server = serve("-b", "127.0.0.1:0", "-w", "1", "webapp").wait_ready()
    (worker,) = server.worker_pids()
    assert _comm(server.pid) == "fastwsgi: maste"   # "fastwsgi: master [webapp]", cut at 15 bytes
    server.wait_until(lambda: _comm(worker) == "fastwsgi: worke", message="for the worker's name")
