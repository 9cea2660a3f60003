# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The serving loop: one epoll instance, its listeners and connections.

Per keep-alive request the hot path is one recv(), one parse over the read
buffer, one environ copy, one app call and one sendmsg() that carries the
status line, headers and body chunks together.  Pipelined requests found in
one read are answered with a single sendmsg().  Output waits on EPOLLOUT
with reading paused, so neither a slow reader nor a pipelining client can
make the worker buffer without bound.

_loop.pxd is the map of the parts (fastwsgi/loop/*.pxi, woven in below) and
holds the connection state table; this file holds the Server, the event loop.
"""
import errno as errno_module
import logging
import os
import socket
import stat
import sys
import tempfile

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Size
from cpython.exc cimport PyErr_CheckSignals
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_GET_ITEM
from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.math cimport INFINITY
from libc.stdio cimport snprintf
from libc.stdlib cimport malloc, free, realloc
from libc.string cimport memchr, memcpy, memmove, memset, strlen

from fastwsgi._parser cimport (HeadParser, BodyDecoder, normalize_limits, BODY_NONE,
                               BODY_LENGTH, BODY_CHUNKED, PARSE_INCOMPLETE, UwsgiPacket,
                               UwsgiVar)
from fastwsgi._environ cimport EnvironBuilder
from fastwsgi.includes.http_chars cimport (
    FIELD_CONTENT, METHOD_COUNT, METHOD_OTHER, TCHAR, equals_lowered, method_index, method_names)
from fastwsgi.includes.python cimport (
    PyUnicode_1BYTE_KIND, PyUnicode_DATA, PyUnicode_GET_LENGTH, PyUnicode_IS_COMPACT_ASCII,
    PyUnicode_KIND, clear_bytes_list, dict_lookup)
from fastwsgi.includes.system cimport *
from fastwsgi.includes.handoff cimport fastwsgi_send_fd, fastwsgi_recv_fd
from fastwsgi.includes.watch cimport (
    fastwsgi_load, fastwsgi_store, fastwsgi_sleep_ms, fastwsgi_name_thread)

include "loop/consts.pxi"

cdef dict STATUS_REASONS = {
    400: "Bad Request", 408: "Request Timeout", 413: "Content Too Large",
    414: "URI Too Long", 417: "Expectation Failed", 431: "Request Header Fields Too Large",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
cdef bytes CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"
cdef bytes EARLY_HINTS_LINE = b"HTTP/1.1 103 Early Hints\r\n"
cdef bytes CRLF = b"\r\n"
cdef bytes LAST_CHUNK = b"0\r\n\r\n"
cdef bytes TRANSFER_CHUNKED = b"Transfer-Encoding: chunked\r\n"
cdef bytes CONNECTION_CLOSE = b"Connection: close\r\n"
cdef bytes CONNECTION_KEEP_ALIVE = b"Connection: keep-alive\r\n"
# The answer to an app that failed before its response began.
cdef bytes INTERNAL_ERROR_BODY = b"Internal Server Error\n"
cdef list INTERNAL_ERROR_HEADERS = [("Content-Type", "text/plain"),
                                    ("Content-Length", str(len(INTERNAL_ERROR_BODY)))]
cdef bytes INTERNAL_ERROR_HEAD = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n" % len(INTERNAL_ERROR_BODY))
# What gunicorn's worker writes for a request its app was stuck in (util.write_error).
cdef bytes TIMEOUT_500_BODY = (
    b"<html>\n  <head>\n    <title>Internal Server Error</title>\n  </head>\n  <body>\n"
    b"    <h1><p>Internal Server Error</p></h1>\n    \n  </body>\n</html>\n")
cdef bytes TIMEOUT_500 = (
    b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Type: text/html\r\n"
    b"Content-Length: %d\r\n\r\n" % len(TIMEOUT_500_BODY) + TIMEOUT_500_BODY)
cdef str K_INPUT = sys.intern("wsgi.input")
cdef str K_CONTENT_LENGTH = sys.intern("CONTENT_LENGTH")
cdef str K_HTTP_TRANSFER_ENCODING = sys.intern("HTTP_TRANSFER_ENCODING")
cdef str K_GUNICORN_SOCKET = sys.intern("gunicorn.socket")
# The answer to a client that speaks plain HTTP to a TLS port (as nginx answers it).
cdef bytes PLAIN_HTTP_ON_TLS_BODY = b"This port speaks HTTPS: the request must come over TLS.\n"
cdef bytes PLAIN_HTTP_ON_TLS_PORT = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
    b"Connection: close\r\n\r\n" % len(PLAIN_HTTP_ON_TLS_BODY) + PLAIN_HTTP_ON_TLS_BODY)

logger = logging.getLogger("fastwsgi.error")


cdef inline double monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


include "loop/input.pxi"
include "loop/proxy.pxi"
include "loop/metrics.pxi"
include "loop/framing.pxi"
include "loop/response.pxi"
include "loop/access_log.pxi"
include "loop/wsgi.pxi"
include "loop/tls.pxi"
include "loop/transport.pxi"
include "loop/exchange.pxi"
include "loop/connection.pxi"
include "loop/app_driver.pxi"
include "loop/protocol.pxi"
include "loop/mailbox.pxi"
include "loop/threads.pxi"
include "loop/app_watch.pxi"
include "loop/handoff.pxi"
include "loop/python_api.pxi"


cdef class AllowList:

    def __cinit__(self, ips):
        import ipaddress
        addresses = [ip.strip() for ip in ips if ip.strip()]
        self.everyone = "*" in addresses
        self.addresses = frozenset(addresses)
        # CIDR networks (gunicorn takes them, e.g. a cluster's pod range); a single
        # address written as one ("10.0.0.1/32") is an address.
        networks = [ipaddress.ip_network(ip, strict=False) for ip in addresses
                    if "/" in ip and ip != "*"]
        self.addresses |= frozenset([str(net.network_address) for net in networks
                                     if net.num_addresses == 1])
        self.networks = tuple([net for net in networks if net.num_addresses > 1]) or None

    cdef bint allows(self, str address):
        # Asked once per connection, when it is accepted.
        if self.everyone or address in self.addresses:
            return True
        return self.networks is not None and self.in_networks(address)

    cdef bint in_networks(self, str address) except -1:
        import ipaddress
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        for network in self.networks:
            if ip.version == network.version and ip in network:
                return True
        if ip.version == 6 and ip.ipv4_mapped is not None:
            return self.in_networks(str(ip.ipv4_mapped))
        return False


cdef class Handle:
    """What an epoll registration points at (its kind says which subclass)."""


cdef class Listener(Handle):
    """A listening socket this server accepts from, with its environ template."""


cdef Listener open_listener(object sock, object opts, EarlyHints early_hints, bint multithread):
    """A listening socket made ready to accept from, with its environ template."""
    cdef Listener listener = Listener.__new__(Listener)
    listener.kind = HANDLE_LISTENER
    listener.sock = sock
    listener.fd = sock.fileno()
    listener.is_unix = sock.family == socket.AF_UNIX
    sock.setblocking(False)
    if opts.multiprocess and not listener.is_unix and hasattr(socket, "TCP_DEFER_ACCEPT"):
        # Workers that share the listener take a connection once its request has
        # arrived: a connection accepted while still silent would tie its request
        # to a worker that may be busy in the app by the time it comes, while a
        # sibling sits idle. A silent client is handed over after a few seconds
        # all the same, and its header timeout runs from then.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, DEFER_ACCEPT_SECONDS)
    if listener.is_unix:
        server_name, server_port = "localhost", ""
    else:
        address = sock.getsockname()
        server_name, server_port = address[0], address[1]
    if opts.ssl_context is not None:
        # gunicorn wraps every bound socket when TLS is configured.
        listener.tls = TLSContext(opts.ssl_context, opts.suppress_ragged_eofs)
    listener.environ_builder = EnvironBuilder(
        root_path=opts.root_path,
        url_scheme="http" if listener.tls is None else "https",
        server_software=opts.server_software,
        server_name=server_name,
        server_port=server_port,
        multiprocess=bool(opts.multiprocess),
        multithread=multithread,
        file_wrapper=FileWrapper,
        # wsgi.input: the empty stream of a request without a body, there from the
        # copy (AppDriver.set_input replaces it when there is a body).
        base_environ=dict(opts.base_environ, **{"wsgi.early_hints": early_hints,
                                                "wsgi.input": NO_BODY}),
        secure_scheme_headers=opts.secure_scheme_headers,
    )
    return listener


cdef class Server:
    """Serves a WSGI app on already-listening sockets until stopped.

    ``Server(app, listeners, options, hooks).run()`` blocks; ``stop()`` may be
    called from a signal handler or another thread.
    """

    def __init__(self, app, listeners, options=None, hooks=None):
        from fastwsgi.options import ServerOptions, ServerHooks
        self.options = options if options is not None else ServerOptions()
        self.hooks = hooks if hooks is not None else ServerHooks()
        self.error_log = self.hooks.error_log or logger
        self.connections = {}
        self.read_buffer = <char*>malloc(READ_BUFFER_INITIAL)
        if self.read_buffer == NULL:
            raise MemoryError()
        self.flush_queue = []
        self.retired = []
        self.epfd = -1
        self.waker_fd = -1
        self.stop_accepts_left = -1
        opts = self.options
        self.graceful_timeout = opts.graceful_timeout
        self.worker_connections = opts.worker_connections if opts.worker_connections > 0 else 1 << 30
        self.max_requests = opts.max_requests
        if opts.multiprocess:
            # Workers that share a listener all wait on it, and each accepts one
            # connection per wake-up: the app runs on the loop, so a busy worker is
            # not in epoll_wait and whichever worker is free takes the next one, as
            # gunicorn's sync workers do. EPOLLEXCLUSIVE would hand every wake-up to
            # the first worker that registered, free or not, and a burst of slow
            # requests would queue on it while the others sat idle.
            self.accept_batch = ACCEPT_BATCH_SHARED
            self.listener_events = EPOLLIN
        else:
            self.accept_batch = ACCEPT_BATCH
            self.listener_events = EPOLLIN | EPOLLEXCLUSIVE
        self.forwarded_allow = AllowList(opts.forwarded_allow_ips)
        self.proxy_protocol = bool(opts.proxy_protocol)
        self.proxy_allow = AllowList(opts.proxy_allow_ips)
        if opts.protocol == "uwsgi":
            self.uwsgi_allow = AllowList(opts.uwsgi_allow_ips)
        self.on_tick = self.hooks.on_tick
        if getattr(opts, "metrics", None) is not None:
            self.metrics_slot = MetricsSlot(opts.metrics)
            self.metrics = self.metrics_slot.counters
        self.protocol = Protocol(self, opts)
        self.driver = AppDriver(self, app, opts, self.hooks)
        self.writer = ResponseWriter(self, opts)
        if opts.threads > 1:
            self.pool = AppPool(self, opts.threads)
            self.driver.early_hints.pool = self.pool
            self.app_timeout = opts.timeout
        self.listeners = [open_listener(sock, opts, self.driver.early_hints, self.pool is not None)
                          for sock in listeners]
        if self.pool is None:
            self.app_watch = AppWatch(self)
            channel = getattr(opts, "handoff_channel", None)
            if channel is not None and opts.multiprocess:
                self.handoff = HandOff(self, channel)

    def __dealloc__(self):
        # (every connection let go of it when it closed)
        free(self.read_buffer)

    # -- control -----------------------------------------------------------

    def stop(self, graceful=True):
        """Stops serving: gracefully lets in-flight requests finish first."""
        cdef unsigned long long one = 1
        if graceful:
            if not self.stopping:
                self.stopping = True
                self.stop_deadline = monotonic() + self.graceful_timeout
        else:
            self.stop_now = True
        if self.waker_fd >= 0:
            write(self.waker_fd, &one, sizeof(one))

    def abort_app_calls(self):
        """For a worker about to be killed while the app is stuck (the master's
        timeout): answers each request still in the app as gunicorn does — a 500 if
        nothing of its response was sent yet — and writes its access line. Returns
        the environs of those requests."""
        cdef Connection conn
        if self.pool is None:
            conn = self.driver.in_app
            self.driver.in_app = None
            return [] if conn is None else [self.driver.abort_app_call(conn)]
        return [self.driver.abort_app_call(conn) for conn in list(self.connections.values())
                if conn.state == STATE_APP]

    @property
    def connection_count(self):
        return len(self.connections)

    def run(self):
        """Serves until stop(); closes every connection it holds before returning."""
        if self.running:
            raise RuntimeError("this server is already running")
        self.running = True
        try:
            self.open()
            self.serve()
        finally:
            self.close_all()
            if self.driver.completed:
                self.driver.report_completed()
            self.running = False
            if self.driver.access_pending:
                self.driver.flush_access()

    cdef void open(self) except *:
        cdef epoll_event event
        self.epfd = epoll_create1(EPOLL_CLOEXEC)
        if self.epfd < 0:
            raise OSError(errno, os.strerror(errno))
        self.waker_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if self.waker_fd < 0:
            raise OSError(errno, os.strerror(errno))
        self.waker = Handle.__new__(Handle)
        self.waker.kind = HANDLE_WAKER
        self.waker.fd = self.waker_fd
        event.events = EPOLLIN
        event.data.ptr = <void*>self.waker
        if epoll_ctl(self.epfd, EPOLL_CTL_ADD, self.waker_fd, &event) < 0:
            raise OSError(errno, os.strerror(errno))
        self.now = monotonic()
        self.next_tick = self.now + 1.0
        self.writer.refresh_date()
        if self.pool is not None:
            self.pool.mailbox.open(self.waker_fd)
        self.resume_accepting()

    cdef void resume_accepting(self) except *:
        cdef epoll_event event
        cdef Listener listener
        self.accepting = True
        for listener in self.listeners:
            if listener.registered:
                continue
            event.events = self.listener_events
            event.data.ptr = <void*>listener
            if epoll_ctl(self.epfd, EPOLL_CTL_ADD, listener.fd, &event) < 0:
                raise OSError(errno, os.strerror(errno))
            listener.registered = True
        if self.handoff is not None:
            # a sibling's waiting connection is taken in as a new one is accepted
            self.handoff.register()

    cdef void pause_accepting(self) except *:
        cdef Listener listener
        self.accepting = False
        if self.handoff is not None:
            self.handoff.unregister()
        for listener in self.listeners:
            if listener.registered:
                epoll_ctl(self.epfd, EPOLL_CTL_DEL, listener.fd, NULL)
                listener.registered = False

    cdef void serve(self) except *:
        cdef epoll_event events[MAX_EVENTS]
        cdef int count, i, timeout_ms
        # what each event points at; the waker's until the first event is read
        cdef Handle handle = self.waker
        cdef unsigned long long drained = 0
        cdef list ready_listeners = []
        cdef Protocol protocol = self.protocol
        cdef AppDriver driver = self.driver
        cdef AppPool pool = self.pool
        while not self.stop_now:
            # Python runs signal handlers only when asked: a signal that came
            # while the loop was busy in C is handled here, before sleeping.
            PyErr_CheckSignals()
            if self.stop_now:
                break
            timeout_ms = self.stop_wait_ms() if self.stopping else WAIT_MS
            # (a thread's news wakes it: the round's last take told the mailbox the
            # loop sleeps from then on; news into its empty queue writes the waker)
            with nogil:
                count = epoll_wait(self.epfd, events, MAX_EVENTS, timeout_ms)
            if count < 0:
                if errno != EINTR:
                    raise OSError(errno, os.strerror(errno))
                count = 0
            self.now = monotonic()
            # One event has no other answers to be sent with.
            self.deferring_flushes = count > 1
            i = 0
            while i < count:
                # One try per batch, not per event: after a failure the batch goes on
                # with the next event.
                try:
                    while i < count:
                        handle = <Handle>events[i].data.ptr
                        i += 1
                        if handle.kind == HANDLE_CONNECTION:
                            protocol.on_event(<Connection>handle, events[i - 1].events)
                        elif handle.kind == HANDLE_LISTENER:
                            ready_listeners.append(handle)
                        elif handle.kind == HANDLE_HANDOFF:
                            # one per wake-up, as from a shared listener: every free
                            # sibling was woken for it too
                            self.handoff.take(1)
                        else:
                            # Read before the round's take (below), so that news
                            # posted after this read writes the waker again.
                            read(self.waker_fd, &drained, sizeof(drained))
                except Exception:
                    if handle.kind != HANDLE_CONNECTION:
                        raise
                    # An unexpected error while serving one connection closes it alone.
                    protocol.failed(<Connection>handle)
            if PyList_GET_SIZE(self.retired):
                del self.retired[:]
            # New connections are taken after this round's requests are served: a
            # worker that has just spent time in the app should not also take the
            # connection a free sibling was woken for.
            if pool is not None:
                pool.take_completed()
            self.deferring_flushes = False
            if PyList_GET_SIZE(self.flush_queue):
                self.flush_round()
            while ready_listeners:
                self.accept(<Listener>ready_listeners.pop())
            if driver.completed:
                driver.report_completed()
            if driver.access_pending:
                driver.flush_access()
            if self.now >= self.next_tick:
                self.tick()
            if self.stopping and self.drain_for_stop():
                return

    cdef bint answers_overdue(self) noexcept:
        """Whether answers made since `now` (the round's start, or the last flush of
        held answers) have waited ANSWER_HOLD_US or more: the app took that long
        (without threads it runs inside the round)."""
        if self.pool is not None:
            return False   # the app runs on pool threads, never inside the round
        return monotonic() - self.now >= ANSWER_HOLD_US * 1e-6

    cdef void flush_held(self) except *:
        """Mid-round: sends the answers held so far; those made later are held anew."""
        self.deferring_flushes = False
        try:
            self.flush_round()
        finally:
            self.deferring_flushes = True
        self.now = monotonic()

    cdef void flush_round(self) except *:
        """Sends the answers this round made (deferring_flushes), connection by
        connection, and goes on with each as drive() does."""
        cdef list queue = self.flush_queue
        cdef Connection conn
        cdef Py_ssize_t i = 0
        # Walked in place, not swapped out: while an app call this walk makes runs
        # long, AppWatch sends what the entries still ahead hold. Nothing is added
        # meanwhile (drive() defers no flush here).
        while i < PyList_GET_SIZE(queue):
            conn = <Connection>PyList_GET_ITEM(queue, i)
            i += 1
            if not conn.flush_scheduled or conn.state == STATE_CLOSED:
                continue   # closed, or already sent by its own drive()
            conn.flush_scheduled = False
            try:
                self.protocol.drive(conn)
            except Exception:
                self.protocol.failed(conn)
        del queue[:]

    cdef bint drain_for_stop(self) except -1:
        """During a graceful stop: True once nothing is left in flight."""
        cdef Connection conn
        cdef Listener listener
        if self.listeners and not self.keep_accepting_for_stop():
            self.release_listeners()
        for conn in list(self.connections.values()):
            if not conn.awaiting_head() or conn.rlen or conn.out_pending:
                # Idle keep-alive connections stay until their keep-alive time ends
                # (the sweep closes them): a request sent meanwhile is answered, with
                # Connection: close, rather than lost to a close racing it.
                continue
            # A fresh connection whose request may still be in flight gets a moment
            # (STOP_FIRST_REQUEST_GRACE) to send it; bytes already waiting keep it.
            if (self.now - conn.accepted_at > STOP_FIRST_REQUEST_GRACE
                    and not conn.transport.input_waiting()):
                self.protocol.close(conn)
        if not self.connections and self.handoff is not None and not self.handoff.drained:
            # Free, once: what is in the channel is served here rather than left
            # there when every worker has gone. What this worker passed itself went
            # before its stop (none is passed while stopping), so it is taken now or
            # was taken by a sibling; what live siblings pass later, they take.
            self.handoff.drained = True
            self.handoff.take(self.worker_connections)
        if not self.connections:
            if not self.listeners:
                return True
            # Free, with connections still queued from before the stop: this
            # worker takes the next, as a free worker does (paused or not).
            for listener in self.listeners:
                self.accept(listener)
            if not self.connections:
                self.release_listeners()
                if not self.connections and not self.listeners:
                    return True
        if self.now >= self.stop_deadline:
            self.error_log.warning("graceful timeout: closing %d connection(s)", len(self.connections))
            return True
        return False

    cdef void release_listeners(self) except *:
        """A stopping worker that takes no more connections takes in what the kernel
        has already completed, then closes its listening sockets at once rather than
        at exit. While any process holds a listener the kernel completes new clients'
        handshakes into its queue, and the last close resets them with their requests
        already sent, which a proxy cannot retry for a POST. Once the master and every
        worker have let go, new clients are refused instead, which a proxy retries on
        another host. (Sockets a new master or the next workers hold stay open: only
        this process's descriptors close.)

        Listeners that close for good (the master's stop marks them,
        sockets.mark_closing_for_good) could be let go last by this process, resetting
        what the kernel completes meanwhile. They are made to start no new handshakes
        but to complete those begun, whose clients send their requests next: the
        release keeps them HANDSHAKE_LINGER_MS longer, called again meanwhile
        (drain_for_stop), taking each such connection in."""
        cdef Listener listener
        if self.listeners_close_at == 0:
            self.listeners_close_at = self.now
            if self.refuse_handshakes_for_good():
                self.listeners_close_at += HANDSHAKE_LINGER_MS / 1000.0
        self.accept_backlog()
        self.pause_accepting()
        if self.now < self.listeners_close_at:
            return
        for listener in self.listeners:
            listener.fd = -1
            listener.sock.close()
        self.listeners = []

    cdef bint refuse_handshakes_for_good(self) except -1:
        """Makes the listeners that close for good refuse new handshakes; whether
        there were any."""
        cdef Listener listener
        cdef bint refusing = False
        from fastwsgi.sockets import closing_for_good, refuse_new_handshakes   # once per stop
        for listener in self.listeners:
            if closing_for_good(listener.sock):   # a Unix listener is never marked
                refusing |= refuse_new_handshakes(listener.sock)
        return refusing

    cdef int stop_wait_ms(self) noexcept:
        """How long a stopping loop sleeps at most: it looks at its drain ten times a
        second, and at listeners kept for handshakes in flight more often."""
        if self.listeners and self.listeners_close_at > 0:
            return WAIT_MS_LINGER
        return WAIT_MS_STOPPING

    cdef bint keep_accepting_for_stop(self) except -1:
        """Whether a stopping worker goes on taking connections one at a time.

        Workers that share a listener without EPOLLEXCLUSIVE (accept_batch 1) split
        the connections queued when the stop began, each taking the next when it is
        free, so that a burst queued at TERM or HUP is served by all of them side by
        side rather than by whichever worker came first. Each takes at most as many
        as were queued then (a stop ends; new arrivals are not served forever). A
        single worker, or a queue that cannot be counted (a Unix socket), takes
        what is queued at once."""
        if self.accept_batch != ACCEPT_BATCH_SHARED:
            return False
        if self.stop_accepts_left < 0:
            self.stop_accepts_left = self.queued_connections()
        return self.stop_accepts_left > 0

    cdef Py_ssize_t queued_connections(self) except -2:
        """Connections waiting in the listeners' accept queues (as the backlog
        metric counts them); -1 when a queue cannot be counted."""
        cdef Listener listener
        cdef Py_ssize_t total = 0
        from fastwsgi.sockets import accept_queue_length   # once per stop
        for listener in self.listeners:
            if listener.is_unix:
                return -1
            try:
                total += accept_queue_length(listener.sock)
            except (AttributeError, OSError):
                return -1
        return total

    cdef void accept_backlog(self) except *:
        """Takes in the connections the kernel already completed, whether or not the
        listeners are watched now (a worker paused for its siblings included): their
        clients may have sent a request, which closing the listener would answer with
        a reset."""
        cdef Listener listener
        cdef Py_ssize_t before
        for listener in self.listeners:
            while len(self.connections) < self.worker_connections:
                before = len(self.connections)
                self.accept(listener)
                if len(self.connections) - before < self.accept_batch:
                    break

    cdef void tick(self) except *:
        cdef Connection conn
        self.next_tick = self.now + 1.0
        self.writer.refresh_date()
        if not self.accepting and not self.stopping and self.now >= self.accept_resume_at:
            # at capacity too: the next accept sheds a connection, or pauses again
            self.resume_accepting()
        elif self.handoff is not None and self.accepting and not self.stopping:
            self.handoff.register()   # if it paused itself at capacity (HandOff.take)
        self.shed_candidates = None
        for conn in list(self.connections.values()):
            if conn.deadline <= self.now:
                try:
                    self.protocol.on_timeout(conn)
                except Exception:
                    self.protocol.failed(conn)
        if self.on_tick is not None:
            try:
                self.on_tick()
            except Exception:
                self.error_log.exception("on_tick hook failed")

    # -- accepting ---------------------------------------------------------

    cdef void accept(self, Listener listener) except *:
        cdef sockaddr_storage address
        cdef socklen_t address_length
        cdef int fd, one = 1
        cdef int attempts_left = self.accept_batch
        cdef bint at_capacity
        while attempts_left > 0:
            attempts_left -= 1
            if len(self.connections) > self.worker_connections:
                self.pause_accepting()
                return
            # At capacity the client is taken in first and room made after, so that a
            # connection is shed only for a client that is really there; if none can
            # be shed, the one extra connection stays and accepting pauses.
            at_capacity = len(self.connections) == self.worker_connections
            address_length = sizeof(address)
            fd = accept4(listener.fd, <sockaddr*>&address, &address_length,
                         SOCK_NONBLOCK | SOCK_CLOEXEC)
            if fd < 0:
                if errno == EAGAIN or errno == EINTR or errno == ECONNABORTED or errno == EPROTO:
                    if errno == EAGAIN:
                        return
                    continue
                if errno == EMFILE or errno == ENFILE or errno == ENOBUFS or errno == ENOMEM:
                    # Out of descriptors: stop polling the listener for a while
                    # rather than waking up for it again at once.
                    self.error_log.error("accept: %s; pausing for %.1fs", os.strerror(errno),
                                         ACCEPT_BACKOFF_MS / 1000.0)
                    self.pause_accepting()
                    self.accept_resume_at = self.now + ACCEPT_BACKOFF_MS / 1000.0
                    return
                self.error_log.error("accept: %s", os.strerror(errno))
                return
            if not listener.is_unix:
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
            self.add_connection(listener, fd, &address)
            if self.stopping and self.stop_accepts_left > 0:
                self.stop_accepts_left -= 1
                if self.stop_accepts_left == 0:
                    self.pause_accepting()
                    return
            if at_capacity and not self.shed_one():
                self.pause_accepting()
                return

    cdef bint shed_one(self) except -1:
        """At capacity: closes the connection that costs most and gives least, so that
        a new client is not left waiting in the backlog — an idle keep-alive first
        (the longest idle), then the oldest incomplete request head, then the oldest
        upload already below the minimum rate (its deadline would close it anyway).
        False when every connection is busy with a request."""
        cdef Connection conn
        if not self.shed_candidates and self.now - self.shed_scanned_at >= SHED_RESCAN_MS / 1000.0:
            self.scan_shed_candidates()
        while self.shed_candidates:
            conn = self.shed_candidates.pop()
            if conn.state == STATE_CLOSED or conn.out_pending or conn.transport.input_waiting():
                continue  # gone, or its next bytes are waiting
            if conn.state == STATE_IDLE:
                what = "an idle"
            elif conn.awaiting_head():
                what = "a slow"
            elif conn.state == STATE_BODY and self.uploading_slowly(conn):
                what = "a slow upload's"
            else:
                continue  # it moved on since the scan
            self.error_log.debug("at %d connections: closing %s connection from %s",
                                 len(self.connections), what, conn.remote_addr)
            self.protocol.close(conn)
            return True
        return False

    cdef bint uploading_slowly(self, Connection conn) noexcept:
        cdef Protocol protocol = self.protocol
        cdef double elapsed = self.now - conn.exchange.body_started_at
        return (protocol.min_upload_rate > 0 and elapsed >= SLOW_UPLOAD_GRACE
                and conn.exchange.body_received < elapsed * protocol.min_upload_rate)

    cdef void scan_shed_candidates(self) except *:
        cdef Connection conn
        cdef list found = []
        self.shed_scanned_at = self.now
        for conn in self.connections.values():
            if ((conn.state == STATE_IDLE or conn.awaiting_head())
                    and not conn.out_pending and conn.accepted_at < self.now):
                # the deadline orders them: the earliest began (or went idle) first
                found.append((0 if conn.state == STATE_IDLE else 1, conn.deadline, conn.fd, conn))
            elif conn.state == STATE_BODY and not conn.out_pending and self.uploading_slowly(conn):
                found.append((2, conn.exchange.body_started_at, conn.fd, conn))
        found.sort(reverse=True)   # pop() takes the best victim from the end
        self.shed_candidates = [entry[3] for entry in found]

    cdef Connection add_connection(self, Listener listener, int fd, sockaddr_storage* address):
        """Registers a connection just accepted (or taken from a sibling); None when
        epoll would not watch it (it is closed)."""
        cdef Connection conn = new_connection(self, listener, fd, address)
        cdef epoll_event event
        event.events = conn.interest
        event.data.ptr = <void*>conn
        if epoll_ctl(self.epfd, EPOLL_CTL_ADD, fd, &event) < 0:
            conn.transport.close()
            return None
        self.connections[fd] = conn
        if self.metrics != NULL:
            self.metrics[M_OPEN_CONNECTIONS] += 1
        return conn

    # -- closing -----------------------------------------------------------

    cdef void unwatch(self, Connection conn) noexcept:
        """Removes the connection's registration, before its descriptor is closed."""
        if self.epfd >= 0 and conn.transport.fd >= 0:
            epoll_ctl(self.epfd, EPOLL_CTL_DEL, conn.transport.fd, NULL)

    cdef void forget(self, Connection conn) except *:
        """A closed connection leaves the server; accepting resumes if it was full."""
        self.connections.pop(conn.fd, None)
        # Kept alive until the round ends: an event of this round already read from
        # epoll may still point at it (it then finds it CLOSED).
        self.retired.append(conn)
        if self.driver.early_hints.exchange is conn.exchange:
            self.driver.early_hints.exchange = None
        if not self.accepting and not self.stopping and self.now >= self.accept_resume_at:
            self.resume_accepting()

    cdef void close_all(self) except *:
        cdef Connection conn
        for conn in list(self.connections.values()):
            self.protocol.close(conn)
        if self.pool is not None:
            self.pool.stop()
        if self.app_watch is not None:
            self.app_watch.stop()
        self.pause_accepting()
        if self.waker_fd >= 0:
            close(self.waker_fd)
            self.waker_fd = -1
        if self.epfd >= 0:
            close(self.epfd)
            self.epfd = -1
