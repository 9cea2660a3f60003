"""The apps the tests serve, as modules.

Some are imported or run where they are (``python -m support.apps.soak``); the ones
a command serves from a project directory are copied there by ``install``, so a test
may edit its copy (``--reload``) and the tracebacks name the file as the test expects.
"""
from __future__ import annotations

import shutil
from pathlib import Path

APPS = Path(__file__).resolve().parent


def install(module: str, directory: Path, filename: str | None = None) -> Path:
    """Copies ``support/apps/MODULE.py`` into ``directory`` (as ``filename``, else as is)."""
    target = Path(directory) / (filename or f"{module}.py")
    shutil.copyfile(APPS / f"{module}.py", target)
    return target


def listening_server(app, options, hooks=None, backlog: int = 128):
    """A fastwsgi Server for ``app`` on 127.0.0.1, port 0, that SIGTERM stops.

    The port is printed on its own line first, for the launcher that started this
    process (``support.processes.PortProcess``); the caller then calls ``run()``.
    """
    import signal
    import socket

    from fastwsgi._loop import Server

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(backlog)
    server = Server(app, [sock], options, hooks)
    signal.signal(signal.SIGTERM, lambda *_: server.stop(graceful=False))
    print(sock.getsockname()[1], flush=True)
    return server
