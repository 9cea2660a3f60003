# The objects the app is handed (PEP 3333): start_response and its write(),
# wsgi.early_hints and wsgi.file_wrapper. Included into _loop.pyx; the classes are
# declared in _loop.pxd.


cdef class StartResponse:
    """The start_response callable handed to the app; one per connection, reset per request."""

    def __cinit__(self, Exchange exchange):
        self.exchange = exchange
        self.write_callable = self.write

    cdef void reset(self) noexcept:
        self.status = None
        self.headers = None

    def __call__(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.exchange.headers_queued:
                    # PEP 3333: too late to change the status; re-raise the app's error.
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        if not PyUnicode_Check(status):
            raise TypeError(f"status must be str, not {type(status).__name__}")
        if not isinstance(headers, list):
            raise TypeError(f"headers must be a list, not {type(headers).__name__}")
        self.status = status
        self.headers = headers
        return self.write_callable

    def write(self, data):
        """PEP 3333's write(): queue bytes now, sending the headers first."""
        if self.status is None:
            raise AssertionError("write() called before start_response()")
        self.exchange.write_from_app(data)


cdef class EarlyHints:
    """environ["wsgi.early_hints"] (gunicorn 23+): sends a 103 Early Hints interim
    response (RFC 8297) carrying the given (name, value) headers, at once.

    One per server, in the environ template, so a request pays nothing for it: the
    loop points it at the exchange whose app it calls. It does nothing once that
    response's headers are queued (a stale call from an earlier request lands here
    too), and for HTTP/1.0 clients, which do not expect 1xx responses (RFC 9110
    §15.2), as gunicorn."""

    def __call__(self, headers):
        cdef Exchange exchange = self.exchange
        cdef PoolThread pool_thread
        cdef Connection conn
        cdef HeaderBlock block
        cdef bytes hints
        if self.pool is not None:
            # With threads, the exchange is the one this thread runs.
            pool_thread = self.pool.by_ident.get(threading.get_ident())
            exchange = pool_thread.current if pool_thread is not None else None
        if (exchange is None or exchange.headers_queued or exchange.conn is None
                or exchange.abandoned or exchange.version_minor < 1
                or (exchange.conn.state != STATE_RESPONSE and exchange.conn.state != STATE_APP)):
            return
        conn = exchange.conn
        block = HeaderBlock()
        block.add_bytes(EARLY_HINTS_LINE)
        for name, value in headers:
            if PyBytes_Check(name):
                name = (<bytes>name).decode("latin-1")
            if PyBytes_Check(value):
                value = (<bytes>value).decode("latin-1")
            if not name:
                raise ValueError("empty header name")
            # The checks of start_response's headers: no response splitting.
            block.add_latin1(name, TCHAR, "header name")
            block.add_text(": ")
            block.add_latin1(value.strip(" \t"), FIELD_CONTENT, "header value")
            block.add_text("\r\n")
        block.add_text("\r\n")
        hints = block.take()
        if exchange.pool_state == POOL_RUNNING:
            # The loop sends it, ahead of the headers (AppPool.take).
            exchange.thread.mailbox.push_interim(exchange, [hints])
            return
        conn.queue(hints)
        # Sent as far as the socket takes it now; the rest goes out ahead of the response.
        if conn.flush() == FLUSH_FAILED:
            raise ConnectionError("client went away during wsgi.early_hints")


cdef bint probe_regular_file(Exchange exchange, FileWrapper wrapper) except -1:
    """Whether the wrapper's file can go out with sendfile(2): a regular file. Its
    descriptor, offset and remaining size are noted in the exchange's file_* fields."""
    try:
        fd = wrapper.filelike.fileno()
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return False
        offset = wrapper.filelike.tell() if hasattr(wrapper.filelike, "tell") else 0
    except (AttributeError, OSError, ValueError):
        return False
    exchange.file_fd = fd
    exchange.file_offset = offset
    exchange.file_remaining = max(info.st_size - offset, 0)
    return True


cdef class FileWrapper:
    """wsgi.file_wrapper: a file the loop sends with sendfile(2) when it can."""

    def __init__(self, filelike, Py_ssize_t blksize=8192):
        self.filelike = filelike
        self.blksize = blksize if blksize > 0 else 8192

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def close(self):
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()
