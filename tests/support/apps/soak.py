"""A mixed WSGI app for the soak tests, served by a fastwsgi process of its own.

Every kind of response the loop produces has a path here; ``/__stats`` reports
what a leak would grow: gc-tracked objects, allocated blocks, malloc'd bytes,
RSS, open descriptors, the connections the loop still holds and the response
iterables whose close() it has not called.

Run as ``python -m support.apps.soak [--leak]``: prints the port, then serves
until SIGTERM.  ``--leak`` plants a small leak per request, so a test can prove
the measurement notices one.  ``bench/soak.py`` serves ``support.apps.soak:app``
with the ``fastwsgi`` command instead.
"""
from __future__ import annotations

import ctypes
import gc
import json
import os
import sys
import tempfile

FILE_SIZE = 1024 * 1024
# The options the soak server runs with; support.workload.Target's defaults match them.
OPTIONS = {
    "spool_threshold": 64 * 1024,
    "limit_request_body": 2 * 1024 * 1024,
    "proxy_protocol": True,
    "proxy_allow_ips": ("127.0.0.1",),
    "keepalive": 5,
}
STREAM_CHUNK = b"s" * 16384

_planted = []
_server = None
_fork_pool = None


def _make_data_file() -> str:
    """A file for wsgi.file_wrapper, made at import (in each worker, before it serves).

    It is unlinked at once and reopened through /proc, so nothing is left
    behind however the process ends.
    """
    handle, path = tempfile.mkstemp(prefix="fastwsgi-soak-")
    os.unlink(path)
    os.write(handle, os.urandom(FILE_SIZE))
    return f"/proc/self/fd/{handle}"


DATA_FILE = _make_data_file()


class ClosingStream:
    """A streamed body with a close() the server must call (PEP 3333); counts the unclosed."""

    unclosed = 0

    def __init__(self, count: int, fail_at: int = -1):
        self.count = count
        self.fail_at = fail_at
        ClosingStream.unclosed += 1

    def __iter__(self):
        for index in range(self.count):
            if index == self.fail_at:
                raise RuntimeError("planned failure after the headers")
            yield STREAM_CHUNK

    def close(self):
        ClosingStream.unclosed -= 1


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
        "fsmblks", "uordblks", "fordblks", "keepcost")]


_mallinfo2 = getattr(ctypes.CDLL(None), "mallinfo2", None)
if _mallinfo2 is not None:
    _mallinfo2.restype = _MallInfo2


def _malloc_in_use() -> int:
    """Bytes malloc has handed out and not got back (glibc >= 2.33), or -1."""
    if _mallinfo2 is None:
        return -1
    info = _mallinfo2()
    return info.uordblks + info.hblkhd


def _malloc_held() -> int:
    """Bytes malloc holds from the system, in use or free (heap arenas and mmapped chunks), or -1."""
    if _mallinfo2 is None:
        return -1
    info = _mallinfo2()
    return info.arena + info.hblkhd


def stats() -> dict:
    gc.collect()
    rss = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
    return {
        "pid": os.getpid(),
        "gc_objects": len(gc.get_objects()),
        "allocated_blocks": sys.getallocatedblocks(),
        "malloc_in_use": _malloc_in_use(),
        "malloc_held": _malloc_held(),
        "rss": rss,
        "fds": len(os.listdir("/proc/self/fd")),
        "connections": _server.connection_count if _server is not None else -1,
        "unclosed_iterables": ClosingStream.unclosed,
    }


def _fixed(start_response, status: str, body: bytes, content_type: str = "text/plain"):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _make_fork_pool():
    """A fork Pool that replaces its child after every task, so each task leaves a
    fresh child holding every descriptor the worker had open then (client
    connections included), as an app that forks does."""
    import multiprocessing
    return multiprocessing.get_context("fork").Pool(1, maxtasksperchild=1)


def _pool_task() -> int:
    """/pool: a task on the fork Pool (made now, unless made at import)."""
    global _fork_pool
    if _fork_pool is None:
        _fork_pool = _make_fork_pool()
    return _fork_pool.apply(sum, (range(10),))


if os.environ.get("SOAK_FORK_POOL"):
    # bench/soak.py --fork-pool: made in each worker before it serves, so that the
    # Pool's own descriptors are there in the soak's first sample too.
    _fork_pool = _make_fork_pool()


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if "--leak" in sys.argv:
        _planted.append(dict(environ))
    if path == "/__stats":
        return _fixed(start_response, "200 OK", json.dumps(stats()).encode(), "application/json")
    if path == "/hello":
        return _fixed(start_response, "200 OK", b"Hello, World!")
    if path == "/echo":
        body = environ["wsgi.input"].read()
        return _fixed(start_response, "200 OK", str(len(body)).encode())
    if path == "/lines":
        count = sum(1 for _ in environ["wsgi.input"])
        return _fixed(start_response, "200 OK", str(count).encode())
    if path == "/stream":
        count = int(environ.get("QUERY_STRING") or 4)
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return ClosingStream(count)
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written first;")
        return [b"then returned"]
    if path == "/file":
        # A fresh file object per request: a missed close() leaks a descriptor.
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](open(DATA_FILE, "rb"), 65536)
    if path == "/raise-before":
        raise RuntimeError("planned failure before the headers")
    if path == "/raise-after":
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return ClosingStream(4, fail_at=2)
    if path == "/no-content":
        start_response("204 No Content", [])
        return []
    if path == "/pool":
        return _fixed(start_response, "200 OK", str(_pool_task()).encode())
    return _fixed(start_response, "404 Not Found", b"not found\n")


def main() -> None:
    import logging

    from fastwsgi.options import ServerHooks, ServerOptions
    from support.apps import listening_server

    global _server

    # The tracebacks of the planned failures are formatted, as in production, and dropped.
    error_log = logging.getLogger("fastwsgi.soak")
    error_log.propagate = False
    error_log.addHandler(logging.FileHandler(os.devnull))
    _server = listening_server(app, ServerOptions(**OPTIONS), ServerHooks(error_log=error_log))
    _server.run()


if __name__ == "__main__":
    main()
