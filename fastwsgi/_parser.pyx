# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""A strict, incremental HTTP/1.1 request parser (RFC 9112).

The head parser works on the caller's buffer and records spans (offset,
length) into it; no Python object is made until the environ is built.  It may
be called again with the same buffer grown by any number of bytes: a scan
position remembers how far lines were already checked, so feeding one byte at
a time stays linear.  Limits are enforced while the head is still arriving.

The body decoder turns Content-Length or chunked framing into body bytes in
place (the decoded bytes are moved to the front of the buffer handed in).
"""
from libc.stdlib cimport malloc, free, realloc
from libc.string cimport memchr, memmove
from cpython.bytes cimport PyBytes_FromStringAndSize

cdef extern from "strings.h":
    int strncasecmp(const char* a, const char* b, size_t n)

cdef extern from "Python.h":
    char* PyBytes_AS_STRING(object)

DEF SP = 32
DEF HTAB = 9
DEF CR = 13
DEF LF = 10

# Largest Content-Length / chunk size accepted: far above any real body and
# far from int64 overflow.
cdef int64_t MAX_BODY_LENGTH = (<int64_t>1) << 60
cdef Py_ssize_t UNLIMITED = (<Py_ssize_t>1) << 40

# Character classes, indexed by byte.
cdef unsigned char TCHAR[256]          # RFC 9110 §5.6.2 tchar
cdef unsigned char FIELD_CONTENT[256]  # RFC 9110 §5.5 field-vchar / SP / HTAB / obs-text
cdef unsigned char TARGET_CHAR[256]    # visible ASCII and obs-text; no CTL, no SP
cdef unsigned char HEX_VALUE[256]      # 0..15, or 0xFF for a non-hex byte


cdef void _init_tables() noexcept:
    cdef int c
    for c in range(256):
        TCHAR[c] = 0
        FIELD_CONTENT[c] = 0
        TARGET_CHAR[c] = 0
        HEX_VALUE[c] = 0xFF
    for c in b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
        TCHAR[c] = 1
    for c in range(0x21, 0x7F):
        FIELD_CONTENT[c] = 1
        TARGET_CHAR[c] = 1
    for c in range(0x80, 0x100):
        FIELD_CONTENT[c] = 1
        TARGET_CHAR[c] = 1
    FIELD_CONTENT[SP] = 1
    FIELD_CONTENT[HTAB] = 1
    for c in range(10):
        HEX_VALUE[48 + c] = c
    for c in range(6):
        HEX_VALUE[97 + c] = 10 + c
        HEX_VALUE[65 + c] = 10 + c


_init_tables()


class ParseError(Exception):
    """A request that must be refused: ``status`` is the answer, ``reason`` goes to the log."""

    def __init__(self, int status, str reason):
        super().__init__(status, reason)
        self.status = status
        self.reason = reason

    def __str__(self):
        return f"{self.status} {self.reason}"


cdef inline bint _is_ows(char c) noexcept:
    return c == SP or c == HTAB


cdef inline bint _name_is(const char* buf, Span name, const char* lowered, Py_ssize_t n) noexcept:
    return name.len == n and strncasecmp(buf + name.off, lowered, n) == 0


cdef inline bint _span_is(const char* buf, Py_ssize_t off, Py_ssize_t n,
                          const char* lowered, Py_ssize_t m) noexcept:
    return n == m and strncasecmp(buf + off, lowered, m) == 0


cdef Py_ssize_t _limit_or_unlimited(Py_ssize_t value) noexcept:
    # gunicorn: a limit of 0 means "no limit".
    return value if value > 0 else UNLIMITED


cdef class HeadParser:
    """Parses one request head (request line + field lines) out of a buffer."""

    def __cinit__(self):
        self.fields = NULL

    def __init__(self, Py_ssize_t limit_request_line=4094,
                 Py_ssize_t limit_request_fields=100,
                 Py_ssize_t limit_request_field_size=8190,
                 int64_t limit_request_body=0,
                 str header_map="drop",
                 bint strip_header_spaces=False,
                 bint permit_obsolete_folding=False):
        if limit_request_fields <= 0 or limit_request_fields > 32768:
            limit_request_fields = 32768
        self.limit_line = _limit_or_unlimited(limit_request_line)
        self.limit_fields = limit_request_fields
        self.limit_field_size = _limit_or_unlimited(limit_request_field_size)
        self.limit_body = limit_request_body if limit_request_body > 0 else 0
        if header_map == "drop":
            self.underscore_mode = UNDERSCORE_DROP
        elif header_map == "refuse":
            self.underscore_mode = UNDERSCORE_REFUSE
        elif header_map == "dangerous":
            self.underscore_mode = UNDERSCORE_PASS
        else:
            raise ValueError(f"header_map must be drop, refuse or dangerous, not {header_map!r}")
        self.strip_header_spaces = strip_header_spaces
        self.permit_obsolete_folding = permit_obsolete_folding
        self.fields = <FieldSpan*>malloc(sizeof(FieldSpan) * self.limit_fields)
        if self.fields == NULL:
            raise MemoryError()
        self.reset()

    def __dealloc__(self):
        free(self.fields)

    cdef void reset(self) noexcept:
        self.scan_pos = -1
        self.line_start = 0
        self.lines_seen = 0
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
            pos = self._skip_leading_empty_lines(buf, length)
            if pos < 0:
                return pos
            self.head_start = pos
            self.line_start = pos
            self.scan_pos = pos
        pos = self.scan_pos
        while True:
            nl = <char*>memchr(buf + pos, LF, length - pos)
            if nl == NULL:
                self.scan_pos = length
                return self._check_partial_line(length - self.line_start)
            eol = nl - buf
            if eol == self.line_start or buf[eol - 1] != CR:
                return self.fail(400, "bare LF in request head")
            line_length = eol - 1 - self.line_start
            if self.lines_seen == 0:
                if line_length > self.limit_line:
                    return self.fail(414, "request line too long")
            elif line_length == 0:
                return self._parse_head(buf, eol + 1)
            elif line_length > self.limit_field_size:
                return self.fail(431, "header field too long")
            elif self.lines_seen > self.limit_fields:
                return self.fail(431, "too many header fields")
            self.lines_seen += 1
            self.line_start = eol + 1
            pos = eol + 1

    cdef Py_ssize_t _skip_leading_empty_lines(self, char* buf, Py_ssize_t length) except -2:
        # RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
        cdef Py_ssize_t pos = 0
        while pos + 1 < length and buf[pos] == CR and buf[pos + 1] == LF:
            pos += 2
            if pos > self.limit_line:
                return self.fail(400, "too many empty lines before request line")
        return pos

    cdef Py_ssize_t _check_partial_line(self, Py_ssize_t partial) except -2:
        # The line still arriving counts against its limit now, not once it ends.
        if self.lines_seen == 0:
            if partial > self.limit_line + 1:
                return self.fail(414, "request line too long")
        elif partial > self.limit_field_size + 1:
            return self.fail(431, "header field too long")
        elif self.lines_seen > self.limit_fields:
            return self.fail(431, "too many header fields")
        return PARSE_INCOMPLETE

    cdef Py_ssize_t _parse_head(self, char* buf, Py_ssize_t head_end) except -2:
        cdef Py_ssize_t pos = self._parse_request_line(buf)
        if pos < 0:
            return pos
        if self._parse_fields(buf, pos, head_end) < 0:
            return PARSE_ERROR
        if self._check_framing(buf) < 0:
            return PARSE_ERROR
        return head_end

    cdef Py_ssize_t _parse_request_line(self, char* buf) except -2:
        # RFC 9112 §3: request-line = method SP request-target SP HTTP-version CRLF
        cdef Py_ssize_t pos = self.head_start
        cdef Py_ssize_t start = pos
        cdef unsigned char major, minor
        while TCHAR[<unsigned char>buf[pos]]:
            pos += 1
        if pos == start or buf[pos] != SP:
            return self.fail(400, "invalid method")
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
        if self._split_target(buf) < 0:
            return PARSE_ERROR
        pos += 1
        # HTTP-version = "HTTP/" DIGIT "." DIGIT, then CRLF (checked by the line scan)
        if (buf[pos] != b'H' or buf[pos + 1] != b'T' or buf[pos + 2] != b'T'
                or buf[pos + 3] != b'P' or buf[pos + 4] != b'/'):
            return self.fail(400, "invalid HTTP version")
        major = <unsigned char>buf[pos + 5] - 48
        minor = <unsigned char>buf[pos + 7] - 48
        if (major > 9 or buf[pos + 6] != b'.' or minor > 9
                or buf[pos + 8] != CR or buf[pos + 9] != LF):
            return self.fail(400, "invalid HTTP version")
        if major != 1 or minor > 1:
            return self.fail(505, "HTTP version not supported")
        self.version_minor = minor
        return pos + 10

    cdef int _split_target(self, char* buf) except -2:
        # RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT), asterisk-form.
        cdef Py_ssize_t start = self.target.off
        cdef Py_ssize_t end = start + self.target.len
        cdef Py_ssize_t pos = start
        cdef char first = buf[start]
        self.query.off = end
        self.query.len = 0
        if first == b'/':
            pass
        elif first == b'*' and self.target.len == 1:
            if not _span_is(buf, self.method.off, self.method.len, "options", 7):
                return self.fail(400, "asterisk-form target outside OPTIONS")
            self.path.off = start
            self.path.len = 1
            return 0
        elif _span_is(buf, self.method.off, self.method.len, "connect", 7):
            # authority-form: no path; the app sees the authority in RAW_URI.
            self.path.off = end
            self.path.len = 0
            return 0
        else:
            pos = self._skip_scheme_and_authority(buf, start, end)
            if pos < 0:
                return self.fail(400, "invalid request target")
        self.path.off = pos
        while pos < end and buf[pos] != b'?' and buf[pos] != b'#':
            pos += 1
        self.path.len = pos - self.path.off
        if pos < end and buf[pos] == b'?':
            pos += 1
            self.query.off = pos
            while pos < end and buf[pos] != b'#':
                pos += 1
            self.query.len = pos - self.query.off
        return 0

    cdef Py_ssize_t _skip_scheme_and_authority(self, char* buf, Py_ssize_t pos,
                                               Py_ssize_t end) noexcept:
        # absolute-form = absolute-URI: scheme ":" "//" authority path-abempty [ "?" query ]
        cdef Py_ssize_t start = pos
        cdef char c
        while pos < end:
            c = buf[pos]
            if not (b'a' <= c <= b'z' or b'A' <= c <= b'Z'
                    or (pos > start and (b'0' <= c <= b'9' or c == b'+' or c == b'-' or c == b'.'))):
                break
            pos += 1
        if pos == start or end - pos < 3 or buf[pos] != b':' or buf[pos + 1] != b'/' or buf[pos + 2] != b'/':
            return -1
        pos += 3
        while pos < end and buf[pos] != b'/' and buf[pos] != b'?' and buf[pos] != b'#':
            pos += 1
        return pos

    cdef int _parse_fields(self, char* buf, Py_ssize_t pos, Py_ssize_t head_end) except -2:
        # RFC 9112 §5: field-line = field-name ":" OWS field-value OWS
        cdef Py_ssize_t name_start, name_end, value_start, value_end
        cdef Py_ssize_t fields_end = head_end - 2
        cdef FieldSpan* field
        cdef bint dropped = False
        self.nfields = 0
        while pos < fields_end:
            if _is_ows(buf[pos]):
                pos = self._fold_line(buf, pos, dropped)
                if pos < 0:
                    return PARSE_ERROR
                continue
            name_start = pos
            while TCHAR[<unsigned char>buf[pos]]:
                pos += 1
            name_end = pos
            if pos == name_start:
                return self.fail(400, "invalid header name")
            if buf[pos] != b':':
                if not (_is_ows(buf[pos]) and self.strip_header_spaces):
                    return self.fail(400, "invalid header name")
                while _is_ows(buf[pos]):
                    pos += 1
                if buf[pos] != b':':
                    return self.fail(400, "invalid header name")
            pos += 1
            while _is_ows(buf[pos]):
                pos += 1
            value_start = pos
            while FIELD_CONTENT[<unsigned char>buf[pos]]:
                pos += 1
            if buf[pos] != CR or buf[pos + 1] != LF:
                return self.fail(400, "invalid character in header value")
            value_end = pos
            while value_end > value_start and _is_ows(buf[value_end - 1]):
                value_end -= 1
            pos += 2
            if memchr(buf + name_start, b'_', name_end - name_start) != NULL:
                if self.underscore_mode == UNDERSCORE_REFUSE:
                    return self.fail(400, "invalid header name (underscore)")
                if self.underscore_mode == UNDERSCORE_DROP:
                    # Dropped, so CONTENT_LENGTH-alike names cannot pose as their '-' twins.
                    dropped = True
                    continue
            dropped = False
            if self.nfields >= self.limit_fields:
                return self.fail(431, "too many header fields")
            field = &self.fields[self.nfields]
            field.name.off = name_start
            field.name.len = name_end - name_start
            field.value.off = value_start
            field.value.len = value_end - value_start
            self.nfields += 1
        return 0

    cdef Py_ssize_t _fold_line(self, char* buf, Py_ssize_t pos, bint onto_dropped) except -2:
        # RFC 9112 §5.2: obs-fold is rejected, or replaced by SP when permitted.
        cdef Py_ssize_t prev_end, line_end
        cdef FieldSpan* field
        if not self.permit_obsolete_folding or (self.nfields == 0 and not onto_dropped):
            return self.fail(400, "obsolete line folding")
        line_end = pos
        while FIELD_CONTENT[<unsigned char>buf[line_end]]:
            line_end += 1
        if buf[line_end] != CR or buf[line_end + 1] != LF:
            return self.fail(400, "invalid character in header value")
        if onto_dropped:
            return line_end + 2
        field = &self.fields[self.nfields - 1]
        prev_end = field.value.off + field.value.len
        while prev_end < pos:
            buf[prev_end] = SP
            prev_end += 1
        while line_end > pos and _is_ows(buf[line_end - 1]):
            line_end -= 1
        if field.value.len == 0:
            while field.value.off < line_end and _is_ows(buf[field.value.off]):
                field.value.off += 1
        field.value.len = line_end - field.value.off
        while buf[line_end] != LF:
            line_end += 1
        return line_end + 1

    cdef int _check_framing(self, char* buf) except -2:
        cdef Py_ssize_t i, hosts = 0
        cdef bint has_length = False, has_te = False, chunked_last = False
        cdef bint close_token = False, keep_alive_token = False
        cdef int64_t length = -1
        cdef FieldSpan* field
        self.upgrade = False
        self.expect_continue = False
        self.host_field = -1
        for i in range(self.nfields):
            field = &self.fields[i]
            if _name_is(buf, field.name, "host", 4):
                hosts += 1
                self.host_field = i
            elif _name_is(buf, field.name, "content-length", 14):
                length = self._content_length(buf, field.value, length)
                if length < 0:
                    return PARSE_ERROR
                has_length = True
            elif _name_is(buf, field.name, "transfer-encoding", 17):
                if self._transfer_coding(buf, field.value, &chunked_last) < 0:
                    return PARSE_ERROR
                has_te = True
            elif _name_is(buf, field.name, "connection", 10):
                self._connection_options(buf, field.value, &close_token, &keep_alive_token)
            elif _name_is(buf, field.name, "expect", 6):
                if _span_is(buf, field.value.off, field.value.len, "100-continue", 12):
                    self.expect_continue = self.version_minor == 1
        # RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host; never more than one.
        if hosts > 1:
            return self.fail(400, "more than one Host header")
        if hosts == 0 and self.version_minor == 1:
            return self.fail(400, "missing Host header")
        self.body_kind = BODY_NONE
        self.content_length = 0
        if has_te:
            # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing;
            # §6.3: with Content-Length too, or not ending in chunked, it cannot be trusted.
            if self.version_minor == 0:
                return self.fail(400, "Transfer-Encoding in an HTTP/1.0 request")
            if has_length:
                return self.fail(400, "both Content-Length and Transfer-Encoding")
            if not chunked_last:
                return self.fail(400, "Transfer-Encoding does not end in chunked")
            self.body_kind = BODY_CHUNKED
            self.content_length = -1
        elif has_length:
            self.content_length = length
            if length > 0:
                self.body_kind = BODY_LENGTH
            if self.limit_body and length > self.limit_body:
                return self.fail(413, "request body larger than limit_request_body")
        if self.version_minor == 1:
            self.keep_alive = not close_token
        else:
            self.keep_alive = keep_alive_token and not close_token
        return 0

    cdef int64_t _content_length(self, char* buf, Span value, int64_t previous) except -2:
        # RFC 9110 §8.6: Content-Length = 1*DIGIT; repeats must agree (RFC 9112 §6.3).
        cdef int64_t length = 0
        cdef Py_ssize_t i
        cdef char c
        if value.len == 0:
            return self.fail(400, "empty Content-Length")
        for i in range(value.len):
            c = buf[value.off + i]
            if c < b'0' or c > b'9':
                return self.fail(400, "invalid Content-Length")
            length = length * 10 + (c - 48)
            if length > MAX_BODY_LENGTH:
                return self.fail(400, "Content-Length too large")
        if previous >= 0 and previous != length:
            return self.fail(400, "conflicting Content-Length headers")
        return length

    cdef int _transfer_coding(self, char* buf, Span value, bint* chunked_last) except -2:
        # RFC 9112 §6.1: chunked MUST be final and MUST NOT be applied twice.
        cdef Py_ssize_t pos = value.off, end = value.off + value.len, start, token_end
        while pos <= end:
            while pos < end and _is_ows(buf[pos]):
                pos += 1
            start = pos
            while pos < end and TCHAR[<unsigned char>buf[pos]]:
                pos += 1
            token_end = pos
            while pos < end and _is_ows(buf[pos]):
                pos += 1
            if pos < end and buf[pos] != b',':
                return self.fail(400, "invalid Transfer-Encoding")
            if token_end > start:
                if chunked_last[0]:
                    return self.fail(400, "chunked is not the final transfer coding")
                chunked_last[0] = _span_is(buf, start, token_end - start, "chunked", 7)
            pos += 1
        return 0

    cdef void _connection_options(self, char* buf, Span value, bint* close_token,
                                  bint* keep_alive_token) noexcept:
        # RFC 9110 §7.6.1: Connection = #connection-option, case-insensitive tokens.
        cdef Py_ssize_t pos = value.off, end = value.off + value.len, start, token_end
        while pos < end:
            while pos < end and (_is_ows(buf[pos]) or buf[pos] == b','):
                pos += 1
            start = pos
            while pos < end and buf[pos] != b',' and not _is_ows(buf[pos]):
                pos += 1
            token_end = pos
            if _span_is(buf, start, token_end - start, "close", 5):
                close_token[0] = True
            elif _span_is(buf, start, token_end - start, "keep-alive", 10):
                keep_alive_token[0] = True
            elif _span_is(buf, start, token_end - start, "upgrade", 7):
                self.upgrade = True

    # Python-level views, used by tests and the environ builder's Python entry.
    @property
    def error(self):
        return (self.error_status, self.error_reason)


cdef class BodyDecoder:
    """Decodes a Content-Length or chunked body, incrementally and in place."""

    def __init__(self, int64_t limit_request_body=0, Py_ssize_t limit_request_fields=100,
                 Py_ssize_t limit_request_field_size=8190):
        self.limit_body = limit_request_body if limit_request_body > 0 else 0
        self.limit_fields = limit_request_fields if limit_request_fields > 0 else 32768
        self.limit_field_size = _limit_or_unlimited(limit_request_field_size)
        # A chunk-size line with extensions gets the same room as a header field.
        self.limit_line = self.limit_field_size
        self.start(BODY_NONE, 0)

    cdef void start(self, int kind, int64_t content_length) noexcept:
        self.kind = kind
        self.remaining = content_length if kind == BODY_LENGTH else 0
        self.received = 0
        self.chunk_state = CHUNK_SIZE if kind == BODY_CHUNKED else CHUNK_DONE
        self.line_length = 0
        self.trailer_fields = 0
        self.seen_digit = False
        self.error_status = 0

    cdef bint done(self) noexcept:
        if self.kind == BODY_LENGTH:
            return self.remaining == 0
        if self.kind == BODY_CHUNKED:
            return self.chunk_state == CHUNK_DONE
        return True

    cdef int fail(self, int status, str reason) except -2:
        self.error_status = status
        self.error_reason = reason
        return PARSE_ERROR

    cdef Py_ssize_t decode(self, char* buf, Py_ssize_t length, Py_ssize_t* out_length) except -2:
        """Consumes up to ``length`` bytes; decoded body bytes end up at buf[0:out_length].

        Returns the number of bytes consumed (never past the end of the body),
        or -1 on a framing error.
        """
        cdef Py_ssize_t n
        if self.kind == BODY_LENGTH:
            n = length if length < self.remaining else <Py_ssize_t>self.remaining
            self.remaining -= n
            self.received += n
            out_length[0] = n
            return n
        if self.kind == BODY_CHUNKED:
            return self._decode_chunked(buf, length, out_length)
        out_length[0] = 0
        return 0

    cdef Py_ssize_t _decode_chunked(self, char* buf, Py_ssize_t length,
                                    Py_ssize_t* out_length) except -2:
        # RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF;
        # last-chunk = 1*"0" [ chunk-ext ] CRLF; then trailer-section CRLF.
        cdef Py_ssize_t pos = 0, out = 0, n
        cdef unsigned char c, digit
        while pos < length:
            c = <unsigned char>buf[pos]
            state = self.chunk_state
            if state == CHUNK_DATA:
                n = length - pos
                if n > self.remaining:
                    n = <Py_ssize_t>self.remaining
                if out != pos:
                    memmove(buf + out, buf + pos, n)
                out += n
                pos += n
                self.remaining -= n
                if self.remaining == 0:
                    self.chunk_state = CHUNK_DATA_CR
                continue
            pos += 1
            if state == CHUNK_SIZE:
                digit = HEX_VALUE[c]
                if digit != 0xFF:
                    if self.remaining > (MAX_BODY_LENGTH >> 4):
                        return self.fail(400, "chunk size too large")
                    self.remaining = self.remaining * 16 + digit
                    self.seen_digit = True
                elif not self.seen_digit:
                    return self.fail(400, "invalid chunk size")
                elif c == b';' or c == SP or c == HTAB:
                    self.chunk_state = CHUNK_EXT
                elif c == CR:
                    self.chunk_state = CHUNK_SIZE_LF
                else:
                    return self.fail(400, "invalid chunk size")
                if self._count_line_byte() < 0:
                    return PARSE_ERROR
            elif state == CHUNK_EXT:
                if c == CR:
                    self.chunk_state = CHUNK_SIZE_LF
                elif not FIELD_CONTENT[c]:
                    return self.fail(400, "invalid chunk extension")
                elif self._count_line_byte() < 0:
                    return PARSE_ERROR
            elif state == CHUNK_SIZE_LF:
                if c != LF:
                    return self.fail(400, "bare CR in chunk size line")
                if self._end_size_line() < 0:
                    return PARSE_ERROR
            elif state == CHUNK_DATA_CR:
                if c != CR:
                    return self.fail(400, "chunk data not followed by CRLF")
                self.chunk_state = CHUNK_DATA_LF
            elif state == CHUNK_DATA_LF:
                if c != LF:
                    return self.fail(400, "chunk data not followed by CRLF")
                self.chunk_state = CHUNK_SIZE
            elif self._trailer_byte(c) < 0:
                return PARSE_ERROR
            if self.chunk_state == CHUNK_DONE:
                break
        out_length[0] = out
        return pos

    cdef int _count_line_byte(self) except -2:
        self.line_length += 1
        if self.line_length > self.limit_line:
            return self.fail(400, "chunk size line too long")
        return 0

    cdef int _end_size_line(self) except -2:
        self.line_length = 0
        self.seen_digit = False
        if self.remaining == 0:
            self.chunk_state = CHUNK_TRAILER_START
            return 0
        self.received += self.remaining
        if self.limit_body and self.received > self.limit_body:
            return self.fail(413, "request body larger than limit_request_body")
        self.chunk_state = CHUNK_DATA
        return 0

    cdef int _trailer_byte(self, unsigned char c) except -2:
        # RFC 9112 §7.1.2: trailer fields are parsed like header fields, then discarded
        # (PEP 3333 has no place for them).
        state = self.chunk_state
        if state == CHUNK_TRAILER_START:
            if c == CR:
                self.chunk_state = CHUNK_END_LF
                return 0
            if not TCHAR[c]:
                return self.fail(400, "invalid trailer field")
            self.trailer_fields += 1
            if self.trailer_fields > self.limit_fields:
                return self.fail(431, "too many trailer fields")
            self.line_length = 1
            self.chunk_state = CHUNK_TRAILER_NAME
        elif state == CHUNK_TRAILER_NAME:
            if c == b':':
                self.chunk_state = CHUNK_TRAILER_VALUE
            elif not TCHAR[c]:
                return self.fail(400, "invalid trailer field")
        elif state == CHUNK_TRAILER_VALUE:
            if c == CR:
                self.chunk_state = CHUNK_TRAILER_LF
            elif not FIELD_CONTENT[c]:
                return self.fail(400, "invalid trailer field")
        elif state == CHUNK_TRAILER_LF:
            if c != LF:
                return self.fail(400, "bare CR in trailer field")
            self.chunk_state = CHUNK_TRAILER_START
            return 0
        elif state == CHUNK_END_LF:
            if c != LF:
                return self.fail(400, "bare CR after trailer section")
            self.chunk_state = CHUNK_DONE
            return 0
        self.line_length += 1
        if self.line_length > self.limit_field_size:
            return self.fail(431, "trailer field too long")
        return 0


cdef class ParsedRequest:
    """A complete request head, as Python values (for tests and tools; the loop reads spans)."""

    @property
    def method(self):
        return self._span(self.head_parser.method)

    @property
    def target(self):
        return self._span(self.head_parser.target)

    @property
    def path(self):
        return self._span(self.head_parser.path)

    @property
    def query(self):
        return self._span(self.head_parser.query)

    @property
    def version(self):
        return (1, self.head_parser.version_minor)

    @property
    def headers(self):
        cdef Py_ssize_t i
        return [(self._span(self.head_parser.fields[i].name),
                 self._span(self.head_parser.fields[i].value))
                for i in range(self.head_parser.nfields)]

    @property
    def chunked(self):
        return self.head_parser.body_kind == BODY_CHUNKED

    @property
    def content_length(self):
        """The declared length; None when chunked."""
        if self.head_parser.body_kind == BODY_CHUNKED:
            return None
        return self.head_parser.content_length

    @property
    def keep_alive(self):
        return self.head_parser.keep_alive

    @property
    def expect_continue(self):
        return self.head_parser.expect_continue

    @property
    def upgrade(self):
        return self.head_parser.upgrade

    cdef bytes _span(self, Span span):
        return self.head[span.off:span.off + span.len]

    def __repr__(self):
        return f"<ParsedRequest {self.method!r} {self.target!r} HTTP/1.{self.head_parser.version_minor}>"


cdef class RequestParser:
    """Feeds bytes, yields events: ("request", ParsedRequest), ("body", bytes), ("end", None).

    Raises :class:`ParseError` for a request that must be refused; after that
    the connection is to be closed and the parser is not usable.
    """

    cdef HeadParser head_parser
    cdef BodyDecoder body_decoder
    cdef bytearray pending
    cdef bint in_body
    cdef dict limits

    def __init__(self, **limits):
        self.limits = limits
        self.head_parser = HeadParser(**limits)
        self.body_decoder = BodyDecoder(
            limits.get("limit_request_body", 0),
            limits.get("limit_request_fields", 100),
            limits.get("limit_request_field_size", 8190),
        )
        self.pending = bytearray()
        self.in_body = False

    def feed(self, data):
        cdef list events = []
        cdef Py_ssize_t consumed, decoded = 0
        cdef char* buf
        self.pending += data
        while True:
            buf = self.pending
            if self.in_body:
                consumed = self.body_decoder.decode(buf, len(self.pending), &decoded)
                if consumed < 0:
                    raise ParseError(self.body_decoder.error_status, self.body_decoder.error_reason)
                if decoded:
                    events.append(("body", bytes(self.pending[:decoded])))
                del self.pending[:consumed]
                if not self.body_decoder.done():
                    return events
                self.in_body = False
                events.append(("end", None))
                continue
            consumed = self.head_parser.parse(buf, len(self.pending))
            if consumed < 0:
                raise ParseError(self.head_parser.error_status, self.head_parser.error_reason)
            if consumed == 0:
                return events
            events.append(("request", self._complete_head(consumed)))
            del self.pending[:consumed]
            self.head_parser.reset()
            self.in_body = True

    cdef ParsedRequest _complete_head(self, Py_ssize_t consumed):
        cdef ParsedRequest request = ParsedRequest.__new__(ParsedRequest)
        cdef HeadParser own = HeadParser(**self.limits)
        request.head = bytes(self.pending[:consumed])
        # A parser of its own, so the request's spans outlive this parser's next head.
        if own.parse(request.head, consumed) != consumed:
            raise AssertionError("a complete head failed to parse twice")
        request.head_parser = own
        self.body_decoder.start(own.body_kind, own.content_length)
        return request
