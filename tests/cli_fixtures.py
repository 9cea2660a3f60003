"""Fixtures for the configuration, app-loading and command tests: a scratch
project directory, and `serve`, which runs the real command (fastwsgi or gunicorn)."""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


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


APPS = '''
import os
import time


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/sleep":
        time.sleep(float(environ.get("QUERY_STRING") or 1))
    elif path == "/hang":
        while True:
            time.sleep(0.1)
    elif path == "/crash":
        os._exit(7)
    elif path == "/print":
        print("printed by the app", flush=True)
    elif path == "/multiprocess":
        body = str(environ["wsgi.multiprocess"]).encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    elif path == "/whoami":
        body = f"{os.getuid()} {os.getgid()}".encode()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    body = f"{path} {os.getpid()}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def create_app(greeting="hi"):
    def made(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [greeting.encode()]
    return made


VERSION = 'one'


def versioned(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]


not_callable = 3
'''

COMMANDS = ["fastwsgi", "gunicorn"]


@pytest.fixture(params=COMMANDS)
def command_name(request):
    from server_process import available
    if not available(request.param):
        pytest.skip(f"{request.param} is not installed")
    return request.param


@pytest.fixture
def serve(command_name, tmp_path):
    """serve(*args) starts `fastwsgi ARGS` or `gunicorn ARGS` in a scratch dir holding
    webapp.py; every server started is stopped at the end of the test."""
    from server_process import ServerProcess
    (tmp_path / "webapp.py").write_text(APPS)
    started = []

    def start(*args, env=None, **kwargs):
        args = list(args)
        # gunicorn 27 opens a control socket in $HOME by default; parallel runs would clash.
        args = ["--no-control-socket"] + args
        server = ServerProcess(command_name, args, tmp_path, env=env, **kwargs)
        started.append(server)
        return server

    start.name = command_name
    start.dir = tmp_path
    _become_subreaper()
    yield start
    for server in started:
        server.close()
    _reap_orphans(tracked={server.pid for server in started})


def _become_subreaper() -> None:
    """Orphans of the servers we start (a daemonized master, the new master of a USR2
    upgrade) are re-parented to this process instead of pid 1, so the test can reap them."""
    import ctypes
    PR_SET_CHILD_SUBREAPER = 36
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _reap_orphans(tracked: set) -> None:
    me = os.getpid()
    try:
        children = Path(f"/proc/{me}/task/{me}/children").read_text().split()
    except OSError:
        return
    for pid in map(int, children):
        if pid in tracked:
            continue  # Popen reaps its own
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"fastwsgi" not in cmdline and b"gunicorn" not in cmdline and cmdline:
            continue  # not one of ours
        try:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
