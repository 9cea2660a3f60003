"""The master's signals, each with its effect observed, on fastwsgi and gunicorn alike."""
from __future__ import annotations

import collections
import os
import re
import signal
import socket
import threading
import time

import pytest


def test_n_workers_are_n_processes(serve):
    server = serve("-b", "127.0.0.1:0", "-w", "3", "webapp").wait_ready(workers=3)
    assert len(server.worker_pids()) == 3
    seen = {server.request("/")[1].split()[1] for _ in range(6)}
    assert seen <= {str(pid).encode() for pid in server.worker_pids()}


def test_ttin_adds_and_ttou_removes_a_worker(serve):
    server = serve("-b", "127.0.0.1:0", "-w", "2", "webapp").wait_ready(workers=2)
    server.signal(signal.SIGTTIN)
    server.wait_until(lambda: len(server.worker_pids()) == 3, message="for a third worker")
    # One at a time: the kernel merges a signal sent while the same one is pending.
    server.signal(signal.SIGTTOU)
    server.wait_until(lambda: len(server.worker_pids()) == 2, message="for two workers left")
    server.signal(signal.SIGTTOU)
    server.wait_until(lambda: len(server.worker_pids()) == 1, message="for one worker left")
    server.signal(signal.SIGTTOU)  # never below one
    time.sleep(0.5)
    assert len(server.worker_pids()) == 1


def test_hup_replaces_every_worker_and_rereads_the_config(serve):
    config = serve.dir / "gunicorn.conf.py"
    config.write_text("workers = 2\n")
    server = serve("-b", "127.0.0.1:0", "webapp").wait_ready(workers=2)
    old = server.worker_pids()
    config.write_text("workers = 3\n")
    server.signal(signal.SIGHUP)
    server.wait_for_log(r"Hang up: Master")
    server.wait_until(lambda: len(server.worker_pids()) == 3 and not (server.worker_pids() & old),
                      message="for three new workers")
    assert server.request("/")[0] == 200


def test_term_lets_the_in_flight_request_finish(serve):
    server = serve("-b", "127.0.0.1:0", "--graceful-timeout", "10", "webapp").wait_ready()
    result = {}
    client = threading.Thread(target=lambda: result.update(r=server.request("/sleep", timeout=10)))
    started = time.monotonic()
    client.start()
    time.sleep(0.3)  # the request is inside the app now
    server.signal(signal.SIGTERM)
    client.join(10)
    assert result["r"][0] == 200
    assert server.wait_exit() == 0
    assert time.monotonic() - started < 8
    assert "[INFO] Handling signal: term" in server.log
    assert "[INFO] Shutting down: Master" in server.log


def test_int_and_quit_stop_fast(serve):
    for sig in (signal.SIGINT, signal.SIGQUIT):
        server = serve("-b", "127.0.0.1:0", "-w", "2", "webapp").wait_ready(workers=2)
        started = time.monotonic()
        server.signal(sig)
        assert server.wait_exit() == 0
        assert time.monotonic() - started < 5
        assert f"Handling signal: {signal.Signals(sig).name[3:].lower()}" in server.log


def test_usr1_reopens_log_files(serve):
    access = serve.dir / "access.log"
    server = serve("-b", "127.0.0.1:0", "--access-logfile", str(access), "webapp").wait_ready()
    server.request("/before")
    server.wait_until(lambda: access.exists() and "/before" in access.read_text())
    os.rename(access, serve.dir / "access.log.1")
    server.signal(signal.SIGUSR1)
    server.wait_for_log("Handling signal: usr1")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        server.request("/after")
        if access.exists() and "/after" in access.read_text():
            break
        time.sleep(0.2)
    assert "/after" in access.read_text()
    assert "/before" not in access.read_text()


def test_hung_worker_is_killed_and_replaced_after_timeout(serve):
    hooks = serve.dir / "hooks.py"
    marker = serve.dir / "aborted"
    hooks.write_text(f"def worker_abort(worker):\n    open({str(marker)!r}, 'a').write('abort\\n')\n")
    server = serve("-b", "127.0.0.1:0", "-t", "2", "-c", str(hooks), "webapp").wait_ready()
    hung = server.worker_pids().pop()
    threading.Thread(target=lambda: _ignore_errors(server.request, "/hang", timeout=15), daemon=True).start()
    server.wait_for_log(rf"\[CRITICAL\] WORKER TIMEOUT \(pid:{hung}\)", timeout=10)
    server.wait_until(lambda: server.worker_pids() and hung not in server.worker_pids(), timeout=10,
                      message="for a replacement worker")
    server.wait_until(marker.exists, timeout=5, message="for worker_abort")
    assert server.request("/")[0] == 200


def test_crashed_worker_is_replaced(serve):
    server = serve("-b", "127.0.0.1:0", "webapp").wait_ready()
    first = server.worker_pids().pop()
    _ignore_errors(server.request, "/crash", timeout=5)
    server.wait_for_log(rf"Worker \(pid:{first}\) exited with code 7", timeout=10)
    server.wait_until(lambda: server.worker_pids() - {first}, timeout=10, message="for a new worker")
    assert server.request("/")[0] == 200


def test_max_requests_recycles_workers_without_failing_a_request(serve):
    server = serve("-b", "127.0.0.1:0", "-w", "2", "--max-requests", "10", "--max-requests-jitter", "3",
                   "webapp").wait_ready(workers=2)
    statuses: list = []
    lock = threading.Lock()

    def client(n: int) -> None:
        for i in range(30):
            try:
                status = server.request(f"/{n}/{i}")[0]
            except Exception as e:  # a refused or reset connection is a failed request
                status = repr(e)
            with lock:
                statuses.append(status)

    clients = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(60)
    assert statuses == [200] * 120
    assert len(re.findall(r"Autorestarting worker after current request\.", server.log)) >= 6


def test_a_client_that_connects_as_the_server_stops_is_answered_or_refused_never_reset(serve):
    """New clients at full pace through a TERM: the last process to let go of the
    listener would reset any connection the kernel completed that nobody took in (its
    request already sent), so the master first stops new handshakes and the workers
    take in those begun before they close it. Each client is answered, refused, or
    its SYN goes unanswered until the port closes; none is reset after connecting."""
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn resets clients its listener queued at its stop")
    server = serve("-b", "127.0.0.1:0", "-w", "2", "webapp").wait_ready(workers=2)
    outcomes: collections.Counter = collections.Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + 60

    def client() -> None:
        request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
        while time.monotonic() < stop_at:
            try:
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=0.5)
            except ConnectionRefusedError:
                outcome = "refused"
            except TimeoutError:
                outcome = "unanswered"
            else:
                with sock:
                    try:
                        sock.sendall(request)
                        answer = sock.recv(65536)
                    except OSError:
                        answer = b""
                outcome = "answered" if answer.startswith(b"HTTP/1.1 ") else "reset"
            with lock:
                outcomes[outcome] += 1
                if outcome == "refused" and outcomes["refused"] >= 200:
                    return   # well past the close

    clients = [threading.Thread(target=client) for _ in range(6)]
    for thread in clients:
        thread.start()
    server.wait_until(lambda: outcomes["answered"] >= 200, timeout=20, message="for answers")
    server.signal(signal.SIGTERM)
    for thread in clients:
        thread.join(70)
    assert outcomes["reset"] == 0, outcomes
    assert outcomes["refused"] >= 200, outcomes
    assert server.wait_exit() == 0


def test_pidfile_is_written_and_removed(serve):
    pidfile = serve.dir / "app.pid"
    server = serve("-b", "127.0.0.1:0", "-p", str(pidfile), "webapp").wait_ready()
    assert pidfile.read_text().strip() == str(server.pid)
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert not pidfile.exists()


def _ignore_errors(func, *args, **kwargs):
    try:
        func(*args, **kwargs)
    except Exception:
        pass


def test_after_term_a_new_client_is_refused_or_answered_never_reset(serve):
    """A stop's workers let go of the listening socket as soon as they take no more
    connections (each first takes in what the kernel queued), so a client that comes
    later is refused at connect, which a proxy retries elsewhere, or answered. A socket
    held until the last worker exits would queue such a client and then reset it, its
    request already sent: a POST no proxy may retry."""
    if serve.name != "fastwsgi":
        pytest.skip("gunicorn's sync workers reset clients queued during their stop")
    server = serve("-b", "127.0.0.1:0", "-w", "2", "--graceful-timeout", "10",
                   "webapp").wait_ready(workers=2)
    busy = []
    for _ in range(6):   # both workers busy, and a queue they share at the stop
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(b"GET /sleep?1 HTTP/1.1\r\nHost: x\r\n\r\n")
        busy.append(sock)
    time.sleep(0.3)
    server.signal(signal.SIGTERM)
    outcomes = []

    def probe():
        try:
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        except ConnectionRefusedError:
            outcomes.append("refused")
            return
        with sock:
            try:
                sock.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
                answer = sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                answer = b""
            outcomes.append("answered" if answer.startswith(b"HTTP/1.1 ") else "reset")

    probes = []
    for _ in range(100):   # a new client every 50 ms for 5 s, past the workers' exit
        probes.append(threading.Thread(target=probe))
        probes[-1].start()
        time.sleep(0.05)
    for thread in probes:
        thread.join(20)
    for sock in busy:
        with sock:
            assert sock.recv(65536).startswith(b"HTTP/1.1 200"), "a request taken before the stop"
    assert "reset" not in outcomes, outcomes
    assert "refused" in outcomes, outcomes
    assert server.wait_exit() == 0
