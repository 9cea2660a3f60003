"""Listening sockets from bind specs: HOST:PORT, [v6]:PORT, unix:PATH, fd://N,
and sockets inherited from systemd (LISTEN_FDS) or from an old master (USR2)."""
from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
import stat
import struct
import sys
import time
from collections.abc import Iterable
from typing import Any, Union

# ("host", port) for TCP, "path" for a unix socket, an int for an inherited fd.
Address = Union[tuple[str, int], str, int]

SD_LISTEN_FDS_START = 3
BIND_ATTEMPTS = 5


def parse_address(netloc: str, default_port: str = "8000") -> Address:
    """Parse one bind spec as gunicorn does (its error messages included)."""
    if re.match(r"unix:(//)?", netloc):
        return re.split(r"unix:(//)?", netloc)[-1]
    if netloc.startswith("fd://"):
        fd = netloc[5:]
        try:
            return int(fd)
        except ValueError:
            raise RuntimeError(f"{fd!r} is not a valid file descriptor.") from None
    if netloc.startswith("tcp://"):
        netloc = netloc.split("tcp://")[1]
    host, port = netloc, default_port
    if "[" in netloc and "]" in netloc:
        host = netloc.split("]")[0][1:]
        port = (netloc.split("]:") + [default_port])[1]
    elif ":" in netloc:
        host, port = (netloc.split(":") + [default_port])[:2]
    elif netloc == "":
        host = "0.0.0.0"
    try:
        port_number = int(port)
    except ValueError:
        raise RuntimeError(f"{port!r} is not a valid port number.") from None
    return host.lower(), port_number


def _is_ipv6(host: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        return False


class Listener:
    """A bound, listening socket and the address it was configured with."""

    def __init__(self, sock: socket.socket, cfg_addr: Address, is_ssl: bool = False) -> None:
        self.sock = sock
        self.cfg_addr = cfg_addr
        self.is_ssl = is_ssl

    @property
    def family(self) -> int:
        return self.sock.family

    def fileno(self) -> int:
        return self.sock.fileno()

    def getsockname(self) -> Any:
        return self.sock.getsockname()

    def __str__(self) -> str:
        # The form gunicorn prints in "Listening at: ...".
        if self.sock.family == socket.AF_UNIX:
            return f"unix:{self.cfg_addr if isinstance(self.cfg_addr, str) else self.getsockname()}"
        host, port = self.getsockname()[:2]
        scheme = "https" if self.is_ssl else "http"
        if self.sock.family == socket.AF_INET6:
            return f"{scheme}://[{host}]:{port}"
        return f"{scheme}://{host}:{port}"

    def get_backlog(self) -> int:
        """Connections waiting to be accepted (Linux TCP only; -1 elsewhere), as gunicorn."""
        if self.sock.family == socket.AF_UNIX or not sys.platform.startswith("linux"):
            return -1
        try:
            return accept_queue_length(self.sock)
        except (AttributeError, OSError):
            return 0

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def accept_queue_length(sock: socket.socket) -> int:
    """Connections waiting in a Linux TCP listener's accept queue. Raises OSError
    (AttributeError where there is no TCP_INFO) when it cannot be read."""
    # struct tcp_info (linux/tcp.h): 8 bytes, then u32s; the 5th of them (offset 24),
    # tcpi_unacked, holds a listener's accept queue length.
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    if len(info) < 28:
        raise OSError("short tcp_info")
    return struct.unpack_from("I", info, 24)[0]


def _set_options(sock: socket.socket, reuse_port: bool) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port and hasattr(socket, "SO_REUSEPORT"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        except OSError as e:
            if e.errno not in (errno.ENOPROTOOPT, errno.EINVAL):
                raise
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _is_listening(sock: socket.socket) -> bool:
    # A socket from systemd already listens; listen() again may be denied (SELinux).
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        return False


def _finish(sock: socket.socket, backlog: int) -> None:
    # Inheritable: workers are forked, and a USR2 re-exec passes the fds on.
    sock.set_inheritable(True)
    if not _is_listening(sock):
        sock.listen(backlog)


def _remove_stale_unix_socket(path: str) -> None:
    if path.startswith("\0"):  # abstract namespace: nothing on disk
        return
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ValueError(f"{path!r} is not a socket")
    os.remove(path)


def bind_address(address: Address, backlog: int = 2048, reuse_port: bool = False, umask: int = 0,
                 uid: int | None = None, gid: int | None = None, is_ssl: bool = False) -> Listener:
    """Create, bind and listen one socket for a parsed (non-fd) address."""
    if isinstance(address, str):
        _remove_stale_unix_socket(address)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _set_options(sock, reuse_port)
            old_umask = os.umask(umask)
            try:
                sock.bind(address)
            finally:
                os.umask(old_umask)
            if not address.startswith("\0") and uid is not None and gid is not None:
                os.chown(address, uid, gid)
        except BaseException:
            sock.close()
            raise
    else:
        family = socket.AF_INET6 if _is_ipv6(address[0]) else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            _set_options(sock, reuse_port)
            sock.bind(address)
        except BaseException:
            sock.close()
            raise
    _finish(sock, backlog)
    return Listener(sock, address, is_ssl)


def adopt_fd(fd: int, backlog: int = 2048, reuse_port: bool = False, is_ssl: bool = False) -> Listener:
    """Wrap an inherited, already bound socket (fd://N, LISTEN_FDS, USR2)."""
    sock = socket.socket(fileno=fd)  # the kernel tells the family and type
    _set_options(sock, reuse_port)
    _finish(sock, backlog)
    name = sock.getsockname()
    return Listener(sock, name if sock.family == socket.AF_UNIX else fd, is_ssl)


def create_listeners(cfg: Any, log: Any, fds: Iterable[int] | None = None) -> list[Listener]:
    """Bind every configured address, or adopt the inherited fds, as gunicorn's master does.

    A busy address is retried for a few seconds (an old master may be letting go of it);
    then the master exits 1 with "Can't connect to ...".
    """
    addresses = cfg.address
    fd_addresses = [a for a in addresses if isinstance(a, int)] + list(fds or [])
    if fd_addresses:
        return [adopt_fd(fd, cfg.backlog, cfg.reuse_port, cfg.is_ssl) for fd in fd_addresses]
    listeners = []
    for address in addresses:
        listener = None
        for attempt in range(BIND_ATTEMPTS):
            try:
                listener = bind_address(address, cfg.backlog, cfg.reuse_port, cfg.umask,
                                        cfg.uid, cfg.gid, cfg.is_ssl)
                break
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    log.error("Connection in use: %s", str(address))
                if e.errno == errno.EADDRNOTAVAIL:
                    log.error("Invalid address: %s", str(address))
                log.error("connection to %s failed: %s", str(address), e)
                if attempt < BIND_ATTEMPTS - 1:
                    log.debug("Retrying in 1 second.")
                    time.sleep(1)
        if listener is None:
            log.error("Can't connect to %s", str(address))
            for bound in listeners:
                bound.close()
            sys.exit(1)
        listeners.append(listener)
    return listeners


def close_listeners(listeners: Iterable[Listener], unlink: bool = True) -> None:
    for listener in listeners:
        path = listener.cfg_addr if listener.family == socket.AF_UNIX else None
        listener.close()
        if unlink and isinstance(path, str) and path and not path.startswith("\0"):
            try:
                os.unlink(path)
            except OSError:
                pass


def listen_fds(unset_environment: bool = True) -> int:
    """How many sockets systemd passed (sd_listen_fds(3)); 0 unless LISTEN_PID is us."""
    try:
        count = int(os.environ.get("LISTEN_FDS", 0))
        listen_pid = int(os.environ.get("LISTEN_PID", 0))
    except ValueError:
        return 0
    if listen_pid != os.getpid():
        return 0
    if unset_environment:
        os.environ.pop("LISTEN_PID", None)
        os.environ.pop("LISTEN_FDS", None)
    return count
