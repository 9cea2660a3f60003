"""A 1 GiB response to a slow reader and a 1 GiB upload leave the worker's peak RSS
bounded; idle keep-alive connections cost their objects, not a read buffer each."""
from __future__ import annotations

import pathlib
import resource
import socket
import time

GIB = 1024 ** 3
# Peak RSS may grow by socket-buffer-sized amounts, never by anything near the body size.
ALLOWED_GROWTH = 48 * 1024 * 1024


def _kib(pid: int, field: str) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def _warm(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx")
        while sock.recv(65536):
            pass


def test_gib_response_to_a_slow_reader_keeps_rss_bounded(module_server):
    server = module_server("memory", "stream_gib")
    proc, port = server.proc, server.port
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        baseline = _kib(proc.pid, "VmRSS")
        received = 0
        # slow phase: 2 MiB in small sips
        while received < 2 * 1024 * 1024:
            received += len(sock.recv(16384))
            time.sleep(0.001)
        # then as fast as possible
        buffer = bytearray(1 << 20)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = sock.recv_into(buffer)
            if not n:
                break
            received += n
    peak = _kib(proc.pid, "VmHWM")
    assert received > GIB
    assert peak - baseline < ALLOWED_GROWTH, f"peak RSS grew by {(peak - baseline) >> 20} MiB"


def test_gib_upload_keeps_rss_bounded(module_server):
    server = module_server("memory", "count_upload")
    proc, port = server.proc, server.port
    _warm(port)
    baseline = _kib(proc.pid, "VmRSS")
    piece = b"u" * (1 << 20)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % GIB)
        for _ in range(GIB // len(piece)):
            sock.sendall(piece)
        answer = b""
        while True:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    peak = _kib(proc.pid, "VmHWM")
    assert answer.endswith(b"\r\n\r\n%d" % GIB)
    assert peak - baseline < ALLOWED_GROWTH, f"peak RSS grew by {(peak - baseline) >> 20} MiB"


def test_idle_keep_alive_connections_hold_no_read_buffer(module_server):
    # Each connection is read into the server's buffer and holds one of its own only
    # while bytes of it are unanswered: 600 idle ones, each after a request, grow the
    # worker by their objects (about 1.6 KiB each), where a 64 KiB buffer apiece
    # touched a page or more of it (9.3 KiB each, bench/idle_memory.py).
    count = 600
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 256), hard))
    server = module_server("memory", "hello")
    _warm(server.port)
    baseline = _kib(server.proc.pid, "VmRSS")
    clients = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            clients.append(sock)
        for sock in clients:
            answer = b""
            while not answer.endswith(b"\r\n\r\nhi"):
                answer += sock.recv(4096)
        grown = _kib(server.proc.pid, "VmRSS") - baseline
        # the same connections still serve: a split head is held in a buffer of its own
        for sock in clients[:50]:
            sock.sendall(b"GET / HTTP/1.1\r\nHo")
        for sock in clients[:50]:
            sock.sendall(b"st: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b"\r\n\r\nhi"):
                answer += sock.recv(4096)
    finally:
        for sock in clients:
            sock.close()
    assert grown / count < 3 * 1024, f"{grown / count / 1024:.1f} KiB per idle connection"
