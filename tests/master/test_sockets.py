"""Bind specs and listening sockets (loopback and port 0 only)."""
from __future__ import annotations

import logging
import os
import socket

import pytest

from fastwsgi import sockets
from fastwsgi.sockets import parse_address


@pytest.mark.parametrize("spec, expected", [
    ("127.0.0.1:8000", ("127.0.0.1", 8000)),
    ("LOCALHOST:1", ("localhost", 1)),
    ("0.0.0.0", ("0.0.0.0", 8000)),
    ("", ("0.0.0.0", 8000)),
    ("[::1]:9000", ("::1", 9000)),
    ("[::1]", ("::1", 8000)),
    ("tcp://127.0.0.1:81", ("127.0.0.1", 81)),
    ("unix:/run/app.sock", "/run/app.sock"),
    ("unix:///run/app.sock", "/run/app.sock"),
    ("fd://3", 3),
])
def test_parse_address(spec, expected):
    assert parse_address(spec) == expected


@pytest.mark.parametrize("spec, message", [
    ("127.0.0.1:http", "'http' is not a valid port number."),
    ("fd://x", "'x' is not a valid file descriptor."),
])
def test_parse_address_errors(spec, message):
    with pytest.raises(RuntimeError, match=message):
        parse_address(spec)


def test_tcp_listener_listens_and_prints_like_gunicorn():
    listener = sockets.bind_address(("127.0.0.1", 0), backlog=16)
    try:
        port = listener.getsockname()[1]
        assert str(listener) == f"http://127.0.0.1:{port}"
        assert listener.sock.get_inheritable()
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    finally:
        listener.close()


def test_ipv6_listener():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        listener = sockets.bind_address(("::1", 0))
    except OSError:
        pytest.skip("::1 not configured")
    try:
        assert str(listener) == f"http://[::1]:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_unix_listener_replaces_a_stale_socket_and_is_unlinked(tmp_path):
    path = str(tmp_path / "app.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()
    listener = sockets.bind_address(path, umask=0o077)
    assert str(listener) == f"unix:{path}"
    assert os.stat(path).st_mode & 0o777 == 0o700
    sockets.close_listeners([listener])
    assert not os.path.exists(path)


def test_unix_bind_refuses_to_remove_a_regular_file(tmp_path):
    path = tmp_path / "not-a-socket"
    path.write_text("data")
    with pytest.raises(ValueError, match="is not a socket"):
        sockets.bind_address(str(path))


def test_adopt_inherited_fd_keeps_family_and_address():
    original = socket.socket()
    original.bind(("127.0.0.1", 0))
    original.listen(1)
    port = original.getsockname()[1]
    listener = sockets.adopt_fd(os.dup(original.fileno()))
    original.close()
    try:
        assert str(listener) == f"http://127.0.0.1:{port}"
    finally:
        listener.close()


def test_listen_fds_only_for_our_pid(monkeypatch):
    monkeypatch.setenv("LISTEN_FDS", "2")
    monkeypatch.setenv("LISTEN_PID", str(os.getpid() + 1))
    assert sockets.listen_fds() == 0
    monkeypatch.setenv("LISTEN_PID", str(os.getpid()))
    assert sockets.listen_fds() == 2
    assert "LISTEN_FDS" not in os.environ and "LISTEN_PID" not in os.environ


class FakeConfig:
    backlog = 8
    reuse_port = False
    umask = 0
    uid = gid = None
    is_ssl = False

    def __init__(self, *addresses):
        self.address = list(addresses)


def test_create_listeners_binds_every_address(tmp_path):
    listeners = sockets.create_listeners(FakeConfig(("127.0.0.1", 0), str(tmp_path / "s")),
                                         logging.getLogger("test"))
    try:
        assert [listener.family for listener in listeners] == [socket.AF_INET, socket.AF_UNIX]
    finally:
        sockets.close_listeners(listeners)


def test_create_listeners_gives_up_on_a_busy_port(monkeypatch, caplog):
    monkeypatch.setattr(sockets.time, "sleep", lambda _: None)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        with pytest.raises(SystemExit) as exit_info:
            sockets.create_listeners(FakeConfig(busy.getsockname()), logging.getLogger("test"))
        assert exit_info.value.code == 1
        assert "Connection in use: ('127.0.0.1', " in caplog.text
        assert "Can't connect to ('127.0.0.1', " in caplog.text
    finally:
        busy.close()


def test_a_listener_refusing_new_handshakes_completes_those_begun(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    begun = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        assert not sockets.closing_for_good(listener)
        assert sockets.mark_closing_for_good(listener)
        assert sockets.closing_for_good(listener) and not sockets.refusing_new_handshakes(listener)
        assert sockets.refuse_new_handshakes(listener)
        assert sockets.closing_for_good(listener) and sockets.refusing_new_handshakes(listener)
        # the connection begun before: its request still arrives, to be taken in
        begun.sendall(b"GET / HTTP/1.1\r\n\r\n")
        accepted, _ = listener.accept()
        with accepted:
            accepted.settimeout(5)
            assert accepted.recv(100) == b"GET / HTTP/1.1\r\n\r\n"
            accepted.sendall(b"ok")
            assert begun.recv(100) == b"ok"
        # a new client's SYN goes unanswered: nothing more is queued
        late = socket.socket()
        late.settimeout(0.3)
        with late, pytest.raises(TimeoutError):
            late.connect(("127.0.0.1", port))
    finally:
        begun.close()
        listener.close()
    # once closed, the port refuses
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)


def test_refusing_new_handshakes_is_for_tcp_listeners(tmp_path):
    unix = socket.socket(socket.AF_UNIX)
    with unix:
        unix.bind(str(tmp_path / "s"))
        unix.listen(1)
        assert not sockets.mark_closing_for_good(unix)
        assert not sockets.refuse_new_handshakes(unix)
        assert not sockets.closing_for_good(unix)
