# One client connection: its read buffer, its output queue and write spool, its
# state and the deadline that state arms. Included into _loop.pyx; the class is
# declared in _loop.pxd, whose header holds the state table.

# The moves Connection.enter allows (the diagram in _loop.pxd's header): the states
# each state may become, as bits (1 << state). A move not listed is a bug; the
# connection fails alone (illegal_transition) rather than going on in a state whose
# deadline and events do not fit what it does. Checked on every move, in every
# build: a load and a test per enter() (bench/callgrind.py counts them).
cdef unsigned int STATE_EXITS[STATE_COUNT]
STATE_EXITS[<int>STATE_NEW] = (1 << STATE_HANDSHAKE) | (1 << STATE_HEAD)
# (a refused PROXY header is answered in plain HTTP; plain HTTP on the TLS port is
# answered, then the connection closes gracefully)
STATE_EXITS[<int>STATE_HANDSHAKE] = ((1 << STATE_HEAD) | (1 << STATE_RESPONSE) | (1 << STATE_CLOSING)
                                | (1 << STATE_CLOSED))
STATE_EXITS[<int>STATE_HEAD] = (1 << STATE_BODY) | (1 << STATE_RESPONSE) | (1 << STATE_CLOSED)
STATE_EXITS[<int>STATE_IDLE] = (1 << STATE_HEAD) | (1 << STATE_CLOSED)
STATE_EXITS[<int>STATE_BODY] = (1 << STATE_APP) | (1 << STATE_RESPONSE) | (1 << STATE_CLOSED)
STATE_EXITS[<int>STATE_APP] = (1 << STATE_RESPONSE) | (1 << STATE_CLOSED)
STATE_EXITS[<int>STATE_RESPONSE] = ((1 << STATE_HEAD) | (1 << STATE_IDLE) | (1 << STATE_CLOSING)
                               | (1 << STATE_CLOSED))
STATE_EXITS[<int>STATE_CLOSING] = 1 << STATE_CLOSED
STATE_EXITS[<int>STATE_CLOSED] = 0

cdef tuple STATE_NAMES = ("NEW", "HANDSHAKE", "HEAD", "IDLE", "BODY", "APP", "RESPONSE",
                          "CLOSING", "CLOSED")


cdef int illegal_transition(Connection conn, ConnectionState state) except -1:
    raise AssertionError(f"connection from {conn.remote_addr}: state {STATE_NAMES[conn.state]} "
                         f"cannot become {STATE_NAMES[state]}")


cdef class Connection(Handle):

    def __cinit__(self):
        self.rbuf = NULL
        self.spool_fd = -1

    def __dealloc__(self):
        free(self.rbuf)

    cdef int enter(self, ConnectionState state) except -1:
        """Moves to ``state``, if STATE_EXITS allows it, and arms the deadline that
        state is allowed."""
        cdef Protocol protocol = self.server.protocol
        cdef double now = self.server.now
        if not STATE_EXITS[<int>self.state] & (<unsigned int>1 << state):
            return illegal_transition(self, state)
        self.state = state
        if self.awaiting_head():
            self.deadline = now + protocol.header_timeout
        elif state == STATE_IDLE:
            self.deadline = now + protocol.keepalive
        elif state == STATE_BODY or state == STATE_RESPONSE:
            self.deadline = now + protocol.io_timeout
        elif state == STATE_APP:
            self.deadline = self.app_deadline()
        elif state == STATE_CLOSING:
            self.deadline = now + LINGER_SECONDS
        return 0

    cdef inline bint awaiting_head(self) noexcept:
        """Before a request's head is complete: its TLS handshake, or the head itself."""
        return self.state == STATE_HEAD or self.state == STATE_HANDSHAKE

    cdef double app_deadline(self) noexcept:
        """In APP, when nothing waits for the socket: when the request's thread is
        to be reported as running long (once), or never."""
        cdef double timeout = self.server.app_timeout
        if timeout <= 0 or self.exchange.long_warned:
            return INFINITY
        return self.exchange.app_started + timeout

    # -- input -----------------------------------------------------------

    cdef int ensure_room(self, Py_ssize_t wanted) except -1:
        """Makes room for ``wanted`` more bytes after the unread ones."""
        cdef char* grown
        cdef Py_ssize_t capacity = self.rcap
        if self.rbuf == self.server.read_buffer or self.rbuf == NULL:
            # (NULL: a plain connection between requests holds none)
            return self.take_own_buffer(wanted)
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

    cdef int take_own_buffer(self, Py_ssize_t wanted) except -1:
        """The unread bytes move off the server's shared read buffer into one of
        this connection's own, with room for ``wanted`` more."""
        cdef Py_ssize_t capacity = READ_BUFFER_INITIAL
        cdef char* own
        while capacity - self.rlen < wanted:
            capacity *= 2
        own = <char*>malloc(capacity)
        if own == NULL:
            raise MemoryError()
        if self.rlen:
            memcpy(own, self.rbuf + self.rstart, self.rlen)
        self.rbuf = own
        self.rcap = capacity
        self.rstart = 0
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
            sent = self.transport.send_iov(iov, <int>count)
            if sent < 0:
                return FLUSH_BLOCKED if sent == IO_BLOCKED else FLUSH_FAILED
            self.out_pending -= sent
            if self.metrics != NULL:
                self.metrics[M_BYTES_OUT] += sent
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
        clear_bytes_list(self.out)
        self.out_head = 0
        self.out_offset = 0
        if self.exchange.file_remaining > 0:
            return self.flush_file()
        return FLUSH_DONE

    cdef int flush_file(self) except -1:
        """Sends the response's wsgi.file_wrapper file after its headers."""
        cdef Exchange exchange = self.exchange
        cdef Py_ssize_t sent
        while exchange.file_remaining > 0:
            sent = self.transport.send_file(exchange.file_fd, &exchange.file_offset,
                                            exchange.file_remaining)
            if sent < 0:
                return FLUSH_BLOCKED if sent == IO_BLOCKED else FLUSH_FAILED
            if sent == 0:
                # The file is shorter than it was: the promised length cannot be met.
                exchange.keep_alive = False
                exchange.file_remaining = 0
                break
            exchange.file_remaining -= sent
            exchange.body_sent += sent
            if self.metrics != NULL:
                self.metrics[M_BYTES_OUT] += sent
        return FLUSH_DONE

    cdef int move_to_spool(self) except -1:
        """Moves what `out` holds to the end of the write spool, opening it if needed."""
        cdef Py_ssize_t written
        if self.out_head >= PyList_GET_SIZE(self.out):
            return 0
        if self.spool_fd < 0:
            self.write_spool = tempfile.TemporaryFile(dir=self.server.protocol.spool_dir)
            self.spool_fd = self.write_spool.fileno()
            self.spool_sealed = False
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
        cdef Py_ssize_t sent
        while self.spool_sent < self.spool_end:
            sent = self.transport.send_file(self.spool_fd, &self.spool_sent,
                                            self.spool_end - self.spool_sent)
            if sent < 0:
                return FLUSH_BLOCKED if sent == IO_BLOCKED else FLUSH_FAILED
            if sent == 0:
                return FLUSH_FAILED   # the spool is shorter than what was written to it
            self.out_pending -= sent
            if self.metrics != NULL:
                self.metrics[M_BYTES_OUT] += sent
        if self.exchange.writes_closed or self.spool_sealed:
            # Sent, and no write() of its response can follow: the file goes.
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

    cdef void want(self, uint32_t interest) except *:
        """Sets the epoll events this connection waits for."""
        cdef epoll_event event
        if self.interest == interest or self.state == STATE_CLOSED:
            return
        self.interest = interest
        event.events = interest
        event.data.ptr = <void*>self
        if epoll_ctl(self.server.epfd, EPOLL_CTL_MOD, self.fd, &event) < 0:
            # Without its events the connection would hang until its deadline: it
            # fails now, alone (the loop closes a connection whose handling raised).
            raise OSError(errno, f"epoll_ctl: {os.strerror(errno)}")


cdef Connection new_connection(Server server, Listener listener, int fd, sockaddr_storage* address):
    """A connection just accepted from ``listener``: its peer, buffers, parsers (with
    the server's limits) and first state. The server registers it."""
    cdef Connection conn = Connection.__new__(Connection)
    cdef Protocol protocol = server.protocol
    cdef unsigned short port = 0
    cdef char text[64]
    cdef const void* ip = fastwsgi_sockaddr_ip(address, &port)
    conn.kind = HANDLE_CONNECTION
    conn.fd = fd
    conn.transport = Transport(fd)
    if listener.tls is not None:
        conn.transport.tls = listener.tls.session()
        conn.transport.can_sendfile = False
    conn.server = server
    conn.listener = listener
    conn.metrics = server.metrics
    if ip != NULL and inet_ntop(address.ss_family, ip, text, sizeof(text)) != NULL:
        conn.remote_addr = text.decode("ascii")
        conn.remote_port = str(port)
        conn.trusted_proxy = server.forwarded_allow.allows(conn.remote_addr)
        conn.proxy_header_expected = server.proxy_protocol and server.proxy_allow.allows(conn.remote_addr)
        conn.uwsgi_allowed = server.uwsgi_allow is None or server.uwsgi_allow.allows(conn.remote_addr)
    else:
        conn.remote_addr = ""
        conn.remote_port = ""
        conn.trusted_proxy = True
        conn.proxy_header_expected = server.proxy_protocol
        # gunicorn: "Connections not associated with an IP address are treated as allowed"
        conn.uwsgi_allowed = True
    if listener.tls is not None:
        # TLS decrypts into it between reads, and its handshake reads into it.
        conn.rcap = READ_BUFFER_INITIAL
        conn.rbuf = <char*>malloc(conn.rcap)
        if conn.rbuf == NULL:
            conn.transport.close()
            raise MemoryError()
    # else: none until bytes are left unanswered (Protocol.on_readable)
    conn.head = HeadParser.__new__(HeadParser)
    conn.head.configure_shared(&protocol.limits, protocol.fields)
    conn.head.forwarder_names = protocol.forwarder_names
    conn.body = BodyDecoder.__new__(BodyDecoder)
    conn.body.configure(&protocol.limits)
    conn.exchange = Exchange(conn)
    conn.exchange.reset()
    conn.out = []
    conn.accepted_at = server.now
    conn.enter(STATE_HEAD if listener.tls is None else STATE_HANDSHAKE)
    conn.interest = EPOLLIN | EPOLLRDHUP
    return conn
