# The request body (RFC 9112 §6.3, §7.1): a Content-Length count or the
# chunked coding, decoded in place. Included into _parser.pyx; the class is
# declared in _parser.pxd.


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
                if self.line_length > MAX_CHUNK_SIZE_DIGITS:
                    # Leading zeros past what any size needs: a parser ahead of this
                    # one that reads a bounded number of digits would frame the body
                    # otherwise (picohttpparser stops at 16, h11 at 20).
                    return self.fail(400, "chunk size has too many digits")
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
