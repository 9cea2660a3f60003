# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Request spans → the PEP 3333 environ.

The constant part of every environ lives in a per-server template dict that is
copied per request; keys are interned once; the ``HTTP_*`` keys of common
headers are looked up by length and a case-insensitive compare, without
creating any object for the name.
"""
import sys

from cpython.dict cimport PyDict_Copy, PyDict_GetItem, PyDict_SetItem
from cpython.unicode cimport PyUnicode_DecodeLatin1
from libc.stdlib cimport malloc, free
from libc.string cimport memchr

from fastwsgi._parser cimport HeadParser, ParsedRequest, Span, FieldSpan

cdef extern from "strings.h":
    int strncasecmp(const char* a, const char* b, size_t n)

cdef extern from "Python.h":
    char* PyBytes_AS_STRING(object)

DEF KEY_BUFFER = 512

# Headers browsers, proxies and API clients send most, with their environ keys.
cdef tuple COMMON_HEADERS = (
    b"host", b"user-agent", b"accept", b"accept-encoding", b"accept-language",
    b"connection", b"cookie", b"referer", b"cache-control", b"origin", b"pragma",
    b"upgrade-insecure-requests", b"sec-fetch-site", b"sec-fetch-mode",
    b"sec-fetch-user", b"sec-fetch-dest", b"sec-ch-ua", b"sec-ch-ua-mobile",
    b"sec-ch-ua-platform", b"dnt", b"authorization", b"if-none-match",
    b"if-modified-since", b"x-forwarded-for", b"x-forwarded-proto",
    b"x-forwarded-host", b"x-forwarded-port", b"x-real-ip", b"x-requested-with",
    b"forwarded", b"te", b"range", b"priority", b"expect", b"transfer-encoding",
    b"content-type", b"content-length",
)
DEF COMMON_COUNT = 37

cdef const char* common_names[COMMON_COUNT]
cdef Py_ssize_t common_lengths[COMMON_COUNT]
cdef list common_keys = []


cdef str _environ_key(bytes lowered_name):
    if lowered_name == b"content-type":
        return "CONTENT_TYPE"
    if lowered_name == b"content-length":
        return "CONTENT_LENGTH"
    return sys.intern("HTTP_" + lowered_name.decode("latin-1").upper().replace("-", "_"))


cdef void _init_common() except *:
    cdef Py_ssize_t i
    for i in range(COMMON_COUNT):
        name = COMMON_HEADERS[i]
        common_names[i] = PyBytes_AS_STRING(name)
        common_lengths[i] = len(name)
        common_keys.append(_environ_key(name))


_init_common()

cdef dict METHODS = {m.encode(): sys.intern(m) for m in
                     ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")}

cdef str K_REQUEST_METHOD = sys.intern("REQUEST_METHOD")
cdef str K_RAW_URI = sys.intern("RAW_URI")
cdef str K_PATH_INFO = sys.intern("PATH_INFO")
cdef str K_QUERY_STRING = sys.intern("QUERY_STRING")
cdef str K_SERVER_PROTOCOL = sys.intern("SERVER_PROTOCOL")
cdef str K_REMOTE_ADDR = sys.intern("REMOTE_ADDR")
cdef str K_REMOTE_PORT = sys.intern("REMOTE_PORT")
cdef str K_SERVER_NAME = sys.intern("SERVER_NAME")
cdef str K_SERVER_PORT = sys.intern("SERVER_PORT")
cdef str K_URL_SCHEME = sys.intern("wsgi.url_scheme")
cdef str HTTP_1_0 = sys.intern("HTTP/1.0")
cdef str HTTP_1_1 = sys.intern("HTTP/1.1")
cdef str EMPTY = ""
cdef str JOINER = ", "


cdef inline int _hex(unsigned char c) noexcept:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


cdef str _percent_decoded(const char* text, Py_ssize_t length):
    # PEP 3333: PATH_INFO is the percent-decoded path, as latin-1 characters.
    # A '%' not followed by two hex digits stays as it is (as urllib's unquote).
    cdef Py_ssize_t i = 0, out = 0
    cdef int high, low
    cdef char* decoded
    if memchr(text, b'%', length) == NULL:
        return PyUnicode_DecodeLatin1(text, length, NULL)
    decoded = <char*>malloc(length)
    if decoded == NULL:
        raise MemoryError()
    try:
        while i < length:
            if text[i] == b'%' and i + 2 < length:
                high = _hex(<unsigned char>text[i + 1])
                low = _hex(<unsigned char>text[i + 2])
                if high >= 0 and low >= 0:
                    decoded[out] = <char>(high * 16 + low)
                    out += 1
                    i += 3
                    continue
            decoded[out] = text[i]
            out += 1
            i += 1
        return PyUnicode_DecodeLatin1(decoded, out, NULL)
    finally:
        free(decoded)


cdef class EnvironBuilder:
    """Builds environ dicts for one server: the template is made once, here."""

    def __init__(self, *, str root_path="", str server_software="fastwsgi",
                 str server_name="localhost", object server_port=80,
                 str url_scheme="http", bint multiprocess=False,
                 object errors=None, object file_wrapper=None,
                 dict base_environ=None, dict secure_scheme_headers=None):
        cdef dict template = {}
        if base_environ:
            template.update(base_environ)
        root_path = root_path.rstrip("/")
        template.update({
            "SCRIPT_NAME": root_path,
            "SERVER_SOFTWARE": server_software,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url_scheme,
            "wsgi.multithread": False,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.errors": errors if errors is not None else sys.stderr,
            "wsgi.input_terminated": True,
        })
        if file_wrapper is not None:
            template["wsgi.file_wrapper"] = file_wrapper
        self.template = template
        self.root_path = root_path.encode("latin-1")
        self.default_server_name = server_name
        self.default_server_port = str(server_port)
        self.url_scheme = url_scheme
        # (environ key, value that means https), for headers a trusted proxy sets.
        self.secure_scheme_headers = [
            (_environ_key(name.lower().encode("latin-1")), value)
            for name, value in (secure_scheme_headers or {}).items()
        ]

    cdef dict build(self, HeadParser head, char* buf, object remote_addr, object remote_port,
                    bint trusted_proxy):
        """The environ for the head ``head`` just parsed out of ``buf``."""
        cdef dict environ = PyDict_Copy(self.template)
        cdef Span span
        cdef Py_ssize_t i
        cdef FieldSpan* field
        cdef object key, value, existing
        span = head.method
        value = METHODS.get(buf[span.off:span.off + span.len])
        if value is None:
            value = PyUnicode_DecodeLatin1(buf + span.off, span.len, NULL)
        PyDict_SetItem(environ, K_REQUEST_METHOD, value)
        PyDict_SetItem(environ, K_RAW_URI,
                       PyUnicode_DecodeLatin1(buf + head.target.off, head.target.len, NULL))
        PyDict_SetItem(environ, K_PATH_INFO, self._path_info(buf, head.path))
        PyDict_SetItem(environ, K_QUERY_STRING,
                       PyUnicode_DecodeLatin1(buf + head.query.off, head.query.len, NULL))
        PyDict_SetItem(environ, K_SERVER_PROTOCOL, HTTP_1_1 if head.version_minor else HTTP_1_0)
        PyDict_SetItem(environ, K_REMOTE_ADDR, remote_addr)
        PyDict_SetItem(environ, K_REMOTE_PORT, remote_port)
        for i in range(head.nfields):
            field = &head.fields[i]
            key = self._key_for(buf, field.name)
            value = PyUnicode_DecodeLatin1(buf + field.value.off, field.value.len, NULL)
            existing = <object>PyDict_GetItem(environ, key) if PyDict_GetItem(environ, key) != NULL else None
            if existing is not None and PyDict_GetItem(self.template, key) == NULL:
                # RFC 9110 §5.3: repeated field lines combine into one comma-separated list.
                value = existing + JOINER + value
            PyDict_SetItem(environ, key, value)
        self._server_address(environ, buf, head)
        if trusted_proxy and self.secure_scheme_headers:
            self._apply_secure_scheme(environ)
        return environ

    cdef object _key_for(self, char* buf, Span name):
        cdef Py_ssize_t i, n = name.len
        cdef char key[KEY_BUFFER]
        cdef const char* src = buf + name.off
        cdef char c
        for i in range(COMMON_COUNT):
            if common_lengths[i] == n and strncasecmp(src, common_names[i], n) == 0:
                return common_keys[i]
        if n + 5 > KEY_BUFFER:
            return "HTTP_" + PyUnicode_DecodeLatin1(src, n, NULL).upper().replace("-", "_")
        key[0] = b'H'
        key[1] = b'T'
        key[2] = b'T'
        key[3] = b'P'
        key[4] = b'_'
        for i in range(n):
            c = src[i]
            if b'a' <= c <= b'z':
                c = c - 32
            elif c == b'-':
                c = b'_'
            key[5 + i] = c
        return PyUnicode_DecodeLatin1(key, n + 5, NULL)

    cdef str _path_info(self, char* buf, Span path):
        cdef Py_ssize_t skip = 0
        cdef Py_ssize_t prefix = len(self.root_path)
        cdef str decoded = _percent_decoded(buf + path.off, path.len)
        if prefix:
            # gunicorn: a path under SCRIPT_NAME loses that prefix in PATH_INFO.
            if decoded.startswith(self.root_path.decode("latin-1")) and (
                    len(decoded) == prefix or decoded[prefix] == "/"):
                return decoded[prefix:]
        return decoded

    cdef void _server_address(self, dict environ, char* buf, HeadParser head) except *:
        # gunicorn: SERVER_NAME / SERVER_PORT come from Host when present, else the listener.
        cdef Span value
        cdef str host, port
        if head.host_field < 0:
            PyDict_SetItem(environ, K_SERVER_NAME, self.default_server_name)
            PyDict_SetItem(environ, K_SERVER_PORT, self.default_server_port)
            return
        value = head.fields[head.host_field].value
        host = PyUnicode_DecodeLatin1(buf + value.off, value.len, NULL)
        port = ""
        if host.startswith("["):
            end = host.find("]")
            if end > 0 and host[end + 1:end + 2] == ":":
                port = host[end + 2:]
                host = host[:end + 1]
        elif ":" in host:
            host, _, port = host.rpartition(":")
        if not port:
            port = "443" if environ[K_URL_SCHEME] == "https" else "80"
        PyDict_SetItem(environ, K_SERVER_NAME, host)
        PyDict_SetItem(environ, K_SERVER_PORT, port)

    cdef void _apply_secure_scheme(self, dict environ) except *:
        # gunicorn's secure_scheme_headers: trusted only from forwarded_allow_ips.
        for key, secure_value in self.secure_scheme_headers:
            value = environ.get(key)
            if value is not None:
                environ[K_URL_SCHEME] = "https" if value.lower() == secure_value.lower() else "http"
                return

    def environ_for(self, ParsedRequest request, remote_addr="127.0.0.1", remote_port="0",
                    trusted_proxy=False):
        """The environ for a request the Python-level parser produced (tests, tools)."""
        return self.build(request.head_parser, PyBytes_AS_STRING(request.head),
                          remote_addr, str(remote_port), trusted_proxy)
