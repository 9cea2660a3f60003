"""The fixtures every test folder may use (``tests/conftest.py`` loads this plugin).

``project``: a scratch project directory as cwd.  ``serve``: the real command
(fastwsgi or gunicorn, ``command_name``) serving ``webapp.py`` from a scratch
directory.  ``module_server``: a module of ``support.apps`` serving in a process of
its own.  Everything they start is stopped at the end of the test.
"""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

from support import ROOT, apps, processes
from support.processes import (
    PortProcess,
    ServerProcess,
    available,
    become_subreaper,
    reap_orphans,
)


@pytest.fixture(autouse=True)
def no_crashed_process():
    """After every test: no server it started, and no worker of one, died by a crash
    signal (SIGSEGV and the like), whatever the test itself asserted."""
    first = len(processes.STARTED)
    yield
    started = processes.STARTED[first:]
    del processes.STARTED[first:]
    found = [line for process in started for line in processes.crashes(process)]
    assert not found, "a process crashed:\n" + "\n".join(found)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A temporary project directory as cwd; write(name, text) adds a file to it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for var in ("GUNICORN_CMD_ARGS", "FASTWSGI_CMD_ARGS", "WEB_CONCURRENCY", "PORT",
                "FORWARDED_ALLOW_IPS", "SENDFILE", "SCRIPT_NAME"):
        monkeypatch.delenv(var, raising=False)
    created_modules = set(sys.modules)

    class Project:
        path = tmp_path

        def write(self, name: str, text: str) -> Path:
            target = tmp_path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text))
            return target

    yield Project()
    # Apps written by one test must not be served from sys.modules to the next.
    for name in set(sys.modules) - created_modules:
        module = sys.modules.get(name)
        if getattr(module, "__file__", None) and str(tmp_path) in (module.__file__ or ""):
            del sys.modules[name]
    sys.modules.pop("__config__", None)
    os.chdir(str(ROOT))


COMMANDS = ["fastwsgi", "gunicorn"]


@pytest.fixture(params=COMMANDS)
def command_name(request):
    if not available(request.param):
        pytest.skip(f"{request.param} is not installed")
    return request.param


@pytest.fixture
def serve(command_name, tmp_path):
    """serve(*args) starts `fastwsgi ARGS` or `gunicorn ARGS` in a scratch dir holding
    webapp.py, with --no-control-socket unless control_socket=True; every server
    started is stopped at the end of the test."""
    apps.install("webapp", tmp_path)
    started = []

    def start(*args, env=None, control_socket=False, **kwargs):
        args = list(args)
        # Both open a control socket by default; only the tests of it want one.
        if not control_socket:
            args = ["--no-control-socket"] + args
        server = ServerProcess(command_name, args, tmp_path, env=env, **kwargs)
        started.append(server)
        return server

    start.name = command_name
    start.dir = tmp_path
    become_subreaper()
    yield start
    for server in started:
        server.close()
    reap_orphans(tracked={server.pid for server in started})


@pytest.fixture
def module_server():
    """module_server(module, *args, preexec=None) runs ``python -m support.apps.MODULE ARGS``
    (see PortProcess); every one started is stopped at the end of the test."""
    started = []

    def start(module: str, *args: str, preexec=None) -> PortProcess:
        started.append(PortProcess(f"support.apps.{module}", *args, preexec=preexec))
        return started[-1]

    yield start
    for server in started:
        server.close()
