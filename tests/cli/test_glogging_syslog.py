"""--log-syslog: entries as gunicorn sends them, received by a real syslog stand-in
(a UDP socket, a unix datagram socket)."""
from __future__ import annotations

import re
import socket
import time

import pytest


class SyslogReceiver:
    def __init__(self, tmp_path, kind: str) -> None:
        if kind == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", 0))
            self.address = f"udp://127.0.0.1:{self.sock.getsockname()[1]}"
        else:
            path = str(tmp_path / "log.sock")
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.sock.bind(path)
            self.address = f"unix://{path}#dgram"
        self.entries: list[str] = []

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            for entry in self.entries:
                match = re.search(pattern, entry)
                if match:
                    return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {pattern!r} within {timeout}s; got {self.entries}")
            self.sock.settimeout(remaining)
            try:
                self.entries.append(self.sock.recv(65536).decode())
            except socket.timeout:
                pass

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["udp", "unix"])
def receiver(request, tmp_path):
    created = SyslogReceiver(tmp_path, request.param)
    yield created
    created.close()


def test_error_and_access_entries(serve, receiver):
    server = serve("-b", "127.0.0.1:0", "--log-syslog", "--log-syslog-to", receiver.address,
                   "--log-syslog-prefix", "shop", "--log-syslog-facility", "local3",
                   "webapp").wait_ready()
    assert server.request("/from-syslog-test")[0] == 200
    # local3 (19) * 8 + info (6) = 158 (RFC 5424 §6.2.1); gunicorn's text after it.
    receiver.wait_for(r"^<158>gunicorn\.shop\.error: \[\d+\] Booting worker with pid: \d+\x00$")
    receiver.wait_for(r'^<158>gunicorn\.shop\.access: \[\d+\] 127\.0\.0\.1 - - \[[^]]+\] '
                      r'"GET /from-syslog-test HTTP/1\.1" 200 \d+ "-" "[^"]*"\x00$')
    # The error log still goes to its file (stderr) too.
    server.wait_for_log(r"Booting worker with pid")


def test_access_kept_out_of_syslog_when_asked(serve, receiver):
    server = serve("-b", "127.0.0.1:0", "--log-syslog", "--log-syslog-to", receiver.address,
                   "--disable-redirect-access-to-syslog", "webapp").wait_ready()
    assert server.request("/not-in-syslog")[0] == 200
    receiver.wait_for(r"^<14>gunicorn\.webapp\.error: \[\d+\] Booting worker")
    server.request("/")  # a second request: time for a first access entry to have arrived
    time.sleep(0.3)
    receiver.sock.setblocking(False)
    try:
        while True:
            receiver.entries.append(receiver.sock.recv(65536).decode())
    except BlockingIOError:
        pass
    assert not [entry for entry in receiver.entries if ".access:" in entry], receiver.entries


def test_unknown_facility_is_refused(serve, receiver):
    server = serve("-b", "127.0.0.1:0", "--log-syslog", "--log-syslog-to", receiver.address,
                   "--log-syslog-facility", "nosuch", "webapp")
    assert server.wait_exit() != 0
    assert "unknown facility name" in server.log
