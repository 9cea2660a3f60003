# The HTTP/1.1 connection state machine (RFC 9112): reads, parses, refuses,
# times out and closes; the app is called through the AppDriver. Included into
# _loop.pyx; the class is declared in _loop.pxd, whose header holds the state table.


cdef class Protocol:

    def __cinit__(self, Server server, object options):
        self.server = server
        self.error_log = server.error_log
        self.keepalive = options.keepalive
        self.header_timeout = options.header_timeout
        self.io_timeout = options.io_timeout
        self.min_upload_rate = options.min_upload_rate
        self.spool_threshold = options.spool_threshold
        self.body_memory_limit = options.body_memory_limit
        self.spool_dir = options.spool_dir
        normalize_limits(&self.limits, options)
        self.fields = <FieldSpan*>malloc(sizeof(FieldSpan) * self.limits.fields)
        if self.fields == NULL:
            raise MemoryError()
        names = frozenset([name.strip().upper() for name in options.forwarder_headers if name.strip()])
        self.forwarder_names = names or None
        if options.protocol == "uwsgi":
            self.uwsgi = UwsgiPacket.__new__(UwsgiPacket)
            self.uwsgi.configure(&self.limits)

    def __dealloc__(self):
        free(self.fields)

    # -- events ------------------------------------------------------------

    cdef void on_event(self, Connection conn, uint32_t events) except *:
        if conn.state == STATE_CLOSED:
            return
        if conn.state == STATE_APP:
            self.on_event_in_app(conn, events)
            return
        if conn.state == STATE_HANDSHAKE:
            self.on_handshake_event(conn)
            return
        if events & EPOLLOUT:
            self.drive(conn)
            if conn.state == STATE_CLOSED:
                return
        if events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR):
            if conn.interest & EPOLLIN or events & (EPOLLHUP | EPOLLERR):
                self.on_readable(conn)

    cdef void on_handshake_event(self, Connection conn) except *:
        """TLS: the PROXY header first, if one is expected (it is plain bytes on the
        raw stream), then the handshake, a step at a time."""
        cdef TLSSession tls = conn.transport.tls
        cdef Py_ssize_t n
        cdef int step
        if conn.proxy_header_expected:
            n = conn.transport.recv_raw(conn.rbuf + conn.rlen, conn.rcap - conn.rlen)
            if n == IO_BLOCKED:
                return
            if n <= 0:
                self.close(conn)
                return
            conn.rlen += n
            self.read_proxy_header(conn)
            if conn.state == STATE_CLOSED:
                return
            if conn.exchange.response_done:
                # Refused: answered in plain HTTP to the proxy, as without TLS.
                conn.transport.tls = None
                self.drive(conn)
                return
            if conn.proxy_header_expected:
                return   # not complete yet
            # What came after the header is the start of the handshake.
            tls.feed(conn.data(), conn.rlen)
            conn.consume(conn.rlen)
        step = tls.handshake(conn.fd)
        if step == HANDSHAKE_DONE:
            conn.enter(STATE_HEAD)
            conn.want(EPOLLIN | EPOLLRDHUP)
            # A request that came with the client's last handshake flight is read now.
            self.on_readable(conn)
        elif step == HANDSHAKE_WANTS_READ:
            conn.want(EPOLLIN | EPOLLRDHUP)
        elif step == HANDSHAKE_WANTS_WRITE:
            conn.want(EPOLLOUT)
        elif step == HANDSHAKE_PLAINTEXT:
            # nginx's answer to the same mistake: plain HTTP, then the connection closes.
            self.error_log.debug("plain HTTP from %s on a TLS port", conn.remote_addr)
            conn.transport.send_raw(PLAIN_HTTP_ON_TLS_PORT)
            conn.transport.tls = None
            self.close_gracefully(conn)
        else:
            self.log_handshake_failure(conn, tls)
            self.close(conn)

    cdef void log_handshake_failure(self, Connection conn, TLSSession tls) except *:
        # gunicorn's workers hand an SSLError from the handshake to handle_error, a
        # WARNING "Invalid request from ip=...: [SSL: ...] ..."; an EOF in the middle
        # of it (SSL_ERROR_EOF) and a closed or reset socket are only debug lines.
        cdef object error = tls.error
        if isinstance(error, tls.context.ssl_error) and not isinstance(error, tls.context.eof_error):
            self.error_log.warning("Invalid request from ip=%s: %s", conn.remote_addr, error)
        else:
            self.error_log.debug("TLS handshake with %s failed: %s", conn.remote_addr, error)

    cdef void on_event_in_app(self, Connection conn, uint32_t events) except *:
        """While a pool thread runs the app: the socket takes more of what it handed
        over, or the client is gone. Bytes of a next request wait in the kernel:
        reading is paused on the first sign of them."""
        if events & (EPOLLHUP | EPOLLERR):
            self.close(conn)
            return
        if events & EPOLLOUT:
            self.drive(conn)
            if conn.state != STATE_APP:
                return
        if events & (EPOLLIN | EPOLLRDHUP):
            conn.want(conn.interest & EPOLLOUT)

    cdef void on_readable(self, Connection conn) except *:
        cdef Py_ssize_t n, room
        cdef char* shared = self.server.read_buffer
        if conn.state == STATE_CLOSING:
            self.drain_closing(conn)
            return
        if conn.rbuf == NULL:
            # A plain connection with nothing unread holds no read buffer: its bytes
            # land in the server's, and only what is left unanswered moves to one of
            # its own (an idle keep-alive connection costs its objects, not a
            # buffer's pages).
            conn.rbuf = shared
            conn.rcap = READ_BUFFER_INITIAL
        elif conn.rstart or conn.rlen == conn.rcap:
            # compacts the unread bytes to the front, and grows a full buffer
            conn.ensure_room(1)
        room = conn.rcap - conn.rstart - conn.rlen
        n = conn.transport.recv_into(conn.rbuf + conn.rstart + conn.rlen, room)
        if n == IO_BLOCKED:
            if conn.rbuf == shared:
                # Taken by this call (only a connection without a buffer takes it,
                # and one without a buffer has nothing unread): nothing to keep.
                conn.rbuf = NULL
                conn.rcap = 0
            return
        if n == IO_FAILED:
            self.close(conn)
            return
        if n == 0:
            conn.peer_closed = True
            if conn.rlen == 0 or (conn.state != STATE_HEAD and conn.state != STATE_IDLE):
                self.close(conn)
                return
        else:
            if conn.state == STATE_IDLE:
                # A new request begins: it gets header_timeout, from now.
                conn.enter(STATE_HEAD)
            elif conn.state == STATE_BODY:
                conn.exchange.body_received += n
                conn.deadline = self.body_deadline(conn)
            conn.rlen += n
            if conn.metrics != NULL:
                conn.metrics[M_BYTES_IN] += n
        self.drive(conn)
        # (close() lets go of it too, when drive closed the connection)
        if conn.rbuf == shared:
            if conn.rlen:
                conn.take_own_buffer(0)
            else:
                conn.rbuf = NULL
                conn.rcap = 0

    cdef void resume_body(self, Connection conn) except *:
        """Pulls more of a response's body from the app's iterable (no threads): an
        app call like the first, which AppWatch sees as one."""
        cdef AppWatch watch = self.server.app_watch
        cdef AppDriver driver = self.server.driver
        driver.in_app = conn
        if watch is not None:
            watch.entered()
        try:
            driver.produce(conn, -1)
        except Exception:
            driver.app_failed(conn)
        finally:
            if watch is not None:
                watch.left()
            driver.in_app = None

    cdef void drain_closing(self, Connection conn) except *:
        cdef char sink[4096]
        cdef Py_ssize_t n
        while True:
            n = conn.transport.recv_into(sink, sizeof(sink))
            if n > 0:
                continue
            if n == IO_BLOCKED:
                return
            self.close(conn)
            return

    cdef void drive(self, Connection conn) except *:
        """Answers what the read buffer holds, sends what is queued, and picks
        what to wait for next.  Iterative, so no client can deepen the stack."""
        cdef Exchange exchange = conn.exchange
        cdef int outcome
        while True:
            self.answer_requests(conn)
            if conn.state == STATE_CLOSED:
                return
            if conn.out_pending or exchange.file_remaining:
                if self.server.deferring_flushes:
                    if not self.server.answers_overdue():
                        # Sent with the round's other answers, at its end (Server.serve).
                        if not conn.flush_scheduled:
                            conn.flush_scheduled = True
                            self.server.flush_queue.append(conn)
                        return
                    # The app held the round: what is held goes now, this answer with it.
                    conn.flush_scheduled = False
                    self.server.flush_held()
                    if conn.state == STATE_CLOSED:
                        return
                outcome = conn.flush()
                if outcome == FLUSH_FAILED:
                    self.close(conn)
                    return
                if outcome == FLUSH_BLOCKED:
                    # io_timeout counts from the last progress, which this flush was
                    conn.deadline = self.server.now + self.io_timeout
                    conn.want(EPOLLOUT)
                    return
            if conn.state == STATE_APP:
                self.sent_for_thread(conn)
                return
            if conn.state == STATE_RESPONSE:
                if not exchange.response_done:
                    # Backpressure: the socket took everything, so ask the app for more.
                    self.resume_body(conn)
                    if conn.state == STATE_CLOSED:
                        return
                    continue
                if not exchange.keep_alive:
                    exchange.close_result()
                    self.close_gracefully(conn)
                    return
                self.next_request(conn)
                continue
            if conn.state == STATE_CLOSING:
                return
            conn.want(EPOLLIN | EPOLLRDHUP)
            if conn.transport.input_buffered():
                # TLS holds bytes the socket no longer shows: epoll would not say so.
                self.on_readable(conn)
            return

    cdef void sent_for_thread(self, Connection conn) except *:
        """In APP, everything handed over is sent: the thread may produce more, and
        the deadline is the app's again."""
        cdef Exchange exchange = conn.exchange
        cdef AppPool pool = self.server.pool
        # Only a thread that handed over body bytes can wait for room, or park.
        if (exchange.body_handed_over and pool.mailbox.room_made(exchange)
                and exchange.pool_state == POOL_PARKED):
            # (PARKED in the loop's view: the thread's post was taken, so no thread
            # has the exchange and none has it posted)
            pool.resume(exchange)
        if conn.interest & EPOLLOUT:
            conn.want(conn.interest & ~EPOLLOUT)
        conn.deadline = conn.app_deadline()

    # -- requests ------------------------------------------------------------

    cdef void answer_requests(self, Connection conn) except *:
        """Parses and answers every complete request in the read buffer.

        Responses of pipelined requests are queued back to back and leave in
        one sendmsg(), as long as they stay under HIGH_WATERMARK.
        """
        cdef Exchange exchange = conn.exchange
        cdef Py_ssize_t consumed, decoded = 0
        while True:
            if conn.state == STATE_HEAD:
                if conn.rlen == 0:
                    return
                if conn.proxy_header_expected and not self.read_proxy_header(conn):
                    return
                if self.uwsgi is not None:
                    if not self.read_uwsgi_packet(conn):
                        return
                else:
                    consumed = conn.head.parse(conn.data(), conn.rlen)
                    if consumed == PARSE_INCOMPLETE:
                        if conn.peer_closed:
                            self.close(conn)
                        return
                    if consumed < 0:
                        self.reject(conn, conn.head.error_status, conn.head.error_reason)
                        return
                    self.on_head(conn, consumed)
            if conn.state == STATE_BODY:
                if exchange.body_in_place and conn.rlen < conn.body.remaining:
                    if conn.peer_closed:
                        self.close(conn)
                    return
                consumed = conn.body.decode(conn.data(), conn.rlen, &decoded)
                if consumed < 0:
                    self.reject(conn, conn.body.error_status, conn.body.error_reason)
                    return
                if decoded:
                    if exchange.body_in_place:
                        exchange.body_bytes = PyBytes_FromStringAndSize(conn.data(), decoded)
                    else:
                        try:
                            exchange.body_buffer.append(conn.data(), decoded)
                        except OSError as error:
                            self.spool_failed(conn, error)
                            return
                conn.consume(consumed)
                if not conn.body.done():
                    if conn.peer_closed:
                        self.close(conn)
                    return
                self.server.driver.call_app(conn)
                if conn.state == STATE_CLOSED:
                    return
            if conn.state != STATE_RESPONSE:
                return
            if not (exchange.response_done and exchange.keep_alive and exchange.file_remaining == 0
                    and conn.out_pending < HIGH_WATERMARK):
                return
            if conn.rlen and self.server.answers_overdue():
                # The app took long: the answers queued so far go (drive) before the
                # next request is answered.
                if not self.server.deferring_flushes:
                    self.server.now = monotonic()
                return
            self.next_request(conn)

    cdef bint read_proxy_header(self, Connection conn) except -1:
        """Takes a PROXY header off the front of the connection; False while incomplete or refused."""
        cdef ProxyHeader header = parse_proxy_header(conn.data(), conn.rlen)
        if header is None:
            if conn.peer_closed:
                self.close(conn)
            return False
        conn.proxy_header_expected = False
        if header.error is not None:
            self.reject(conn, 400, header.error)
            return False
        if header.client_addr is not None:
            conn.remote_addr = header.client_addr
            conn.remote_port = header.client_port
        conn.consume(header.consumed)
        return conn.rlen > 0

    cdef bint read_uwsgi_packet(self, Connection conn) except -1:
        """--protocol uwsgi: the request packet at the front of the read buffer
        becomes the exchange's environ; False while incomplete or refused."""
        cdef UwsgiPacket packet = self.uwsgi
        cdef Exchange exchange = conn.exchange
        cdef char* request_bytes = conn.data()
        cdef Py_ssize_t size
        cdef UwsgiVar* method
        if not conn.uwsgi_allowed:
            # gunicorn's check and answer (uwsgi_allow_ips; Unix sockets are allowed)
            self.reject(conn, 403, f"uwsgi request from {conn.remote_addr!r} not allowed")
            return False
        size = packet.parse(request_bytes, conn.rlen)
        if size == PARSE_INCOMPLETE:
            if conn.peer_closed:
                self.close(conn)
            return False
        if size < 0:
            self.reject(conn, packet.error_status, packet.error_reason)
            return False
        exchange.is_head = packet.head_request
        exchange.environ = conn.listener.environ_builder.build_uwsgi(
            packet, request_bytes, conn.remote_addr, conn.remote_port)
        if exchange.environ is None:
            self.reject(conn, conn.listener.environ_builder.refusal_status,
                        conn.listener.environ_builder.refusal_reason)
            return False
        # The response goes to the front end, which frames it for its client:
        # its body is never chunked (nginx would pass the chunks on as content),
        # and without a Content-Length it ends when the connection does. An
        # answer to HEAD too: nginx reads one until the connection closes.
        exchange.version_minor = 0
        exchange.keep_alive = self.keepalive > 0 and not packet.head_request
        method = &packet.vars[packet.method_var]
        self.begin_body(conn, size, request_bytes + method.value.off, method.value.len,
                        BODY_LENGTH if packet.content_length else BODY_NONE,
                        packet.content_length)
        return True

    cdef void next_request(self, Connection conn) except *:
        """The response is complete and the connection stays open: expect the next request."""
        conn.exchange.reset()
        if conn.rlen == 0 and conn.rbuf != self.server.read_buffer:
            if conn.transport.tls is None:
                # Its next bytes land in the server's buffer (on_readable).
                free(conn.rbuf)
                conn.rbuf = NULL
                conn.rcap = 0
                conn.rstart = 0
            elif conn.rcap > READ_BUFFER_INITIAL:
                # A large body grew the buffer; an idle connection keeps only a small one.
                conn.shrink_buffer(READ_BUFFER_INITIAL)
        conn.enter(STATE_HEAD if conn.rlen else STATE_IDLE)

    cdef double body_deadline(self, Connection conn) noexcept:
        """io_timeout from the last progress, and, with a minimum rate, no later than
        io_timeout plus one second per min_upload_rate bytes since the body began
        (Apache mod_reqtimeout's MinRate): a trickle of bytes cannot hold a
        connection open indefinitely by re-arming the timeout with each one."""
        cdef Exchange exchange = conn.exchange
        cdef double deadline = self.server.now + self.io_timeout
        cdef double allowed
        if self.min_upload_rate > 0:
            allowed = (exchange.body_started_at + self.io_timeout
                       + exchange.body_received / self.min_upload_rate)
            if allowed < deadline:
                return allowed
        return deadline

    cdef void on_head(self, Connection conn, Py_ssize_t head_length) except *:
        cdef Exchange exchange = conn.exchange
        cdef HeadParser head = conn.head
        cdef int64_t length = head.content_length
        cdef char* request_bytes = conn.data()
        cdef double now = self.server.now
        cdef EnvironBuilder builder = conn.listener.environ_builder
        exchange.environ = builder.build(head, request_bytes, conn.remote_addr, conn.remote_port,
                                         conn.trusted_proxy)
        if exchange.environ is None:
            # What a trusted proxy's headers say cannot be served (gunicorn's answers,
            # and its warning, the 500 of a misplaced mount point included).
            if builder.refusal_status >= 500:
                self.error_log.warning("Invalid request from ip=%s: %s", conn.remote_addr,
                                       builder.refusal_reason)
            self.reject(conn, builder.refusal_status, builder.refusal_reason)
            return
        exchange.keep_alive = head.keep_alive and self.keepalive > 0
        exchange.version_minor = head.version_minor
        exchange.is_head = head.head_request
        # What follows is begin_body's, written out: HTTP/1.1 heads are the hot
        # path, and the call is instructions bench/callgrind.py counts.
        exchange.request_start = now
        if conn.metrics != NULL:
            exchange.method_index = method_index(request_bytes + head.method.off, head.method.len)
            exchange.in_flight = True
            conn.metrics[M_IN_FLIGHT] += 1
        conn.consume(head_length)
        head.reset()
        conn.body.start(head.body_kind, length)
        if head.body_kind != BODY_NONE:
            self.reserve_body_memory(conn, head.body_kind, length)
        conn.enter(STATE_BODY)
        exchange.body_started_at = now
        # what came in with the head counts toward the upload's rate
        exchange.body_received = conn.rlen
        if head.expect_continue and head.body_kind != BODY_NONE and conn.rlen == 0:
            # RFC 9110 §10.1.1: the head passed every check, so invite the body.
            conn.queue(CONTINUE_100)

    cdef int begin_body(self, Connection conn, Py_ssize_t request_head_length,
                        const char* method, Py_ssize_t method_length, int body_kind,
                        int64_t length) except -1:
        """The request's head (``request_head_length`` bytes) is read and its environ
        made: its body is received next, framed as ``body_kind`` says. (on_head has
        its own copy, for HTTP/1.1's hot path.)"""
        cdef Exchange exchange = conn.exchange
        cdef double now = self.server.now
        exchange.request_start = now
        if conn.metrics != NULL:
            exchange.method_index = method_index(method, method_length)
            exchange.in_flight = True
            conn.metrics[M_IN_FLIGHT] += 1
        conn.consume(request_head_length)
        conn.body.start(body_kind, length)
        if body_kind != BODY_NONE:
            self.reserve_body_memory(conn, body_kind, length)
        conn.enter(STATE_BODY)
        exchange.body_started_at = now
        # what came in with the head counts toward the upload's rate
        exchange.body_received = conn.rlen
        return 0

    cdef void reserve_body_memory(self, Connection conn, int body_kind, int64_t length) except *:
        """Where this body is received: whole into the read buffer, into a buffer that
        spools past spool_threshold, or, with the worker's body memory spent, into a
        spool file from the first byte."""
        cdef Exchange exchange = conn.exchange
        cdef Py_ssize_t wanted = self.spool_threshold
        if body_kind == BODY_LENGTH and length <= self.spool_threshold:
            wanted = <Py_ssize_t>length
        if self.body_memory_limit and self.body_memory + wanted > self.body_memory_limit:
            exchange.body_in_place = False
            exchange.body_buffer = BodyBuffer(0, self.spool_dir)
            return
        exchange.body_memory = wanted
        self.body_memory += wanted
        exchange.body_in_place = body_kind == BODY_LENGTH and length <= self.spool_threshold
        if exchange.body_in_place:
            if conn.rlen < length:
                conn.ensure_room(<Py_ssize_t>length - conn.rlen)
        else:
            exchange.body_buffer = BodyBuffer(self.spool_threshold, self.spool_dir)

    cdef void release_body_memory(self, Exchange exchange) noexcept:
        self.body_memory -= exchange.body_memory
        exchange.body_memory = 0

    cdef void spool_failed(self, Connection conn, object error) except *:
        """The request body could not be stored (disk full, out of descriptors, I/O
        error): this request is refused and its connection closed; the worker serves on."""
        cdef int status = 413 if error.errno in (errno_module.ENOSPC, errno_module.EDQUOT,
                                                   errno_module.EFBIG) else 503
        self.error_log.error("cannot store the request body from %s: %s", conn.remote_addr, error)
        if conn.exchange.body_buffer is not None:
            conn.exchange.body_buffer.discard()
            conn.exchange.body_buffer = None
        self.reject(conn, status, f"request body could not be stored: {error.strerror or error}")

    cdef void reject(self, Connection conn, int status, str reason) except *:
        """Answers a request that cannot be served with ``status``, then closes."""
        cdef Exchange exchange = conn.exchange
        cdef bint head_request
        if conn.metrics != NULL:
            count_refusal(conn.metrics, status)
            self.server.driver.end_in_flight(exchange)
        if status == 408 or (status >= 500 and status != 501):
            # Slow clients and our own storage failures (logged where they happen);
            # a 501 is the client's (a transfer coding, a uwsgi packet type unknown).
            self.error_log.debug("refused request from %s: %d %s", conn.remote_addr, status, reason)
        else:
            # gunicorn's handle_error: a malformed request is a WARNING, seen by default.
            self.error_log.warning("Invalid request from ip=%s: %s", conn.remote_addr, reason)
        # RFC 9110 §9.3.2: an answer to HEAD has no content, refusals included; the
        # method is known once the request line passed, and only then.
        head_request = exchange.is_head if conn.state == STATE_BODY else conn.head.head_request
        self.server.writer.queue_refusal(conn, status, reason, head_request)
        exchange.keep_alive = False
        exchange.response_done = True
        conn.enter(STATE_RESPONSE)

    # -- closing -----------------------------------------------------------

    cdef void close_gracefully(self, Connection conn) except *:
        # RFC 9112 §9.6: close the write side first and drain the input, so
        # unread request bytes do not turn our last response into an RST.
        if conn.peer_closed:
            self.close(conn)
            return
        conn.transport.shutdown_write()
        conn.enter(STATE_CLOSING)
        conn.want(EPOLLIN | EPOLLRDHUP)
        self.drain_closing(conn)

    cdef void on_timeout(self, Connection conn) except *:
        if ((conn.state == STATE_IDLE or (conn.state == STATE_HEAD and not conn.rlen))
                and conn.transport.input_waiting()):
            # The request came in time but the loop has not read it yet: it was in
            # an app call (no threads) when the bytes arrived. Closing now would
            # lose a request the client sent on a connection still open.
            self.on_readable(conn)
            return
        if conn.state == STATE_HANDSHAKE:
            self.error_log.debug("TLS handshake with %s not done in time", conn.remote_addr)
            self.close(conn)
            return
        if conn.state == STATE_HEAD and conn.rlen:
            self.reject(conn, 408, "request head not received in time")
            self.drive(conn)
            return
        if conn.state == STATE_BODY:
            self.reject(conn, 408, "request body not received in time")
            self.drive(conn)
            return
        if conn.state == STATE_APP and not conn.interest & EPOLLOUT:
            self.server.pool.report_long_request(conn)
            return
        if conn.state == STATE_RESPONSE or conn.state == STATE_APP:
            self.error_log.info("closing connection from %s: no write progress in %.0fs",
                                conn.remote_addr, self.io_timeout)
        self.close(conn)

    cdef void close(self, Connection conn) except *:
        cdef Exchange exchange = conn.exchange
        if conn.state == STATE_CLOSED:
            return
        if (conn.state == STATE_RESPONSE or conn.state == STATE_APP) and not exchange.response_done:
            # PEP 3333: close() is called even when the client went away.
            self.error_log.debug("client %s went away mid-response", conn.remote_addr)
        if exchange.pool_state == POOL_RUNNING:
            # A pool thread still has it: it stops at its next chunk or write() (or
            # when it wakes, if it waits for room), calls close() there and posts the
            # exchange back, when AppPool.take lets it go.
            self.server.pool.mailbox.abandon(exchange)
        exchange.close_result()
        if exchange.body_memory:
            self.release_body_memory(exchange)
        if exchange.body_buffer is not None:
            exchange.body_buffer.discard()
            exchange.body_buffer = None
        conn.enter(STATE_CLOSED)
        if conn.rbuf == self.server.read_buffer:
            conn.rbuf = NULL   # the server's, not this connection's to free
            conn.rlen = 0
        if conn.metrics != NULL:
            conn.metrics[M_OPEN_CONNECTIONS] -= 1
            self.server.driver.end_in_flight(exchange)
        conn.discard_spool()
        # epoll watches the open file description, not the descriptor: a duplicate
        # (gunicorn.socket, or a child the app forked) would keep the registration,
        # and its events, alive after close(). It goes first.
        self.server.unwatch(conn)
        conn.transport.close()
        conn.out = None
        if conn.app_socket is not None:
            conn.app_socket.conn = None
            conn.app_socket = None
        if not exchange.abandoned:
            # (an abandoned exchange's thread still uses them: AppPool.take breaks them)
            exchange.break_cycles()
        self.server.forget(conn)

    cdef void failed(self, Connection conn) except *:
        """An unexpected error while serving one connection: it alone is closed."""
        self.error_log.exception("Error serving connection from %s; closing it", conn.remote_addr)
        self.close(conn)

