"""fastwsgi.run in a process of its own: signals, descriptor exhaustion, the demo app."""
from __future__ import annotations

import resource
import signal
import socket
import time

import pytest
from support.processes import cpu_seconds
from support.wire import read_all


@pytest.fixture
def process(module_server):
    """process(app) runs ``support.apps.runner APP``: fastwsgi.run in a process of its own."""
    return lambda app, preexec=None: module_server("runner", app, preexec=preexec)


def request(server, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(raw)
        return read_all(sock)


def test_demo_app_answers(process):
    server = process("demo")
    answer = request(server, b"GET /hi?x=1 HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK")
    assert b"Hello from fastwsgi" in answer and b"PATH_INFO: /hi" in answer


# What fastwsgi.run() without TLS, a log config or the command line never needs.
RUN_NEEDS_NONE_OF = ("ssl", "fastwsgi.glogging", "logging.config", "json", "ctypes", "argparse",
                     "fastwsgi.config", "fastwsgi.arbiter")


def test_run_imports_no_module_it_does_not_serve_with(process):
    server = process("modules")
    answer = request(server, b"GET / HTTP/1.0\r\n\r\n")
    modules = set(answer.partition(b"\r\n\r\n")[2].decode().split())
    assert "fastwsgi._loop" in modules
    assert sorted(modules.intersection(RUN_NEEDS_NONE_OF)) == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_gracefully_after_the_in_flight_request(process, signum):
    server = process("slow")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"GET /?1.0 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.3)
    server.proc.send_signal(signum)
    answer = read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"done")
    assert b"Connection: close" in answer
    assert server.proc.wait(10) == 0
    assert server.proc.stdout.read().strip() == "stopped"


def test_descriptor_exhaustion_does_not_spin_and_recovers(process):
    def low_fd_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    server = process("demo", low_fd_limit)
    clients = []
    for _ in range(80):
        clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
    time.sleep(0.3)
    before = cpu_seconds(server.pid)
    time.sleep(1.5)
    spent = cpu_seconds(server.pid) - before
    assert spent < 0.5, f"the loop spun for {spent:.2f}s of CPU while out of descriptors"
    for sock in clients:
        sock.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            answer = request(server, b"GET / HTTP/1.0\r\n\r\n")
            if answer.startswith(b"HTTP/1.1 200"):
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "did not recover from descriptor exhaustion"
        time.sleep(0.2)


def test_a_full_disk_while_spooling_refuses_that_upload_and_the_worker_serves_on(process):
    # RLIMIT_FSIZE makes the kernel fail the spool file's writes (EFBIG, as ENOSPC
    # would on a full disk; Python ignores SIGXFSZ): that request gets a 413.
    def small_file_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    server = process("demo", small_file_limit)
    bystander = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    body = b"x" * (3 * 1024 * 1024)   # past the 1 MiB spool threshold
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
        try:
            sock.sendall(body)
        except OSError:
            pass  # the server may close before reading it all
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 413 Content Too Large\r\n"), answer[:100]
    bystander.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert read_all(bystander).startswith(b"HTTP/1.1 200 OK")
    bystander.close()
    assert server.proc.poll() is None
