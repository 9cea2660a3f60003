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
from libc.stdlib cimport malloc, free
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcpy, memmove

from fastwsgi.includes.http_chars cimport (
    AUTHORITY_CHAR, FIELD_CONTENT, HEXDIG, HEXDIG_VALUE, QDTEXT, TARGET_CHAR, TCHAR,
    TCHAR_UNDERSCORE, equals_exactly, equals_lowered)

DEF SP = 32
DEF HTAB = 9
DEF CR = 13
DEF LF = 10

# Largest Content-Length / chunk size accepted: far above any real body and
# far from int64 overflow.
cdef int64_t MAX_BODY_LENGTH = (<int64_t>1) << 60
cdef Py_ssize_t UNLIMITED = (<Py_ssize_t>1) << 40

# gunicorn's ceilings (gunicorn/http/message.py), so its limit settings mean the same here.
DEF MAX_REQUEST_LINE = 8190
DEF MAX_HEADERS = 32768

# The settings a parser takes, by their gunicorn names.
cdef tuple LIMIT_SETTINGS = ("limit_request_line", "limit_request_fields", "limit_request_field_size",
                              "limit_request_body", "header_map", "strip_header_spaces",
                              "permit_obsolete_folding")
cdef dict UNDERSCORE_MODES = {"drop": UNDERSCORE_DROP, "refuse": UNDERSCORE_REFUSE,
                              "dangerous": UNDERSCORE_PASS}


class ParseError(Exception):
    """A request that must be refused: ``status`` is the answer, ``reason`` goes to the log."""

    def __init__(self, int status, str reason):
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.events = []

    def __str__(self):
        return f"{self.status} {self.reason}"


cdef inline bint _is_ows(char c) noexcept:
    return c == SP or c == HTAB


cdef extern from *:
    """
    /* Index of the first byte flagged in a SWAR mask (its high bit set), on a
       little-endian machine; -1 elsewhere, where the caller reads byte by byte. */
    static inline int fastwsgi_first_flagged(unsigned long long mask) {
    #if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        return __builtin_ctzll(mask) >> 3;
    #else
        (void)mask;
        return -1;
    #endif
    }
    """
    int fastwsgi_first_flagged(uint64_t mask) noexcept


cdef inline Py_ssize_t _skip_field_content(const char* buf, Py_ssize_t pos,
                                           Py_ssize_t end) noexcept:
    # Eight bytes at a time: (x - 0x20..) & ~x & 0x80.. flags the bytes below 0x20
    # (CTLs, CR among them), and the same on x ^ 0x7F.. flags DEL.  The lowest flag
    # is always a true one (borrows only run upwards), so it is where the field
    # content stops, unless it is an HTAB.  The byte loop does the last few bytes,
    # never reading past ``end``.
    cdef uint64_t word, deletes, flags
    cdef int first
    while pos + 8 <= end:
        memcpy(&word, buf + pos, 8)
        deletes = word ^ 0x7F7F7F7F7F7F7F7FULL
        flags = (((word - 0x2020202020202020ULL) & ~word)
                 | ((deletes - 0x0101010101010101ULL) & ~deletes)) & 0x8080808080808080ULL
        if flags == 0:
            pos += 8
            continue
        first = fastwsgi_first_flagged(flags)
        if first < 0:
            break
        pos += first
        if buf[pos] != HTAB:
            return pos
        pos += 1
    while FIELD_CONTENT[<unsigned char>buf[pos]]:
        pos += 1
    return pos


cdef inline bint _name_is(const char* buf, Span name, const char* lowered) noexcept:
    return equals_lowered(buf + name.off, name.len, lowered)


cdef void _http_version(const char* buf, Py_ssize_t pos, int* major, int* minor) noexcept:
    # RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT CRLF, case-sensitive;
    # major is -1 when the bytes at pos are not one. The line is known to end in
    # CRLF, and each byte is read only after the one before it matched, so the
    # reads stay inside the line.
    major[0] = minor[0] = -1
    if (buf[pos] != b'H' or buf[pos + 1] != b'T' or buf[pos + 2] != b'T'
            or buf[pos + 3] != b'P' or buf[pos + 4] != b'/'):
        return
    if not (b'0' <= buf[pos + 5] <= b'9') or buf[pos + 6] != b'.':
        return
    if not (b'0' <= buf[pos + 7] <= b'9') or buf[pos + 8] != CR or buf[pos + 9] != LF:
        return
    major[0] = buf[pos + 5] - 48
    minor[0] = buf[pos + 7] - 48


cdef inline bint _method_is(const char* buf, Span method, const char* name) noexcept:
    # RFC 9110 §9.1: the method token is case-sensitive.
    return equals_exactly(buf + method.off, method.len, name)


cdef bint _valid_reg_name(const char* buf, Py_ssize_t pos, Py_ssize_t end, bint colon) noexcept:
    # reg-name = *( unreserved / pct-encoded / sub-delims ), userinfo adds ":"
    cdef unsigned char c
    while pos < end:
        c = <unsigned char>buf[pos]
        if c == b'%':
            if (end - pos < 3 or not HEXDIG[<unsigned char>buf[pos + 1]]
                    or not HEXDIG[<unsigned char>buf[pos + 2]]):
                return False
            pos += 3
            continue
        if not (AUTHORITY_CHAR[c] or (colon and c == b':')):
            return False
        pos += 1
    return True


cdef bint _valid_authority(const char* buf, Py_ssize_t pos, Py_ssize_t end,
                           bint allow_userinfo, bint require_port) noexcept:
    # RFC 3986 §3.2: authority = [ userinfo "@" ] host [ ":" port ]
    #   host = IP-literal / IPv4address / reg-name;  port = *DIGIT
    # RFC 9110 §7.2: Host = uri-host [ ":" port ], without userinfo.
    cdef Py_ssize_t i, at = -1
    cdef unsigned char c
    if allow_userinfo:
        for i in range(pos, end):
            if buf[i] == b'@':
                at = i
        if at >= 0:
            # userinfo = *( unreserved / pct-encoded / sub-delims / ":" )
            if not _valid_reg_name(buf, pos, at, True):
                return False
            pos = at + 1
    if pos < end and buf[pos] == b'[':
        # IP-literal = "[" ( IPv6address / IPvFuture ) "]"; a zone id may follow as %25.
        i = pos + 1
        while i < end and buf[i] != b']':
            c = <unsigned char>buf[i]
            if not (AUTHORITY_CHAR[c] or c == b':' or c == b'%'):
                return False
            i += 1
        if i == end or i == pos + 1:
            return False
        pos = i + 1
    else:
        i = pos
        while i < end and buf[i] != b':':
            i += 1
        if i == pos or not _valid_reg_name(buf, pos, i, False):
            return False
        pos = i
    if pos == end:
        return not require_port
    if buf[pos] != b':':
        return False
    pos += 1
    if require_port and pos == end:
        return False
    while pos < end:
        if not (b'0' <= buf[pos] <= b'9'):
            return False
        pos += 1
    return True


cdef int normalize_limits(Limits* limits, object options) except -1:
    """gunicorn's settings (attributes of ``options``) as the parsers enforce them.

    ``limit_request_line`` 0 means unlimited, and it is capped at gunicorn's
    ceiling; ``limit_request_fields`` 0 means the ceiling; ``limit_request_field_size``
    counts a field line with its CRLF (folded lines included) and 0 means the
    setting's default; ``limit_request_body`` 0 means unlimited.
    """
    cdef Py_ssize_t line = options.limit_request_line
    cdef Py_ssize_t fields = options.limit_request_fields
    cdef Py_ssize_t field_size = options.limit_request_field_size
    cdef int64_t body = options.limit_request_body
    if options.header_map not in UNDERSCORE_MODES:
        raise ValueError(f"header_map must be drop, refuse or dangerous, not {options.header_map!r}")
    if line == 0:
        limits.request_line = UNLIMITED
    elif line < 0 or line > MAX_REQUEST_LINE:
        limits.request_line = MAX_REQUEST_LINE
    else:
        limits.request_line = line
    limits.fields = fields if 0 < fields <= MAX_HEADERS else MAX_HEADERS
    limits.field_size = field_size if field_size > 0 else _setting_default("limit_request_field_size")
    limits.body = body if body > 0 else 0
    limits.underscore_mode = UNDERSCORE_MODES[options.header_map]
    limits.strip_header_spaces = options.strip_header_spaces
    limits.permit_obsolete_folding = options.permit_obsolete_folding
    return 0


cdef object _setting_default(str name):
    from fastwsgi.settings import BY_NAME
    return BY_NAME[name].default


cdef int _limits_from_keywords(Limits* limits, dict keywords) except -1:
    """The Python-level constructors' limits: gunicorn's settings by name, each left
    out taking the setting's default, but for the body: a parser alone has no limit."""
    from types import SimpleNamespace
    unknown = sorted(set(keywords) - set(LIMIT_SETTINGS))
    if unknown:
        raise TypeError(f"unknown limit setting(s): {', '.join(unknown)}")
    values = {name: _setting_default(name) for name in LIMIT_SETTINGS}
    values["limit_request_body"] = 0
    values.update(keywords)
    return normalize_limits(limits, SimpleNamespace(**values))


cdef class HeadParser:
    """Parses one request head (request line + field lines) out of a buffer.

    ``HeadParser(**limits)`` takes gunicorn's limit settings by name (see
    LIMIT_SETTINGS and normalize_limits); the loop configures its parsers from the
    limits it normalized once instead.
    """

    def __cinit__(self):
        self.fields = NULL

    def __init__(self, **limits):
        cdef Limits normalized
        _limits_from_keywords(&normalized, limits)
        self.configure(&normalized)

    cdef int configure(self, const Limits* limits) except -1:
        self.limits = limits[0]
        free(self.fields)
        self.fields = <FieldSpan*>malloc(sizeof(FieldSpan) * limits.fields)
        if self.fields == NULL:
            raise MemoryError()
        self.reset()
        return 0

    def __dealloc__(self):
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
        if self._check_framing(buf) < 0:
            return PARSE_ERROR
        return head_end

    cdef int _parse_request_line(self, char* buf, Py_ssize_t pos) except -2:
        # RFC 9112 §3: request-line = method SP request-target SP HTTP-version CRLF
        cdef Py_ssize_t start = pos
        cdef int major, minor
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
        _http_version(buf, pos + 1, &major, &minor)
        # RFC 9110 §9.3.2: no content in an answer to HEAD, refusals included. A line
        # in the form of an HTTP/1 request line says what the client asked for, even
        # when its target is then refused.
        self.head_request = major == 1 and _method_is(buf, self.method, "HEAD")
        if self._split_target(buf) < 0:
            return PARSE_ERROR
        if major < 0:
            return self.fail(400, "invalid HTTP version")
        if major != 1:
            return self.fail(505, "HTTP version not supported")
        # RFC 9110 §2.5: a higher minor version of a major version we implement is
        # processed as the highest minor we conform to (505 is for other majors).
        self.version_minor = minor if minor < 1 else 1
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

    cdef int _split_target(self, char* buf) except -2:
        # RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT), asterisk-form.
        cdef Py_ssize_t start = self.target.off
        cdef Py_ssize_t end = start + self.target.len
        cdef Py_ssize_t pos = start, authority
        cdef char c
        cdef bint connect = _method_is(buf, self.method, "CONNECT")
        self.query.off = end
        self.query.len = 0
        if connect:
            # §3.2.3: authority-form = uri-host ":" port, only for CONNECT; it has no path.
            if not _valid_authority(buf, start, end, False, True):
                return self.fail(400, "invalid authority-form target")
            self.path.off = end
            self.path.len = 0
            return 0
        if buf[start] == b'*' and self.target.len == 1:
            # §3.2.4: asterisk-form, only for OPTIONS.
            if not _method_is(buf, self.method, "OPTIONS"):
                return self.fail(400, "asterisk-form target outside OPTIONS")
            self.path.off = start
            self.path.len = 1
            return 0
        if buf[start] != b'/':
            # §3.2.2: absolute-form = scheme ":" "//" authority path-abempty [ "?" query ]
            while pos < end:
                c = buf[pos]
                if not (b'a' <= c <= b'z' or b'A' <= c <= b'Z' or (pos > start and (
                        b'0' <= c <= b'9' or c == b'+' or c == b'-' or c == b'.'))):
                    break
                pos += 1
            if (pos == start or end - pos < 3 or buf[pos] != b':' or buf[pos + 1] != b'/'
                    or buf[pos + 2] != b'/'):
                return self.fail(400, "invalid request target")
            pos += 3
            authority = pos
            while pos < end and buf[pos] != b'/' and buf[pos] != b'?' and buf[pos] != b'#':
                pos += 1
            if not _valid_authority(buf, authority, pos, True, False):
                return self.fail(400, "invalid authority in absolute-form target")
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

    cdef int _parse_fields(self, char* buf, Py_ssize_t pos, Py_ssize_t head_end) except -2:
        # RFC 9112 §5: field-line = field-name ":" OWS field-value OWS
        cdef Py_ssize_t name_start, name_end, value_start, value_end
        cdef Py_ssize_t fields_end = head_end - 2
        cdef Py_ssize_t field_size = 0
        cdef FieldSpan* field
        cdef bint dropped = False
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
            if name_chars & TCHAR_UNDERSCORE:
                if self.limits.underscore_mode == UNDERSCORE_REFUSE:
                    return self.fail(400, "invalid header name (underscore)")
                if self.limits.underscore_mode == UNDERSCORE_DROP:
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
            self.nfields += 1
        return 0

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

    cdef int _check_framing(self, char* buf) except -2:
        cdef Py_ssize_t i, hosts = 0, content_types = 0
        cdef bint has_length = False, has_te = False, chunked_last = False
        cdef bint close_token = False, keep_alive_token = False
        cdef int64_t length = -1
        cdef FieldSpan* field
        self.upgrade = False
        self.expect_continue = False
        self.host_field = -1
        for i in range(self.nfields):
            field = &self.fields[i]
            if _name_is(buf, field.name, "host"):
                hosts += 1
                self.host_field = i
            elif _name_is(buf, field.name, "content-length"):
                length = self._content_length(buf, field.value, length)
                if length < 0:
                    return PARSE_ERROR
                has_length = True
            elif _name_is(buf, field.name, "transfer-encoding"):
                if self._transfer_coding(buf, field.value, &chunked_last) < 0:
                    return PARSE_ERROR
                has_te = True
            elif _name_is(buf, field.name, "connection"):
                self._connection_options(buf, field.value, &close_token, &keep_alive_token)
            elif _name_is(buf, field.name, "content-type"):
                content_types += 1
            elif _name_is(buf, field.name, "expect"):
                # RFC 9110 §10.1.1: 100-continue is the only expectation; it means
                # nothing in HTTP/1.0; any other MAY be answered with 417.
                if not equals_lowered(buf + field.value.off, field.value.len, "100-continue"):
                    return self.fail(417, "unsupported expectation")
                self.expect_continue = self.version_minor == 1
        # RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host, never more than one,
        # and an invalid Host value is refused.
        if hosts > 1:
            return self.fail(400, "more than one Host header")
        if hosts == 0:
            if self.version_minor == 1:
                return self.fail(400, "missing Host header")
        else:
            field = &self.fields[self.host_field]
            if field.value.len and not _valid_authority(
                    buf, field.value.off, field.value.off + field.value.len, False, False):
                return self.fail(400, "invalid Host header")
        # RFC 9110 §5.3: Content-Type is a singleton; two of them leave the content ambiguous.
        if content_types > 1:
            return self.fail(400, "more than one Content-Type header")
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
            if self.limits.body and length > self.limits.body:
                return self.fail(413, "request body larger than limit_request_body")
        if _method_is(buf, self.method, "CONNECT"):
            # RFC 9110 §9.3.6: after CONNECT the connection is a tunnel, never another request.
            self.keep_alive = False
        elif self.version_minor == 1:
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
            if length > MAX_BODY_LENGTH // 10:
                return self.fail(400, "Content-Length too large")
            length = length * 10 + (c - 48)
            if length > MAX_BODY_LENGTH:
                return self.fail(400, "Content-Length too large")
        if previous >= 0 and previous != length:
            return self.fail(400, "conflicting Content-Length headers")
        return length

    cdef int _transfer_coding(self, char* buf, Span value, bint* chunked_last) except -2:
        # RFC 9112 §6.1: chunked MUST be final and MUST NOT be applied twice; a
        # coding the server does not know SHOULD be answered with 501.  Codings
        # before chunked are passed to the app undecoded, as gunicorn does.
        cdef Py_ssize_t pos = value.off, end = value.off + value.len, start, n
        while pos <= end:
            while pos < end and _is_ows(buf[pos]):
                pos += 1
            start = pos
            while pos < end and TCHAR[<unsigned char>buf[pos]]:
                pos += 1
            n = pos - start
            while pos < end and _is_ows(buf[pos]):
                pos += 1
            if pos < end and buf[pos] != b',':
                return self.fail(400, "invalid Transfer-Encoding")
            if n:
                if chunked_last[0]:
                    return self.fail(400, "chunked is not the final transfer coding")
                if equals_lowered(buf + start, n, "chunked"):
                    chunked_last[0] = True
                elif not (equals_lowered(buf + start, n, "gzip") or equals_lowered(buf + start, n, "deflate")
                          or equals_lowered(buf + start, n, "compress")
                          or equals_lowered(buf + start, n, "x-gzip")
                          or equals_lowered(buf + start, n, "x-compress")
                          or equals_lowered(buf + start, n, "identity")):
                    return self.fail(501, "unsupported transfer coding")
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
            if equals_lowered(buf + start, token_end - start, "close"):
                close_token[0] = True
            elif equals_lowered(buf + start, token_end - start, "keep-alive"):
                keep_alive_token[0] = True
            elif equals_lowered(buf + start, token_end - start, "upgrade"):
                self.upgrade = True

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


cdef class BodyDecoder:
    """Decodes a Content-Length or chunked body, incrementally and in place."""

    def __init__(self, **limits):
        cdef Limits normalized
        _limits_from_keywords(&normalized, limits)
        self.configure(&normalized)

    cdef void configure(self, const Limits* limits) noexcept:
        self.limits = limits[0]
        self.start(BODY_NONE, 0)

    cdef void start(self, int kind, int64_t content_length) noexcept:
        self.kind = kind
        self.remaining = content_length if kind == BODY_LENGTH else 0
        self.received = 0
        self.chunk_state = CHUNK_SIZE if kind == BODY_CHUNKED else CHUNK_DONE
        self.line_length = 0
        self.trailer_fields = 0
        self.trailer_name_length = 0
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
        cdef unsigned char c
        cdef int state
        while pos < length:
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
            c = <unsigned char>buf[pos]
            pos += 1
            if state < CHUNK_SIZE_LF:
                if self._size_line_byte(state, c) < 0:
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
            else:
                if self._trailer_byte(state, c) < 0:
                    return PARSE_ERROR
                if self.chunk_state == CHUNK_DONE:
                    break
        out_length[0] = out
        return pos

    cdef int _size_line_byte(self, int state, unsigned char c) except -2:
        # RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
        # with chunk-ext-val = token / quoted-string; BWS comes only before a ";" or "=".
        cdef unsigned char digit
        cdef int next_state = state
        self.line_length += 1
        # A chunk-size line with extensions gets the same room as a header field.
        if self.line_length > self.limits.field_size:
            return self.fail(400, "chunk size line too long")
        if state == CHUNK_SIZE:
            digit = HEXDIG[c]
            if digit:
                if self.remaining > (MAX_BODY_LENGTH >> 4):
                    return self.fail(400, "chunk size too large")
                self.remaining = self.remaining * 16 + (digit & HEXDIG_VALUE)
                return 0
            if self.line_length == 1:
                return self.fail(400, "invalid chunk size")
            if c == CR:
                next_state = CHUNK_SIZE_LF
            elif c == b';':
                next_state = CHUNK_EXT_BWS_NAME
            elif _is_ows(c):
                next_state = CHUNK_SIZE_BWS
            else:
                return self.fail(400, "invalid chunk size")
        elif state == CHUNK_SIZE_BWS:
            if c == b';':
                next_state = CHUNK_EXT_BWS_NAME
            elif not _is_ows(c):
                return self.fail(400, "invalid chunk size")
        elif state == CHUNK_EXT_BWS_NAME:
            if TCHAR[c]:
                next_state = CHUNK_EXT_NAME
            elif not _is_ows(c):
                return self.fail(400, "invalid chunk extension")
        elif state == CHUNK_EXT_NAME or state == CHUNK_EXT_TOKEN or state == CHUNK_EXT_VALUE_END:
            if TCHAR[c] and state != CHUNK_EXT_VALUE_END:
                pass
            elif c == CR:
                next_state = CHUNK_SIZE_LF
            elif c == b';':
                next_state = CHUNK_EXT_BWS_NAME
            elif c == b'=' and state == CHUNK_EXT_NAME:
                next_state = CHUNK_EXT_BWS_VALUE
            elif _is_ows(c):
                next_state = CHUNK_EXT_BWS_EQUALS if state == CHUNK_EXT_NAME else CHUNK_EXT_BWS_AFTER
            else:
                return self.fail(400, "invalid chunk extension")
        elif state == CHUNK_EXT_BWS_EQUALS or state == CHUNK_EXT_BWS_AFTER:
            if c == b';':
                next_state = CHUNK_EXT_BWS_NAME
            elif c == b'=' and state == CHUNK_EXT_BWS_EQUALS:
                next_state = CHUNK_EXT_BWS_VALUE
            elif not _is_ows(c):
                return self.fail(400, "invalid chunk extension")
        elif state == CHUNK_EXT_BWS_VALUE:
            if c == b'"':
                next_state = CHUNK_EXT_QUOTED
            elif TCHAR[c]:
                next_state = CHUNK_EXT_TOKEN
            elif not _is_ows(c):
                return self.fail(400, "invalid chunk extension")
        elif state == CHUNK_EXT_QUOTED:
            if c == b'"':
                next_state = CHUNK_EXT_VALUE_END
            elif c == b'\\':
                next_state = CHUNK_EXT_QUOTED_PAIR
            elif not QDTEXT[c]:
                return self.fail(400, "invalid chunk extension")
        else:
            # quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
            if not (FIELD_CONTENT[c]):
                return self.fail(400, "invalid chunk extension")
            next_state = CHUNK_EXT_QUOTED
        self.chunk_state = next_state
        return 0

    cdef int _end_size_line(self) except -2:
        self.line_length = 0
        if self.remaining == 0:
            self.chunk_state = CHUNK_TRAILER_START
            return 0
        self.received += self.remaining
        if self.limits.body and self.received > self.limits.body:
            return self.fail(413, "request body larger than limit_request_body")
        self.chunk_state = CHUNK_DATA
        return 0

    cdef int _trailer_byte(self, int state, unsigned char c) except -2:
        # RFC 9112 §7.1.2: trailer fields are parsed like header fields, then discarded
        # (PEP 3333 has no place for them).
        cdef const char* name
        cdef Py_ssize_t n
        if state == CHUNK_TRAILER_START:
            if c == CR:
                self.chunk_state = CHUNK_END_LF
                return 0
            if not TCHAR[c]:
                return self.fail(400, "invalid trailer field")
            self.trailer_fields += 1
            if self.trailer_fields > self.limits.fields:
                return self.fail(431, "too many trailer fields")
            self.line_length = 0
            self.trailer_name_length = 0
            self.chunk_state = CHUNK_TRAILER_NAME
            state = CHUNK_TRAILER_NAME
        if state == CHUNK_TRAILER_NAME:
            if c == b':':
                # RFC 9110 §6.5.1: fields that frame, route or authenticate a message
                # have no place in a trailer; gunicorn refuses them too.
                name = self.trailer_name
                n = self.trailer_name_length
                if n <= <Py_ssize_t>sizeof(self.trailer_name) and (
                        equals_lowered(name, n, "host") or equals_lowered(name, n, "content-length")
                        or equals_lowered(name, n, "transfer-encoding")
                        or equals_lowered(name, n, "trailer") or equals_lowered(name, n, "te")
                        or equals_lowered(name, n, "authorization")):
                    return self.fail(400, "forbidden trailer field")
                self.chunk_state = CHUNK_TRAILER_VALUE
            elif not TCHAR[c]:
                return self.fail(400, "invalid trailer field")
            else:
                if self.trailer_name_length < <Py_ssize_t>sizeof(self.trailer_name):
                    self.trailer_name[self.trailer_name_length] = c
                self.trailer_name_length += 1
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
        # a trailer line and its CRLF, like a header field line
        self.line_length += 1
        if self.line_length + 1 > self.limits.field_size:
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

    def __init__(self, **limits):
        self.head_parser = HeadParser(**limits)
        self.body_decoder = BodyDecoder.__new__(BodyDecoder)
        self.body_decoder.configure(&self.head_parser.limits)
        self.pending = bytearray()
        self.in_body = False

    def feed(self, data):
        """Returns the events the bytes complete; a ParseError carries those before it in ``events``."""
        cdef list events = []
        cdef Py_ssize_t consumed, decoded = 0
        cdef char* buf
        self.pending += data
        while True:
            buf = self.pending
            if self.in_body:
                consumed = self.body_decoder.decode(buf, len(self.pending), &decoded)
                if consumed < 0:
                    error = ParseError(self.body_decoder.error_status, self.body_decoder.error_reason)
                    error.events = events
                    raise error
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
                error = ParseError(self.head_parser.error_status, self.head_parser.error_reason)
                error.events = events
                raise error
            if consumed == 0:
                return events
            events.append(("request", self._complete_head(consumed)))
            del self.pending[:consumed]
            self.head_parser.reset()
            self.in_body = True

    @property
    def buffered(self):
        """Bytes received and not yet consumed (the start of the next request)."""
        return bytes(self.pending)

    @property
    def awaiting_body(self):
        """True between a request's head and the end of its body."""
        return self.in_body

    cdef ParsedRequest _complete_head(self, Py_ssize_t consumed):
        cdef ParsedRequest request = ParsedRequest.__new__(ParsedRequest)
        cdef HeadParser own = HeadParser.__new__(HeadParser)
        # The head as parsed (obs-folds already rewritten in place) parses again to the
        # same spans, in a parser of its own that outlives this parser's next head.
        own.configure(&self.head_parser.limits)
        request.head = bytes(self.pending[:consumed])
        if own.parse(request.head, consumed) != consumed:
            raise AssertionError("a complete head failed to parse twice")
        request.head_parser = own
        self.body_decoder.start(own.body_kind, own.content_length)
        return request



# The tables as bytes, for character_class().
cdef dict CHARACTER_CLASSES = {
    "tchar": (<const char*>TCHAR)[:256],
    "field-content": (<const char*>FIELD_CONTENT)[:256],
    "request-target": (<const char*>TARGET_CHAR)[:256],
    "authority": (<const char*>AUTHORITY_CHAR)[:256],
    "qdtext": (<const char*>QDTEXT)[:256],
    "HEXDIG": (<const char*>HEXDIG)[:256],
}


def character_class(str rule):
    """The table of an RFC rule as includes/http_chars.h compiles it into every
    extension: 256 bytes, one per byte value, 0 for a byte outside the rule.
    ``rule`` is tchar, field-content, request-target, authority, qdtext or HEXDIG."""
    try:
        return CHARACTER_CLASSES[rule]
    except KeyError:
        raise ValueError(f"no character class {rule!r}") from None
