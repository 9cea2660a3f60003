"""--metrics-bind: the master serves /metrics in the Prometheus text format, summed
over its workers, read here by prometheus_client's own parser."""
from __future__ import annotations

import http.client
import os
import signal
import socket

import pytest
from support import apps
from support.processes import ServerProcess

from fastwsgi import _loop, metrics

parser = pytest.importorskip("prometheus_client.parser")

def scrape(port: int, path: str = "/metrics") -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read().decode()
    finally:
        conn.close()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in parser.text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def server(tmp_path):
    apps.install("metricsapp", tmp_path)
    started = ServerProcess("fastwsgi", ["-b", "127.0.0.1:0", "-w", "2", "--metrics-bind", "127.0.0.1:0",
                                         "metricsapp:application"], tmp_path)
    started.wait_ready(workers=2)
    started.metrics_port = int(started.wait_for_log(r"Serving metrics at: http://127\.0\.0\.1:(\d+)/metrics")[0][1])
    yield started
    started.close()


def test_requests_summed_over_workers(server):
    for _ in range(6):
        server.request("/")
    server.request("/missing")
    server.request("/", method="POST")
    server.request("/slow")
    status, content_type, text = scrape(server.metrics_port)
    assert status == 200 and content_type.startswith("text/plain; version=0.0.4")
    found = samples(text)
    assert found[("fastwsgi_requests_total", (("method", "GET"), ("status", "2xx")))] == 7
    assert found[("fastwsgi_requests_total", (("method", "GET"), ("status", "4xx")))] == 1
    assert found[("fastwsgi_requests_total", (("method", "POST"), ("status", "2xx")))] == 1
    assert found[("fastwsgi_request_duration_seconds_count", ())] == 9
    assert found[("fastwsgi_request_duration_seconds_bucket", (("le", "0.25"),))] == 8
    assert found[("fastwsgi_request_duration_seconds_bucket", (("le", "+Inf"),))] == 9
    assert found[("fastwsgi_request_duration_seconds_sum", ())] >= 0.3
    assert found[("fastwsgi_requests_in_flight", ())] == 0
    assert found[("fastwsgi_connections_open", ())] == 0
    assert found[("fastwsgi_received_bytes_total", ())] > 9 * len("GET / HTTP/1.1\r\n\r\n")
    assert found[("fastwsgi_sent_bytes_total", ())] > 9 * len("HTTP/1.1 200 OK\r\n\r\n")
    assert found[("fastwsgi_workers", ())] == 2
    assert found[("fastwsgi_worker_boots_total", ())] == 2


def test_gauges_and_refusals(server):
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        # Workers that share a listener accept a connection once it has sent something.
        idle.sendall(b"GET / HTTP/1.1\r\n")
        slow.sendall(b"GET /slow?3 HTTP/1.1\r\nHost: x\r\n\r\n")
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as bad:
            bad.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
            assert bad.recv(100).startswith(b"HTTP/1.1 400 ")

        def gauges():
            found = samples(scrape(server.metrics_port)[2])
            return found[("fastwsgi_requests_in_flight", ())], found[("fastwsgi_connections_open", ())]
        server.wait_until(lambda: gauges() == (1, 2), message="one request in flight, two connections")
        assert slow.recv(1000).startswith(b"HTTP/1.1 200 ")
    finally:
        idle.close()
        slow.close()
    found = samples(scrape(server.metrics_port)[2])
    assert found[("fastwsgi_refused_requests_total", (("status", "400"),))] == 1


def test_worker_exits_and_restarts_keep_counters(server):
    for _ in range(3):
        server.request("/")
    victim = sorted(server.worker_pids())[0]
    os.kill(victim, signal.SIGKILL)
    server.wait_until(lambda: victim not in server.worker_pids() and len(server.worker_pids()) == 2,
                      message="a replacement worker")
    server.wait_until(lambda: samples(scrape(server.metrics_port)[2])[("fastwsgi_worker_restarts_total", ())] == 1)
    found = samples(scrape(server.metrics_port)[2])
    assert found[("fastwsgi_worker_boots_total", ())] == 3
    assert found[("fastwsgi_worker_exits_total", ())] == 1
    assert found[("fastwsgi_requests_total", (("method", "GET"), ("status", "2xx")))] == 3
    assert found[("fastwsgi_workers", ())] == 2


def test_a_worker_timeout_is_counted(tmp_path):
    apps.install("metricsapp", tmp_path)
    hung = ServerProcess("fastwsgi", ["-b", "127.0.0.1:0", "--timeout", "1", "--metrics-bind", "127.0.0.1:0",
                                      "metricsapp:application"], tmp_path)
    try:
        hung.wait_ready()
        port = int(hung.wait_for_log(r"Serving metrics at: http://127\.0\.0\.1:(\d+)/metrics")[0][1])
        assert hung.request("/slow?30", timeout=10)[0] == 500  # answered as gunicorn does
        hung.wait_until(lambda: samples(scrape(port)[2])[("fastwsgi_worker_timeouts_total", ())] == 1,
                        message="the timeout counted")
        hung.wait_until(lambda: samples(scrape(port)[2])[("fastwsgi_worker_restarts_total", ())] == 1,
                        message="the worker replaced")
    finally:
        hung.close()


def test_a_busy_metrics_address_does_not_stop_serving(tmp_path):
    apps.install("metricsapp", tmp_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    started = ServerProcess("fastwsgi", ["-b", "127.0.0.1:0", "--metrics-bind",
                                         "127.0.0.1:%d" % taken.getsockname()[1], "metricsapp:application"],
                            tmp_path)
    try:
        started.wait_ready()
        started.wait_for_log(r"\[ERROR\] Not serving metrics: cannot bind")
        assert started.request("/")[0] == 200
    finally:
        started.close()
        taken.close()


def test_other_paths_are_not_found(server):
    assert scrape(server.metrics_port, "/")[0] == 404


def test_layout_agrees_with_the_loop():
    layout = _loop.METRICS_LAYOUT
    assert layout["slot_size"] == metrics.SLOT_SIZE
    assert layout["duration_bounds"] == metrics.DURATION_BOUNDS
    assert (layout["open_connections"], layout["in_flight"], layout["bytes_in"], layout["bytes_out"],
            layout["duration_sum_us"]) == (metrics.OPEN_CONNECTIONS, metrics.IN_FLIGHT, metrics.BYTES_IN,
                                           metrics.BYTES_OUT, metrics.DURATION_SUM_US)
    assert (layout["duration_buckets"], layout["requests"], layout["refused"], layout["refused_first"],
            layout["refused_count"]) == (metrics.DURATION_BUCKETS, metrics.REQUESTS, metrics.REFUSED,
                                         metrics.REFUSED_FIRST, metrics.REFUSED_COUNT)
    assert (layout["methods"], layout["status_classes"]) == (len(metrics.METHODS), len(metrics.STATUS_CLASSES))
    assert metrics.DURATION_BUCKETS + len(metrics.DURATION_BOUNDS) + 1 <= metrics.REQUESTS
    assert metrics.REQUESTS + len(metrics.METHODS) * len(metrics.STATUS_CLASSES) <= metrics.REFUSED


def test_the_loop_counts_methods_in_the_order_metrics_names_them():
    assert _loop.METRICS_LAYOUT["method_names"] == metrics.METHODS


def raw_exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_a_request_line_without_a_version_is_refused(server):
    assert raw_exchange(server.metrics_port, b"GET /metrics\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert raw_exchange(server.metrics_port, b"GET /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200 ")


def test_head_gets_the_headers_only(server):
    answer = raw_exchange(server.metrics_port, b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: " in head and body == b""


def test_idle_metrics_clients_do_not_stall_the_master(server):
    """30 clients that connect to the metrics port and send nothing, reconnecting as
    they are dropped: a scrape and a TTIN are each answered within a second."""
    import threading
    import time

    stop = threading.Event()

    def idle_client():
        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", server.metrics_port), timeout=5) as sock:
                    sock.settimeout(0.2)
                    while not stop.is_set():
                        try:
                            if not sock.recv(1):
                                break   # dropped: connect again
                        except socket.timeout:
                            continue
            except OSError:
                time.sleep(0.05)

    idlers = [threading.Thread(target=idle_client, daemon=True) for _ in range(30)]
    for thread in idlers:
        thread.start()
    try:
        time.sleep(1.5)
        for _ in range(3):
            began = time.monotonic()
            assert scrape(server.metrics_port)[0] == 200
            assert time.monotonic() - began < 1.0
        began = time.monotonic()
        server.signal(signal.SIGTTIN)
        server.wait_until(lambda: len(server.worker_pids()) == 3, timeout=5, message="the third worker")
        server.wait_for_log(r"Booting worker with pid: \d+", count=3, timeout=5)
        assert time.monotonic() - began < 1.0
    finally:
        stop.set()
        for thread in idlers:
            thread.join(5)
