"""The body and slow-client limits, set from the command line (fastwsgi's own settings)."""
from __future__ import annotations

import socket

import pytest


@pytest.fixture
def fastwsgi(serve):
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn has no such settings")
    return serve


def test_limit_request_body_from_the_command_line(fastwsgi):
    server = fastwsgi("-b", "127.0.0.1:0", "--limit-request-body", "10", "webapp").wait_ready()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
        assert sock.recv(65536).startswith(b"HTTP/1.1 413 Content Too Large\r\n")
    assert server.request("/")[0] == 200


def test_header_timeout_from_a_config_file(fastwsgi):
    (fastwsgi.dir / "limits.conf.py").write_text("header_timeout = 1\nio_timeout = 1.5\n")
    server = fastwsgi("-b", "127.0.0.1:0", "-c", "limits.conf.py", "webapp").wait_ready()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")   # the head never ends
        sock.settimeout(6)
        assert sock.recv(65536).startswith(b"HTTP/1.1 408 Request Timeout\r\n")


def test_default_body_limit_is_one_gibibyte(fastwsgi):
    server = fastwsgi("-b", "127.0.0.1:0", "webapp").wait_ready()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (1024 ** 3 + 1))
        assert sock.recv(65536).startswith(b"HTTP/1.1 413 Content Too Large\r\n")


def _rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_unfinished_bodies_of_many_clients_stay_within_the_body_memory_limit(fastwsgi):
    # 96 clients each send all but the last byte of a 1 MiB body (under the spool
    # threshold, so each would be held in memory): past 8 MiB they are spooled.
    server = fastwsgi("-b", "127.0.0.1:0", "--body-memory-limit", str(8 * 1024 * 1024),
                      "--worker-connections", "200", "webapp").wait_ready()
    (worker,) = server.worker_pids()
    size = 1024 * 1024
    before = _rss_kib(worker)
    clients = []
    try:
        for _ in range(96):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size)
            sock.sendall(b"z" * (size - 1))
            clients.append(sock)
        assert server.request("/")[0] == 200   # everything sent has been read
        grown = _rss_kib(worker) - before
    finally:
        for sock in clients:
            sock.close()
    assert grown < 32 * 1024, f"the worker grew by {grown} KiB for 96 MiB of unfinished bodies"
