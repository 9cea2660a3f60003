"""StatsD: the packets a real UDP listener receives from fastwsgi carry the metric
names, types, prefix and dogstatsd tags gunicorn sends for the same run."""
from __future__ import annotations

import logging
import re
import signal
import socket
import time

import pytest
from support import apps
from support.processes import ServerProcess, available

from fastwsgi.statsd import Statsd, parse_statsd_address

TAGS = "env:test,team:web"
LINE = re.compile(r"^app\.(?P<name>[\w.]+):(?P<value>-?[\d.]+)\|(?P<type>c\|@1\.0|ms|g|h)\|#" + TAGS + "$")


class Listener:
    """A UDP socket on 127.0.0.1, port 0, that splits datagrams into metric lines."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []

    def collect(self, until, timeout: float = 10.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while not until(self.lines) and time.monotonic() < deadline:
            try:
                datagram = self.sock.recv(65536)
            except socket.timeout:
                continue
            self.lines.extend(datagram.decode("ascii").split("\n"))
        return self.lines

    def close(self) -> None:
        self.sock.close()


def _metrics(name: str, tmp_path) -> dict[str, set[str]]:
    """Runs `name` with statsd on, makes four requests, returns {metric: {types}}."""
    workdir = tmp_path / name
    workdir.mkdir()
    apps.install("statsapp", workdir)
    listener = Listener()
    server = ServerProcess(name, ["--no-control-socket", "-b", "127.0.0.1:0", "-w", "2",
                                  "--statsd-host", f"127.0.0.1:{listener.port}", "--statsd-prefix", "app",
                                  "--dogstatsd-tags", TAGS, "--enable-backlog-metric", "statsapp:application"], workdir)
    try:
        server.wait_ready(workers=2)
        for path in ("/", "/", "/missing", "/boom"):
            server.request(path)

        def complete(lines):
            # Each server sends a request's status counter after its other lines.
            return sum(line.startswith("app.gunicorn.request.status.") for line in lines) >= 4 and \
                any("gunicorn.log.exception" in line for line in lines) and \
                any("gunicorn.workers" in line for line in lines) and \
                any("gunicorn.backlog" in line for line in lines)
        lines = listener.collect(complete)
    finally:
        server.close()
        listener.close()
    found: dict[str, set[str]] = {}
    for line in lines:
        match = LINE.match(line)
        assert match, f"{name} sent {line!r}"
        found.setdefault(match["name"], set()).add(match["type"])
    counts: dict[str, int] = {}
    for match in map(LINE.match, lines):
        if match["type"].startswith("c"):
            counts[match["name"]] = counts.get(match["name"], 0) + int(match["value"])
    assert counts["gunicorn.requests"] == 4
    assert counts["gunicorn.request.status.200"] == 2
    assert sum(line.startswith("app.gunicorn.request.duration:") for line in lines) == 4
    return found


def test_same_metrics_as_gunicorn(tmp_path):
    if not available("gunicorn"):
        pytest.skip("gunicorn is not installed")
    ours = _metrics("fastwsgi", tmp_path)
    theirs = _metrics("gunicorn", tmp_path)
    assert ours == theirs
    assert {"gunicorn.requests", "gunicorn.request.duration", "gunicorn.request.status.200",
            "gunicorn.request.status.404", "gunicorn.request.status.500", "gunicorn.workers",
            "gunicorn.log.exception", "gunicorn.backlog"} <= set(ours)


def test_workers_gauge_follows_ttin(tmp_path):
    apps.install("statsapp", tmp_path)
    listener = Listener()
    server = ServerProcess("fastwsgi", ["-b", "127.0.0.1:0", "--statsd-host", f"127.0.0.1:{listener.port}",
                                        "statsapp:application"], tmp_path)
    try:
        server.wait_ready()
        listener.collect(lambda lines: "gunicorn.workers:1|g" in lines)
        server.signal(signal.SIGTTIN)
        lines = listener.collect(lambda lines: "gunicorn.workers:2|g" in lines)
    finally:
        server.close()
        listener.close()
    assert "gunicorn.workers:1|g" in lines and "gunicorn.workers:2|g" in lines


@pytest.mark.parametrize("value, address", [
    ("localhost", ("localhost", 8125)),
    ("10.0.0.1:9125", ("10.0.0.1", 9125)),
    ("[::1]:8126", ("::1", 8126)),
    ("unix:/run/statsd.sock", "/run/statsd.sock"),
    ("unix:///run/statsd.sock", "/run/statsd.sock"),
    ("unix:8125", ("unix", 8125)),
])
def test_address_read_as_gunicorn_reads_it(value, address):
    assert parse_statsd_address(value) == address
    if available("gunicorn"):
        from gunicorn.config import validate_statsd_address
        assert validate_statsd_address(value) == address


def test_unix_socket_and_batched_datagrams(tmp_path):
    path = str(tmp_path / "statsd.sock")
    sink = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sink.bind(path)
    sink.settimeout(5)
    client = Statsd(parse_statsd_address(f"unix:{path}"), "p.", "")
    try:
        client.requests([("200 OK", 0.0015)] * 100)
        datagrams = []
        while sum(d.count(b"\n") + 1 for d in datagrams) < 300:
            datagrams.append(sink.recv(65536))
    finally:
        client.close()
        sink.close()
    assert all(len(d) <= 1432 for d in datagrams) and len(datagrams) > 1
    lines = b"\n".join(datagrams).decode().split("\n")
    assert lines[:3] == ["p.gunicorn.request.duration:1.5|ms", "p.gunicorn.requests:1|c|@1.0",
                         "p.gunicorn.request.status.200:1|c|@1.0"]


HOOK_METRICS = '''
def post_worker_init(worker):
    worker.log.increment("hook.started", 1)
    worker.log.decrement("hook.left", 2, sampling_rate=0.5)
    worker.log.gauge("hook.gauge", 3)
    worker.log.histogram("hook.histogram", 4)
    worker.log.info("", extra={"metric": "hook.extra", "mtype": "gauge", "value": 7})
    worker.log.info("after the metrics")
'''


def test_hooks_send_their_own_metrics(serve):
    """worker.log's StatsD methods put gunicorn's lines on the wire, and a log call
    that only carries a metric writes no empty log line."""
    (serve.dir / "gunicorn.conf.py").write_text(HOOK_METRICS)
    listener = Listener()
    try:
        server = serve("-b", "127.0.0.1:0", "--statsd-host", f"127.0.0.1:{listener.port}",
                       "--statsd-prefix", "app", "webapp:application").wait_ready()
        server.wait_for_log(r"after the metrics")
        wanted = ["app.hook.started:1|c|@1.0", "app.hook.left:-2|c|@0.5", "app.hook.gauge:3|g",
                  "app.hook.histogram:4|h", "app.hook.extra:7|g"]
        lines = listener.collect(lambda lines: all(w in lines for w in wanted))
    finally:
        listener.close()
    assert all(w in lines for w in wanted), lines
    assert not re.search(r"\[INFO\] $", server.log, re.MULTILINE), server.log


def test_statsd_host_is_read_for_hooks(serve):
    """cfg.statsd_host holds gunicorn's parsed address, for hooks and config files."""
    (serve.dir / "gunicorn.conf.py").write_text(
        "def when_ready(server):\n"
        "    server.log.info('statsd_host=%r', server.cfg.statsd_host)\n")
    server = serve("-b", "127.0.0.1:0", "--statsd-host", "localhost", "webapp:application")
    server.wait_for_log(r"statsd_host=\('localhost', 8125\)")


def test_a_metric_that_cannot_be_sent_is_a_warning_not_an_error(caplog):
    """As gunicorn's Statsd logger: a hook's metric name that is not ASCII is logged
    as "Error sending message to statsd", and the hook goes on."""
    from fastwsgi.config import Config
    from fastwsgi.glogging import Logger

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.settimeout(5)
    cfg = Config()
    cfg.set("statsd_host", f"127.0.0.1:{sink.getsockname()[1]}")
    logger = Logger(cfg)
    logger.error_log.propagate = True
    try:
        with caplog.at_level(logging.WARNING, logger="gunicorn.error"):
            logger.increment("caf\u00e9.visits", 1)
            logger.gauge("ascii.after", 1)
        assert sink.recv(65536) == b"gunicorn.log.warning:1|c|@1.0"
        assert sink.recv(65536) == b"ascii.after:1|g"
    finally:
        logger.error_log.propagate = False
        logger.statsd.close()
        sink.close()
    assert "Error sending message to statsd" in caplog.text
    assert "UnicodeEncodeError" in caplog.text
