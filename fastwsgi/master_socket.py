"""A listening socket the master serves from its own wait, never blocking on it.

The listener and every client are on a selector of their own, whose descriptor the
master's wait includes (``fileno``); the master calls ``handle`` when it is readable
and ``sweep`` at every wake-up. A silent or slow client costs one connection's
bookkeeping and is dropped when its deadline passes, or when a newer one needs its
place: signals, reaping and spawning never wait for it. The /metrics endpoint
(metrics.py) and the control socket (control.py) are two of these.
"""
from __future__ import annotations

import selectors
import socket
import time
from typing import Any


class MasterSocketServer:
    """Accepts and drops clients; a subclass reads and answers them (``handle``).

    A client is any object with ``sock`` and ``deadline`` (a time.monotonic() value);
    ``new_client`` makes one, ``oldest`` says which gives way at ``max_clients``."""

    max_clients = 16

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.sock, selectors.EVENT_READ, None)
        self.clients: dict[int, Any] = {}   # in the order they came

    def fileno(self) -> int:
        """Readable when the listener or a client is ready (the selector's descriptor)."""
        return self.selector.fileno()

    def new_client(self, sock: socket.socket, now: float) -> Any:
        raise NotImplementedError

    def oldest(self) -> Any:
        return next(iter(self.clients.values()))

    def accepted(self, client: Any) -> None:
        """Called for each client as it is accepted (nothing to do by default)."""

    def sweep(self) -> None:
        """Drops the clients whose time is up (the master calls this at every wake-up)."""
        if not self.clients:
            return
        now = time.monotonic()
        for client in [c for c in self.clients.values() if c.deadline <= now]:
            self.drop(client)

    def accept(self) -> None:
        while True:
            try:
                sock, _ = self.sock.accept()
            except OSError:   # BlockingIOError: none left; others: try at the next wake-up
                return
            if len(self.clients) >= self.max_clients:
                self.drop(self.oldest())
            sock.setblocking(False)
            client = self.new_client(sock, time.monotonic())
            self.clients[sock.fileno()] = client
            self.selector.register(sock, selectors.EVENT_READ, client)
            self.accepted(client)

    def drop(self, client: Any) -> None:
        if client.sock.fileno() < 0:
            return   # dropped already
        self.clients.pop(client.sock.fileno(), None)
        try:
            self.selector.unregister(client.sock)
        except (KeyError, ValueError):
            pass
        client.sock.close()

    def close_in_child(self) -> None:
        """In a forked worker: the socket is the master's (its file stays)."""
        for client in list(self.clients.values()):
            client.sock.close()
        self.selector.close()
        self.sock.close()

    def close_sockets(self) -> None:
        """At the master's exit: every client dropped, the listener closed."""
        for client in list(self.clients.values()):
            self.drop(client)
        self.selector.close()
        self.sock.close()
