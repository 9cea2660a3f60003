# The serving loop's map: every class of fastwsgi._loop, its fields and its
# C-level methods. The code is woven into one extension from fastwsgi/loop/*.pxi
# (included by _loop.pyx), so calls between the parts stay direct C calls.
#
# The parts, one responsibility each:
#   Server          _loop.pyx               the event loop: epoll, waker, listeners, accept and
#                                           shedding, the one-second tick, run / stop / graceful drain
#   Protocol        loop/protocol.pxi       the HTTP/1.1 connection state machine below: reads,
#                                           parses, refuses, times out, closes
#   AppDriver       loop/app_driver.pxi     calls the WSGI app for an exchange and pulls its body
#                                           under backpressure; reports completed requests
#   ResponseWriter  loop/response.pxi       status line and header section, the framing decision,
#                                           the cache of the last response's encoded headers
#   Connection      loop/connection.pxi     one client: read buffer, output queue, write spool,
#                                           state and its deadline
#   Exchange        loop/exchange.pxi       one request and its response; reset() once per request
#   Transport       loop/transport.pxi      the only code that calls recv / sendmsg / sendfile /
#                                           shutdown / close on a client socket (TLS sends
#                                           and receives its ciphertext with its
#                                           socket_recv / socket_send)
#   AppWatch        loop/app_watch.pxi      without threads: a watcher thread that acts
#                                           while an app call runs long (sends held answers,
#                                           asks HandOff to pass waiting connections)
#   HandOff         loop/handoff.pxi        passes waiting keep-alive connections to a free
#                                           sibling worker, and takes in theirs (the socket
#                                           moves; the transport never sees it)
#   AppPool         loop/threads.pxi        threads > 1: the pool threads that call the app
#   Mailbox         loop/mailbox.pxi        threads > 1: all the loop and the pool threads hand
#                                           each other, under a lock of its own; the eventfd
#                                           wake, once per batch
#
# Connection states (ConnectionState) and the deadline each arms (Connection.enter,
# which allows only the moves drawn here: STATE_EXITS, loop/connection.pxi):
#
#   accept ──> HEAD ──head parsed──> BODY ──body complete, app called──> RESPONSE
#               ^  (header_timeout)   (io_timeout, min_upload_rate)       (io_timeout while the
#               |                                                          socket is full)
#               +── bytes waiting <──┬── response sent, keep-alive ───────┘
#                                    └──> IDLE (keepalive) ──first byte──> HEAD
#   RESPONSE ──not keep-alive──> CLOSING (write side shut; input drained, LINGER_SECONDS) ──> CLOSED
#   any state ──peer gone, error, deadline──> CLOSED   (a deadline in HEAD/BODY answers 408 first)
#
# On a TLS listener a connection starts in HANDSHAKE (loop/tls.pxi):
#
#   accept ──> HANDSHAKE ──handshake done──> HEAD
#              (header_timeout; a PROXY header is read first, off the raw stream)
#
# With threads (AppPool, threads > 1) the app runs on a pool thread, and between
# BODY and RESPONSE a connection is in APP:
#
#   BODY ──body complete──> APP ──the thread is done (Exchange.pool_state)──> RESPONSE
#                (what the thread produced is sent meanwhile; io_timeout while the
#                 socket is full, else `timeout`: a request still running then is
#                 logged with its thread's stack)
#
# A body iterable whose client does not take the bytes as fast as they come does
# not keep its thread: past HIGH_WATERMARK unsent, the thread gives the exchange
# back (POOL_PARKED) and serves others; once the socket has taken everything, the
# loop submits it again and a thread goes on pulling the iterable.
#
# One exchange is in flight per connection: while a response is pending (APP,
# RESPONSE, CLOSING) reading pauses, so a pipelining client queues in the kernel,
# not here.
#
# Threads: everything here belongs to the loop's thread — every fd, every field of
# Connection and Exchange, every cache (ResponseWriter's, EnvironBuilder's) — with
# one exception: an Exchange handed to the AppPool. The pool thread that holds it
# runs the app, iterates its body, calls its close() and answers its write() and
# start_response(), touching only the Exchange fields marked "thread" below. All
# the two sides hand each other goes through the Mailbox (loop/mailbox.pxi): the
# fields marked "mailbox" are touched by either side only under its lock, not the
# GIL, and the loop is woken through the waker's eventfd, which the mailbox writes
# when its queue to the loop gets its first exchange; the loop wakes a thread
# through its PoolThread lock. Without threads the app calls back into
# the loop's objects on the loop's thread, from inside AppDriver.call_app / produce.
# Server.stop() is the one method safe from a signal handler or another thread: it
# sets flags and writes the waker's eventfd. Without threads, AppWatch's thread acts
# while the loop's thread is inside an app call (loop/app_watch.pxi says what it
# touches and why the GIL is its lock there).

cimport cython
from libc.stdint cimport int64_t, uint32_t

from fastwsgi._parser cimport HeadParser, BodyDecoder, FieldSpan, Limits, UwsgiPacket
from fastwsgi._environ cimport EnvironBuilder
from fastwsgi.includes.system cimport iovec, sockaddr_storage
from cpython.pythread cimport PyThread_type_lock
from cpython.object cimport PyObject

cdef class Connection
cdef class Exchange
cdef class TLSContext
cdef class TLSSession
cdef class Server
cdef class AppPool
cdef class PoolThread
cdef class Mailbox
cdef class InputStream
cdef class HandOff
cdef class AppWatch


# What an epoll registration points at.
cdef enum HandleKind:
    HANDLE_LISTENER
    HANDLE_CONNECTION
    HANDLE_WAKER
    HANDLE_HANDOFF    # the workers' shared hand-off channel (HandOff)

# Where a connection is in its request/response cycle (the table above). The moves
# each state allows are STATE_EXITS (loop/connection.pxi), checked by Connection.enter,
# the only writer of Connection.state.
cdef enum ConnectionState:
    STATE_NEW         # accepted (or taken in from a sibling): no state entered yet
    STATE_HANDSHAKE   # TLS: the handshake (and a PROXY header before it): header_timeout
    STATE_HEAD        # a request head has begun, or the connection is new: header_timeout
    STATE_IDLE        # kept alive between requests, no byte of the next one yet: keepalive
    STATE_BODY        # receiving a request body: io_timeout, min_upload_rate
    STATE_APP         # threads: the app runs on a pool thread (`timeout`; io_timeout while
                      # what it produced waits for room in the socket)
    STATE_RESPONSE    # the app was called; its response is being sent
    STATE_CLOSING     # response sent, write side shut; draining input before close
    STATE_CLOSED
    STATE_COUNT       # (not a state: how many there are)

# Response header names the server acts on.
cdef enum HeaderKind:
    HEADER_OTHER
    HEADER_CONTENT_LENGTH
    HEADER_DATE
    HEADER_SERVER
    HEADER_HOP_BY_HOP     # refused (500): would change how the body is framed
    HEADER_CONNECTION
    HEADER_DROPPED        # hop-by-hop, left out of the response

# How a response's body is delimited on the wire (RFC 9112 §6.3), decided once per
# response by response_framing(); the body writers obey it.
cdef enum Framing:
    FRAMING_UNDECIDED     # the header section is not queued yet
    # No body bytes follow the header section: the answer to HEAD, 1xx, 204 and
    # 304 (RFC 9110 §6.4.1), whatever length the headers state.
    FRAMING_NONE
    # Content-Length: the app's, or the one the server counted for it.
    FRAMING_LENGTH
    # HTTP/1.1 without a length: chunked transfer coding, ended by the last chunk.
    FRAMING_CHUNKED
    # HTTP/1.0 without a length: the body ends when the connection closes.
    FRAMING_CLOSE

# Where an exchange is with the app pool (threads > 1).
cdef enum PoolState:
    POOL_NONE         # not handed to the pool: no threads, or the app not called yet
    POOL_RUNNING      # a pool thread runs the app or pulls its body
    POOL_DONE         # the thread is done: the body is in `result` (a sequence, or a
                      # file to send) or was handed over in `chunks`
    POOL_FAILED       # the app raised (logged on the thread)
    POOL_TAKEN        # the app took the connection (gunicorn.socket) and ended it itself
    POOL_PARKED       # the body iterable waits for room in the socket, on no thread: the
                      # loop submits it again (RUNNING) once what was produced is sent

# Results of a flush.
cdef enum FlushOutcome:
    FLUSH_DONE
    FLUSH_BLOCKED
    FLUSH_FAILED

# A Transport call's answers besides a byte count.
cdef enum:
    IO_BLOCKED = -1   # the socket has nothing to read / no room (EAGAIN, EINTR)
    IO_FAILED = -2    # any other error: the connection is lost
    IO_RAISED = -3    # a Python exception is set (a transport written in Python terms)


cdef class AllowList:
    """Peer addresses trusted for a setting (gunicorn's *_allow_ips); "*" trusts all."""
    cdef bint everyone
    cdef frozenset addresses
    # the networks of more than one address; None: none configured
    cdef tuple networks
    cdef bint allows(self, str address)
    cdef bint in_networks(self, str address) except -1


cdef class Handle:
    cdef int kind
    cdef int fd


cdef class Listener(Handle):
    cdef object sock
    cdef EnvironBuilder environ_builder
    cdef bint is_unix
    cdef bint registered
    # its connections speak TLS: the context they are made from, or None
    cdef TLSContext tls


# Where a TLS session is (TLSSession.state). The phases only move forward, in this
# order, so "handshake done" is state >= TLS_OPEN.
cdef enum TLSState:
    TLS_AWAITING_HELLO    # no byte from the client yet: a plain-HTTP request is told apart here
    TLS_HANDSHAKING       # the handshake's records are being exchanged (RFC 8446 §4)
    TLS_OPEN              # application data flows both ways
    TLS_PEER_DONE         # the peer's stream ended (close_notify, or EOF where tolerated)


# What one step of a TLS handshake needs next (TLSSession.handshake).
cdef enum HandshakeStep:
    HANDSHAKE_DONE
    HANDSHAKE_WANTS_READ
    HANDSHAKE_WANTS_WRITE
    HANDSHAKE_FAILED
    HANDSHAKE_PLAINTEXT     # the client spoke plain HTTP to the TLS port


@cython.final
cdef class TLSContext:
    """What every TLS connection of a listener shares: the ssl.SSLContext (made in
    the master, so that workers share its session ticket keys) and one scratch
    buffer for ciphertext in and plaintext batches out, used by one call at a time
    (the loop's thread)."""
    cdef object ssl_context
    cdef bint suppress_ragged_eofs
    cdef char* scratch
    cdef object scratch_view
    cdef object memory_bio
    cdef object want_read
    cdef object want_write
    cdef object zero_return
    cdef object eof_error
    cdef object ssl_error

    cdef TLSSession session(self)


@cython.final
cdef class TLSSession:
    """One connection's TLS state: an ssl.SSLObject over two memory BIOs, so that
    OpenSSL never touches the socket and the transport keeps every system call.
    Ciphertext that did not fit in the socket waits in `cipher`; the plaintext it
    carries is reported sent (batch_plain) only once all of it is on the wire, so
    the output queue's accounting is the plain transport's."""
    cdef TLSContext context
    cdef object sslobj
    cdef object engine           # what read/write/do_handshake/pending are called on
    cdef object engine_read
    cdef object engine_write
    cdef object engine_pending
    cdef object bio_write
    cdef object bio_read
    cdef TLSState state
    # Nothing waits inside the engine as of the last decrypt: the next read goes to
    # the socket, and epoll's word on readiness is the whole truth. (Not a phase of
    # the session: it comes and goes with every read, in OPEN and PEER_DONE alike.)
    cdef bint drained
    cdef object incoming         # MemoryBIO: ciphertext received, not yet decrypted
    cdef object outgoing         # MemoryBIO: ciphertext made, not yet taken
    cdef bytes cipher
    cdef Py_ssize_t cipher_sent
    cdef Py_ssize_t batch_plain
    cdef readonly object error   # why the handshake failed, for the log

    cdef int handshake(self, int fd) except -2
    cdef int send_handshake(self, int fd) except -2
    cdef Py_ssize_t recv_into(self, int fd, char* buffer, Py_ssize_t size) except IO_RAISED
    cdef Py_ssize_t decrypt_into(self, char* buffer, Py_ssize_t size) except IO_RAISED
    cdef Py_ssize_t send_iov(self, int fd, iovec* iov, int count) except IO_RAISED
    cdef Py_ssize_t send_file(self, int fd, int file_fd, long* offset, int64_t remaining) except IO_RAISED
    cdef Py_ssize_t finish_batch(self, int fd) except IO_RAISED
    cdef Py_ssize_t encrypt_and_send(self, int fd, const char* data, Py_ssize_t n) except IO_RAISED
    cdef int send_cipher(self, int fd) except -1
    cdef int take_outgoing(self) except -1
    cdef int feed(self, const char* data, Py_ssize_t n) except -1
    cdef bint buffered(self) except -1
    cdef void close_notify(self, int fd) except *


@cython.final
cdef class Transport:
    """How bytes cross a client socket: plainly, or through the connection's
    TLSSession (tls), which then says whether the kernel may send a file's bytes as
    they are (can_sendfile)."""
    cdef int fd
    cdef bint can_sendfile
    # shutdown_write() was called: the peer has our end of stream
    cdef bint write_shut
    # the socket was passed to a sibling worker (HandOff.give): it lives on there
    cdef bint passed
    cdef TLSSession tls
    cdef inline Py_ssize_t recv_into(self, char* buffer, Py_ssize_t size) except IO_RAISED
    cdef inline Py_ssize_t recv_raw(self, char* buffer, Py_ssize_t size) except IO_RAISED
    cdef inline Py_ssize_t send_iov(self, iovec* iov, int count) except IO_RAISED
    cdef Py_ssize_t send_file(self, int file_fd, long* offset, int64_t remaining) except IO_RAISED
    cdef bint input_waiting(self) except -1
    cdef bint input_buffered(self) except -1
    cdef void tls_goodbye(self) noexcept
    cdef int send_raw(self, bytes data) except -1
    cdef int shutdown_write(self) except -1
    cdef void close(self) noexcept


@cython.final
cdef class BodyBuffer:
    cdef bytearray memory
    cdef object spool
    cdef Py_ssize_t threshold
    cdef object spool_dir
    cdef int64_t size
    cdef int append(self, const char* data, Py_ssize_t length) except -1
    cdef InputStream stream(self)


@cython.final
cdef class InputStream:
    cdef bytes data
    cdef Py_ssize_t position
    cdef object spool


cdef class ProxyHeader:
    cdef Py_ssize_t consumed
    cdef object client_addr
    cdef object client_port
    cdef str error


cdef class MetricsSlot:
    cdef object buffer
    cdef int64_t* counters


@cython.final
cdef class HeaderBlock:
    """A growable byte buffer for one status line and header section."""
    cdef char* data
    cdef Py_ssize_t length
    cdef Py_ssize_t capacity
    cdef int reserve(self, Py_ssize_t extra) except -1
    cdef inline int add(self, const char* text, Py_ssize_t n) except -1
    cdef inline int add_text(self, const char* text) except -1
    cdef inline int add_bytes(self, bytes data) except -1
    cdef int add_decimal(self, int64_t value) except -1
    cdef int add_latin1(self, object text, const unsigned char* allowed, str what) except -1
    cdef bytes take(self)


@cython.final
cdef class StartResponse:
    cdef object status
    cdef object headers
    cdef Exchange exchange
    cdef object write_callable
    cdef void reset(self) noexcept


cdef class EarlyHints:
    # the exchange whose app the loop calls (no threads), or the pool whose threads
    # say which exchange is theirs
    cdef Exchange exchange
    cdef AppPool pool


cdef class FileWrapper:
    cdef readonly object filelike
    cdef readonly Py_ssize_t blksize


@cython.final
cdef class Exchange:
    """One request and its response. One per connection, reused: reset() is the
    only place its fields return to their defaults."""
    cdef Connection conn

    # the request
    cdef dict environ
    cdef bint keep_alive
    cdef bint is_head
    cdef int version_minor
    cdef double request_start
    cdef int method_index
    cdef bint in_flight      # counted in the metrics' in-flight gauge

    # the request body, received whole before the app is called
    cdef BodyBuffer body_buffer
    # A Content-Length body small enough is received whole into the read buffer and
    # becomes one bytes object: no buffer object, no second copy.
    cdef bint body_in_place
    cdef object body_bytes
    # bytes of the worker's body memory budget this request holds (Protocol.body_memory)
    cdef Py_ssize_t body_memory
    # for the minimum upload rate: when the body began, and the bytes read since
    cdef double body_started_at
    cdef int64_t body_received

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
    cdef Framing framing
    cdef int64_t content_length_out
    cdef int64_t body_sent
    cdef object status_line
    cdef object response_headers
    # wsgi.file_wrapper over a regular file: sent with sendfile() after the headers
    cdef object file_obj
    cdef int file_fd
    cdef long file_offset
    cdef int64_t file_remaining

    # With threads (AppPool). Who may touch each field: "loop" — the loop's thread
    # alone; "mailbox" — either side, only under the Mailbox's lock; "thread" —
    # the pool thread that holds the exchange (between Mailbox.look_for_work and its
    # final post), read by the loop only after it took that post.
    cdef PoolState pool_state           # loop: RUNNING from submit until it takes the thread's
                                        # final post (then that outcome, then NONE); the
                                        # thread reads it (RUNNING) while it holds the exchange
    cdef PoolState outcome              # mailbox: what the last post said (RUNNING: news)
    cdef PoolThread thread              # mailbox: the thread running it (the long-request warning)
    cdef list chunks                    # mailbox: body bytes handed over, not yet taken by the loop
    cdef Py_ssize_t chunk_bytes         # mailbox: their size
    cdef list interim                   # mailbox: 103 Early Hints blocks, sent before the headers
    cdef list delivered                 # loop: the chunks of the last take, queued by send_posted
    cdef list delivered_interim         # loop: the hints of the last take
    cdef bint body_handed_over          # loop: a take brought body bytes (a thread may wait
                                        # for room: Protocol.sent_for_thread asks the mailbox)
    cdef bint posted                    # mailbox: in the pool → loop queue, not yet taken
    cdef Exchange next_posted           # mailbox: the next one in that queue
    cdef Exchange next_taken            # loop: the next one of the batch being served
    cdef bint abandoned                 # mailbox (written; the thread's reads may lag): the
                                        # connection closed under the thread, output dropped
    cdef PoolThread waiter              # mailbox: the thread waiting for room in the socket
    cdef bint socket_taken              # thread: the app used environ["gunicorn.socket"]
    cdef bint long_warned               # loop: the long-request warning was logged
    cdef double app_started             # loop

    cdef void reset(self) except *
    cdef void reset_pool_fields(self) noexcept
    cdef inline bint body_allowed(self) noexcept
    cdef int add_body(self, object chunk) except -1
    cdef int write_from_app(self, object data) except -1
    cdef int push_from_thread(self, object data, bint may_wait=*) except -1
    cdef void break_cycles(self) noexcept
    cdef void release_abandoned(self) except *
    cdef void close_result(self) except *
    cdef void close_iterable(self) except *


@cython.final
cdef class Connection(Handle):
    cdef Server server
    cdef Listener listener
    cdef Transport transport
    cdef Exchange exchange
    cdef str remote_addr
    cdef str remote_port
    cdef bint trusted_proxy
    # --protocol uwsgi: the peer is one of uwsgi_allow_ips (or a Unix socket's)
    cdef bint uwsgi_allowed
    cdef bint proxy_header_expected
    # environ["gunicorn.socket"] with threads, made at the connection's first request
    cdef ConnectionSocket app_socket

    # state
    cdef ConnectionState state
    cdef double deadline
    cdef double accepted_at
    # in Server.flush_queue: what is queued goes out at the end of this loop round
    cdef bint flush_scheduled
    cdef bint peer_closed
    cdef uint32_t interest

    # input
    # NULL for a plain connection with nothing unread; the server's read_buffer
    # while a read into it is answered (Protocol.on_readable)
    cdef char* rbuf
    cdef Py_ssize_t rcap
    cdef Py_ssize_t rlen
    cdef Py_ssize_t rstart
    cdef HeadParser head
    cdef BodyDecoder body

    # output
    cdef list out
    cdef Py_ssize_t out_head
    cdef Py_ssize_t out_offset
    cdef Py_ssize_t out_pending
    # PEP 3333 write() output past HIGH_WATERMARK goes to a temporary file that is
    # sent before `out` (as nginx buffers a slow client's response on disk): the
    # app runs on the loop, so write() must not wait for a client that reads
    # slowly or not at all. spool_fd is -1 while none is open; its bytes count in
    # out_pending.
    cdef object write_spool
    cdef int spool_fd
    # The response whose write() filled the spool is over: once sent, it is closed.
    cdef bint spool_sealed
    cdef long spool_sent
    cdef long spool_end
    # the shared metrics slot's counters, or NULL (Server.metrics)
    cdef int64_t* metrics

    cdef inline int enter(self, ConnectionState state) except -1
    cdef inline bint awaiting_head(self) noexcept
    cdef double app_deadline(self) noexcept
    cdef int ensure_room(self, Py_ssize_t wanted) except -1
    cdef int take_own_buffer(self, Py_ssize_t wanted) except -1
    cdef void shrink_buffer(self, Py_ssize_t capacity) noexcept
    cdef inline char* data(self) noexcept
    cdef inline void consume(self, Py_ssize_t n) noexcept
    cdef inline void queue(self, bytes data) noexcept
    cdef int flush(self) except -1
    cdef int flush_file(self) except -1
    cdef int move_to_spool(self) except -1
    cdef int flush_spool(self) except -1
    cdef void discard_spool(self) noexcept
    cdef void want(self, uint32_t interest) except *


@cython.final
cdef class ResponseWriter:
    """Encodes status lines and header sections (RFC 9112 §4, §5) and decides each
    response's framing; remembers the last response's encoded app headers."""
    cdef Server server
    cdef HeaderBlock block
    cdef bint send_server_header
    cdef bytes server_header
    cdef bytes date_header
    cdef long date_second
    # the last response's status line and app header lines, encoded (queue_headers)
    cdef object cached_status
    cdef list cached_headers
    cdef bytes cached_lines
    cdef int cached_code
    cdef int64_t cached_declared
    cdef bint cached_has_date
    cdef bint cached_has_server
    cdef bint cached_close
    # the whole head of the last answer in the common case (HTTP/1.1, keep-alive, not
    # HEAD, the app's own Content-Length), valid with these lines and this Date
    cdef bytes ready_head
    cdef bytes ready_head_date
    cdef Framing ready_framing

    cdef void refresh_date(self) except *
    cdef void queue_headers(self, Connection conn, int64_t known_length,
                            bint length_holds_for_head=*) except *
    cdef void encode_app_lines(self, HeaderBlock block, object status, object headers) except *
    cdef void queue_refusal(self, Connection conn, int status, str reason, bint head_request) except *
    cdef void queue_app_error(self, Connection conn) except *


cdef struct LineSegment:
    int kind                      # an AtomKind (loop/access_log.pxi)
    const char* text              # ATOM_TEXT: its UTF-8 bytes
    Py_ssize_t length
    PyObject* arg                 # an environ key, a field name, or a function
    PyObject* default             # the value when the environ or the fields lack it


@cython.final
cdef class AccessLineWriter:
    """Access log lines in gunicorn's format, rendered into one buffer and written
    once per loop iteration (loop/access_log.pxi)."""
    cdef HeaderBlock buffer
    # The compiled format, one segment per text or atom; keep holds what the
    # segments point to.
    cdef LineSegment* segments
    cdef Py_ssize_t count
    cdef list keep
    cdef object logger            # the access logger (logging.Logger)
    cdef object handler           # glogging.BatchingHandler, its one handler
    cdef object fallback          # glogging.Logger.access_line: the logging way
    cdef long clock_second          # the second clock_text was made in (time_t)
    cdef bytes clock_text
    # The status of the last line and its code: an app's status is most often
    # one constant str, so the code is found once.
    cdef object last_status
    cdef bytes last_code
    cdef bytes pid_text
    # The logger's handlers changed: every line now goes through fallback.
    cdef bint delegating
    # A line went through fallback; the handler holds it until write_out.
    cdef bint handler_pending
    # The handler's stream the lines go to, and this writer's copy of its descriptor.
    cdef object stream
    cdef int fd
    cdef bint shared_stream       # stdout or stderr: others write through it too
    cdef long checked_second      # when still_direct() last held

    cdef int add(self, dict environ, object status, object headers, int64_t sent,
                 double seconds) except -1
    cdef int delegate_line(self, dict environ, object status, object headers, object sent,
                           double seconds) except -1
    cdef int render_line(self, dict environ, object status, object headers, int64_t sent,
                         double seconds) except -1
    cdef inline int add_value(self, object value) except -1
    cdef int add_escaped(self, const char* chars, Py_ssize_t n) except -1
    cdef int add_other_value(self, object value) except -1
    cdef int add_request_line(self, dict environ) except -1
    cdef bint add_status_code(self, object status) except -1
    cdef bytes clock(self, object make_clock_text)
    cdef int add_duration(self, int kind, int64_t micros) except -1
    cdef int write_out(self) except -1
    cdef int start_delegating(self) except -1
    cdef int open_stream(self, object stream) except -1
    cdef bint still_direct(self) except -1


@cython.final
cdef class AppDriver:
    """Calls the app for an exchange whose request is complete, and pulls its body."""
    cdef Server server
    cdef object app
    cdef object error_log
    cdef EarlyHints early_hints
    cdef bint use_sendfile
    cdef object pre_request
    cdef object post_request
    cdef object access_log
    cdef object flush_access_log
    # access_log when it is the loop's own writer: called without a Python call.
    cdef AccessLineWriter access_writer
    cdef bint access_pending
    cdef object request_metrics
    # (status line, seconds) of the requests completed in this loop iteration, for
    # request_metrics; None when nobody asked.
    cdef list completed
    # The connection whose request the app is being called for, for abort_app_call.
    cdef Connection in_app
    # During a graceful stop, without threads: the longest app call since it began.
    cdef double stop_call_seconds

    cdef void call_app(self, Connection conn) except *
    cdef bint too_late_to_call(self, double now) noexcept
    cdef int set_input(self, Connection conn) except -1
    cdef int64_t sequence_length(self, object items) except -2
    cdef void produce(self, Connection conn, int64_t known_length) except *
    cdef inline bint may_sendfile(self, Exchange exchange, object result) noexcept
    cdef bint start_sendfile(self, Connection conn, FileWrapper wrapper) except -1
    cdef void send_file(self, Connection conn, FileWrapper wrapper) except *
    cdef void hand_to_pool(self, Connection conn) except *
    cdef void finish_response(self, Connection conn) except *
    cdef void app_failed(self, Connection conn) except *
    cdef void answer_app_error(self, Connection conn) except *
    cdef void request_done(self, Connection conn) except *
    cdef void report_request(self, Exchange exchange, double elapsed) except *
    cdef inline void end_in_flight(self, Exchange exchange) noexcept
    cdef void report_completed(self) except *
    cdef void write_access_line(self, Exchange exchange, int64_t sent, double elapsed) except *
    cdef void flush_access(self) except *
    cdef void run_hook(self, object hook, tuple args) except *
    cdef object abort_app_call(self, Connection conn)


@cython.final
cdef class Protocol:
    """The HTTP/1.1 state machine of every connection of a server."""
    cdef Server server
    cdef object error_log
    cdef double keepalive
    cdef double header_timeout
    cdef double io_timeout
    cdef double min_upload_rate
    cdef Py_ssize_t spool_threshold
    # Request bodies held in memory, summed over connections, and the bound on that
    # sum: past it, bodies are spooled from their first byte (unfinished bodies of
    # many clients must not add up to the worker's memory).
    cdef Py_ssize_t body_memory
    cdef Py_ssize_t body_memory_limit
    cdef object spool_dir
    # what a request may hold, normalized once; each connection's parsers copy it
    cdef Limits limits
    # where every connection's head parser writes a complete head's field spans:
    # a head is turned into its environ as soon as it is parsed (on_head), so one
    # array serves them all, and a connection holds none
    cdef FieldSpan* fields
    # forwarder_headers, upper-case, for the head parsers; None: none configured
    cdef frozenset forwarder_names
    # --protocol uwsgi: the reader of request packets (one per server: a packet is
    # read whole, at once); None: HTTP/1.1
    cdef UwsgiPacket uwsgi

    cdef void on_event(self, Connection conn, uint32_t events) except *
    cdef void on_readable(self, Connection conn) except *
    cdef void on_handshake_event(self, Connection conn) except *
    cdef void log_handshake_failure(self, Connection conn, TLSSession tls) except *
    cdef void on_event_in_app(self, Connection conn, uint32_t events) except *
    cdef void sent_for_thread(self, Connection conn) except *
    cdef void resume_body(self, Connection conn) except *
    cdef void drain_closing(self, Connection conn) except *
    cdef void drive(self, Connection conn) except *
    cdef void answer_requests(self, Connection conn) except *
    cdef bint read_proxy_header(self, Connection conn) except -1
    cdef void next_request(self, Connection conn) except *
    cdef inline double body_deadline(self, Connection conn) noexcept
    cdef bint read_uwsgi_packet(self, Connection conn) except -1
    cdef void on_head(self, Connection conn, Py_ssize_t head_length) except *
    cdef int begin_body(self, Connection conn, Py_ssize_t request_head_length,
                        const char* method, Py_ssize_t method_length, int body_kind,
                        int64_t length) except -1
    cdef void reserve_body_memory(self, Connection conn, int body_kind, int64_t length) except *
    cdef inline void release_body_memory(self, Exchange exchange) noexcept
    cdef void spool_failed(self, Connection conn, object error) except *
    cdef void reject(self, Connection conn, int status, str reason) except *
    cdef void close_gracefully(self, Connection conn) except *
    cdef void on_timeout(self, Connection conn) except *
    cdef void close(self, Connection conn) except *
    cdef void failed(self, Connection conn) except *


@cython.final
cdef class ConnectionSocket:
    """environ["gunicorn.socket"]: the connection's socket, made on first use."""
    cdef Connection conn
    cdef object sock


@cython.final
cdef class PoolThread:
    """One thread of the AppPool, and the lock it sleeps on (held while it runs)."""
    cdef AppPool pool
    cdef Mailbox mailbox
    cdef PyThread_type_lock lock
    # mailbox: the exchange it was woken with, and whether it counts in `waking`
    cdef Exchange job
    cdef bint counted
    cdef object thread
    cdef readonly object ident
    # thread: the exchange it runs now, for wsgi.early_hints called on this thread
    cdef Exchange current

    cdef Exchange next_job(self, bint* start_one)
    cdef void sleep(self) noexcept
    cdef void serve(self, Exchange exchange) except *
    cdef bint pull_body(self, Exchange exchange) except -1
    cdef void wait_for_room(self, Exchange exchange) except *
    cdef void wake(self) noexcept


@cython.final
cdef class Mailbox:
    """threads > 1: the loop <-> pool hand-off (loop/mailbox.pxi). Every field is
    read and written only under the lock (lock_word), by either side; posted_count
    is also read without it, atomically, by the loop's take."""
    cdef int lock_word
    # the server's eventfd, written when the pool → loop queue goes from empty to
    # non-empty; -1 before the loop opens it and once it closes
    cdef int wake_fd
    # loop → pool: exchanges submitted while no thread was free, oldest first from
    # backlog_head
    cdef list backlog
    cdef Py_ssize_t backlog_head
    # pool → loop: exchanges with news, oldest first, linked by Exchange.next_posted
    cdef Exchange posted_head
    cdef Exchange posted_tail
    cdef int posted_count
    # threads waiting for an exchange, the last to go idle last (the warmest is
    # taken): borrowed PoolThread pointers idle[:idle_count] (AppPool.threads holds
    # every thread for the pool's life)
    cdef void** idle
    cdef Py_ssize_t idle_count
    # threads woken from idle that have not looked for work yet
    cdef int waking
    # threads started that have not looked for work yet, threads started in all,
    # and the most there may be
    cdef int starting
    cdef int started
    cdef int size
    cdef bint closing
    # for tests and the curious: hand-offs each way, takes that found news, and
    # eventfd writes
    cdef readonly int64_t handed_to_pool
    cdef readonly int64_t handed_to_loop
    cdef readonly int64_t takes
    cdef readonly int64_t wakes

    cdef inline void lock(self) noexcept
    cdef inline void unlock(self) noexcept
    cdef int submit(self, Exchange exchange) except -1
    cdef Exchange take_posted(self)
    cdef bint room_made(self, Exchange exchange) noexcept
    cdef void abandon(self, Exchange exchange) noexcept
    cdef PoolThread thread_of(self, Exchange exchange)
    cdef void open(self, int wake_fd) noexcept
    cdef void close(self) noexcept
    cdef Exchange look_for_work(self, PoolThread pool_thread, bint* wait, bint* start_one)
    cdef void thread_started(self) noexcept
    cdef void start_failed(self) noexcept
    cdef void post(self, Exchange exchange, PoolState outcome) noexcept
    cdef Py_ssize_t push(self, Exchange exchange, bytes data) except -1
    cdef int push_interim(self, Exchange exchange, list hints) except -1
    cdef bint wait_registered(self, Exchange exchange, PoolThread pool_thread) noexcept
    cdef void post_locked(self, Exchange exchange, PoolState outcome) noexcept
    cdef inline Py_ssize_t pending_locked(self, Exchange exchange) noexcept
    cdef void wake_idle(self, Exchange job) noexcept
    cdef bint baton(self) noexcept
    cdef Exchange next_waiting(self)


@cython.final
cdef class AppPool:
    """threads > 1: the app runs on these threads (gunicorn's gthread), the loop keeps
    every socket. The loop submits an exchange whose request is complete; the
    thread posts it back, with body chunks as they come and once when done, all
    through the mailbox."""
    cdef Server server
    cdef AppDriver driver
    cdef Mailbox mailbox
    # the threads started so far (appended by whichever side starts one; a list's
    # own lock covers that without a GIL), for their names and lifetime
    cdef list threads
    # thread: PoolThread by thread ident, for wsgi.early_hints called on a pool
    # thread (written once by each thread for itself; a dict is safe to share)
    cdef dict by_ident

    cdef void start_thread(self) except *
    cdef void submit(self, Exchange exchange) except *
    cdef void take_completed(self) except *
    cdef void take(self, Exchange exchange) except *
    cdef void send_posted(self, Connection conn, Exchange exchange, PoolState state) except *
    cdef void resume(self, Exchange exchange) except *
    cdef void stop(self) except *
    cdef void report_long_request(self, Connection conn) except *


@cython.final
cdef class AppWatch:
    """No threads: a watcher thread that acts while the loop's thread is inside a long
    app call — sends the round's held answers and, with a HandOff, passes waiting
    connections to a sibling (loop/app_watch.pxi)."""
    cdef Server server
    # Shared with the watcher thread (atomics, includes/watch.h): `calls` is odd
    # while the loop's thread is in an app call; `parked` while the watcher sleeps
    # on wake_fd; `stopped` ends it.
    cdef int calls
    cdef int parked
    cdef int stopped
    # the loop's own copy of `calls` (it is the only writer)
    cdef int calls_by_loop
    cdef int wake_fd
    # the loop's epoll, which the watcher polls (never waits on) for ready connections
    cdef int epfd
    # the watcher, once started (AppWatch.start); `unavailable` after one try
    cdef object thread
    cdef bint unavailable

    cdef void start(self) noexcept
    cdef void stop(self) except *
    cdef inline void entered(self) noexcept
    cdef inline void left(self) noexcept
    cdef void act(self, int calls, bint first) noexcept
    cdef void send_held(self) except *


@cython.final
cdef class HandOff:
    """Passes connections waiting behind a long app call to the channel every worker
    of the master shares, and takes in what siblings passed (loop/handoff.pxi)."""
    cdef Server server
    cdef object channel          # (send end, receive end): a SOCK_SEQPACKET socketpair
    cdef int send_fd
    cdef int recv_fd
    # the listeners as the master made them, in its order: a message names one by index
    cdef list listeners
    cdef Handle handle
    cdef bint registered
    # a stopping worker has taken in what the channel held (Server.drain_for_stop)
    cdef bint drained
    # connections passed to siblings so far
    cdef readonly int64_t given

    cdef void register(self) except *
    cdef void unregister(self) noexcept
    cdef Py_ssize_t take(self, Py_ssize_t most) except -1
    cdef void give_waiting(self) except *
    cdef inline bint movable(self, Connection conn) noexcept
    cdef bint give(self, Connection conn) except -1


@cython.final
cdef class Server:
    cdef object options
    cdef object hooks
    cdef object error_log
    cdef list listeners
    cdef int epfd
    cdef int waker_fd
    cdef Handle waker
    cdef dict connections
    # what every plain connection reads into when it holds no buffer of its own
    # (READ_BUFFER_INITIAL bytes); what is left unanswered moves out of it
    cdef char* read_buffer
    cdef Protocol protocol
    cdef AppDriver driver
    cdef ResponseWriter writer
    # threads > 1: where the app runs; None: on the loop's thread
    cdef AppPool pool
    # without threads: the watcher acting while an app call runs long; else None
    cdef AppWatch app_watch
    # without threads, when siblings share a hand-off channel; else None
    cdef HandOff handoff
    # While a round's events are handled, answers are queued and their connections
    # listed here; they are sent together once the round's requests are answered.
    # A client asleep in its poll is woken once for them instead of once each
    # (a wake-up of a sleeping peer is the costliest part of a send on loopback,
    # and more so in a VM), and no answer waits past the round it was made in, nor
    # longer than ANSWER_HOLD_US when the round's app calls take time (no threads).
    cdef bint deferring_flushes
    cdef list flush_queue
    # Connections closed this round, alive until it ends (Server.forget).
    cdef list retired
    # seconds after which a request still running on a pool thread is logged with its stack
    cdef double app_timeout

    cdef double now
    cdef double next_tick
    cdef double graceful_timeout
    cdef Py_ssize_t worker_connections
    cdef int64_t max_requests
    cdef readonly int64_t requests_served
    cdef AllowList forwarded_allow
    cdef bint proxy_protocol
    cdef AllowList proxy_allow
    # --protocol uwsgi: the front ends allowed to send packets; None: HTTP/1.1
    cdef AllowList uwsgi_allow

    cdef bint running
    cdef bint stopping
    cdef bint stop_now
    cdef double stop_deadline
    cdef bint accepting
    cdef int accept_batch
    # During a graceful stop with a shared listener: how many more connections this
    # worker may take from it (the queue's length when the stop began); -1 before.
    cdef Py_ssize_t stop_accepts_left
    # During a graceful stop: when the listeners close (0 before it is known). Where
    # they close for good (sockets.mark_closing_for_good), the handshakes still in
    # flight are taken in until then, HANDSHAKE_LINGER_MS from the release.
    cdef double listeners_close_at
    cdef uint32_t listener_events
    # At capacity, the connections that may be closed for a new one, best victim last;
    # rescanned at most every SHED_RESCAN seconds.
    cdef list shed_candidates
    cdef double shed_scanned_at
    cdef double accept_resume_at
    cdef object on_tick
    # The shared metrics slot's counters, or NULL: metrics are off.
    cdef MetricsSlot metrics_slot
    cdef int64_t* metrics

    cdef void open(self) except *
    cdef void resume_accepting(self) except *
    cdef void pause_accepting(self) except *
    cdef void serve(self) except *
    cdef bint answers_overdue(self) noexcept
    cdef void flush_held(self) except *
    cdef void flush_round(self) except *
    cdef bint drain_for_stop(self) except -1
    cdef void release_listeners(self) except *
    cdef bint refuse_handshakes_for_good(self) except -1
    cdef int stop_wait_ms(self) noexcept
    cdef bint keep_accepting_for_stop(self) except -1
    cdef Py_ssize_t queued_connections(self) except -2
    cdef void accept_backlog(self) except *
    cdef void tick(self) except *
    cdef void accept(self, Listener listener) except *
    cdef bint shed_one(self) except -1
    cdef inline bint uploading_slowly(self, Connection conn) noexcept
    cdef void scan_shed_candidates(self) except *
    cdef Connection add_connection(self, Listener listener, int fd, sockaddr_storage* address)
    cdef void unwatch(self, Connection conn) noexcept
    cdef void forget(self, Connection conn) except *
    cdef void close_all(self) except *
