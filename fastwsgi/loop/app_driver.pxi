# Calling the WSGI app (PEP 3333) for a complete request, pulling its body under
# backpressure, and reporting the completed request to the access log, the hooks
# and the metrics. Included into _loop.pyx; the class is declared in _loop.pxd.


cdef class AppDriver:

    def __cinit__(self, Server server, object app, object options, object hooks):
        self.server = server
        self.app = app
        self.error_log = server.error_log
        self.early_hints = EarlyHints()
        self.use_sendfile = options.sendfile
        self.pre_request = hooks.pre_request
        self.post_request = hooks.post_request
        self.access_log = hooks.access_log
        self.flush_access_log = hooks.flush_access_log
        if type(self.access_log) is AccessLineWriter:
            self.access_writer = self.access_log
        self.request_metrics = hooks.request_metrics
        self.completed = [] if self.request_metrics is not None else None

    cdef void call_app(self, Connection conn) except *:
        cdef Exchange exchange = conn.exchange
        cdef object result
        cdef int64_t known_length = -1
        cdef double began = 0
        cdef AppWatch watch = self.server.app_watch
        if exchange.body_memory:
            self.server.protocol.release_body_memory(exchange)
        if self.set_input(conn) < 0:
            return
        if self.server.stopping:
            exchange.keep_alive = False
            began = monotonic()
            if self.too_late_to_call(began):
                self.server.protocol.reject(conn, 503, "the server is stopping")
                return
        if self.server.pool is not None:
            self.hand_to_pool(conn)
            return
        conn.enter(STATE_RESPONSE)
        if self.pre_request is not None:
            self.run_hook(self.pre_request, (exchange.environ,))
        self.early_hints.exchange = exchange
        self.in_app = conn
        if watch is not None:
            watch.entered()
        try:
            result = self.app(exchange.environ, exchange.responder)
            exchange.result = result
            if self.may_sendfile(exchange, result) and self.start_sendfile(conn, <FileWrapper>result):
                self.finish_response(conn)
            else:
                if type(result) is list or type(result) is tuple:
                    known_length = self.sequence_length(result)
                else:
                    exchange.iterator = iter(result)
                self.produce(conn, known_length)
        except Exception:
            self.app_failed(conn)
        finally:
            if watch is not None:
                watch.left()
        self.in_app = None
        if began:
            # The longest call since the stop began: what the next one may need.
            self.stop_call_seconds = max(self.stop_call_seconds, monotonic() - began)

    cdef bint too_late_to_call(self, double now) noexcept:
        """During a graceful stop: whether an app call begun now would likely outlast
        the graceful timeout (by the longest call made since the stop began) and be
        cut short by the master's SIGKILL, and every request queued behind it lost.
        The client hears so now (503, Connection: close) and may retry elsewhere."""
        return now + self.stop_call_seconds >= self.server.stop_deadline - STOP_REFUSE_MARGIN_MS / 1000.0

    cdef void hand_to_pool(self, Connection conn) except *:
        """threads > 1: a pool thread calls the app; the loop serves other connections
        meanwhile and sends what the thread hands back (AppPool.take)."""
        cdef Exchange exchange = conn.exchange
        if exchange.chunks is None:
            exchange.chunks = []
            exchange.delivered = []
            if conn.transport.tls is None:
                # Over TLS the socket carries ciphertext: no app could use it as is.
                conn.app_socket = ConnectionSocket(conn)
        if conn.app_socket is not None:
            exchange.environ[K_GUNICORN_SOCKET] = conn.app_socket
        exchange.app_started = self.server.now
        conn.enter(STATE_APP)
        self.server.pool.submit(exchange)

    cdef int set_input(self, Connection conn) except -1:
        """environ["wsgi.input"] over the received body; -1 when it cannot be read back."""
        cdef Exchange exchange = conn.exchange
        cdef dict environ = exchange.environ
        if exchange.body_bytes is not None:
            environ[K_INPUT] = memory_input(exchange.body_bytes)
            exchange.body_bytes = None
        elif exchange.body_buffer is None:
            return 0   # NO_BODY, the environ template's
        else:
            try:
                environ[K_INPUT] = exchange.body_buffer.stream()
            except OSError as error:
                self.server.protocol.spool_failed(conn, error)
                return -1
            if conn.body.kind == BODY_CHUNKED:
                # The whole body is in: give frameworks that read CONTENT_LENGTH its
                # size, and drop the coding the server already removed (RFC 3875
                # §4.1.18 lets a server leave out what it processed; waitress does).
                environ[K_CONTENT_LENGTH] = str(exchange.body_buffer.size)
                environ.pop(K_HTTP_TRANSFER_ENCODING, None)
            exchange.body_buffer = None
        return 0

    cdef int64_t sequence_length(self, object items) except -2:
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

    cdef void produce(self, Connection conn, int64_t known_length) except *:
        """Pulls body chunks until the body ends or HIGH_WATERMARK bytes are queued."""
        cdef Exchange exchange = conn.exchange
        cdef object result = exchange.result
        cdef object chunk
        cdef Py_ssize_t n
        if known_length >= 0 and not exchange.headers_queued:
            self.server.writer.queue_headers(conn, known_length)
        if exchange.iterator is None:
            n = len(result)
            while exchange.list_index < n:
                chunk = result[exchange.list_index]
                exchange.list_index += 1
                exchange.add_body(chunk)
                if conn.out_pending > HIGH_WATERMARK and exchange.list_index < n:
                    return
            self.finish_response(conn)
            return
        # A generator resumed after backpressure may send hints before its first chunk.
        self.early_hints.exchange = exchange
        while conn.out_pending <= HIGH_WATERMARK:
            chunk = next(exchange.iterator, None)
            if chunk is None:
                self.finish_response(conn)
                return
            exchange.add_body(chunk)

    cdef inline bint may_sendfile(self, Exchange exchange, object result) noexcept:
        """Whether the app's result may go out with sendfile(2): a wrapped file, on a
        connection the kernel sends for (not TLS) and that the app did not take."""
        return (type(result) is FileWrapper and self.use_sendfile and exchange.conn is not None
                and exchange.conn.transport.can_sendfile and not exchange.socket_taken)

    cdef bint start_sendfile(self, Connection conn, FileWrapper wrapper) except -1:
        """Sets up sendfile(2) for a regular file; False to fall back to iteration."""
        if not probe_regular_file(conn.exchange, wrapper):
            return False
        self.send_file(conn, wrapper)
        return True

    cdef void send_file(self, Connection conn, FileWrapper wrapper) except *:
        """Queues the headers of a response whose body is the wrapper's file, noted
        in the exchange's file_* fields (probe_regular_file); flush() sends it."""
        cdef Exchange exchange = conn.exchange
        cdef int64_t size = exchange.file_remaining
        self.server.writer.queue_headers(conn, size, True)
        if exchange.content_length_out >= 0 and exchange.content_length_out < size:
            size = exchange.content_length_out
        exchange.file_obj = wrapper.filelike
        exchange.file_remaining = size if exchange.body_allowed() else 0

    cdef void finish_response(self, Connection conn) except *:
        cdef Exchange exchange = conn.exchange
        if not exchange.headers_queued:
            self.server.writer.queue_headers(conn, 0)
        exchange.writes_closed = True
        if exchange.framing == FRAMING_CHUNKED:
            conn.queue(LAST_CHUNK)
        elif (exchange.content_length_out >= 0 and exchange.body_allowed()
                and exchange.file_remaining == 0
                and exchange.body_sent < exchange.content_length_out):
            # The app sent less than its Content-Length: the client cannot tell
            # where the response ends unless the connection closes.
            self.error_log.warning("app sent %d of %d promised bytes for %s", exchange.body_sent,
                                   exchange.content_length_out, exchange.environ.get("RAW_URI"))
            exchange.keep_alive = False
        if exchange.file_remaining == 0:
            exchange.close_result()
        exchange.response_done = True
        self.request_done(conn)

    cdef void app_failed(self, Connection conn) except *:
        """The app raised: 500 if nothing was sent yet, else the connection must close."""
        cdef Exchange exchange = conn.exchange
        log_app_error(self.error_log, exchange)
        if exchange.pool_state == POOL_RUNNING:
            # What the thread handed over broke a rule (a header, a length) that only
            # the loop checks: answer as far as possible, then drop the thread's output.
            exchange.keep_alive = False
            if not exchange.headers_queued:
                self.server.writer.queue_app_error(conn)
            exchange.response_done = True
            self.request_done(conn)
            conn.flush()
            self.server.protocol.close(conn)
            return
        exchange.close_result()
        self.answer_app_error(conn)

    cdef void answer_app_error(self, Connection conn) except *:
        """500 if nothing of the response was sent yet, else the connection closes."""
        cdef Exchange exchange = conn.exchange
        exchange.keep_alive = False
        if exchange.headers_queued:
            # Part of the response is out: its end cannot be marked, so send what
            # is queued (without blocking) and cut the connection off.
            exchange.response_done = True
            self.request_done(conn)
            conn.flush()
            self.server.protocol.close(conn)
            return
        self.server.writer.queue_app_error(conn)
        exchange.response_done = True
        self.request_done(conn)

    # -- reporting -----------------------------------------------------------

    cdef void request_done(self, Connection conn) except *:
        cdef Server server = self.server
        server.requests_served += 1
        if (self.completed is not None or server.metrics != NULL
                or self.access_log is not None or self.post_request is not None):
            self.report_request(conn.exchange, monotonic() - conn.exchange.request_start)
        if server.max_requests and server.requests_served >= server.max_requests and not server.stopping:
            self.error_log.info("Autorestarting worker after current request.")
            server.stop(True)

    cdef void report_request(self, Exchange exchange, double elapsed) except *:
        """One duration for every consumer of a completed request: the statsd batch,
        the metrics slot, the access log and the post_request hook."""
        cdef int64_t* metrics = self.server.metrics
        cdef int64_t sent
        if self.completed is not None:
            self.completed.append((exchange.status_line, elapsed))
        if metrics != NULL:
            count_request(metrics, exchange.method_index, _status_code(exchange.status_line), elapsed)
            self.end_in_flight(exchange)
        if self.access_log is not None or self.post_request is not None:
            sent = exchange.body_sent + exchange.file_remaining
            if self.access_writer is not None:
                self.write_access_line(exchange, sent, elapsed)
            elif self.access_log is not None:
                self.run_hook(self.access_log, (exchange.environ, exchange.status_line,
                                                exchange.response_headers, sent, elapsed))
                self.access_pending = self.flush_access_log is not None
            if self.post_request is not None:
                self.run_hook(self.post_request, (exchange.environ, exchange.status_line,
                                                  exchange.response_headers, sent, elapsed))

    cdef void end_in_flight(self, Exchange exchange) noexcept:
        if exchange.in_flight:
            exchange.in_flight = False
            self.server.metrics[M_IN_FLIGHT] -= 1

    cdef void report_completed(self) except *:
        cdef list completed = self.completed
        self.completed = []
        try:
            self.request_metrics(completed)
        except Exception:
            self.error_log.exception("request_metrics hook failed")

    cdef void write_access_line(self, Exchange exchange, int64_t sent, double elapsed) except *:
        try:
            self.access_writer.add(exchange.environ, exchange.status_line,
                                   exchange.response_headers, sent, elapsed)
        except Exception:
            self.error_log.exception("Error writing the access log line")
        self.access_pending = True

    cdef void flush_access(self) except *:
        """The lines of this iteration's requests reach the file before the loop
        sleeps: one write for all of them, none lost if the worker is killed."""
        self.access_pending = False
        if self.access_writer is not None:
            try:
                self.access_writer.write_out()
            except Exception:
                self.error_log.exception("Error writing the access log")
            return
        self.run_hook(self.flush_access_log, ())

    cdef void run_hook(self, object hook, tuple args) except *:
        try:
            hook(*args)
        except Exception:
            self.error_log.exception("hook %r failed", getattr(hook, "__name__", hook))

    cdef object abort_app_call(self, Connection conn):
        """The master's timeout is about to kill the worker: answers the request of
        ``conn`` as gunicorn does, and writes its access line. Returns its environ."""
        cdef Exchange exchange = conn.exchange
        exchange.keep_alive = False
        status, headers, sent = exchange.status_line, exchange.response_headers, exchange.body_sent
        if not exchange.headers_queued:
            conn.queue(TIMEOUT_500)
            status, headers, sent = "500 Internal Server Error", [], 0
        try:
            conn.flush()
        except OSError:
            pass
        if self.access_log is not None:
            self.run_hook(self.access_log, (exchange.environ, status, headers, sent,
                                            monotonic() - exchange.request_start))
            if self.flush_access_log is not None:
                self.flush_access()
        return exchange.environ


cdef void log_app_error(object error_log, Exchange exchange) except *:
    """The app raised: gunicorn's error log line, with the current traceback.

    gunicorn names the request ("Error handling request GET /path", workers/base.py
    handle_error) while it can still answer a 500, and only says "Error handling
    request" once the response's headers are out (its sync and gthread workers).
    """
    # On a thread, body the app already handed over is as good as sent: the loop
    # sends its headers with it.
    if (exchange.headers_queued or exchange.body_sent
            or (exchange.chunks is not None and PyList_GET_SIZE(exchange.chunks))):
        error_log.exception("Error handling request")
    else:
        environ = exchange.environ
        error_log.exception("Error handling request %s %s", environ.get("REQUEST_METHOD", ""),
                            environ.get("RAW_URI", ""))
