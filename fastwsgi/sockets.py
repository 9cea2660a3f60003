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


# SO_ATTACH_FILTER, which reads back as SO_GET_FILTER (asm-generic/socket.h).
SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)


def _bpf(*instructions: tuple[int, int, int, int]) -> bytes:
    """A classic BPF program: struct sock_filter {u16 code; u8 jt, jf; u32 k}."""
    return b"".join(struct.pack("HBBI", *instruction) for instruction in instructions)


# Passes every segment: a mark, on the socket itself (which every process holding
# it shares), that the listener closes for good with the last of them.
CLOSING_FOR_GOOD_FILTER = _bpf((0x06, 0, 0, 0xFFFFFFFF))                # ret #-1
# Drops a TCP segment whose flags are SYN without ACK, a new client's first packet,
# and passes every other. A TCP socket's filter sees the segment from its TCP header:
# byte 13 holds the flags.
REFUSE_HANDSHAKES_FILTER = _bpf(
    (0x30, 0, 0, 13),           # ldb [13]          the flags
    (0x54, 0, 0, 0x12),         # and #SYN|ACK
    (0x15, 1, 0, 0x02),         # jeq #SYN, drop
    (0x06, 0, 0, 0xFFFFFFFF),   # ret #-1           the whole segment, to the socket
    (0x06, 0, 0, 0),            # drop: ret #0
)


def _attach_filter(sock: socket.socket, program: bytes) -> bool:
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes   # at a stop only
    except ImportError:
        return False
    code = ctypes.create_string_buffer(program, len(program))
    # struct sock_fprog: unsigned short len, then a pointer to the instructions.
    fprog = struct.pack("HP", len(program) // 8, ctypes.addressof(code))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def _attached_filter(sock: socket.socket) -> bytes:
    """The first bytes of the socket's filter, as many as it has instructions (Linux
    reports their count as SO_GET_FILTER's length); b"" without one."""
    try:
        return sock.getsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, 256)
    except OSError:
        return b""


def mark_closing_for_good(sock: socket.socket) -> bool:
    """Marks a TCP listener as closing for good, with the last process to let go of
    it: the master's stop, when no new master, systemd or SO_REUSEPORT peer keeps it.
    The last worker's close would reset every connection the kernel completed and
    nobody took in, their requests already sent (a proxy cannot retry a POST); the
    mark tells each worker to end its hold with refuse_new_handshakes() and take in
    the handshakes still in flight first (Server.release_listeners). False where no
    mark can be set (not Linux, not TCP)."""
    return _attach_filter(sock, CLOSING_FOR_GOOD_FILTER)


def refuse_new_handshakes(sock: socket.socket) -> bool:
    """Stops a TCP listener closing for good from starting handshakes with new
    clients while it completes those begun: their ACKs and first requests still
    arrive, to be accepted. A new client's SYN goes unanswered; its retransmission,
    a second later, finds the port closed (refused, which a proxy retries on another
    host) or a new server bound to it. False where it cannot be done."""
    return _attach_filter(sock, REFUSE_HANDSHAKES_FILTER)


def _is_program(attached: bytes, program: bytes) -> bool:
    """Whether the filter read by _attached_filter() is this program."""
    return len(attached) == len(program) // 8 and program.startswith(attached)


def closing_for_good(sock: socket.socket) -> bool:
    """Whether the listener was marked closing for good (or already refuses new
    handshakes), by any process holding it. False for a Unix listener, which is
    never marked."""
    attached = _attached_filter(sock)
    return _is_program(attached, CLOSING_FOR_GOOD_FILTER) or \
        _is_program(attached, REFUSE_HANDSHAKES_FILTER)


def refusing_new_handshakes(sock: socket.socket) -> bool:
    """Whether refuse_new_handshakes() was applied to the listener."""
    return _is_program(_attached_filter(sock), REFUSE_HANDSHAKES_FILTER)


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
