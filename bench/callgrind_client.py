"""The client of the counted runs (``callgrind.py``, ``syscalls.py``): it sends a
scenario's requests over loopback and checks every response.

Two shapes of load:

- ``drive_one``: one keep-alive connection; each write carries ``pipeline``
  requests and every answer is read before the next write (hello, post16k,
  pipeline16, ...).
- ``drive_many``: ``connections`` keep-alive connections opened first, then one
  batch in flight on each, the next written as soon as its answers are in, as
  wrk keeps its connections busy: the server finds many ready connections per
  epoll_wait (c1000).

Either way exactly ``requests`` requests are sent, then every connection is
closed, so a server that stops after a count (``max_requests``) exits at once.
"""
import select
import socket
import time

HOST = "127.0.0.1"


class ResponseReader:
    """Reads HTTP/1.1 responses framed by Content-Length off one socket."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def fill(self):
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("server closed the connection mid-response")
        self.buf += chunk

    def take(self):
        """The next complete response in what was read, as (status, body), or None."""
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        lines = self.buf[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if length is None:
            raise ValueError(f"response without Content-Length: {lines[0]!r}")
        if len(self.buf) < end + 4 + length:
            return None
        body = self.buf[end + 4:end + 4 + length]
        self.buf = self.buf[end + 4 + length:]
        return status, body

    def read(self):
        """One response, waiting for it: (status, body)."""
        while (response := self.take()) is None:
            self.fill()
        return response


def check(scenario, response):
    status, body = response
    if status != 200 or body != scenario.expected_body:
        raise RuntimeError(f"{scenario.name}: bad response: status {status}, {len(body)}-byte body")


def drive(port, scenario, requests, timeout):
    """Sends `requests` requests as the scenario says; checks every answer."""
    if scenario.connections > 1:
        return drive_many(port, scenario, requests, timeout)
    return drive_one(port, scenario, requests, timeout)


def drive_one(port, scenario, requests, timeout):
    """`requests` requests on one keep-alive connection, `pipeline` per write."""
    batch = scenario.request * scenario.pipeline
    sock = socket.create_connection((HOST, port), timeout=timeout)
    if scenario.tls:
        import ssl
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE   # the harness's own throwaway certificate
        sock = client.wrap_socket(sock)
    with sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = ResponseReader(sock)
        for _ in range(requests // scenario.pipeline):
            sock.sendall(batch)
            for _ in range(scenario.pipeline):
                check(scenario, reader.read())
    # Closing right after the last answer lets the stopping server exit at once
    # instead of keeping an idle keep-alive connection until its timeout.


def drive_many(port, scenario, requests, timeout):
    """`requests` requests spread over `connections` connections, one batch of
    `pipeline` in flight on each; every connection is open before the first write."""
    batch = scenario.request * scenario.pipeline
    batches_left = requests // scenario.pipeline
    readers, waiting = {}, {}
    poller = select.epoll()
    try:
        for _ in range(scenario.connections):
            sock = socket.create_connection((HOST, port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            readers[sock.fileno()] = ResponseReader(sock)
            poller.register(sock.fileno(), select.EPOLLIN)
        for fd, reader in readers.items():
            if batches_left == 0:
                break
            reader.sock.send(batch)   # a few hundred bytes: an empty socket buffer takes them
            waiting[fd] = scenario.pipeline
            batches_left -= 1
        deadline = time.monotonic() + timeout
        while waiting:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{scenario.name}: {sum(waiting.values())} answers not in "
                                   f"after {timeout:g}s")
            for fd, _ in poller.poll(1.0):
                reader = readers[fd]
                try:
                    reader.fill()
                except BlockingIOError:
                    continue
                while waiting.get(fd) and (response := reader.take()) is not None:
                    check(scenario, response)
                    waiting[fd] -= 1
                if waiting.get(fd) == 0:
                    del waiting[fd]
                    if batches_left:
                        reader.sock.send(batch)
                        waiting[fd] = scenario.pipeline
                        batches_left -= 1
    finally:
        poller.close()
        for reader in readers.values():
            reader.sock.close()
