"""systemd's NOTIFY_SOCKET: the messages a Type=notify unit's manager receives."""
from __future__ import annotations

import signal
import socket
import time
import uuid

import pytest


class NotifyListener:
    """A datagram socket standing in for systemd; ``address`` goes in NOTIFY_SOCKET."""

    def __init__(self, tmp_path, abstract: bool) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"fastwsgi-test-{uuid.uuid4().hex}"
            self.sock.bind("\0" + name)
            self.address = "@" + name
        else:
            self.address = str(tmp_path / "notify.sock")
            self.sock.bind(self.address)
        self.messages: list[str] = []

    def wait_for(self, line: str, timeout: float = 15.0) -> str:
        """The first message (from now on) holding ``line``; earlier ones are kept."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no {line!r} within {timeout}s; got {self.messages}")
            self.sock.settimeout(remaining)
            try:
                message = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            self.messages.append(message)
            if line in message.split("\n"):
                return message

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def listener(request, tmp_path):
    created = NotifyListener(tmp_path, abstract=request.param == "abstract")
    yield created
    created.close()


def test_ready_once_serving(serve, listener):
    started = time.monotonic()
    server = serve("-b", "127.0.0.1:0", "webapp", env={"NOTIFY_SOCKET": listener.address})
    message = listener.wait_for("READY=1")
    assert time.monotonic() - started < 10
    assert any(line.startswith("STATUS=") for line in message.split("\n")), message
    server.wait_ready()
    assert server.request("/")[0] == 200


def test_reload_and_stop_are_announced(serve, listener):
    if serve.name == "gunicorn":
        pytest.skip("gunicorn 27 sends READY=1 at boot only")
    server = serve("-b", "127.0.0.1:0", "-w", "2", "webapp", env={"NOTIFY_SOCKET": listener.address})
    listener.wait_for("READY=1")
    server.wait_ready(workers=2)
    old_workers = server.worker_pids()
    server.signal(signal.SIGHUP)
    reloading = listener.wait_for("RELOADING=1")
    usec = [line for line in reloading.split("\n") if line.startswith("MONOTONIC_USEC=")]
    assert usec and abs(int(usec[0].split("=")[1]) / 1e6 - time.monotonic()) < 10, reloading
    listener.wait_for("READY=1")
    # READY=1 again only when the new workers serve.
    assert not (server.worker_pids() & old_workers)
    assert server.request("/")[0] == 200
    server.signal(signal.SIGTERM)
    listener.wait_for("STOPPING=1")
    assert server.wait_exit() == 0
    assert [m for m in listener.messages if "STOPPING=1" in m] == ["STOPPING=1"]


def test_unreachable_notify_socket_does_not_stop_the_server(serve, tmp_path):
    missing = str(tmp_path / "no-such-notify.sock")
    server = serve("-b", "127.0.0.1:0", "webapp", env={"NOTIFY_SOCKET": missing}).wait_ready()
    assert server.request("/")[0] == 200
