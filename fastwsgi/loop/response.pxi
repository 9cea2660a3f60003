# The response's status line and header section (RFC 9112 §4, §5): checked,
# encoded and framed in one place. Included into _loop.pyx; the classes are
# declared in _loop.pxd.


cdef class HeaderBlock:
    """A growable byte buffer for one status line and header section."""

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

    cdef inline int add_text(self, const char* text) except -1:
        # A string constant: once inlined, the compiler counts its length.
        return self.add(text, strlen(text))

    cdef inline int add_bytes(self, bytes data) except -1:
        return self.add(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))

    cdef int add_decimal(self, int64_t value) except -1:
        """Appends an integer in decimal, as str() writes it."""
        cdef char digits[24]
        cdef int at = 24
        cdef uint64_t magnitude = <uint64_t>(-value) if value < 0 else <uint64_t>value
        while True:
            at -= 1
            digits[at] = <char>(48 + magnitude % 10)
            magnitude //= 10
            if magnitude == 0:
                break
        if value < 0:
            at -= 1
            digits[at] = b'-'
        return self.add(digits + at, 24 - at)

    cdef int add_latin1(self, object text, const unsigned char* allowed, str what) except -1:
        """Appends a str as latin-1 (PEP 3333 native strings), checking every character."""
        cdef Py_ssize_t n = 0
        cdef const char* chars = checked_latin1(text, allowed, what, &n)
        return self.add(chars, n)

    cdef bytes take(self):
        cdef bytes block = PyBytes_FromStringAndSize(self.data, self.length)
        self.length = 0
        return block


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


cdef const char* checked_latin1(object text, const unsigned char* allowed, str what,
                                Py_ssize_t* length) except NULL:
    """The characters of a str that must be latin-1 (PEP 3333 native strings), each
    one of ``allowed``; raises TypeError or ValueError, naming ``what``, otherwise."""
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
    length[0] = n
    return <const char*>chars


cdef int header_kind(const char* name, Py_ssize_t n) noexcept:
    """Classifies a response header name (checked: tchar only) that the server must
    act on, by its first letter: one test settles most names."""
    cdef char first
    if n == 0:
        return HEADER_OTHER
    first = name[0] | 0x20
    if first == b'c':
        if equals_lowered(name, n, "content-length"):
            return HEADER_CONTENT_LENGTH
        # RFC 9110 §7.6.1 and PEP 3333 (as wsgiref.util.is_hop_by_hop): not the app's to send.
        if equals_lowered(name, n, "connection"):
            return HEADER_CONNECTION
    elif first == b'd':
        if equals_lowered(name, n, "date"):
            return HEADER_DATE
    elif first == b's':
        if equals_lowered(name, n, "server"):
            return HEADER_SERVER
    # Dropped, as gunicorn drops them: the server speaks for its own connection.
    elif first == b'k':
        if equals_lowered(name, n, "keep-alive"):
            return HEADER_DROPPED
    elif first == b'p':
        if equals_lowered(name, n, "proxy-authenticate") or equals_lowered(name, n, "proxy-authorization"):
            return HEADER_DROPPED
    elif first == b't':
        if equals_lowered(name, n, "te") or equals_lowered(name, n, "trailers"):
            return HEADER_DROPPED
        # Refused: the server frames the body itself...
        if equals_lowered(name, n, "transfer-encoding"):
            return HEADER_HOP_BY_HOP
    elif first == b'u':
        # ...and cannot switch protocols.
        if equals_lowered(name, n, "upgrade"):
            return HEADER_HOP_BY_HOP
    return HEADER_OTHER


cdef bint connection_asks_close(object value) except -1:
    """Whether an app's Connection header value lists the "close" option (RFC 9112 §9.6)."""
    if not PyUnicode_Check(value):
        raise TypeError(f"header value must be str, not {type(value).__name__}")
    return "close" in [option.strip(" \t").lower() for option in value.split(",")]


cdef class ResponseWriter:

    def __cinit__(self, Server server, object options):
        self.server = server
        self.block = HeaderBlock()
        self.send_server_header = options.send_server_header
        self.server_header = f"Server: {options.server_software}\r\n".encode("latin-1")
        self.date_second = -1

    cdef void refresh_date(self) except *:
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

    cdef void queue_headers(self, Connection conn, int64_t known_length,
                            bint length_holds_for_head=False) except *:
        """Queues the status line and header section and decides the framing (RFC 9112 §6).

        ``known_length`` is the body's size when the server knows it (-1 if not);
        a HEAD response states it only when it is the size GET would send.
        """
        cdef Exchange exchange = conn.exchange
        cdef StartResponse responder = exchange.responder
        cdef HeaderBlock block = self.block
        cdef object status = responder.status
        cdef object headers = responder.headers
        cdef int64_t declared
        cdef Framing framing
        cdef bytes head
        if status is None:
            raise AssertionError("the application did not call start_response()")
        block.length = 0
        if status == self.cached_status and headers == self.cached_headers:
            # The same status and headers as the last response: reuse their
            # checked and encoded lines (most apps answer alike, time after time),
            # or the whole head when nothing else it says has changed either.
            if (self.ready_head_date is self.date_header and exchange.keep_alive
                    and exchange.version_minor == 1 and not exchange.is_head
                    and not self.server.stopping):
                exchange.content_length_out = self.cached_declared
                exchange.framing = self.ready_framing
                conn.queue(self.ready_head)
                exchange.headers_queued = True
                exchange.status_line = status
                exchange.response_headers = headers
                return
            block.add_bytes(self.cached_lines)
        else:
            self.encode_app_lines(block, status, headers)
        declared = self.cached_declared
        framing = response_framing(self.cached_code, exchange.is_head,
                                   declared >= 0 or known_length >= 0, exchange.version_minor)
        if declared >= 0:
            exchange.content_length_out = declared
        elif known_length >= 0 and (framing == FRAMING_LENGTH
                                    or (exchange.is_head and length_holds_for_head)):
            # A HEAD answer states the length only when it is the one GET would send.
            exchange.content_length_out = known_length
            _add_content_length(block, known_length)
        elif framing == FRAMING_CHUNKED:
            block.add_bytes(TRANSFER_CHUNKED)
        elif framing == FRAMING_CLOSE:
            exchange.keep_alive = False
        exchange.framing = framing
        if not self.cached_has_date:
            block.add_bytes(self.date_header)
        if not self.cached_has_server and self.send_server_header:
            block.add_bytes(self.server_header)
        if self.server.stopping or self.cached_close:
            exchange.keep_alive = False
        if not exchange.keep_alive:
            block.add_bytes(CONNECTION_CLOSE)
        elif exchange.version_minor == 0:
            block.add_bytes(CONNECTION_KEEP_ALIVE)
        block.add_text("\r\n")
        head = block.take()
        if (declared >= 0 and exchange.keep_alive and exchange.version_minor == 1
                and not exchange.is_head):
            # What the next answer of these lines may send as is (the test above):
            # no Content-Length, chunking or Connection header of the server's own.
            self.ready_head = head
            self.ready_head_date = self.date_header
            self.ready_framing = framing
        conn.queue(head)
        exchange.headers_queued = True
        exchange.status_line = status
        exchange.response_headers = headers

    cdef void encode_app_lines(self, HeaderBlock block, object status, object headers) except *:
        """Checks and encodes the status line and the app's header lines into ``block``,
        and remembers them, with what they declare, for the next response."""
        cdef int kind
        cdef const char* name_chars
        cdef Py_ssize_t name_length = 0
        cdef bint has_date = False, has_server = False, close = False
        cdef int64_t declared = -1
        cdef int code
        self.cached_status = None
        self.ready_head_date = None
        block.add_text("HTTP/1.1 ")
        block.add_latin1(status, FIELD_CONTENT, "status")
        code = _status_code(status)
        if code < 200:
            # RFC 9110 §15.2: a 1xx is interim; the response would never end.
            raise ValueError(f"status {status!r} is not a final status")
        if PyUnicode_GET_LENGTH(status) == 3:
            # RFC 9112 §4: the SP before the (possibly empty) reason is required;
            # a bare "200" (which gunicorn accepts) gets its standard phrase.
            block.add_text(" ")
            block.add_latin1(_reason_phrase(code), FIELD_CONTENT, "status")
        block.add_text("\r\n")
        for header in headers:
            if type(header) is not tuple or PyTuple_GET_SIZE(header) != 2:
                raise TypeError(f"response header {header!r} is not a (name, value) tuple")
            name = <object>PyTuple_GET_ITEM(header, 0)
            value = <object>PyTuple_GET_ITEM(header, 1)
            name_chars = checked_latin1(name, TCHAR, "header name", &name_length)
            kind = header_kind(name_chars, name_length)
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
            block.add(name_chars, name_length)
            block.add_text(": ")
            block.add_latin1(value, FIELD_CONTENT, "header value")
            block.add_text("\r\n")
        self.cached_lines = PyBytes_FromStringAndSize(block.data, block.length)
        self.cached_code = code
        self.cached_declared = declared
        self.cached_has_date = has_date
        self.cached_has_server = has_server
        self.cached_close = close
        # A copy: the app may change its list after this response.
        self.cached_headers = list(headers)
        self.cached_status = status

    cdef void queue_refusal(self, Connection conn, int status, str reason, bint head_request) except *:
        """The server's own answer to a request it cannot serve; the connection closes after it."""
        cdef str phrase = STATUS_REASONS.get(status, "Bad Request")
        cdef bytes body = f"{phrase}\n{reason}\n".encode("latin-1", "replace")
        conn.queue(
            f"HTTP/1.1 {status} {phrase}\r\nContent-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n".encode("latin-1")
            # RFC 9110 §9.3.2: no content in an answer to HEAD, refusals included.
            + self.date_header + b"\r\n" + (b"" if head_request else body)
        )

    cdef void queue_app_error(self, Connection conn) except *:
        """The 500 for an app that failed before its response began."""
        cdef Exchange exchange = conn.exchange
        exchange.status_line = "500 Internal Server Error"
        exchange.response_headers = list(INTERNAL_ERROR_HEADERS)
        conn.queue(INTERNAL_ERROR_HEAD + self.date_header + b"\r\n"
                   + (INTERNAL_ERROR_BODY if not exchange.is_head else b""))
        exchange.headers_queued = True
        exchange.framing = FRAMING_LENGTH
        exchange.body_sent = len(INTERNAL_ERROR_BODY)


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

