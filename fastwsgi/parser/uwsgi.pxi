# The uwsgi protocol's request packet (what nginx's uwsgi_pass sends): a 4-byte
# header, modifier1 (0: a WSGI request), a little-endian 16-bit size and
# modifier2, then that many bytes of vars, each a 16-bit little-endian key
# length, the key, a 16-bit value length and the value. The body follows, as
# long as CONTENT_LENGTH says. Included into _parser.pyx; the class is declared
# in _parser.pxd.
#
# Spans over the caller's buffer, as HeadParser's: nothing is made until the
# environ builder reads them. The packet is parsed once it is whole (its size is
# in its first 4 bytes, and at most 64 KiB), so there is no state between calls.
#
# What the front end says is taken as it says it, as uWSGI takes it; but every
# length is checked against the packet, and what could be read two ways is
# refused: a CGI variable twice (two CONTENT_LENGTHs is a smuggled body), a
# CONTENT_LENGTH that is not 1*DIGIT, a key that is not a token, a value with a
# control character (RFC 9110 §5.5's field-content, as a header's).

DEF UWSGI_HEADER = 4
# CGI variables (REQUEST_METHOD, PATH_INFO, ... what uwsgi_param sets) besides the
# HTTP_* ones, which count against limit_request_fields as header fields do.
DEF UWSGI_MAX_CGI_VARS = 64
DEF UWSGI_HTTP_PREFIX = 5   # len("HTTP_")


cdef inline Py_ssize_t _uint16_le(const char* data) noexcept:
    return (<unsigned char>data[0]) | ((<unsigned char>data[1]) << 8)


cdef bint _all_in(const char* text, Py_ssize_t n, const unsigned char* allowed) noexcept:
    cdef Py_ssize_t i
    for i in range(n):
        if not allowed[<unsigned char>text[i]]:
            return False
    return True


cdef inline unsigned char _var_kind(const char* key, Py_ssize_t n) noexcept:
    if n > UWSGI_HTTP_PREFIX and equals_exactly(key, UWSGI_HTTP_PREFIX, "HTTP_"):
        return UWSGI_VAR_HTTP
    if key[0] == b'w' and n >= 5 and equals_exactly(key, 5, "wsgi."):
        return UWSGI_VAR_SERVERS
    if key[0] == b'g' and n >= 9 and equals_exactly(key, 9, "gunicorn."):
        return UWSGI_VAR_SERVERS
    if key[0] == b'f' and n >= 9 and equals_exactly(key, 9, "fastwsgi."):
        return UWSGI_VAR_SERVERS
    return UWSGI_VAR_CGI


cdef class UwsgiPacket:

    def __cinit__(self):
        self.vars = NULL

    def __init__(self, **limits):
        """gunicorn's limit settings by name (each left out takes its default)."""
        cdef Limits normalized
        _limits_from_keywords(&normalized, limits)
        self.configure(&normalized)

    def __dealloc__(self):
        free(self.vars)

    cdef int configure(self, const Limits* limits) except -1:
        self.limits = limits[0]
        self.capacity = limits.fields + UWSGI_MAX_CGI_VARS
        free(self.vars)
        self.vars = <UwsgiVar*>malloc(sizeof(UwsgiVar) * self.capacity)
        if self.vars == NULL:
            raise MemoryError()
        self.reset()
        return 0

    cdef void reset(self) noexcept:
        self.nvars = 0
        self.method_var = -1
        self.path_var = -1
        self.uri_var = -1
        self.query_var = -1
        self.script_var = -1
        self.https_var = -1
        self.scheme_var = -1
        self.request_scheme_var = -1
        self.length_var = -1
        self.content_length = 0
        self.head_request = False

    cdef int fail(self, int status, str reason) except -2:
        self.error_status = status
        self.error_reason = reason
        return PARSE_ERROR

    cdef Py_ssize_t parse(self, const char* buf, Py_ssize_t length) except -2:
        """The packet's size once all of it is in ``buf``; PARSE_INCOMPLETE before;
        PARSE_ERROR (error_status / error_reason say why) for one to refuse."""
        cdef Py_ssize_t size, pos, end, key_length, value_length
        cdef Py_ssize_t http_vars = 0, cgi_vars = 0
        cdef UwsgiVar* var
        cdef const char* key
        cdef unsigned char kind
        if length < UWSGI_HEADER:
            if length and <unsigned char>buf[0] != 0:
                return self._unsupported(<unsigned char>buf[0])
            return PARSE_INCOMPLETE
        if <unsigned char>buf[0] != 0:
            return self._unsupported(<unsigned char>buf[0])
        size = _uint16_le(buf + 1)
        if length < UWSGI_HEADER + size:
            return PARSE_INCOMPLETE
        self.reset()
        pos = UWSGI_HEADER
        end = UWSGI_HEADER + size
        while pos < end:
            if end - pos < 2:
                return self.fail(400, "uwsgi var truncated in its key length")
            key_length = _uint16_le(buf + pos)
            pos += 2
            if key_length == 0:
                return self.fail(400, "uwsgi var with an empty key")
            if end - pos < key_length + 2:
                return self.fail(400, "uwsgi var key overruns the packet")
            key = buf + pos
            if not _all_in(key, key_length, TCHAR):
                return self.fail(400, "uwsgi var key is not a token")
            pos += key_length
            value_length = _uint16_le(buf + pos)
            pos += 2
            if end - pos < value_length:
                return self.fail(400, "uwsgi var value overruns the packet")
            if not _all_in(buf + pos, value_length, FIELD_CONTENT):
                return self.fail(400, "invalid character in a uwsgi var value")
            kind = _var_kind(key, key_length)
            if kind == UWSGI_VAR_HTTP:
                http_vars += 1
                if http_vars > self.limits.fields:
                    return self.fail(431, "too many header fields")
                # as the field line "Name: value\r\n" it stands for
                if key_length - UWSGI_HTTP_PREFIX + value_length + 4 > self.limits.field_size:
                    return self.fail(431, "header field too large")
            else:
                cgi_vars += 1
                if cgi_vars > UWSGI_MAX_CGI_VARS:
                    return self.fail(400, "too many uwsgi vars")
                if self._cgi_var(key, key_length) < 0:
                    return PARSE_ERROR
                if self._check_cgi_value(buf, key, key_length, pos, value_length) < 0:
                    return PARSE_ERROR
            var = &self.vars[self.nvars]
            var.key.off = key - buf
            var.key.len = key_length
            var.value.off = pos
            var.value.len = value_length
            var.kind = kind
            self.nvars += 1
            pos += value_length
        if self.method_var < 0:
            # nginx sends these only from uwsgi_params: without it no request can be
            # served as the client made it.
            return self.fail(400, "uwsgi packet without REQUEST_METHOD (include uwsgi_params)")
        if self.path_var < 0 and self.uri_var < 0:
            return self.fail(400, "uwsgi packet without PATH_INFO or REQUEST_URI")
        return end

    cdef int _unsupported(self, unsigned char modifier1) except -2:
        # Not a request packet (or not uwsgi at all: an HTTP client on the port).
        # gunicorn answers 501 too.
        return self.fail(501, f"unsupported uwsgi modifier1 {modifier1}")

    cdef int _cgi_var(self, const char* key, Py_ssize_t n) except -2:
        """Notes where the variables the server reads are; one given twice is refused."""
        cdef Py_ssize_t* slot = NULL
        if equals_exactly(key, n, "REQUEST_METHOD"):
            slot = &self.method_var
        elif equals_exactly(key, n, "PATH_INFO"):
            slot = &self.path_var
        elif equals_exactly(key, n, "REQUEST_URI"):
            slot = &self.uri_var
        elif equals_exactly(key, n, "QUERY_STRING"):
            slot = &self.query_var
        elif equals_exactly(key, n, "SCRIPT_NAME"):
            slot = &self.script_var
        elif equals_exactly(key, n, "HTTPS"):
            slot = &self.https_var
        elif equals_exactly(key, n, "wsgi.url_scheme"):
            slot = &self.scheme_var
        elif equals_exactly(key, n, "REQUEST_SCHEME"):
            slot = &self.request_scheme_var
        elif equals_exactly(key, n, "CONTENT_LENGTH"):
            slot = &self.length_var
        if slot == NULL:
            # Any other one given twice is refused by the environ builder, which
            # sees the key already there.
            return 0
        if slot[0] >= 0:
            return self.fail(400, f"uwsgi var {key[:n].decode('latin-1')} given twice")
        slot[0] = self.nvars
        return 0

    cdef int _check_cgi_value(self, const char* buf, const char* key, Py_ssize_t n,
                              Py_ssize_t value_at, Py_ssize_t value_length) except -2:
        cdef const char* value = buf + value_at
        cdef Py_ssize_t i
        cdef int64_t content_length = 0
        if equals_exactly(key, n, "REQUEST_METHOD"):
            if value_length == 0 or not _all_in(value, value_length, TCHAR):
                return self.fail(400, "invalid REQUEST_METHOD in a uwsgi packet")
            self.head_request = equals_exactly(value, value_length, "HEAD")
        elif equals_exactly(key, n, "REQUEST_URI"):
            if value_length > self.limits.request_line:
                return self.fail(414, "REQUEST_URI too long")
        elif equals_exactly(key, n, "CONTENT_LENGTH"):
            # nginx's uwsgi_params sends it empty for a request without a body.
            if value_length > 18:
                return self.fail(400, "invalid CONTENT_LENGTH in a uwsgi packet")
            for i in range(value_length):
                if not (48 <= <unsigned char>value[i] <= 57):
                    return self.fail(400, "invalid CONTENT_LENGTH in a uwsgi packet")
                content_length = content_length * 10 + (<unsigned char>value[i] - 48)
            if self.limits.body and content_length > self.limits.body:
                return self.fail(413, "request body too large")
            self.content_length = content_length
        return 0

    # Python-level entry, for tests and tools.
    def parse_bytes(self, data):
        """(the packet's size, its vars as (key, value) bytes) once ``data`` holds it
        whole, (0, None) before; ParseError for a packet to refuse."""
        cdef bytes packet = bytes(data)
        cdef const char* buf = PyBytes_AS_STRING(packet)
        cdef Py_ssize_t size = self.parse(buf, PyBytes_GET_SIZE(packet))
        cdef UwsgiVar* var
        if size == PARSE_ERROR:
            raise ParseError(self.error_status, self.error_reason)
        if size == PARSE_INCOMPLETE:
            return 0, None
        found = []
        for i in range(self.nvars):
            var = &self.vars[i]
            found.append((packet[var.key.off:var.key.off + var.key.len],
                          packet[var.value.off:var.value.off + var.value.len]))
        return size, found
