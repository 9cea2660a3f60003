# start_response, the header block and wsgi.file_wrapper (PEP 3333).
# Included into _loop.pyx.

from cpython.unicode cimport PyUnicode_Check
from cpython.bytes cimport PyBytes_Check, PyBytes_GET_SIZE

cdef extern from "Python.h":
    bint PyUnicode_IS_COMPACT_ASCII(object)
    int PyUnicode_KIND(object)
    void* PyUnicode_DATA(object)
    Py_ssize_t PyUnicode_GET_LENGTH(object)
    int PyUnicode_1BYTE_KIND

cdef extern from "strings.h":
    int strncasecmp(const char* a, const char* b, size_t n)

cdef unsigned char HEADER_NAME_CHAR[256]
cdef unsigned char HEADER_VALUE_CHAR[256]


cdef void _init_header_tables() noexcept:
    cdef int c
    for c in range(256):
        HEADER_NAME_CHAR[c] = 0
        HEADER_VALUE_CHAR[c] = 0
    for c in b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
        HEADER_NAME_CHAR[c] = 1
    for c in range(0x20, 0x7F):
        HEADER_VALUE_CHAR[c] = 1
    for c in range(0x80, 0x100):
        HEADER_VALUE_CHAR[c] = 1
    HEADER_VALUE_CHAR[9] = 1


_init_header_tables()


cdef class HeaderBlock:
    """A growable byte buffer for one status line and header section."""

    cdef char* data
    cdef Py_ssize_t length
    cdef Py_ssize_t capacity

    def __cinit__(self):
        self.capacity = 1024
        self.data = <char*>malloc(self.capacity)
        if self.data == NULL:
            raise MemoryError()
        self.length = 0

    def __dealloc__(self):
        free(self.data)

    cdef int reserve(self, Py_ssize_t extra) except -1:
        cdef Py_ssize_t wanted = self.length + extra
        cdef char* grown
        if wanted <= self.capacity:
            return 0
        while self.capacity < wanted:
            self.capacity *= 2
        grown = <char*>realloc(self.data, self.capacity)
        if grown == NULL:
            raise MemoryError()
        self.data = grown
        return 0

    cdef inline int add(self, const char* text, Py_ssize_t n) except -1:
        if self.length + n > self.capacity:
            self.reserve(n)
        memcpy(self.data + self.length, text, n)
        self.length += n
        return 0

    cdef int add_latin1(self, object text, const unsigned char* allowed, str what) except -1:
        """Appends a str as latin-1 (PEP 3333 native strings), checking every character."""
        cdef Py_ssize_t i, n
        cdef const unsigned char* chars
        if not PyUnicode_Check(text):
            raise TypeError(f"{what} must be str, not {type(text).__name__}")
        if PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND:
            raise ValueError(f"{what} {text!r} is not latin-1")
        n = PyUnicode_GET_LENGTH(text)
        chars = <const unsigned char*>PyUnicode_DATA(text)
        for i in range(n):
            if not allowed[chars[i]]:
                raise ValueError(f"invalid character in {what} {text!r}")
        return self.add(<const char*>chars, n)

    cdef bytes take(self):
        cdef bytes block = PyBytes_FromStringAndSize(self.data, self.length)
        self.length = 0
        return block


cdef class StartResponse:
    """The start_response callable handed to the app; one per connection, reset per request."""

    cdef object status
    cdef object headers
    cdef Connection connection
    cdef object write_callable

    def __cinit__(self, Connection connection):
        self.connection = connection
        self.write_callable = self.write

    cdef void reset(self) noexcept:
        self.status = None
        self.headers = None

    def __call__(self, status, headers, exc_info=None):
        if exc_info is not None:
            try:
                if self.connection.headers_queued:
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
        self.connection.write_from_app(data)


cdef class EarlyHints:
    """environ["wsgi.early_hints"] (gunicorn 23+): sends a 103 Early Hints interim
    response (RFC 8297) carrying the given (name, value) headers, at once.

    One per server, in the environ template, so a request pays nothing for it: the
    loop points it at the connection whose app it calls. It does nothing once that
    response's headers are queued (a stale call from an earlier request lands here
    too), and for HTTP/1.0 clients, which do not expect 1xx responses (RFC 9110
    §15.2), as gunicorn."""

    cdef Connection connection

    def __call__(self, headers):
        cdef Connection conn = self.connection
        cdef HeaderBlock block
        if conn is None or conn.headers_queued or conn.state != STATE_RESPONSE or conn.version_minor < 1:
            return
        block = HeaderBlock()
        block.add(PyBytes_AS_STRING(EARLY_HINTS_LINE), PyBytes_GET_SIZE(EARLY_HINTS_LINE))
        for name, value in headers:
            if PyBytes_Check(name):
                name = (<bytes>name).decode("latin-1")
            if PyBytes_Check(value):
                value = (<bytes>value).decode("latin-1")
            if not name:
                raise ValueError("empty header name")
            # The checks of start_response's headers: no response splitting.
            block.add_latin1(name, HEADER_NAME_CHAR, "header name")
            block.add(b": ", 2)
            block.add_latin1(value.strip(" \t"), HEADER_VALUE_CHAR, "header value")
            block.add(b"\r\n", 2)
        block.add(b"\r\n", 2)
        conn.queue(block.take())
        # Sent as far as the socket takes it now; the rest goes out ahead of the response.
        if conn.flush() == FLUSH_FAILED:
            raise ConnectionError("client went away during wsgi.early_hints")


cdef class FileWrapper:
    """wsgi.file_wrapper: a file the loop sends with sendfile(2) when it can."""

    cdef readonly object filelike
    cdef readonly Py_ssize_t blksize

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


cdef int64_t parse_content_length(object value) except -2:
    """An app's Content-Length value, or -1 when it is not 1*DIGIT."""
    cdef Py_ssize_t i, n
    cdef const unsigned char* chars
    cdef int64_t length = 0
    if not PyUnicode_Check(value) or PyUnicode_KIND(value) != PyUnicode_1BYTE_KIND:
        return -1
    n = PyUnicode_GET_LENGTH(value)
    chars = <const unsigned char*>PyUnicode_DATA(value)
    if n == 0 or n > 18:
        return -1
    for i in range(n):
        if chars[i] < 48 or chars[i] > 57:
            return -1
        length = length * 10 + (chars[i] - 48)
    return length


cdef inline bint _named(const char* chars, const char* lowered, Py_ssize_t n) noexcept:
    return strncasecmp(chars, lowered, n) == 0


cdef int header_kind(object name) except -1:
    """Classifies a response header name the server must act on, by length first."""
    cdef const char* chars
    cdef Py_ssize_t n
    if not PyUnicode_Check(name) or PyUnicode_KIND(name) != PyUnicode_1BYTE_KIND:
        return HEADER_OTHER
    n = PyUnicode_GET_LENGTH(name)
    chars = <const char*>PyUnicode_DATA(name)
    if n == 12:  # Content-Type, the most common: settled at once
        return HEADER_OTHER
    if n == 14:
        return HEADER_CONTENT_LENGTH if _named(chars, "content-length", 14) else HEADER_OTHER
    if n == 4:
        return HEADER_DATE if _named(chars, "date", 4) else HEADER_OTHER
    if n == 6:
        return HEADER_SERVER if _named(chars, "server", 6) else HEADER_OTHER
    # RFC 9110 §7.6.1 and PEP 3333 (as wsgiref.util.is_hop_by_hop): not the app's to send.
    if n == 10 and _named(chars, "connection", 10):
        return HEADER_CONNECTION
    # Dropped, as gunicorn drops them: the server speaks for its own connection.
    if ((n == 10 and _named(chars, "keep-alive", 10))
            or (n == 2 and _named(chars, "te", 2))
            or (n == 8 and _named(chars, "trailers", 8))
            or (n == 18 and _named(chars, "proxy-authenticate", 18))
            or (n == 19 and _named(chars, "proxy-authorization", 19))):
        return HEADER_DROPPED
    # Refused: the server frames the body itself, and cannot switch protocols.
    if ((n == 17 and _named(chars, "transfer-encoding", 17))
            or (n == 7 and _named(chars, "upgrade", 7))):
        return HEADER_HOP_BY_HOP
    return HEADER_OTHER


cdef bint connection_asks_close(object value) except -1:
    """Whether an app's Connection header value lists the "close" option (RFC 9112 §9.6)."""
    if not PyUnicode_Check(value):
        raise TypeError(f"header value must be str, not {type(value).__name__}")
    return any(option.strip(" \t").lower() == "close" for option in value.split(","))
