# One request and its response: what the app sees and what the server owes the
# client for it. Included into _loop.pyx; the class is declared in _loop.pxd.


cdef class Exchange:

    def __cinit__(self, Connection conn):
        self.conn = conn
        self.responder = StartResponse(self)
        self.file_fd = -1
        self.content_length_out = -1

    cdef void reset(self) except *:
        """Back to "no request yet": the only place these fields get their defaults.
        The previous response's iterable is closed first (PEP 3333)."""
        if self.result is not None or self.file_obj is not None:
            self.close_result()
        if self.conn is not None and self.conn.spool_fd >= 0:
            # Its response is over, the spool maybe not yet sent (a pipelined request
            # is answered behind it): it goes once sent, whatever the next one does.
            self.conn.spool_sealed = True
        self.environ = None
        self.keep_alive = False
        self.is_head = False
        self.version_minor = 1
        self.request_start = 0
        self.method_index = 0
        self.body_buffer = None
        self.body_in_place = False
        self.body_bytes = None
        self.body_started_at = 0
        self.body_received = 0
        self.responder.reset()
        self.iterator = None
        self.list_index = 0
        self.headers_queued = False
        self.response_done = False
        self.writes_closed = False
        self.framing = FRAMING_UNDECIDED
        self.content_length_out = -1
        self.body_sent = 0
        self.status_line = None
        self.response_headers = None
        self.file_fd = -1
        self.file_offset = 0
        self.file_remaining = 0
        if self.chunks is not None:
            # This connection's requests go to the AppPool.
            self.reset_pool_fields()

    cdef void reset_pool_fields(self) noexcept:
        # No thread holds the exchange between requests, and none has it posted:
        # the mailbox's fields are the loop's to reset here.
        self.pool_state = POOL_NONE
        self.outcome = POOL_NONE
        self.thread = None
        self.waiter = None
        if PyList_GET_SIZE(self.chunks):
            del self.chunks[:]
        if PyList_GET_SIZE(self.delivered):
            del self.delivered[:]
        self.chunk_bytes = 0
        self.interim = None
        self.delivered_interim = None
        self.body_handed_over = False
        self.posted = False
        self.socket_taken = False
        self.long_warned = False

    cdef bint body_allowed(self) noexcept:
        """Whether body bytes may follow the header section (decided with it)."""
        return self.framing != FRAMING_NONE

    cdef int add_body(self, object chunk) except -1:
        cdef Connection conn = self.conn
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
            conn.server.writer.queue_headers(conn, -1)
        if self.framing == FRAMING_NONE:
            return 0
        if self.content_length_out >= 0:
            if self.body_sent + n > self.content_length_out:
                # Never send more than the app's Content-Length promised.
                n = <Py_ssize_t>(self.content_length_out - self.body_sent)
                if n <= 0:
                    return 0
                chunk = chunk[:n]
        elif self.framing == FRAMING_CHUNKED:
            conn.queue(("%x\r\n" % n).encode("ascii"))
            conn.queue(chunk)
            conn.queue(CRLF)
            self.body_sent += n
            return 0
        conn.queue(chunk)
        self.body_sent += n
        return 0

    cdef int write_from_app(self, object data) except -1:
        """PEP 3333 write(): queued in order and sent as far as the socket takes it
        now; past HIGH_WATERMARK the rest waits in the write spool, never the loop."""
        cdef Connection conn = self.conn
        cdef int outcome
        if self.pool_state == POOL_RUNNING:
            return self.push_from_thread(data)
        if self.writes_closed or conn is None or conn.state != STATE_RESPONSE:
            raise RuntimeError("write() called after the response was complete")
        self.add_body(data)
        if conn.spool_fd < 0 and conn.out_pending <= HIGH_WATERMARK:
            return 0
        if conn.spool_fd >= 0:
            # Behind spooled bytes, new ones join the spool to keep their order.
            conn.move_to_spool()
        outcome = conn.flush()
        if outcome == FLUSH_FAILED:
            raise ConnectionError("client went away during write()")
        if conn.out_pending > HIGH_WATERMARK and conn.spool_fd < 0:
            conn.move_to_spool()
        return 0

    cdef int push_from_thread(self, object data, bint may_wait=True) except -1:
        """On a pool thread: hands body bytes (the iterable's, or write()'s) to the
        loop; returns the bytes of the response handed over and not yet sent. write()
        (may_wait) then waits while more than HIGH_WATERMARK bytes are unsent, so a
        slow reader never grows the worker's memory; the iterable's puller checks
        that itself and parks (PoolThread.pull_body)."""
        cdef Py_ssize_t pending
        if self.abandoned:
            raise ConnectionError("client went away")
        if self.writes_closed:
            raise RuntimeError("write() called after the response was complete")
        if self.responder.status is None:
            raise AssertionError("the response body began before start_response()")
        if not PyBytes_Check(data):
            if isinstance(data, (bytearray, memoryview)):
                data = bytes(data)
            else:
                raise TypeError(f"response body items must be bytes, not {type(data).__name__}")
        if PyBytes_GET_SIZE(data) == 0:
            return 0
        pending = self.thread.mailbox.push(self, <bytes>data)
        if may_wait and pending > HIGH_WATERMARK:
            self.thread.wait_for_room(self)
        return pending

    cdef void break_cycles(self) noexcept:
        """Breaks the cycles (exchange <-> connection, exchange <-> its StartResponse,
        the StartResponse <-> its bound write method), so reference counting frees the
        connection and its buffers now rather than the cyclic gc at its next (rare,
        full) pass. What the app may still hold (its start_response, the write
        callable) keeps only the exchange, which refuses further writes."""
        self.environ = None
        if self.responder is not None:
            self.responder.write_callable = None
            self.responder = None
        self.conn = None

    cdef void release_abandoned(self) except *:
        """A pooled exchange whose connection closed under its thread, now that the
        thread is done with it: the cycles Protocol.close left for it are broken."""
        self.thread = None
        self.result = None
        self.break_cycles()

    cdef void close_result(self) except *:
        if self.pool_state == POOL_RUNNING:
            # On the loop, while a pool thread iterates the body: the thread calls
            # close() when it stops (the exchange is abandoned, or its body ends).
            self.writes_closed = True
            return
        self.close_iterable()

    cdef void close_iterable(self) except *:
        """PEP 3333: the iterable's close(), on whichever thread runs the app."""
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
                    (logger if self.conn is None else self.conn.server.error_log).exception(
                        "Error closing response iterable")
        if self.file_obj is not None:
            self.file_obj = None
            self.file_remaining = 0
