# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The serving loop: one epoll instance, its listeners and connections.

Per keep-alive request the hot path is one recv(), one parse over the read
buffer, one environ copy, one app call and one sendmsg() that carries the
status line, headers and body chunks together.  Pipelined requests found in
one read are answered with a single sendmsg().  Output waits on EPOLLOUT
with reading paused, so neither a slow reader nor a pipelining client can
make the worker buffer without bound.
"""
import errno as errno_module
import logging
import os
import socket
import stat
import sys

from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython.exc cimport PyErr_CheckSignals, PyErr_Occurred
from cpython.list cimport PyList_GET_SIZE, PyList_GET_ITEM
from cpython.tuple cimport PyTuple_GET_SIZE, PyTuple_GET_ITEM
from cpython.object cimport PyObject
from cpython.iterator cimport PyIter_Next
from libc.stdint cimport int64_t, uint32_t
from libc.stdlib cimport malloc, free, realloc
from libc.string cimport memcpy, memmove

from fastwsgi._parser cimport (HeadParser, BodyDecoder, BODY_NONE, BODY_LENGTH,
                               BODY_CHUNKED, PARSE_ERROR, PARSE_INCOMPLETE)
from fastwsgi._environ cimport EnvironBuilder
from fastwsgi.includes.system cimport *


# What an epoll registration points at.
cdef enum HandleKind:
    HANDLE_LISTENER
    HANDLE_CONNECTION
    HANDLE_WAKER

# Where a connection is in its request/response cycle; one exchange (request and
# its response) is in flight per connection at a time.
cdef enum ConnectionState:
    STATE_HEAD        # waiting for (more of) a request head; `idle` while none has begun
    STATE_BODY        # receiving a request body
    STATE_RESPONSE    # the app was called; its response is being sent
    STATE_CLOSING     # response sent, write side shut; draining input before close
    STATE_CLOSED

# Response header names the server acts on.
cdef enum HeaderKind:
    HEADER_OTHER
    HEADER_CONTENT_LENGTH
    HEADER_DATE
    HEADER_SERVER
    HEADER_HOP_BY_HOP     # refused (500): would change how the body is framed
    HEADER_CONNECTION
    HEADER_DROPPED        # hop-by-hop, left out of the response

# Results of a flush.
cdef enum FlushOutcome:
    FLUSH_DONE
    FLUSH_BLOCKED
    FLUSH_FAILED

# _sendfile_some()'s answers besides a byte count
cdef enum:
    SENDFILE_BLOCKED = -1   # the socket is full (EAGAIN)
    SENDFILE_FAILED = -2    # any other error: the connection is lost

# Events one epoll_wait() returns: more than a busy worker's ready connections
# in one round, few enough for the array to stay on the stack (3 KiB).
DEF MAX_EVENTS = 256
# Buffers one sendmsg() takes: a pipelined batch of responses (3-4 items each)
# leaves in one call; far below the kernel's IOV_MAX (1024).
DEF IOV_BATCH = 64
# A request with a body of a few tens of KiB arrives in one recv(); untouched
# pages of an idle connection's buffer cost no memory.
DEF READ_BUFFER_INITIAL = 65536
# Connections one wake-up accepts: many when this worker is the listener's only
# one (fewer epoll_wait rounds under a connection storm); one when workers share
# it, since the app runs on the loop: a worker that took a burst would serve it
# one by one while its siblings sat idle (the listener is level-triggered, so it
# is reported again on the next round, between the requests this worker serves).
DEF ACCEPT_BATCH = 64
DEF ACCEPT_BATCH_SHARED = 1
# TCP_DEFER_ACCEPT with a shared listener: the kernel's wait for a silent client's
# first bytes before handing it over anyway.
DEF DEFER_ACCEPT_SECONDS = 1
# Bytes queued for one connection before the app's iterable is asked for more.
DEF HIGH_WATERMARK = 262144
# Bytes one sendfile() is asked for: large enough to fill any socket buffer,
# small enough that one file does not hold the loop while the socket keeps taking.
DEF SENDFILE_CHUNK = 1048576
# Seconds a closing connection is drained so the peer reads our last response.
DEF LINGER_SECONDS = 2.0
# Seconds a connection accepted before a graceful stop has to send its first request.
DEF STOP_FIRST_REQUEST_GRACE = 1.0
# Seconds accepting pauses after EMFILE/ENFILE, so the loop does not spin.
DEF ACCEPT_BACKOFF = 0.5
# Seconds between scans for connections to shed at capacity: a scan sorts every
# connection, so an attack cannot make the loop do it for each accept.
DEF SHED_RESCAN = 0.1
# At capacity, an upload below min_upload_rate may be shed once it has had this
# long to show its rate (a connection's first second says little about it).
DEF SLOW_UPLOAD_GRACE = 1.0

cdef class Connection
cdef class Server

include "_input.pxi"
include "_response.pxi"
include "_proxy.pxi"
include "_metrics.pxi"
include "_framing.pxi"

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

logger = logging.getLogger("fastwsgi.error")


cdef inline double monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef class AllowList:
    """Peer addresses trusted for a setting (gunicorn's *_allow_ips); "*" trusts all."""

    cdef bint everyone
    cdef frozenset addresses

    def __cinit__(self, ips):
        addresses = [ip.strip() for ip in ips]
        self.everyone = "*" in addresses
        self.addresses = frozenset(addresses)

    cdef inline bint allows(self, str address):
        return self.everyone or address in self.addresses


cdef class Handle:
    cdef int kind
    cdef int fd


cdef class Listener(Handle):
    cdef object sock
    cdef EnvironBuilder environ_builder
    cdef bint is_unix
    cdef bint registered


cdef class Connection(Handle):
    cdef Server server
    cdef Listener listener
    cdef int state
    cdef str remote_addr
    cdef str remote_port
    cdef bint trusted_proxy
    cdef bint proxy_header_expected
    cdef bint peer_closed
    cdef uint32_t interest
    cdef double deadline
    cdef double accepted_at
    cdef bint idle

    # input
    cdef char* rbuf
    cdef Py_ssize_t rcap
    cdef Py_ssize_t rlen
    cdef Py_ssize_t rstart
    cdef HeadParser head
    cdef BodyDecoder body
    cdef BodyBuffer body_buffer
    # A Content-Length body small enough is received whole into rbuf and becomes
    # one bytes object: no buffer object, no second copy.
    cdef bint body_in_place
    cdef object body_bytes
    # bytes of the worker's body memory budget this request holds (Server.body_memory)
    cdef Py_ssize_t body_memory
    # for the minimum upload rate: when the body began, and the bytes read since
    cdef double body_started_at
    cdef int64_t body_received

    # the request being answered
    cdef dict environ
    cdef bint keep_alive
    cdef bint is_head
    cdef int version_minor
    cdef double request_start
    cdef int method_index
    cdef bint in_flight      # counted in the metrics' in-flight gauge

    # the response
    cdef StartResponse responder
    cdef object result
    cdef object iterator
    cdef Py_ssize_t list_index
    cdef bint headers_queued
    cdef bint response_done
    # The body is complete (or abandoned): a write() from here on, such as one made
    # from the iterable's close(), must not reach the wire after the last chunk.
    cdef bint writes_closed
    cdef bint chunked_out
    cdef bint body_allowed
    cdef int64_t content_length_out
    cdef int64_t body_sent
    cdef object status_line
    cdef object response_headers

    # output
    cdef list out
    cdef Py_ssize_t out_head
    cdef Py_ssize_t out_offset
    cdef Py_ssize_t out_pending
    cdef object file_obj
    cdef int file_fd
    cdef long file_offset
    cdef int64_t file_remaining
    # PEP 3333 write() output past HIGH_WATERMARK goes to a temporary file that is
    # sent before `out` (as nginx buffers a slow client's response on disk): the
    # app runs on the loop, so write() must not wait for a client that reads
    # slowly or not at all. spool_fd is -1 while none is open; its bytes count in
    # out_pending.
    cdef object write_spool
    cdef int spool_fd
    cdef long spool_sent
    cdef long spool_end

    def __cinit__(self):
        self.rbuf = NULL

    def __dealloc__(self):
        free(self.rbuf)

    # -- input -----------------------------------------------------------

    cdef int ensure_room(self, Py_ssize_t wanted) except -1:
        """Makes room for ``wanted`` more bytes after the unread ones."""
        cdef char* grown
        cdef Py_ssize_t capacity = self.rcap
        if self.rstart:
            # Unread bytes move to the front once per read, not once per request.
            memmove(self.rbuf, self.rbuf + self.rstart, self.rlen)
            self.rstart = 0
        if self.rcap - self.rlen >= wanted:
            return 0
        while capacity - self.rlen < wanted:
            capacity *= 2
        grown = <char*>realloc(self.rbuf, capacity)
        if grown == NULL:
            raise MemoryError()
        self.rbuf = grown
        self.rcap = capacity
        return 0

    cdef void shrink_buffer(self, Py_ssize_t capacity) noexcept:
        cdef char* smaller = <char*>realloc(self.rbuf, capacity)
        if smaller != NULL:
            self.rbuf = smaller
            self.rcap = capacity
            self.rstart = 0

    cdef inline char* data(self) noexcept:
        """The first unread byte; parser spans are offsets from here."""
        return self.rbuf + self.rstart

    cdef inline void consume(self, Py_ssize_t n) noexcept:
        if n >= self.rlen:
            self.rlen = 0
            self.rstart = 0
        elif n > 0:
            self.rstart += n
            self.rlen -= n

    # -- output ----------------------------------------------------------

    cdef inline void queue(self, bytes data) noexcept:
        self.out.append(data)
        self.out_pending += PyBytes_GET_SIZE(data)

    cdef int flush(self) except -1:
        """Writes what is queued; returns FLUSH_DONE, FLUSH_BLOCKED or FLUSH_FAILED."""
        cdef iovec iov[IOV_BATCH]
        cdef msghdr msg
        cdef Py_ssize_t count, i, end, sent, size
        cdef object item
        cdef int outcome
        if self.spool_fd >= 0:
            outcome = self.flush_spool()
            if outcome != FLUSH_DONE:
                return outcome
        while self.out_head < PyList_GET_SIZE(self.out):
            end = PyList_GET_SIZE(self.out)
            count = 0
            i = self.out_head
            while i < end and count < IOV_BATCH:
                item = <object>PyList_GET_ITEM(self.out, i)
                iov[count].iov_base = PyBytes_AS_STRING(item)
                iov[count].iov_len = PyBytes_GET_SIZE(item)
                if count == 0:
                    iov[0].iov_base = <char*>iov[0].iov_base + self.out_offset
                    iov[0].iov_len -= self.out_offset
                count += 1
                i += 1
            memset_msghdr(&msg)
            msg.msg_iov = iov
            msg.msg_iovlen = count
            sent = sendmsg(self.fd, &msg, MSG_NOSIGNAL)
            if sent < 0:
                if errno == EINTR:
                    continue
                if errno == EAGAIN:
                    return FLUSH_BLOCKED
                return FLUSH_FAILED
            self.out_pending -= sent
            if self.server.metrics != NULL:
                self.server.metrics[M_BYTES_OUT] += sent
            # drop what went out; keep the unsent tail of a partly sent item
            i = self.out_head
            while sent > 0:
                size = PyBytes_GET_SIZE(<object>PyList_GET_ITEM(self.out, i)) - self.out_offset
                if sent >= size:
                    sent -= size
                    self.out_offset = 0
                    i += 1
                else:
                    self.out_offset += sent
                    sent = 0
            self.out_head = i
        del self.out[:]
        self.out_head = 0
        self.out_offset = 0
        if self.file_remaining > 0:
            return self.flush_file()
        return FLUSH_DONE

    cdef int flush_file(self) except -1:
        cdef ssize_t sent
        while self.file_remaining > 0:
            sent = _sendfile_some(self.fd, self.file_fd, &self.file_offset, self.file_remaining)
            if sent < 0:
                return FLUSH_BLOCKED if sent == SENDFILE_BLOCKED else FLUSH_FAILED
            if sent == 0:
                # The file is shorter than it was: the promised length cannot be met.
                self.keep_alive = False
                self.file_remaining = 0
                break
            self.file_remaining -= sent
            self.body_sent += sent
            if self.server.metrics != NULL:
                self.server.metrics[M_BYTES_OUT] += sent
        return FLUSH_DONE

    cdef int write_from_app(self, object data) except -1:
        """PEP 3333 write(): queued in order and sent as far as the socket takes it
        now; past HIGH_WATERMARK the rest waits in the write spool, never the loop."""
        cdef int outcome
        if self.writes_closed or self.state != STATE_RESPONSE:
            raise RuntimeError("write() called after the response was complete")
        self.add_body(data)
        if self.spool_fd < 0 and self.out_pending <= HIGH_WATERMARK:
            return 0
        if self.spool_fd >= 0:
            # Behind spooled bytes, new ones join the spool to keep their order.
            self.move_to_spool()
        outcome = self.flush()
        if outcome == FLUSH_FAILED:
            raise ConnectionError("client went away during write()")
        if self.out_pending > HIGH_WATERMARK and self.spool_fd < 0:
            self.move_to_spool()
        return 0

    cdef int move_to_spool(self) except -1:
        """Moves what `out` holds to the end of the write spool, opening it if needed."""
        cdef Py_ssize_t written
        if self.out_head >= PyList_GET_SIZE(self.out):
            return 0
        if self.spool_fd < 0:
            self.write_spool = tempfile.TemporaryFile(dir=self.server.spool_dir)
            self.spool_fd = self.write_spool.fileno()
            self.spool_sent = 0
            self.spool_end = 0
        pending = memoryview(b"".join(self.out[self.out_head:]))[self.out_offset:]
        while len(pending):
            written = os.write(self.spool_fd, pending)
            self.spool_end += written
            pending = pending[written:]
        del self.out[:]
        self.out_head = 0
        self.out_offset = 0
        return 0

    cdef int flush_spool(self) except -1:
        cdef ssize_t sent
        while self.spool_sent < self.spool_end:
            sent = _sendfile_some(self.fd, self.spool_fd, &self.spool_sent,
                                  self.spool_end - self.spool_sent)
            if sent < 0:
                return FLUSH_BLOCKED if sent == SENDFILE_BLOCKED else FLUSH_FAILED
            if sent == 0:
                return FLUSH_FAILED   # the spool is shorter than what was written to it
            self.out_pending -= sent
            if self.server.metrics != NULL:
                self.server.metrics[M_BYTES_OUT] += sent
        if self.writes_closed:
            # Sent, and no write() of this response can follow: the file goes.
            self.discard_spool()
        return FLUSH_DONE

    cdef void discard_spool(self) noexcept:
        if self.spool_fd < 0:
            return
        self.spool_fd = -1
        spool, self.write_spool = self.write_spool, None
        try:
            spool.close()
        except OSError:
            pass   # an unlinked temporary file: nothing is lost with it

    # -- response body -----------------------------------------------------

    cdef int add_body(self, object chunk) except -1:
        cdef Py_ssize_t n
        if not PyBytes_Check(chunk):
            if isinstance(chunk, (bytearray, memoryview)):
                chunk = bytes(chunk)
            else:
                raise TypeError(f"response body items must be bytes, not {type(chunk).__name__}")
        n = PyBytes_GET_SIZE(chunk)
        if n == 0:
            return 0
        if not self.headers_queued:
            self.server.queue_headers(self, -1)
        if not self.body_allowed:
            return 0
        if self.content_length_out >= 0:
            if self.body_sent + n > self.content_length_out:
                # Never send more than the app's Content-Length promised.
                n = <Py_ssize_t>(self.content_length_out - self.body_sent)
                if n <= 0:
                    return 0
                chunk = chunk[:n]
        elif self.chunked_out:
            self.queue(("%x\r\n" % n).encode("ascii"))
            self.queue(chunk)
            self.queue(CRLF)
            self.body_sent += n
            return 0
        self.queue(chunk)
        self.body_sent += n
        return 0

    cdef void close_result(self) except *:
        cdef object result = self.result
        self.writes_closed = True
        self.result = None
        self.iterator = None
        if result is not None and type(result) is not list and type(result) is not tuple:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    self.server.error_log.exception("Error closing response iterable")
        if self.file_obj is not None:
            self.file_obj = None
            self.file_remaining = 0


cdef inline ssize_t _sendfile_some(int sock, int fd, long* offset, int64_t remaining) noexcept:
    """One sendfile() of at most SENDFILE_CHUNK bytes, retried on EINTR: the bytes
    sent (0 at the file's end), SENDFILE_BLOCKED or SENDFILE_FAILED."""
    cdef ssize_t sent
    cdef size_t chunk = SENDFILE_CHUNK if remaining > SENDFILE_CHUNK else <size_t>remaining
    while True:
        sent = sendfile(sock, fd, offset, chunk)
        if sent >= 0:
            return sent
        if errno != EINTR:
            return SENDFILE_BLOCKED if errno == EAGAIN else SENDFILE_FAILED


cdef inline void memset_msghdr(msghdr* msg) noexcept:
    msg.msg_name = NULL
    msg.msg_namelen = 0
    msg.msg_control = NULL
    msg.msg_controllen = 0
    msg.msg_flags = 0


cdef class Server:
    """Serves a WSGI app on already-listening sockets until stopped.

    ``Server(app, listeners, options, hooks).run()`` blocks; ``stop()`` may be
    called from a signal handler or another thread.
    """

    cdef object app
    cdef list listeners
    cdef object options
    cdef object hooks
    cdef object error_log
    cdef int epfd
    cdef int waker_fd
    cdef Handle waker
    cdef dict connections
    cdef HeaderBlock header_block
    cdef EarlyHints early_hints

    cdef double now
    cdef double next_tick
    cdef double keepalive
    cdef double header_timeout
    cdef double io_timeout
    cdef double min_upload_rate
    cdef double graceful_timeout
    cdef Py_ssize_t worker_connections
    cdef int64_t max_requests
    cdef readonly int64_t requests_served
    cdef bint send_server_header
    cdef bytes server_header
    # the last response's status line and app header lines, encoded (queue_headers)
    cdef object cached_status
    cdef list cached_headers
    cdef bytes cached_lines
    cdef int cached_code
    cdef int64_t cached_declared
    cdef bint cached_has_date
    cdef bint cached_has_server
    cdef bint cached_close
    cdef bytes date_header
    cdef long date_second
    cdef bint use_sendfile
    cdef Py_ssize_t spool_threshold
    # Request bodies held in memory, summed over connections, and the bound on that
    # sum: past it, bodies are spooled from their first byte (unfinished bodies of
    # many clients must not add up to the worker's memory).
    cdef Py_ssize_t body_memory
    cdef Py_ssize_t body_memory_limit
    cdef object spool_dir
    cdef dict head_limits
    cdef AllowList forwarded_allow
    cdef bint proxy_protocol
    cdef AllowList proxy_allow

    cdef bint running
    cdef bint stopping
    cdef bint stop_now
    cdef double stop_deadline
    cdef bint accepting
    cdef int accept_batch
    cdef uint32_t listener_events
    # At capacity, the connections that may be closed for a new one, best victim last;
    # rescanned at most every SHED_RESCAN seconds.
    cdef list shed_candidates
    cdef double shed_scanned_at
    cdef double accept_resume_at
    cdef object pre_request
    cdef object post_request
    cdef object access_log
    cdef object flush_access_log
    cdef bint access_pending
    # The connection whose request the app is being called for, for abort_app_call.
    cdef Connection in_app
    cdef object on_tick
    cdef object request_metrics
    # (status line, seconds) of the requests completed in this loop iteration, for
    # request_metrics; None when nobody asked.
    cdef list completed
    # The shared metrics slot's counters, or NULL: metrics are off.
    cdef MetricsSlot metrics_slot
    cdef int64_t* metrics

    def __init__(self, app, listeners, options=None, hooks=None):
        from fastwsgi.options import ServerOptions, ServerHooks
        self.app = app
        self.options = options if options is not None else ServerOptions()
        self.hooks = hooks if hooks is not None else ServerHooks()
        self.error_log = self.hooks.error_log or logger
        self.connections = {}
        self.header_block = HeaderBlock()
        self.early_hints = EarlyHints()
        self.epfd = -1
        self.waker_fd = -1
        opts = self.options
        self.keepalive = opts.keepalive
        self.header_timeout = opts.header_timeout
        self.io_timeout = opts.io_timeout
        self.min_upload_rate = opts.min_upload_rate
        self.graceful_timeout = opts.graceful_timeout
        self.worker_connections = opts.worker_connections if opts.worker_connections > 0 else 1 << 30
        self.max_requests = opts.max_requests
        self.send_server_header = opts.send_server_header
        self.server_header = f"Server: {opts.server_software}\r\n".encode("latin-1")
        self.use_sendfile = opts.sendfile
        self.spool_threshold = opts.spool_threshold
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
        self.body_memory_limit = opts.body_memory_limit
        self.spool_dir = opts.spool_dir
        self.head_limits = dict(
            limit_request_line=opts.limit_request_line,
            limit_request_fields=opts.limit_request_fields,
            limit_request_field_size=opts.limit_request_field_size,
            limit_request_body=opts.limit_request_body,
            header_map=opts.header_map,
            strip_header_spaces=opts.strip_header_spaces,
            permit_obsolete_folding=opts.permit_obsolete_folding,
        )
        self.forwarded_allow = AllowList(opts.forwarded_allow_ips)
        self.proxy_protocol = bool(opts.proxy_protocol)
        self.proxy_allow = AllowList(opts.proxy_allow_ips)
        self.pre_request = self.hooks.pre_request
        self.post_request = self.hooks.post_request
        self.access_log = self.hooks.access_log
        self.flush_access_log = self.hooks.flush_access_log
        self.on_tick = self.hooks.on_tick
        self.request_metrics = self.hooks.request_metrics
        self.completed = [] if self.request_metrics is not None else None
        if getattr(opts, "metrics", None) is not None:
            self.metrics_slot = MetricsSlot(opts.metrics)
            self.metrics = self.metrics_slot.counters
        self.date_second = -1
        self.listeners = [self._listener(sock, opts) for sock in listeners]

    cdef Listener _listener(self, object sock, object opts):
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
        listener.environ_builder = EnvironBuilder(
            root_path=opts.root_path,
            server_software=opts.server_software,
            server_name=server_name,
            server_port=server_port,
            multiprocess=bool(opts.multiprocess),
            file_wrapper=FileWrapper,
            base_environ=dict(opts.base_environ, **{"wsgi.early_hints": self.early_hints}),
            secure_scheme_headers=opts.secure_scheme_headers,
        )
        return listener

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

    def abort_app_call(self):
        """For a worker about to be killed while the app is stuck in a request (the
        master's timeout): answers the request as gunicorn does — a 500 if nothing of
        the response was sent yet — and writes its access line. Returns the request's
        environ, or None when the app is not serving one."""
        cdef Connection conn = self.in_app
        if conn is None:
            return None
        self.in_app = None
        conn.keep_alive = False
        status, headers, sent = conn.status_line, conn.response_headers, conn.body_sent
        if not conn.headers_queued:
            conn.queue(TIMEOUT_500)
            status, headers, sent = "500 Internal Server Error", [], 0
        try:
            conn.flush()
        except OSError:
            pass
        if self.access_log is not None:
            self._run_hook(self.access_log, (conn.environ, status, headers, sent,
                                             monotonic() - conn.request_start))
            if self.flush_access_log is not None:
                self._flush_access_log()
        return conn.environ

    @property
    def connection_count(self):
        return len(self.connections)

    def run(self):
        """Serves until stop(); closes every connection it holds before returning."""
        if self.running:
            raise RuntimeError("this server is already running")
        self.running = True
        try:
            self._open()
            self._serve()
        finally:
            self._close_all()
            if self.completed:
                self._report_completed()
            self.running = False
            if self.access_pending:
                self._flush_access_log()

    cdef void _open(self) except *:
        cdef epoll_event event
        cdef Listener listener
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
        self._refresh_date()
        self._resume_accepting()

    cdef void _resume_accepting(self) except *:
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

    cdef void _pause_accepting(self) except *:
        cdef Listener listener
        self.accepting = False
        for listener in self.listeners:
            if listener.registered:
                epoll_ctl(self.epfd, EPOLL_CTL_DEL, listener.fd, NULL)
                listener.registered = False

    cdef void _serve(self) except *:
        cdef epoll_event events[MAX_EVENTS]
        cdef int count, i, timeout_ms
        cdef Handle handle
        cdef unsigned long long drained
        cdef list ready_listeners = []
        while not self.stop_now:
            # Python runs signal handlers only when asked: a signal that came
            # while the loop was busy in C is handled here, before sleeping.
            PyErr_CheckSignals()
            if self.stop_now:
                break
            timeout_ms = 100 if self.stopping else 1000
            with nogil:
                count = epoll_wait(self.epfd, events, MAX_EVENTS, timeout_ms)
            if count < 0:
                if errno != EINTR:
                    raise OSError(errno, os.strerror(errno))
                count = 0
            self.now = monotonic()
            i = 0
            while i < count:
                # One try per batch, not per event: after a failure the batch goes on
                # with the next event.
                try:
                    while i < count:
                        handle = <Handle>events[i].data.ptr
                        i += 1
                        if handle.kind == HANDLE_CONNECTION:
                            self._on_connection_event(<Connection>handle, events[i - 1].events)
                        elif handle.kind == HANDLE_LISTENER:
                            ready_listeners.append(handle)
                        else:
                            read(self.waker_fd, &drained, sizeof(drained))
                except Exception:
                    if handle.kind != HANDLE_CONNECTION:
                        raise
                    # An unexpected error while serving one connection closes it alone.
                    self._connection_failed(<Connection>handle)
            # New connections are taken after this round's requests are served: a
            # worker that has just spent time in the app should not also take the
            # connection a free sibling was woken for.
            while ready_listeners:
                self._accept(<Listener>ready_listeners.pop())
            if self.completed:
                self._report_completed()
            if self.access_pending:
                self._flush_access_log()
            if self.now >= self.next_tick:
                self._tick()
            if self.stopping and self._drain_for_stop():
                return

    cdef bint _drain_for_stop(self) except -1:
        """During a graceful stop: True once nothing is left in flight."""
        cdef Connection conn
        if self.accepting:
            self._accept_backlog()
            self._pause_accepting()
        for conn in list(self.connections.values()):
            if conn.state != STATE_HEAD or conn.rlen or conn.out_pending or conn.idle:
                # Idle keep-alive connections stay until their keep-alive time ends
                # (the sweep closes them): a request sent meanwhile is answered, with
                # Connection: close, rather than lost to a close racing it.
                continue
            # A fresh connection whose request may still be in flight gets a moment
            # (STOP_FIRST_REQUEST_GRACE) to send it; bytes already waiting keep it.
            if self.now - conn.accepted_at > STOP_FIRST_REQUEST_GRACE and not _input_waiting(conn.fd):
                self._close(conn)
        if not self.connections:
            return True
        if self.now >= self.stop_deadline:
            self.error_log.warning("graceful timeout: closing %d connection(s)", len(self.connections))
            return True
        return False

    cdef void _accept_backlog(self) except *:
        """Takes in the connections the kernel already completed: their clients may
        have sent a request, which closing the listener would answer with a reset."""
        cdef Listener listener
        cdef Py_ssize_t before
        for listener in self.listeners:
            if not listener.registered:
                continue
            while len(self.connections) < self.worker_connections:
                before = len(self.connections)
                self._accept(listener)
                if len(self.connections) - before < self.accept_batch:
                    break

    cdef void _tick(self) except *:
        cdef Connection conn
        self.next_tick = self.now + 1.0
        self._refresh_date()
        if not self.accepting and not self.stopping and self.now >= self.accept_resume_at:
            # at capacity too: the next accept sheds a connection, or pauses again
            self._resume_accepting()
        self.shed_candidates = None
        for conn in list(self.connections.values()):
            if conn.deadline <= self.now:
                try:
                    self._on_timeout(conn)
                except Exception:
                    self._connection_failed(conn)
        if self.on_tick is not None:
            try:
                self.on_tick()
            except Exception:
                self.error_log.exception("on_tick hook failed")

    cdef void _report_completed(self) except *:
        cdef list completed = self.completed
        self.completed = []
        try:
            self.request_metrics(completed)
        except Exception:
            self.error_log.exception("request_metrics hook failed")

    cdef void _refresh_date(self) except *:
        cdef time_t seconds = time(NULL)
        cdef tm parts
        cdef char text[64]
        cdef size_t n
        if seconds == self.date_second:
            return
        self.date_second = seconds
        gmtime_r(&seconds, &parts)
        # RFC 9110 §5.6.7: IMF-fixdate
        n = strftime(text, sizeof(text), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &parts)
        self.date_header = PyBytes_FromStringAndSize(text, n)

    # -- accepting ---------------------------------------------------------

    cdef void _accept(self, Listener listener) except *:
        cdef sockaddr_storage address
        cdef socklen_t address_length
        cdef int fd, attempts, one = 1
        cdef bint at_capacity
        for attempts in range(self.accept_batch):
            if len(self.connections) > self.worker_connections:
                self._pause_accepting()
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
                    self.error_log.error("accept: %s; pausing for %.1fs", os.strerror(errno), ACCEPT_BACKOFF)
                    self._pause_accepting()
                    self.accept_resume_at = self.now + ACCEPT_BACKOFF
                    return
                self.error_log.error("accept: %s", os.strerror(errno))
                return
            if not listener.is_unix:
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one))
            self._add_connection(listener, fd, &address)
            if at_capacity and not self._shed_one():
                self._pause_accepting()
                return

    cdef bint _shed_one(self) except -1:
        """At capacity: closes the connection that costs most and gives least, so that
        a new client is not left waiting in the backlog — an idle keep-alive first
        (the longest idle), then the oldest incomplete request head, then the oldest
        upload already below the minimum rate (its deadline would close it anyway).
        False when every connection is busy with a request."""
        cdef Connection conn
        if not self.shed_candidates and self.now - self.shed_scanned_at >= SHED_RESCAN:
            self._scan_shed_candidates()
        while self.shed_candidates:
            conn = self.shed_candidates.pop()
            if conn.out_pending or _input_waiting(conn.fd):
                continue  # its next bytes are waiting
            if conn.state == STATE_HEAD:
                what = "an idle" if conn.idle else "a slow"
            elif conn.state == STATE_BODY and self._uploading_slowly(conn):
                what = "a slow upload's"
            else:
                continue  # it moved on since the scan
            self.error_log.debug("at %d connections: closing %s connection from %s",
                                 len(self.connections), what, conn.remote_addr)
            self._close(conn)
            return True
        return False

    cdef inline bint _uploading_slowly(self, Connection conn) noexcept:
        cdef double elapsed = self.now - conn.body_started_at
        return (self.min_upload_rate > 0 and elapsed >= SLOW_UPLOAD_GRACE
                and conn.body_received < elapsed * self.min_upload_rate)

    cdef void _scan_shed_candidates(self) except *:
        cdef Connection conn
        cdef list found = []
        self.shed_scanned_at = self.now
        for conn in self.connections.values():
            if conn.state == STATE_HEAD and not conn.out_pending and conn.accepted_at < self.now:
                # the deadline orders them: the earliest began (or went idle) first
                found.append((0 if conn.idle else 1, conn.deadline, conn.fd, conn))
            elif conn.state == STATE_BODY and not conn.out_pending and self._uploading_slowly(conn):
                found.append((2, conn.body_started_at, conn.fd, conn))
        found.sort(reverse=True)   # pop() takes the best victim from the end
        self.shed_candidates = [entry[3] for entry in found]

    cdef void _add_connection(self, Listener listener, int fd, sockaddr_storage* address) except *:
        cdef Connection conn = Connection.__new__(Connection)
        cdef epoll_event event
        cdef unsigned short port
        cdef char text[64]
        cdef const void* ip = fastwsgi_sockaddr_ip(address, &port)
        conn.kind = HANDLE_CONNECTION
        conn.fd = fd
        conn.server = self
        conn.listener = listener
        if ip != NULL and inet_ntop(address.ss_family, ip, text, sizeof(text)) != NULL:
            conn.remote_addr = text.decode("ascii")
            conn.remote_port = str(port)
            conn.trusted_proxy = self.forwarded_allow.allows(conn.remote_addr)
            conn.proxy_header_expected = self.proxy_protocol and self.proxy_allow.allows(conn.remote_addr)
        else:
            conn.remote_addr = ""
            conn.remote_port = ""
            conn.trusted_proxy = True
            conn.proxy_header_expected = self.proxy_protocol
        conn.rcap = READ_BUFFER_INITIAL
        conn.rbuf = <char*>malloc(conn.rcap)
        if conn.rbuf == NULL:
            close(fd)
            raise MemoryError()
        conn.head = HeadParser(**self.head_limits)
        conn.body = BodyDecoder(self.head_limits["limit_request_body"],
                                self.head_limits["limit_request_fields"],
                                self.head_limits["limit_request_field_size"])
        conn.responder = StartResponse(conn)
        conn.out = []
        conn.file_fd = -1
        conn.spool_fd = -1
        conn.state = STATE_HEAD
        conn.deadline = self.now + self.header_timeout
        conn.accepted_at = self.now
        conn.interest = EPOLLIN | EPOLLRDHUP
        event.events = conn.interest
        event.data.ptr = <void*>conn
        if epoll_ctl(self.epfd, EPOLL_CTL_ADD, fd, &event) < 0:
            close(fd)
            return
        self.connections[fd] = conn
        if self.metrics != NULL:
            self.metrics[M_OPEN_CONNECTIONS] += 1

    # -- connection events -------------------------------------------------

    cdef void _on_connection_event(self, Connection conn, uint32_t events) except *:
        if conn.state == STATE_CLOSED:
            return
        if events & EPOLLOUT:
            self._drive(conn)
            if conn.state == STATE_CLOSED:
                return
        if events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR):
            if conn.interest & EPOLLIN or events & (EPOLLHUP | EPOLLERR):
                self._on_readable(conn)

    cdef void _on_readable(self, Connection conn) except *:
        cdef ssize_t n
        cdef Py_ssize_t room
        if conn.state == STATE_CLOSING:
            self._drain_closing(conn)
            return
        if conn.rstart or conn.rlen == conn.rcap:
            # compacts the unread bytes to the front, and grows a full buffer
            conn.ensure_room(1)
        room = conn.rcap - conn.rstart - conn.rlen
        n = recv(conn.fd, conn.rbuf + conn.rstart + conn.rlen, room, 0)
        if n < 0:
            if errno == EAGAIN or errno == EINTR:
                return
            self._close(conn)
            return
        if n == 0:
            conn.peer_closed = True
            if conn.rlen == 0 or conn.state != STATE_HEAD:
                self._close(conn)
                return
        else:
            if conn.idle:
                # A new request begins: it gets header_timeout, from now.
                conn.idle = False
                conn.deadline = self.now + self.header_timeout
            elif conn.state == STATE_BODY:
                conn.body_received += n
                conn.deadline = self._body_deadline(conn)
            conn.rlen += n
            if self.metrics != NULL:
                self.metrics[M_BYTES_IN] += n
        self._drive(conn)

    cdef void _drain_closing(self, Connection conn) except *:
        cdef char sink[4096]
        cdef ssize_t n
        while True:
            n = recv(conn.fd, sink, sizeof(sink), 0)
            if n > 0:
                continue
            if n < 0 and errno == EINTR:
                continue
            if n < 0 and errno == EAGAIN:
                return
            self._close(conn)
            return

    cdef void _drive(self, Connection conn) except *:
        """Answers what the read buffer holds, sends what is queued, and picks
        what to wait for next.  Iterative, so no client can deepen the stack."""
        cdef int outcome
        while True:
            self._answer_requests(conn)
            if conn.state == STATE_CLOSED:
                return
            if conn.out_pending or conn.file_remaining:
                outcome = conn.flush()
                if outcome == FLUSH_FAILED:
                    self._close(conn)
                    return
                if outcome == FLUSH_BLOCKED:
                    # io_timeout counts from the last progress, which this flush was
                    conn.deadline = self.now + self.io_timeout
                    self._want(conn, EPOLLOUT)
                    return
            if conn.state == STATE_RESPONSE:
                if not conn.response_done:
                    # Backpressure: the socket took everything, so ask the app for more.
                    try:
                        self._produce(conn, -1)
                    except Exception:
                        self._app_failed(conn)
                    if conn.state == STATE_CLOSED:
                        return
                    continue
                if not conn.keep_alive:
                    conn.close_result()
                    self._close_gracefully(conn)
                    return
                self._next_request(conn)
                continue
            if conn.state == STATE_CLOSING:
                return
            self._want(conn, EPOLLIN | EPOLLRDHUP)
            return

    cdef void _answer_requests(self, Connection conn) except *:
        """Parses and answers every complete request in the read buffer.

        Responses of pipelined requests are queued back to back and leave in
        one sendmsg(), as long as they stay under HIGH_WATERMARK.
        """
        cdef Py_ssize_t consumed, decoded = 0
        while True:
            if conn.state == STATE_HEAD:
                if conn.rlen == 0:
                    return
                if conn.proxy_header_expected and not self._read_proxy_header(conn):
                    return
                consumed = conn.head.parse(conn.data(), conn.rlen)
                if consumed == PARSE_INCOMPLETE:
                    if conn.peer_closed:
                        self._close(conn)
                    return
                if consumed < 0:
                    self._reject(conn, conn.head.error_status, conn.head.error_reason)
                    return
                self._on_head(conn, consumed)
            if conn.state == STATE_BODY:
                if conn.body_in_place and conn.rlen < conn.body.remaining:
                    if conn.peer_closed:
                        self._close(conn)
                    return
                consumed = conn.body.decode(conn.data(), conn.rlen, &decoded)
                if consumed < 0:
                    self._reject(conn, conn.body.error_status, conn.body.error_reason)
                    return
                if decoded:
                    if conn.body_in_place:
                        conn.body_bytes = PyBytes_FromStringAndSize(conn.data(), decoded)
                    else:
                        try:
                            conn.body_buffer.append(conn.data(), decoded)
                        except OSError as error:
                            self._spool_failed(conn, error)
                            return
                conn.consume(consumed)
                if not conn.body.done():
                    if conn.peer_closed:
                        self._close(conn)
                    return
                self._call_app(conn)
                if conn.state == STATE_CLOSED:
                    return
            if conn.state != STATE_RESPONSE:
                return
            if not (conn.response_done and conn.keep_alive and conn.file_remaining == 0
                    and conn.out_pending < HIGH_WATERMARK):
                return
            self._next_request(conn)

    cdef bint _read_proxy_header(self, Connection conn) except -1:
        """Takes a PROXY header off the front of the connection; False while incomplete or refused."""
        cdef ProxyHeader header = parse_proxy_header(conn.data(), conn.rlen)
        if header is None:
            if conn.peer_closed:
                self._close(conn)
            return False
        conn.proxy_header_expected = False
        if header.error is not None:
            self._reject(conn, 400, header.error)
            return False
        if header.client_addr is not None:
            conn.remote_addr = header.client_addr
            conn.remote_port = header.client_port
        conn.consume(header.consumed)
        return conn.rlen > 0

    cdef void _next_request(self, Connection conn) except *:
        """The response is complete and the connection stays open: expect the next request."""
        conn.close_result()
        conn.environ = None
        conn.status_line = None
        conn.response_headers = None
        conn.state = STATE_HEAD
        if conn.rlen == 0 and conn.rcap > READ_BUFFER_INITIAL:
            # A large body grew the buffer; an idle connection keeps only a small one.
            conn.shrink_buffer(READ_BUFFER_INITIAL)
        if conn.rlen:
            conn.deadline = self.now + self.header_timeout
        else:
            conn.idle = True
            conn.deadline = self.now + self.keepalive

    cdef inline double _body_deadline(self, Connection conn) noexcept:
        """io_timeout from the last progress, and, with a minimum rate, no later than
        io_timeout plus one second per min_upload_rate bytes since the body began
        (Apache mod_reqtimeout's MinRate): a trickle of bytes cannot hold a
        connection open indefinitely by re-arming the timeout with each one."""
        cdef double deadline = self.now + self.io_timeout
        cdef double allowed
        if self.min_upload_rate > 0:
            allowed = conn.body_started_at + self.io_timeout + conn.body_received / self.min_upload_rate
            if allowed < deadline:
                return allowed
        return deadline

    cdef void _on_head(self, Connection conn, Py_ssize_t head_length) except *:
        cdef HeadParser head = conn.head
        cdef int64_t length = head.content_length
        cdef char* request_bytes = conn.data()
        conn.environ = conn.listener.environ_builder.build(
            head, request_bytes, conn.remote_addr, conn.remote_port, conn.trusted_proxy)
        conn.keep_alive = head.keep_alive and self.keepalive > 0
        conn.version_minor = head.version_minor
        # The whole token: a method that merely starts like HEAD (HEAL, HEXX) has a body.
        conn.is_head = head.method.len == 4 and memcmp(request_bytes + head.method.off, b"HEAD", 4) == 0
        conn.request_start = self.now
        if self.metrics != NULL:
            conn.method_index = method_index(request_bytes + head.method.off, head.method.len)
            conn.in_flight = True
            self.metrics[M_IN_FLIGHT] += 1
        conn.consume(head_length)
        head.reset()
        conn.body.start(head.body_kind, length)
        conn.body_in_place = False
        if head.body_kind != BODY_NONE:
            self._reserve_body_memory(conn, head.body_kind, length)
        conn.state = STATE_BODY
        conn.body_started_at = self.now
        # what came in with the head counts toward the upload's rate
        conn.body_received = conn.rlen
        conn.deadline = self.now + self.io_timeout
        if head.expect_continue and head.body_kind != BODY_NONE and conn.rlen == 0:
            # RFC 9110 §10.1.1: the head passed every check, so invite the body.
            conn.queue(CONTINUE_100)

    cdef void _spool_failed(self, Connection conn, object error) except *:
        """The request body could not be stored (disk full, out of descriptors, I/O
        error): this request is refused and its connection closed; the worker serves on."""
        cdef int status = 413 if error.errno in (errno_module.ENOSPC, errno_module.EDQUOT,
                                                   errno_module.EFBIG) else 503
        self.error_log.error("cannot store the request body from %s: %s", conn.remote_addr, error)
        if conn.body_buffer is not None:
            conn.body_buffer.discard()
            conn.body_buffer = None
        self._reject(conn, status, f"request body could not be stored: {error.strerror or error}")

    cdef void _connection_failed(self, Connection conn) except *:
        """An unexpected error while serving one connection: it alone is closed."""
        self.error_log.exception("Error serving connection from %s; closing it", conn.remote_addr)
        self._close(conn)

    cdef void _reserve_body_memory(self, Connection conn, int body_kind, int64_t length) except *:
        """Where this body is received: whole into the read buffer, into a buffer that
        spools past spool_threshold, or, with the worker's body memory spent, into a
        spool file from the first byte."""
        cdef Py_ssize_t wanted = self.spool_threshold
        if body_kind == BODY_LENGTH and length <= self.spool_threshold:
            wanted = <Py_ssize_t>length
        if self.body_memory_limit and self.body_memory + wanted > self.body_memory_limit:
            conn.body_in_place = False
            conn.body_buffer = BodyBuffer(0, self.spool_dir)
            return
        conn.body_memory = wanted
        self.body_memory += wanted
        conn.body_in_place = body_kind == BODY_LENGTH and length <= self.spool_threshold
        if conn.body_in_place:
            if conn.rlen < length:
                conn.ensure_room(<Py_ssize_t>length - conn.rlen)
        else:
            conn.body_buffer = BodyBuffer(self.spool_threshold, self.spool_dir)

    cdef inline void _release_body_memory(self, Connection conn) noexcept:
        self.body_memory -= conn.body_memory
        conn.body_memory = 0

    cdef void _reject(self, Connection conn, int status, str reason) except *:
        """Answers a request that cannot be served with ``status``, then closes."""
        cdef str phrase = STATUS_REASONS.get(status, "Bad Request")
        cdef bint head_request
        body = f"{phrase}\n{reason}\n".encode("latin-1", "replace")
        if self.metrics != NULL:
            count_refusal(self.metrics, status)
            self._end_in_flight(conn)
        if status == 408 or status >= 500:
            # Slow clients and our own storage failures (logged where they happen).
            self.error_log.debug("refused request from %s: %d %s", conn.remote_addr, status, reason)
        else:
            # gunicorn's handle_error: a malformed request is a WARNING, seen by default.
            self.error_log.warning("Invalid request from ip=%s: %s", conn.remote_addr, reason)
        if conn.state == STATE_BODY:
            head_request = conn.is_head
        else:
            head_request = _starts_head_request(conn.data(), conn.rlen)
        conn.queue(
            f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n".encode("latin-1")
            # RFC 9110 §9.3.2: no content in an answer to HEAD, refusals included.
            + self.date_header + b"\r\n" + (b"" if head_request else body)
        )
        conn.keep_alive = False
        conn.response_done = True
        conn.state = STATE_RESPONSE

    # -- calling the app ---------------------------------------------------

    cdef void _call_app(self, Connection conn) except *:
        cdef dict environ = conn.environ
        cdef StartResponse responder = conn.responder
        cdef object result
        cdef int64_t known_length = -1
        if conn.body_memory:
            self._release_body_memory(conn)
        if conn.body_bytes is not None:
            environ[K_INPUT] = memory_input(conn.body_bytes)
            conn.body_bytes = None
        elif conn.body_buffer is None:
            environ[K_INPUT] = memory_input(EMPTY_BYTES)
        else:
            try:
                environ[K_INPUT] = conn.body_buffer.stream()
            except OSError as error:
                self._spool_failed(conn, error)
                return
            if conn.body.kind == BODY_CHUNKED:
                # The whole body is in: give frameworks that read CONTENT_LENGTH its
                # size, and drop the coding the server already removed (RFC 3875
                # §4.1.18 lets a server leave out what it processed; waitress does).
                environ[K_CONTENT_LENGTH] = str(conn.body_buffer.size)
                environ.pop(K_HTTP_TRANSFER_ENCODING, None)
            conn.body_buffer = None
        conn.state = STATE_RESPONSE
        conn.headers_queued = False
        conn.response_done = False
        conn.writes_closed = False
        conn.chunked_out = False
        conn.body_allowed = not conn.is_head
        conn.content_length_out = -1
        conn.body_sent = 0
        conn.list_index = 0
        conn.iterator = None
        responder.reset()
        if self.stopping:
            conn.keep_alive = False
        if self.pre_request is not None:
            self._run_hook(self.pre_request, (environ,))
        self.early_hints.connection = conn
        self.in_app = conn
        try:
            result = self.app(environ, responder)
            conn.result = result
            if type(result) is FileWrapper and self.use_sendfile:
                if self._start_sendfile(conn, <FileWrapper>result):
                    self._finish_response(conn)
                    return
            if type(result) is list or type(result) is tuple:
                known_length = self._sequence_length(result)
            else:
                conn.iterator = iter(result)
            self._produce(conn, known_length)
        except Exception:
            self._app_failed(conn)
        self.in_app = None

    cdef int64_t _sequence_length(self, object items) except -2:
        """A list/tuple body's total length, so the response can carry Content-Length."""
        cdef Py_ssize_t i, n = len(items)
        cdef int64_t total = 0
        cdef object item
        for i in range(n):
            item = items[i]
            if not PyBytes_Check(item):
                return -1
            total += PyBytes_GET_SIZE(item)
        return total

    cdef void _produce(self, Connection conn, int64_t known_length) except *:
        """Pulls body chunks until the body ends or HIGH_WATERMARK bytes are queued."""
        cdef object result = conn.result
        cdef object chunk
        cdef Py_ssize_t n
        if known_length >= 0 and not conn.headers_queued:
            self.queue_headers(conn, known_length)
        if conn.iterator is None:
            n = len(result)
            while conn.list_index < n:
                chunk = result[conn.list_index]
                conn.list_index += 1
                conn.add_body(chunk)
                if conn.out_pending > HIGH_WATERMARK and conn.list_index < n:
                    return
            self._finish_response(conn)
            return
        # A generator resumed after backpressure may send hints before its first chunk.
        self.early_hints.connection = conn
        while conn.out_pending <= HIGH_WATERMARK:
            chunk = next(conn.iterator, None)
            if chunk is None:
                self._finish_response(conn)
                return
            conn.add_body(chunk)

    cdef bint _start_sendfile(self, Connection conn, FileWrapper wrapper) except -1:
        """Sets up sendfile(2) for a regular file; False to fall back to iteration."""
        cdef int64_t size
        try:
            fd = wrapper.filelike.fileno()
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return False
            offset = wrapper.filelike.tell() if hasattr(wrapper.filelike, "tell") else 0
        except (AttributeError, OSError, ValueError):
            return False
        size = info.st_size - offset
        if size < 0:
            size = 0
        self.queue_headers(conn, size, True)
        if conn.content_length_out >= 0 and conn.content_length_out < size:
            size = conn.content_length_out
        conn.file_obj = wrapper.filelike
        conn.file_fd = fd
        conn.file_offset = offset
        conn.file_remaining = size if conn.body_allowed else 0
        return True

    cdef void _finish_response(self, Connection conn) except *:
        if not conn.headers_queued:
            self.queue_headers(conn, 0)
        conn.writes_closed = True
        if conn.chunked_out:
            conn.queue(LAST_CHUNK)
        elif (conn.content_length_out >= 0 and conn.body_allowed and conn.file_remaining == 0
                and conn.body_sent < conn.content_length_out):
            # The app sent less than its Content-Length: the client cannot tell
            # where the response ends unless the connection closes.
            self.error_log.warning("app sent %d of %d promised bytes for %s", conn.body_sent,
                                   conn.content_length_out, conn.environ.get("RAW_URI"))
            conn.keep_alive = False
        if conn.file_remaining == 0:
            conn.close_result()
        conn.response_done = True
        self._request_done(conn)

    cdef void _request_done(self, Connection conn) except *:
        self.requests_served += 1
        if (self.completed is not None or self.metrics != NULL
                or self.access_log is not None or self.post_request is not None):
            self._report_request(conn, monotonic() - conn.request_start)
        if self.max_requests and self.requests_served >= self.max_requests and not self.stopping:
            self.error_log.info("Autorestarting worker after current request.")
            self.stop(True)

    cdef void _report_request(self, Connection conn, double elapsed) except *:
        """One duration for every consumer of a completed request: the statsd batch,
        the metrics slot, the access log and the post_request hook."""
        if self.completed is not None:
            self.completed.append((conn.status_line, elapsed))
        if self.metrics != NULL:
            count_request(self.metrics, conn.method_index, _status_code(conn.status_line), elapsed)
            self._end_in_flight(conn)
        if self.access_log is not None or self.post_request is not None:
            sent = conn.body_sent + conn.file_remaining
            if self.access_log is not None:
                self._run_hook(self.access_log, (conn.environ, conn.status_line,
                                                 conn.response_headers, sent, elapsed))
                self.access_pending = self.flush_access_log is not None
            if self.post_request is not None:
                self._run_hook(self.post_request, (conn.environ, conn.status_line,
                                                   conn.response_headers, sent, elapsed))

    cdef inline void _end_in_flight(self, Connection conn) noexcept:
        if conn.in_flight:
            conn.in_flight = False
            self.metrics[M_IN_FLIGHT] -= 1

    cdef void _flush_access_log(self) except *:
        """The lines of this iteration's requests reach the file before the loop
        sleeps: one write for all of them, none lost if the worker is killed."""
        self.access_pending = False
        self._run_hook(self.flush_access_log, ())

    cdef void _run_hook(self, object hook, tuple args) except *:
        try:
            hook(*args)
        except Exception:
            self.error_log.exception("hook %r failed", getattr(hook, "__name__", hook))

    cdef void _app_failed(self, Connection conn) except *:
        """The app raised: 500 if nothing was sent yet, else the connection must close."""
        self.error_log.exception("Error handling request %s", conn.environ.get("RAW_URI", ""))
        conn.close_result()
        conn.keep_alive = False
        if conn.headers_queued:
            # Part of the response is out: its end cannot be marked, so send what
            # is queued (without blocking) and cut the connection off.
            conn.response_done = True
            self._request_done(conn)
            conn.flush()
            self._close(conn)
            return
        conn.status_line = "500 Internal Server Error"
        conn.response_headers = list(INTERNAL_ERROR_HEADERS)
        conn.queue(INTERNAL_ERROR_HEAD + self.date_header + b"\r\n"
                   + (INTERNAL_ERROR_BODY if not conn.is_head else b""))
        conn.headers_queued = True
        conn.body_sent = len(INTERNAL_ERROR_BODY)
        conn.response_done = True
        self._request_done(conn)

    cdef void queue_headers(self, Connection conn, int64_t known_length,
                            bint length_holds_for_head=False) except *:
        """Queues the status line and header section; decides the framing (RFC 9112 §6).

        ``known_length`` is the body's size when the server knows it (-1 if not);
        a HEAD response states it only when it is the size GET would send.
        """
        cdef StartResponse responder = conn.responder
        cdef HeaderBlock block = self.header_block
        cdef object status = responder.status
        cdef object headers = responder.headers
        cdef int code
        cdef int64_t declared
        cdef Framing framing
        if status is None:
            raise AssertionError("the application did not call start_response()")
        block.length = 0
        if status == self.cached_status and headers == self.cached_headers:
            # The same status and headers as the last response: reuse their
            # checked and encoded lines (most apps answer alike, time after time).
            block.add(PyBytes_AS_STRING(self.cached_lines), PyBytes_GET_SIZE(self.cached_lines))
        else:
            self._encode_app_lines(block, status, headers)
        code = self.cached_code
        declared = self.cached_declared
        framing = response_framing(code, conn.is_head, declared >= 0 or known_length >= 0,
                                   conn.version_minor)
        if framing == FRAMING_NONE:
            conn.body_allowed = False
        if declared >= 0:
            conn.content_length_out = declared
        elif known_length >= 0 and (framing == FRAMING_LENGTH or (conn.is_head and length_holds_for_head)):
            # A HEAD answer states the length only when it is the one GET would send.
            conn.content_length_out = known_length
            _add_content_length(block, known_length)
        elif framing == FRAMING_CHUNKED:
            conn.chunked_out = True
            block.add(PyBytes_AS_STRING(TRANSFER_CHUNKED), PyBytes_GET_SIZE(TRANSFER_CHUNKED))
        elif framing == FRAMING_CLOSE:
            conn.keep_alive = False
        if not self.cached_has_date:
            block.add(PyBytes_AS_STRING(self.date_header), PyBytes_GET_SIZE(self.date_header))
        if not self.cached_has_server and self.send_server_header:
            block.add(PyBytes_AS_STRING(self.server_header), PyBytes_GET_SIZE(self.server_header))
        if self.stopping or self.cached_close:
            conn.keep_alive = False
        if not conn.keep_alive:
            block.add(PyBytes_AS_STRING(CONNECTION_CLOSE), PyBytes_GET_SIZE(CONNECTION_CLOSE))
        elif conn.version_minor == 0:
            block.add(PyBytes_AS_STRING(CONNECTION_KEEP_ALIVE), PyBytes_GET_SIZE(CONNECTION_KEEP_ALIVE))
        block.add("\r\n", 2)
        conn.queue(block.take())
        conn.headers_queued = True
        conn.status_line = status
        conn.response_headers = headers

    cdef void _encode_app_lines(self, HeaderBlock block, object status, object headers) except *:
        """Checks and encodes the status line and the app's header lines into ``block``,
        and remembers them, with what they declare, for the next response."""
        cdef int kind
        cdef bint has_date = False, has_server = False, close = False
        cdef int64_t declared = -1
        cdef int code
        self.cached_status = None
        block.add("HTTP/1.1 ", 9)
        block.add_latin1(status, HEADER_VALUE_CHAR, "status")
        code = _status_code(status)
        if code < 200:
            # RFC 9110 §15.2: a 1xx is interim; the response would never end.
            raise ValueError(f"status {status!r} is not a final status")
        if PyUnicode_GET_LENGTH(status) == 3:
            # RFC 9112 §4: the SP before the (possibly empty) reason is required;
            # a bare "200" (which gunicorn accepts) gets its standard phrase.
            block.add(" ", 1)
            block.add_latin1(_reason_phrase(code), HEADER_VALUE_CHAR, "status")
        block.add("\r\n", 2)
        for header in headers:
            if type(header) is not tuple or PyTuple_GET_SIZE(header) != 2:
                raise TypeError(f"response header {header!r} is not a (name, value) tuple")
            name = <object>PyTuple_GET_ITEM(header, 0)
            value = <object>PyTuple_GET_ITEM(header, 1)
            kind = header_kind(name)
            if kind == HEADER_CONTENT_LENGTH:
                declared = parse_content_length(value)
                if declared < 0:
                    raise ValueError(f"invalid Content-Length {value!r}")
            elif kind == HEADER_DATE:
                has_date = True
            elif kind == HEADER_SERVER:
                has_server = True
            elif kind == HEADER_CONNECTION:
                # "close" is honoured (the connection ends after this response); the
                # header itself is the server's to write, as gunicorn does.
                close = close or connection_asks_close(value)
                continue
            elif kind == HEADER_DROPPED:
                continue
            elif kind == HEADER_HOP_BY_HOP:
                raise ValueError(f"hop-by-hop header {name!r} is not allowed from an application (PEP 3333)")
            block.add_latin1(name, HEADER_NAME_CHAR, "header name")
            block.add(": ", 2)
            block.add_latin1(value, HEADER_VALUE_CHAR, "header value")
            block.add("\r\n", 2)
        self.cached_lines = PyBytes_FromStringAndSize(block.data, block.length)
        self.cached_code = code
        self.cached_declared = declared
        self.cached_has_date = has_date
        self.cached_has_server = has_server
        self.cached_close = close
        # A copy: the app may change its list after this response.
        self.cached_headers = list(headers)
        self.cached_status = status

    # -- output ------------------------------------------------------------

    cdef void _want(self, Connection conn, uint32_t interest) except *:
        cdef epoll_event event
        if conn.interest == interest or conn.state == STATE_CLOSED:
            return
        conn.interest = interest
        event.events = interest
        event.data.ptr = <void*>conn
        if epoll_ctl(self.epfd, EPOLL_CTL_MOD, conn.fd, &event) < 0:
            # Without its events the connection would hang until its deadline: it
            # fails now, alone (the loop closes a connection whose handling raised).
            raise OSError(errno, f"epoll_ctl: {os.strerror(errno)}")

    # -- closing -----------------------------------------------------------

    cdef void _close_gracefully(self, Connection conn) except *:
        # RFC 9112 §9.6: close the write side first and drain the input, so
        # unread request bytes do not turn our last response into an RST.
        if conn.peer_closed:
            self._close(conn)
            return
        shutdown(conn.fd, SHUT_WR)
        conn.state = STATE_CLOSING
        conn.deadline = self.now + LINGER_SECONDS
        self._want(conn, EPOLLIN | EPOLLRDHUP)
        self._drain_closing(conn)

    cdef void _on_timeout(self, Connection conn) except *:
        if conn.state == STATE_HEAD and conn.rlen and not conn.idle:
            self._reject(conn, 408, "request head not received in time")
            self._drive(conn)
            return
        if conn.state == STATE_BODY:
            self._reject(conn, 408, "request body not received in time")
            self._drive(conn)
            return
        if conn.state == STATE_RESPONSE:
            self.error_log.info("closing connection from %s: no write progress in %.0fs",
                                conn.remote_addr, self.io_timeout)
        self._close(conn)

    cdef void _close(self, Connection conn) except *:
        if conn.state == STATE_CLOSED:
            return
        if conn.state == STATE_RESPONSE and not conn.response_done:
            # PEP 3333: close() is called even when the client went away.
            self.error_log.debug("client %s went away mid-response", conn.remote_addr)
        conn.close_result()
        if conn.body_memory:
            self._release_body_memory(conn)
        if conn.body_buffer is not None:
            conn.body_buffer.discard()
            conn.body_buffer = None
        conn.state = STATE_CLOSED
        if self.metrics != NULL:
            self.metrics[M_OPEN_CONNECTIONS] -= 1
            self._end_in_flight(conn)
        conn.discard_spool()
        close(conn.fd)
        self.connections.pop(conn.fd, None)
        conn.out = None
        conn.environ = None
        # The StartResponse points back at its connection and at its own write
        # method: unlink it, so reference counting frees the connection and its
        # buffers now rather than the cyclic gc at its next (rare, full) pass.
        conn.responder.write_callable = None
        conn.responder = None
        if self.early_hints.connection is conn:
            self.early_hints.connection = None
        if not self.accepting and not self.stopping and self.now >= self.accept_resume_at:
            self._resume_accepting()

    cdef void _close_all(self) except *:
        cdef Connection conn
        for conn in list(self.connections.values()):
            self._close(conn)
        self._pause_accepting()
        if self.waker_fd >= 0:
            close(self.waker_fd)
            self.waker_fd = -1
        if self.epfd >= 0:
            close(self.epfd)
            self.epfd = -1


cdef bint _input_waiting(int fd) noexcept:
    cdef char byte
    return recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0


cdef bint _starts_head_request(const char* data, Py_ssize_t length) noexcept:
    """Whether unparsed bytes begin with a well-formed HEAD request line.

    Only then may a refusal leave out its content: when the request line itself
    is malformed, the client's idea of the method cannot be known.
    """
    cdef Py_ssize_t pos = 0, target
    while pos + 1 < length and data[pos] == b'\r' and data[pos + 1] == b'\n':
        pos += 2
    if length - pos < 5 or memcmp(data + pos, b"HEAD ", 5) != 0:
        return False
    pos += 5
    target = pos
    while pos < length and 0x21 <= <unsigned char>data[pos] <= 0x7E:
        pos += 1
    if pos == target or length - pos < 11 or data[pos] != b' ':
        return False
    return (memcmp(data + pos + 1, b"HTTP/1.", 7) == 0
            and (data[pos + 8] == b'0' or data[pos + 8] == b'1')
            and data[pos + 9] == b'\r' and data[pos + 10] == b'\n')


cdef int _status_code(object status) except -1:
    # PEP 3333: status is "NNN Reason"; RFC 9110 §15: three digits. A bare "NNN"
    # is accepted as gunicorn accepts it. add_latin1() already made sure the
    # status is a 1-byte-kind str.
    cdef const unsigned char* chars = <const unsigned char*>PyUnicode_DATA(status)
    cdef Py_ssize_t n = PyUnicode_GET_LENGTH(status)
    if (n < 3 or not (48 <= chars[0] <= 57) or not (48 <= chars[1] <= 57)
            or not (48 <= chars[2] <= 57) or (n > 3 and chars[3] != 32)):
        raise ValueError(f"invalid status {status!r}")
    return (chars[0] - 48) * 100 + (chars[1] - 48) * 10 + (chars[2] - 48)


cdef str _reason_phrase(int code):
    # Imported here, on this rare path: a worker may have dropped privileges
    # since start-up, and the loop needs nothing else of the module.
    from http import HTTPStatus
    try:
        return HTTPStatus(code).phrase
    except ValueError:
        return ""


cdef void _add_content_length(HeaderBlock block, int64_t length) except *:
    cdef char text[48]
    cdef int n = snprintf(text, sizeof(text), "Content-Length: %lld\r\n", <long long>length)
    block.add(text, n)


cdef extern from "<stdio.h>":
    int snprintf(char* buf, size_t size, const char* fmt, ...)
