"""The master's control socket (``--control-socket``), the Unix socket gunicorn 27's
``gunicornc`` talks to; ``fastwsgic`` is fastwsgi's own client.

gunicorn serves it from an asyncio thread in the master, stopped and restarted
around every fork.  Here it is served from the master's own loop, without a thread
and without ever waiting on a client: the listener and every client are on a
selector whose descriptor the master's wait includes (as the /metrics endpoint,
``metrics.py``), reads and writes are non-blocking, a request is at most
MAX_REQUEST_SIZE bytes, a message begun must end within MESSAGE_SECONDS, a
connection may stay idle IDLE_SECONDS between requests (gunicorn's five minutes),
and at most MAX_CLIENTS are open (the longest idle is dropped for a new one).  A
silent, slow or garbage-sending client costs the master one descriptor, never time.

The socket file is made with its mode from the start (the umask is narrowed around
bind(), where gunicorn chmods after binding); its directory is made 0700 when
missing, as gunicorn does.  A file left by a master that died is replaced, but,
unlike gunicorn, which unlinks whatever is at the path, a socket another process
still answers on is left alone (this master then runs without one and says so), and
a path that is not a socket is never removed.  At exit the file is removed only if
it is still the one this master bound.  Workers close their copy after the fork.
"""
from __future__ import annotations

import errno
import os
import selectors
import socket
import stat
import time
from typing import Any, Callable

from .master_socket import MasterSocketServer
from .control_protocol import LENGTH, MAX_REQUEST_SIZE, ProtocolError, decode_payload, encode

MAX_CLIENTS = 32
IDLE_SECONDS = 300.0
MESSAGE_SECONDS = 5.0
# A client that does not take its answer within this long is dropped.
SEND_SECONDS = 5.0


class ControlSocketInUse(OSError):
    """The path is held by a live server, or by something that is not a socket."""


def claim_path(path: str) -> None:
    """Makes ``path`` free to bind: its directory made, a dead server's socket removed;
    ControlSocketInUse when a live server answers there or the file is no socket."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlSocketInUse(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.setblocking(False)
    try:
        code = probe.connect_ex(path)
    finally:
        probe.close()
    if code == 0 or code in (errno.EAGAIN, errno.EWOULDBLOCK):
        raise ControlSocketInUse(f"{path} is in use by a running server")
    if code == errno.ECONNREFUSED:
        os.unlink(path)   # nobody listens: a file left by a server that died
    elif code != errno.ENOENT:
        raise ControlSocketInUse(f"{path}: {os.strerror(code)}")


def bind_control_socket(path: str, mode: int) -> socket.socket:
    claim_path(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # Narrowed around bind() so that the socket never exists with a wider mode.
        old_umask = os.umask(0o777 & ~mode)
        try:
            sock.bind(path)
        finally:
            os.umask(old_umask)
        os.chmod(path, mode)
        sock.listen(64)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    sock.set_inheritable(False)
    return sock


class ControlConnection:
    """One client: the bytes of its next request so far, its answer still to send."""

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = b""
        self.waiting_to_send = False
        self.last_active = now
        self.deadline = now + IDLE_SECONDS

    def rearm(self, now: float) -> None:
        self.last_active = now
        if self.outbox:
            self.deadline = now + SEND_SECONDS
        elif self.inbox:
            self.deadline = now + MESSAGE_SECONDS
        else:
            self.deadline = now + IDLE_SECONDS


class ControlServer(MasterSocketServer):
    """Accepts, reads, answers; ``execute(message) -> answer`` does the commands
    (control_commands.execute bound to the arbiter)."""

    max_clients = MAX_CLIENTS

    def __init__(self, path: str, mode: int, execute: Callable[[Any], dict], log: Any) -> None:
        super().__init__(bind_control_socket(path, mode))
        self.path = path
        self.log = log
        self.execute = execute
        self.inode = _inode(path)

    def new_client(self, sock: socket.socket, now: float) -> ControlConnection:
        return ControlConnection(sock, now)

    def oldest(self) -> ControlConnection:
        return min(self.clients.values(), key=lambda c: c.last_active)

    def handle(self) -> None:
        """Serves whatever is ready now, and drops the clients out of time; never waits."""
        for key, events in self.selector.select(0):
            if key.data is None:
                self.accept()
                continue
            client = key.data
            if client.sock.fileno() < 0:
                continue   # dropped earlier in this round
            try:
                if events & selectors.EVENT_WRITE:
                    self._flush(client)
                    self._answer_ready(client)   # requests that came with the one just sent
                if events & selectors.EVENT_READ:
                    self._receive(client)
            except (OSError, ProtocolError) as e:
                self.log.debug("Control client dropped: %s", e)
                self.drop(client)
            except Exception:
                # Whatever a client sends, the master goes on: an error here is a bug,
                # logged, and costs that client its connection only.
                self.log.exception("Control client dropped")
                self.drop(client)
        self.sweep()

    # --- clients ------------------------------------------------------------------
    def _receive(self, client: ControlConnection) -> None:
        # The inbox holds less than one whole request here: never more than the largest.
        room = LENGTH.size + MAX_REQUEST_SIZE - len(client.inbox)
        try:
            chunk = client.sock.recv(room)
        except (BlockingIOError, InterruptedError):
            return
        if not chunk:
            self.drop(client)
            return
        client.inbox += chunk
        self._answer_ready(client)

    def _answer_ready(self, client: ControlConnection) -> None:
        """Answers the requests the inbox holds whole, one at a time: while an answer
        waits to be sent the client is not read (a client that does not read cannot
        make the master hold more than one answer and one request for it)."""
        while not client.outbox and len(client.inbox) >= LENGTH.size:
            length = LENGTH.unpack_from(client.inbox)[0]
            if length > MAX_REQUEST_SIZE:
                raise ProtocolError(f"request too large: {length} bytes")
            end = LENGTH.size + length
            if len(client.inbox) < end:
                break
            message = decode_payload(bytes(client.inbox[LENGTH.size:end]))
            del client.inbox[:end]
            client.outbox = encode(self.execute(message))
            self._flush(client)
        client.rearm(time.monotonic())

    def _flush(self, client: ControlConnection) -> None:
        """Sends what the socket takes of the answer; the rest waits for EVENT_WRITE."""
        try:
            sent = client.sock.send(client.outbox) if client.outbox else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        client.outbox = client.outbox[sent:]
        waiting = bool(client.outbox)
        if waiting != client.waiting_to_send:
            client.waiting_to_send = waiting
            self.selector.modify(client.sock, selectors.EVENT_WRITE if waiting else selectors.EVENT_READ,
                                 client)

    # --- closing ------------------------------------------------------------------
    def close(self) -> None:
        """At the master's exit: every client dropped, the file removed if still ours
        (a newer master may have bound the path since)."""
        self.close_sockets()
        if _inode(self.path) == self.inode:
            try:
                os.unlink(self.path)
            except OSError:
                pass


def _inode(path: str) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
