# The request head (RFC 9112 §2-§5): lines, limits while they arrive, the
# request line when it ends, the field lines when the head does. Included into
# _parser.pyx; the class is declared in _parser.pxd.


cdef class HeadParser:
    """Parses one request head (request line + field lines) out of a buffer.

    ``HeadParser(**limits)`` takes gunicorn's limit settings by name (see
    LIMIT_SETTINGS and normalize_limits); the loop configures its parsers from the
    limits it normalized once instead.
    """

    def __cinit__(self):
        self.fields = NULL

    def __init__(self, forwarder_headers=(), **limits):
        """gunicorn's limit settings by name (each left out takes its default), and the
        forwarder_headers a trusted proxy may send (the server gives them per connection)."""
        cdef Limits normalized
        _limits_from_keywords(&normalized, limits)
        self.configure(&normalized)
        self.forwarder_names = frozenset([name.upper() for name in forwarder_headers]) or None

    cdef int configure(self, const Limits* limits) except -1:
        self.limits = limits[0]
        if self.owns_fields:
            free(self.fields)
        self.fields = <FieldSpan*>malloc(sizeof(FieldSpan) * limits.fields)
        if self.fields == NULL:
            raise MemoryError()
        self.owns_fields = True
        self.reset()
        return 0

    cdef void configure_shared(self, const Limits* limits, FieldSpan* fields) noexcept:
        """As configure(), with the field spans written into ``fields`` (room for
        limits.fields), which the caller owns and may give every parser it reads
        heads with one at a time: the spans are written when a head is complete and
        read before the next parse (the loop's connections, whose heads are each
        turned into an environ as soon as they are parsed)."""
        self.limits = limits[0]
        if self.owns_fields:
            free(self.fields)
        self.fields = fields
        self.owns_fields = False
        self.reset()

    def __dealloc__(self):
        if self.owns_fields:
            free(self.fields)

    cdef void reset(self) noexcept:
        self.scan_pos = -1
        self.line_start = 0
        self.lines_seen = 0
        self.head_request = False
        self.nfields = 0
        self.error_status = 0

    cdef int fail(self, int status, str reason) except -2:
        self.error_status = status
        self.error_reason = reason
        return PARSE_ERROR

    cdef Py_ssize_t parse(self, char* buf, Py_ssize_t length) except -2:
        """Returns the head's length (its end offset) once complete, 0 for more, -1 on error."""
        cdef Py_ssize_t pos, line_length, eol
        cdef char* nl
        if self.scan_pos < 0:
            # RFC 9112 §2.2: one empty line (CRLF) before the request line is ignored.
            if length == 0 or (length == 1 and buf[0] == CR):
                return PARSE_INCOMPLETE
            pos = 2 if buf[0] == CR and buf[1] == LF else 0
            self.line_start = pos
            self.scan_pos = pos
        pos = self.scan_pos
        while True:
            nl = <char*>memchr(buf + pos, LF, length - pos)
            if nl == NULL:
                self.scan_pos = length
                return self._check_partial_line(length - self.line_start)
            eol = nl - buf
            # RFC 9112 §2.2: every line of the head ends in CRLF.
            if eol == self.line_start or buf[eol - 1] != CR:
                # The bytes before the LF are held to the limits first, as they are
                # when they arrive without it: the answer must not depend on the reads.
                if self._check_partial_line(eol - self.line_start) < 0:
                    return PARSE_ERROR
                return self.fail(400, "bare LF in request head")
            line_length = eol - 1 - self.line_start
            if self.lines_seen == 0:
                if line_length > self.limits.request_line or line_length == 0:
                    return self._refuse_request_line(buf, eol, length)
                # Parsed as soon as it ends: a malformed request line is refused
                # without waiting for the rest of the head, and the method is known
                # (head_request) to a refusal of what follows.
                if self._parse_request_line(buf, self.line_start) < 0:
                    return PARSE_ERROR
                self.fields_start = eol + 1
            elif line_length == 0:
                return self._parse_head(buf, eol + 1)
            elif self.lines_seen > self.limits.fields:
                return self.fail(431, "too many header fields")
            elif line_length + 2 > self.limits.field_size:
                return self.fail(431, "header field too long")
            self.lines_seen += 1
            self.line_start = eol + 1
            pos = eol + 1

    cdef Py_ssize_t _check_partial_line(self, Py_ssize_t partial) except -2:
        # The line still arriving counts against its limit now, not once it ends.
        # A lone CR may still be the empty line that ends the head.
        if self.lines_seen == 0:
            if partial > self.limits.request_line + 1:
                return self.fail(414, "request line too long")
        elif partial > 1:
            # The count first: it is known from the line's second byte, its size later.
            if self.lines_seen > self.limits.fields:
                return self.fail(431, "too many header fields")
            if partial + 1 > self.limits.field_size:
                return self.fail(431, "header field too long")
        return PARSE_INCOMPLETE

    cdef Py_ssize_t _parse_head(self, char* buf, Py_ssize_t head_end) except -2:
        if self._parse_fields(buf, self.fields_start, head_end) < 0:
            return PARSE_ERROR
        if _check_framing(self, buf) < 0:
            return PARSE_ERROR
        return head_end

    cdef int _parse_request_line(self, char* buf, Py_ssize_t pos) except -2:
        # RFC 9112 §3: request-line = method SP request-target SP HTTP-version CRLF
        cdef Py_ssize_t start = pos
        cdef int major = -1, minor = -1
        while TCHAR[<unsigned char>buf[pos]]:
            pos += 1
        if pos == start or buf[pos] != SP:
            return self.fail(400, "invalid method")
        if not self.limits.permit_unconventional_method and _unconventional_method(buf + start,
                                                                                   pos - start):
            return self.fail(400, "invalid method")
        if self.limits.casefold_method:
            _upper_case(buf + start, pos - start)
        self.method.off = start
        self.method.len = pos - start
        pos += 1
        start = pos
        while TARGET_CHAR[<unsigned char>buf[pos]]:
            pos += 1
        if pos == start or buf[pos] != SP:
            return self.fail(400, "invalid request target")
        self.target.off = start
        self.target.len = pos - start
        _http_version(buf, pos + 1, &major, &minor)
        # RFC 9110 §9.3.2: no content in an answer to HEAD, refusals included. A line
        # in the form of an HTTP/1 request line says what the client asked for, even
        # when its target is then refused.
        self.head_request = ((major == 1 or (major >= 0 and self.limits.permit_unconventional_version))
                             and _method_is(buf, self.method, "HEAD"))
        if _split_target(self, buf) < 0:
            return PARSE_ERROR
        if major < 0:
            return self.fail(400, "invalid HTTP version")
        self.version_major = major
        self.version_minor_sent = minor
        if major != 1:
            return self._unconventional_version(major)
        # RFC 9110 §2.5: a higher minor version of a major version we implement is
        # processed as the highest minor we conform to (505 is for other majors).
        self.version_minor = minor if minor < 1 else 1
        return 0

    cdef int _unconventional_version(self, int major) except -2:
        # gunicorn serves HTTP/1.0 to 1.9 only, unless permit_unconventional_http_version
        # lets any other single-digit version through, read with HTTP/1.1's framing
        # from 2 on and HTTP/1.0's below (gunicorn compares the version tuple: < (1, 1)).
        if not self.limits.permit_unconventional_version:
            return self.fail(505, "HTTP version not supported")
        self.version_minor = 1 if major > 1 else 0
        return 0

    cdef int _refuse_request_line(self, char* buf, Py_ssize_t eol, Py_ssize_t length) except -2:
        """Refuses a request line too long, or a second empty line before it (RFC
        9112 §2.2 ignores one). Whether the client asked for HEAD is still read, from
        the line itself or from a line that follows the empty ones and already came:
        then the refusal has no content."""
        cdef Py_ssize_t pos = self.line_start
        cdef bint too_long = eol - 1 - pos > self.limits.request_line
        cdef char* nl
        if not too_long:
            pos = eol + 1
            while length - pos >= 2 and buf[pos] == CR and buf[pos + 1] == LF:
                pos += 2
            nl = <char*>memchr(buf + pos, LF, length - pos)
            eol = nl - buf if nl != NULL else pos
        if eol > pos and buf[eol - 1] == CR:
            self._parse_request_line(buf, pos)
        if too_long:
            return self.fail(414, "request line too long")
        return self.fail(400, "empty request line")

    cdef int _parse_fields(self, char* buf, Py_ssize_t pos, Py_ssize_t head_end) except -2:
        # RFC 9112 §5: field-line = field-name ":" OWS field-value OWS
        cdef Py_ssize_t name_start, name_end, value_start, value_end
        cdef Py_ssize_t fields_end = head_end - 2
        cdef Py_ssize_t field_size = 0
        cdef FieldSpan* field
        cdef bint dropped = False
        cdef Forwarded forwarded
        cdef unsigned char name_chars
        self.nfields = 0
        while pos < fields_end:
            if _is_ows(buf[pos]):
                pos = self._fold_line(buf, pos, dropped, &field_size)
                if pos < 0:
                    return PARSE_ERROR
                continue
            name_start = pos
            name_chars = 0
            while TCHAR[<unsigned char>buf[pos]]:
                name_chars |= TCHAR[<unsigned char>buf[pos]]
                pos += 1
            name_end = pos
            if pos == name_start:
                return self.fail(400, "invalid header name")
            if buf[pos] != b':':
                # RFC 9112 §5.1: no whitespace between field name and colon.
                if not (_is_ows(buf[pos]) and self.limits.strip_header_spaces):
                    return self.fail(400, "invalid header name")
                while _is_ows(buf[pos]):
                    pos += 1
                if buf[pos] != b':':
                    return self.fail(400, "invalid header name")
            pos += 1
            while _is_ows(buf[pos]):
                pos += 1
            value_start = pos
            pos = _skip_field_content(buf, pos, head_end)
            # RFC 9110 §5.5: CR, LF, NUL and the other CTLs never appear in a value.
            if buf[pos] != CR or buf[pos + 1] != LF:
                return self.fail(400, "invalid character in header value")
            value_end = pos
            while value_end > value_start and _is_ows(buf[value_end - 1]):
                value_end -= 1
            pos += 2
            field_size = pos - name_start
            forwarded = NOT_FORWARDED
            if name_chars & TCHAR_UNDERSCORE:
                if self.limits.underscore_mode == UNDERSCORE_PASS:
                    # gunicorn's create() reads a SCRIPT_NAME field from any peer then
                    forwarded = FORWARDED_ALWAYS
                elif self.forwarder_names is not None and self._is_forwarder(buf, name_start, name_end):
                    forwarded = (FORWARDED_OR_REFUSED if self.limits.underscore_mode == UNDERSCORE_REFUSE
                                 else FORWARDED_OR_DROPPED)
                elif self.limits.underscore_mode == UNDERSCORE_REFUSE:
                    return self.fail(400, "invalid header name (underscore)")
                elif self.limits.underscore_mode == UNDERSCORE_DROP:
                    # Dropped, so X_Forwarded_For cannot pose as X-Forwarded-For in the environ.
                    dropped = True
                    continue
            dropped = False
            if self.nfields >= self.limits.fields:
                return self.fail(431, "too many header fields")
            field = &self.fields[self.nfields]
            field.name.off = name_start
            field.name.len = name_end - name_start
            field.value.off = value_start
            field.value.len = value_end - value_start
            field.forwarded = forwarded
            self.nfields += 1
        return 0

    cdef bint _is_forwarder(self, char* buf, Py_ssize_t start, Py_ssize_t end) except -1:
        """Whether forwarder_headers names this field (gunicorn compares upper-case)."""
        if "*" in self.forwarder_names:
            return True
        return PyUnicode_DecodeLatin1(buf + start, end - start, NULL).upper() in self.forwarder_names

    cdef Py_ssize_t _fold_line(self, char* buf, Py_ssize_t pos, bint onto_dropped,
                               Py_ssize_t* field_size) except -2:
        # RFC 9112 §5.2: obs-fold is rejected, or, when permitted, replaced by one SP
        # (the pieces are joined as gunicorn does, and the buffer stays a valid head).
        cdef Py_ssize_t line_end, content_start, content_end, dest, n
        cdef FieldSpan* field
        if not self.limits.permit_obsolete_folding or (self.nfields == 0 and not onto_dropped):
            return self.fail(400, "obsolete line folding")
        line_end = pos
        while FIELD_CONTENT[<unsigned char>buf[line_end]]:
            line_end += 1
        if buf[line_end] != CR or buf[line_end + 1] != LF:
            return self.fail(400, "invalid character in header value")
        # The folded field as a whole is held to the field size limit.
        field_size[0] += line_end + 2 - pos
        if field_size[0] > self.limits.field_size:
            return self.fail(431, "header field too long")
        if onto_dropped:
            return line_end + 2
        content_start = pos
        while content_start < line_end and _is_ows(buf[content_start]):
            content_start += 1
        content_end = line_end
        while content_end > content_start and _is_ows(buf[content_end - 1]):
            content_end -= 1
        n = content_end - content_start
        if n:
            field = &self.fields[self.nfields - 1]
            dest = field.value.off + field.value.len
            if field.value.len:
                buf[dest] = SP
                dest += 1
            memmove(buf + dest, buf + content_start, n)
            field.value.len = dest + n - field.value.off
            dest += n
            while dest < line_end:
                buf[dest] = SP
                dest += 1
        return line_end + 2

    # Python-level entries, for tests, tools and the micro-benchmark.
    @property
    def error(self):
        return (self.error_status, self.error_reason)

    @property
    def request_line_parsed(self):
        """Whether the request line of the head being parsed has been read (and passed)."""
        return self.lines_seen > 0

    @property
    def head_request(self):
        """Whether the request line, in the form of an HTTP/1 one, asks for HEAD
        (known once the line ends, even when it is refused)."""
        return self.head_request

    def parse_bytes(self, data):
        """Parses a head from the start of ``data`` (bytes or bytearray), from scratch.

        Returns the head's length, or 0 when ``data`` holds no complete head;
        raises :class:`ParseError` for a head that must be refused.  The spans
        then point into ``data``.
        """
        cdef char* buf = data
        cdef Py_ssize_t consumed
        self.reset()
        consumed = self.parse(buf, len(data))
        if consumed < 0:
            raise ParseError(self.error_status, self.error_reason)
        return consumed
