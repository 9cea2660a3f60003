# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Request spans → the PEP 3333 environ.

The constant part of every environ lives in a per-server template dict, sized
for a whole environ, that is copied per request; keys are interned once.  The
``HTTP_*`` keys of common headers are found through a small hash table over
the field name bytes, without creating any object for the name, and the str
of a common header's value is reused while the same value repeats (Host,
User-Agent, Accept... rarely change from one request to the next).
"""
import sys

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_Copy, PyDict_GetItem, PyDict_SetItem
from cpython.list cimport PyList_GET_ITEM
from cpython.tuple cimport PyTuple_GET_ITEM
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeLatin1
from libc.stdlib cimport malloc, free
from libc.string cimport memchr, memcmp, memcpy

from fastwsgi._parser cimport (HeadParser, ParsedRequest, Span, FieldSpan, FORWARDED_ALWAYS,
                               FORWARDED_OR_REFUSED, UwsgiPacket, UwsgiVar,
                               UWSGI_VAR_HTTP, UWSGI_VAR_SERVERS)
from fastwsgi import _parser as parser_module
from fastwsgi.includes.http_chars cimport (
    HEXDIG, HEXDIG_VALUE, METHOD_OTHER, equals_lowered_n, method_index, method_names)
from fastwsgi.includes.python cimport (
    PyDict_GET_SIZE, PyDict_SetDefault, PyUnicode_1BYTE_KIND, PyUnicode_DATA,
    PyUnicode_GET_LENGTH, PyUnicode_KIND, presized_dict)

DEF KEY_BUFFER = 512
DEF PATH_BUFFER = 1024
DEF ENVIRON_ROOM = 28
DEF HASH_SLOTS = 256

# Headers browsers, proxies and API clients send most, found without making an
# object for the name. The values of the first group are cached between requests;
# the second carry secrets and are never kept. A name's index is its slot in the
# tables below: the cached ones come first, so "cached" is "index < CACHED_COUNT".
cdef tuple CACHED_HEADERS = (
    b"host", b"user-agent", b"accept", b"accept-encoding", b"accept-language",
    b"connection", b"referer", b"cache-control", b"origin", b"pragma",
    b"upgrade-insecure-requests", b"sec-fetch-site", b"sec-fetch-mode",
    b"sec-fetch-user", b"sec-fetch-dest", b"sec-ch-ua", b"sec-ch-ua-mobile",
    b"sec-ch-ua-platform", b"dnt", b"if-none-match",
    b"if-modified-since", b"x-forwarded-for", b"x-forwarded-proto",
    b"x-forwarded-host", b"x-forwarded-port", b"x-real-ip", b"x-requested-with",
    b"forwarded", b"te", b"range", b"priority", b"expect", b"transfer-encoding",
    b"content-type", b"content-length", b"keep-alive",
)
cdef tuple SECRET_HEADERS = (b"cookie", b"authorization")
cdef tuple COMMON_HEADERS = CACHED_HEADERS + SECRET_HEADERS
# The counts in _environ.pxd size C arrays, so they are written there; a list
# edited without them fails here, at import, and not in a request.
if len(CACHED_HEADERS) != CACHED_COUNT or len(SECRET_HEADERS) != SECRET_COUNT:
    raise ImportError(f"_environ.pxd counts {CACHED_COUNT} cached and {SECRET_COUNT} secret "
                      f"headers; the lists hold {len(CACHED_HEADERS)} and {len(SECRET_HEADERS)}")

cdef const char* common_names[COMMON_COUNT]
cdef Py_ssize_t common_lengths[COMMON_COUNT]
cdef PyObject* common_keys[COMMON_COUNT]
cdef signed char common_slots[HASH_SLOTS]
cdef list common_key_objects = []

# PEP 3333 / CGI: a request header's key is HTTP_ and its name upper-cased, '-' as '_'.
cdef bytes HTTP_PREFIX = b"HTTP_"
cdef Py_ssize_t HTTP_PREFIX_LENGTH = len(HTTP_PREFIX)
cdef str K_REQUEST_METHOD = sys.intern("REQUEST_METHOD")
cdef str K_SCRIPT_NAME = sys.intern("SCRIPT_NAME")
cdef str K_RAW_URI = sys.intern("RAW_URI")
cdef str K_PATH_INFO = sys.intern("PATH_INFO")
cdef str K_QUERY_STRING = sys.intern("QUERY_STRING")
cdef str K_SERVER_PROTOCOL = sys.intern("SERVER_PROTOCOL")
cdef str K_REMOTE_ADDR = sys.intern("REMOTE_ADDR")
cdef str K_REMOTE_PORT = sys.intern("REMOTE_PORT")
cdef str K_SERVER_NAME = sys.intern("SERVER_NAME")
cdef str K_SERVER_PORT = sys.intern("SERVER_PORT")
cdef str K_URL_SCHEME = sys.intern("wsgi.url_scheme")
cdef str K_CONTENT_TYPE = sys.intern("CONTENT_TYPE")
cdef str K_CONTENT_LENGTH = sys.intern("CONTENT_LENGTH")
cdef str HTTP_1_0 = sys.intern("HTTP/1.0")
cdef str HTTP_1_1 = sys.intern("HTTP/1.1")
# The methods known by name (includes/http_chars.h), one interned str each, by index.
cdef tuple METHODS = tuple(sys.intern(method_names[i].decode("ascii")) for i in range(METHOD_OTHER))
cdef str HTTPS = sys.intern("https")
cdef str PORT_80 = sys.intern("80")
cdef str PORT_443 = sys.intern("443")
cdef str EMPTY = ""
# Repeated field lines are joined as gunicorn and wsgiref join them (RFC 9110 §5.3
# allows either spacing); Cookie lines join with "; ", the separator within one Cookie
# line (RFC 6265 §5.4, RFC 9113 §8.2.3), or frameworks would see one mangled cookie.
cdef str JOINER = ","
cdef str COOKIE_JOINER = "; "
cdef str K_HTTP_COOKIE = sys.intern("HTTP_COOKIE")
cdef str K_HTTP_SCRIPT_NAME = sys.intern("HTTP_SCRIPT_NAME")
cdef str HTTP = sys.intern("http")
# What says https in a uwsgi packet: nginx's "HTTPS $https" sends "on" (gunicorn
# takes these three, in any case).
cdef frozenset HTTPS_ON = frozenset(["on", "1", "true"])
cdef frozenset SCHEMES = frozenset([HTTP, HTTPS])
cdef str QUESTION_MARK = "?"
cdef str K_REQUEST_URI = sys.intern("REQUEST_URI")


cdef str _environ_key(bytes lowered_name):
    # PEP 3333 / CGI: CONTENT_TYPE and CONTENT_LENGTH have no HTTP_ prefix.
    if lowered_name == b"content-type":
        return K_CONTENT_TYPE
    if lowered_name == b"content-length":
        return K_CONTENT_LENGTH
    return sys.intern(_http_key(lowered_name))


cdef str _http_key(bytes name):
    # PEP 3333 / CGI meta-variables: HTTP_ + the name upper-cased, '-' as '_'.
    return (HTTP_PREFIX + name.upper().replace(b"-", b"_")).decode("latin-1")


cdef inline unsigned int _name_hash(const char* name, Py_ssize_t n) noexcept:
    # | 0x20 folds ASCII case; field names are tokens, so nothing else folds onto a letter.
    return (<unsigned int>n * 31 + (<unsigned char>name[0] | 0x20) * 17
            + (<unsigned char>name[n - 1] | 0x20) * 7
            + (<unsigned char>name[n >> 1] | 0x20)) & (HASH_SLOTS - 1)


cdef void _init_common() except *:
    cdef Py_ssize_t i
    cdef unsigned int slot
    for slot in range(HASH_SLOTS):
        common_slots[slot] = -1
    for i in range(COMMON_COUNT):
        name = COMMON_HEADERS[i]
        key = _environ_key(name)
        common_key_objects.append(key)
        common_names[i] = PyBytes_AS_STRING(name)
        common_lengths[i] = len(name)
        common_keys[i] = <PyObject*>key
        slot = _name_hash(common_names[i], common_lengths[i])
        while common_slots[slot] >= 0:
            slot = (slot + 1) & (HASH_SLOTS - 1)
        common_slots[slot] = <signed char>i


_init_common()


cdef inline Py_ssize_t _common_index(const char* name, Py_ssize_t n) noexcept:
    cdef unsigned int slot = _name_hash(name, n)
    cdef Py_ssize_t i
    while True:
        i = common_slots[slot]
        if i < 0:
            return -1
        # Exact for a field name (a token, see _name_hash) against a lowercase name.
        if common_lengths[i] == n and equals_lowered_n(name, common_names[i], n):
            return i
        slot = (slot + 1) & (HASH_SLOTS - 1)


cdef object _uncommon_key(const char* name, Py_ssize_t n):
    # HTTP_ + the name upper-cased, '-' → '_' (PEP 3333 / CGI meta-variables).
    cdef char key[KEY_BUFFER]
    cdef Py_ssize_t i, prefix = HTTP_PREFIX_LENGTH
    cdef char c
    if prefix + n > KEY_BUFFER:
        return _http_key(PyBytes_FromStringAndSize(name, n))
    memcpy(key, PyBytes_AS_STRING(HTTP_PREFIX), prefix)
    for i in range(n):
        c = name[i]
        if b'a' <= c <= b'z':
            c = c - 32
        elif c == b'-':
            c = b'_'
        key[prefix + i] = c
    return PyUnicode_DecodeLatin1(key, prefix + n, NULL)


cdef object _method(const char* buf, Span span):
    cdef const char* text = buf + span.off
    cdef int known = method_index(text, span.len)
    if known != METHOD_OTHER:
        return <object>PyTuple_GET_ITEM(METHODS, known)
    return PyUnicode_DecodeLatin1(text, span.len, NULL)


cdef str _sent_protocol(HeadParser head):
    # permit_unconventional_http_version: gunicorn's SERVER_PROTOCOL is the version
    # received ("HTTP/%s" % ".".join(version)), e.g. HTTP/2.0 or HTTP/0.9.
    return f"HTTP/{head.version_major}.{head.version_minor_sent}"


cdef str _percent_decoded(const char* text, Py_ssize_t length):
    # PEP 3333: PATH_INFO is the percent-decoded path, as latin-1 characters.
    # A '%' not followed by two hex digits stays as it is (as urllib's unquote).
    cdef Py_ssize_t i = 0, out = 0
    cdef int high, low
    cdef char on_stack[PATH_BUFFER]
    cdef char* decoded
    if memchr(text, b'%', length) == NULL:
        return PyUnicode_DecodeLatin1(text, length, NULL)
    if length <= PATH_BUFFER:
        decoded = on_stack
    else:
        decoded = <char*>malloc(length)
        if decoded == NULL:
            raise MemoryError()
    try:
        while i < length:
            if text[i] == b'%' and i + 2 < length:
                high = HEXDIG[<unsigned char>text[i + 1]]
                low = HEXDIG[<unsigned char>text[i + 2]]
                if high and low:
                    decoded[out] = <char>((high & HEXDIG_VALUE) * 16 + (low & HEXDIG_VALUE))
                    out += 1
                    i += 3
                    continue
            decoded[out] = text[i]
            out += 1
            i += 1
        return PyUnicode_DecodeLatin1(decoded, out, NULL)
    finally:
        if decoded != on_stack:
            free(decoded)


cdef inline int _mount(dict environ, str decoded, str root_path) except -1:
    """PATH_INFO, the decoded path, with the app mounted at ``root_path``."""
    cdef Py_ssize_t prefix = len(root_path)
    if prefix:
        if decoded.startswith(root_path) and (len(decoded) == prefix or decoded[prefix] == "/"):
            # PEP 3333: SCRIPT_NAME + PATH_INFO is the path; the mount point is cut off.
            decoded = decoded[prefix:]
        else:
            # Outside the mount point: the app sees the whole path and no SCRIPT_NAME,
            # so URLs it rebuilds stay right (gunicorn answers 500 here).
            PyDict_SetItem(environ, K_SCRIPT_NAME, EMPTY)
    PyDict_SetItem(environ, K_PATH_INFO, decoded)
    return 0


cdef class EnvironBuilder:
    """Builds environ dicts for one server: the template is made once, here."""

    def __init__(self, *, str root_path="", str server_software="fastwsgi",
                 str server_name="localhost", object server_port=80,
                 str url_scheme="http", bint multiprocess=False, bint multithread=False,
                 object errors=None, object file_wrapper=None,
                 dict base_environ=None, dict secure_scheme_headers=None):
        cdef dict template = presized_dict(ENVIRON_ROOM)
        cdef dict constant = {}
        if base_environ:
            constant.update(base_environ)
        root_path = root_path.rstrip("/")
        constant.update({
            "SCRIPT_NAME": root_path,
            "SERVER_SOFTWARE": server_software,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url_scheme,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": multiprocess,
            "wsgi.run_once": False,
            "wsgi.errors": errors if errors is not None else sys.stderr,
            "wsgi.input_terminated": True,
        })
        if file_wrapper is not None:
            constant["wsgi.file_wrapper"] = file_wrapper
        # One by one: dict.update() into an empty dict would replace its room by a clone.
        for key, value in constant.items():
            template[key] = value
        self.template = template
        self.root_path = root_path
        self.default_server_name = server_name
        self.default_server_port = str(server_port)
        self.url_scheme = url_scheme
        self.scheme_port = PORT_443 if url_scheme == HTTPS else PORT_80
        # environ key -> the exact value that means https, for headers a trusted proxy
        # sets (gunicorn compares values as configured, case and all).
        self.secure_scheme_headers = {
            _environ_key(name.lower().encode("latin-1")): value
            for name, value in (secure_scheme_headers or {}).items()
        }
        self.secure_keys = frozenset(self.secure_scheme_headers)
        for i in range(COMMON_COUNT):
            self.secure_common[i] = (<object>common_keys[i]) in self.secure_keys
        self.value_cache = [None] * CACHED_COUNT
        self.last_host = None

    cdef dict build(self, HeadParser head, char* buf, object remote_addr, object remote_port,
                    bint trusted_proxy):
        """The environ for the head ``head`` just parsed out of ``buf``."""
        cdef dict environ = PyDict_Copy(self.template)
        cdef Py_ssize_t i, common, size
        cdef FieldSpan* field
        cdef PyObject* existing
        cdef object key, value
        cdef object scheme = None, script_name = None, claimed, host = None
        cdef bint secure
        PyDict_SetItem(environ, K_REQUEST_METHOD, _method(buf, head.method))
        PyDict_SetItem(environ, K_RAW_URI,
                       PyUnicode_DecodeLatin1(buf + head.target.off, head.target.len, NULL))
        self._path_info(environ, buf, head.path)
        PyDict_SetItem(environ, K_QUERY_STRING,
                       PyUnicode_DecodeLatin1(buf + head.query.off, head.query.len, NULL))
        if head.version_major == 1:
            PyDict_SetItem(environ, K_SERVER_PROTOCOL, HTTP_1_1 if head.version_minor else HTTP_1_0)
        else:
            PyDict_SetItem(environ, K_SERVER_PROTOCOL, _sent_protocol(head))
        PyDict_SetItem(environ, K_REMOTE_ADDR, remote_addr)
        PyDict_SetItem(environ, K_REMOTE_PORT, remote_port)
        for i in range(head.nfields):
            field = &head.fields[i]
            common = _common_index(buf + field.name.off, field.name.len)
            if common >= 0:
                key = <object>common_keys[common]
                secure = self.secure_common[common]
            else:
                key = _uncommon_key(buf + field.name.off, field.name.len)
                secure = key in self.secure_keys
            value = self._value_for(buf, field.value, common)
            if secure and trusted_proxy:
                # gunicorn's secure_scheme_headers: each line from a trusted peer says
                # https when its value is exactly the configured one, else http; lines
                # that say different things make the request ambiguous (its 400).
                claimed = HTTPS if value == self.secure_scheme_headers[key] else HTTP
                if scheme is not None and claimed != scheme:
                    return self._refused(400, "Contradictory scheme headers")
                scheme = claimed
            if field.forwarded:
                if not trusted_proxy and field.forwarded != FORWARDED_ALWAYS:
                    # header_map, as for any name with '_' from a peer that is not trusted
                    if field.forwarded == FORWARDED_OR_REFUSED:
                        return self._refused(400, "invalid header name (underscore)")
                    continue
                if key == K_HTTP_SCRIPT_NAME:
                    script_name = value
            if i == head.host_field:
                host = value   # (one Host at most: the parser refused more, RFC 9112 §3.2)
            size = PyDict_GET_SIZE(environ)
            existing = PyDict_SetDefault(environ, key, value)
            if PyDict_GET_SIZE(environ) != size:
                continue
            # The key was there already: a repeated field, or a key of the template.
            if key is K_CONTENT_LENGTH:
                continue  # repeats are identical (the parser checked), so folded
            if PyDict_GetItem(self.template, key) != NULL:
                PyDict_SetItem(environ, key, value)
            else:
                # RFC 9110 §5.3: repeated field lines combine into one comma-separated list.
                PyDict_SetItem(environ, key, (<object>existing)
                               + (COOKIE_JOINER if key == K_HTTP_COOKIE else JOINER) + value)
        if scheme is not None:
            PyDict_SetItem(environ, K_URL_SCHEME, scheme)
        if script_name is not None and not self._forwarded_script_name(environ, buf, head.path,
                                                                      script_name):
            return None
        self._server_address(environ, buf, head, host, scheme)
        return environ

    cdef object _value_for(self, char* buf, Span value, Py_ssize_t common):
        cdef const char* text = buf + value.off
        cdef object cached
        if common < 0 or common >= CACHED_COUNT:
            return PyUnicode_DecodeLatin1(text, value.len, NULL)
        cached = <object>PyList_GET_ITEM(self.value_cache, common)
        if (cached is not None and PyUnicode_GET_LENGTH(cached) == value.len
                and memcmp(PyUnicode_DATA(cached), text, value.len) == 0):
            return cached
        cached = PyUnicode_DecodeLatin1(text, value.len, NULL)
        # A latin-1 decoded str keeps one byte per character: what the next compare reads.
        if PyUnicode_KIND(cached) == PyUnicode_1BYTE_KIND:
            self.value_cache[common] = cached
        return cached

    cdef void _path_info(self, dict environ, char* buf, Span path) except *:
        # _mount's rule, written out: HTTP/1.1's path is the hot one.
        cdef const char* raw = buf + path.off
        cdef str decoded
        if (path.len == self.last_path_length and self.last_path_info is not None
                and memcmp(self.last_path, raw, path.len) == 0):
            decoded = self.last_path_info
        else:
            decoded = _percent_decoded(raw, path.len)
            if path.len <= PATH_CACHED:
                memcpy(self.last_path, raw, path.len)
                self.last_path_length = path.len
                self.last_path_info = decoded
        cdef Py_ssize_t prefix = len(self.root_path)
        if prefix:
            if decoded.startswith(self.root_path) and (
                    len(decoded) == prefix or decoded[prefix] == "/"):
                decoded = decoded[prefix:]
            else:
                PyDict_SetItem(environ, K_SCRIPT_NAME, EMPTY)
        PyDict_SetItem(environ, K_PATH_INFO, decoded)

    cdef void _server_address(self, dict environ, char* buf, HeadParser head, object host,
                              object scheme) except *:
        # SERVER_NAME / SERVER_PORT come from Host when it has a value (the parser
        # checked it is uri-host [ ":" port ]), else from the listener. ``host`` is
        # environ["HTTP_HOST"], ``scheme`` what a trusted proxy said of the scheme
        # (None: the listener's), both as build() found them.
        cdef Span value
        cdef const char* text
        cdef const char* end
        cdef Py_ssize_t name_length
        cdef object port
        if host is None or head.fields[head.host_field].value.len == 0:
            PyDict_SetItem(environ, K_SERVER_NAME, self.default_server_name)
            PyDict_SetItem(environ, K_SERVER_PORT, self.default_server_port)
            return
        if host is self.last_host:
            port = self.last_server_port
            PyDict_SetItem(environ, K_SERVER_NAME, self.last_server_name)
        else:
            value = head.fields[head.host_field].value
            text = buf + value.off
            if text[0] == b'[':
                # IP-literal: the name keeps its brackets, as in a URL.
                end = <const char*>memchr(text, b']', value.len)
                name_length = end - text + 1
            else:
                end = <const char*>memchr(text, b':', value.len)
                name_length = end - text if end != NULL else value.len
            name = PyUnicode_DecodeLatin1(text, name_length, NULL)
            port = None
            if name_length + 1 < value.len:
                port = PyUnicode_DecodeLatin1(text + name_length + 1,
                                              value.len - name_length - 1, NULL)
            self.last_host = host
            self.last_server_name = name
            self.last_server_port = port
            PyDict_SetItem(environ, K_SERVER_NAME, name)
        if port is None:
            # RFC 9110 §4.2: the scheme's default port
            if scheme is None:
                port = self.scheme_port
            else:
                port = PORT_443 if scheme == HTTPS else PORT_80
        PyDict_SetItem(environ, K_SERVER_PORT, port)

    cdef object _refused(self, int status, str reason):
        """The request cannot be served as its proxy describes it: build() returns None
        and the loop answers with what is noted here (no exception on the hot path)."""
        self.refusal_status = status
        self.refusal_reason = reason
        return None

    cdef bint _forwarded_script_name(self, dict environ, char* buf, Span path,
                                     object script_name) except -1:
        """A trusted proxy's SCRIPT_NAME header mounts the app there, as gunicorn's
        create() does: PATH_INFO is the path after it, and a path outside it is a
        configuration problem (gunicorn's 500): False, with the refusal noted."""
        cdef str decoded = _percent_decoded(buf + path.off, path.len)
        if not decoded.startswith(script_name):
            self._refused(500, f"Configuration problem: Request path {decoded!r} does not "
                               f"start with SCRIPT_NAME {script_name!r}")
            return False
        PyDict_SetItem(environ, K_SCRIPT_NAME, script_name)
        PyDict_SetItem(environ, K_PATH_INFO, decoded[len(script_name):])
        return True

    cdef dict build_uwsgi(self, UwsgiPacket packet, char* buf, object remote_addr,
                          object remote_port):
        """The environ for the uwsgi packet ``packet`` just parsed out of ``buf``.

        Its vars are the environ, as uWSGI makes it: the front end (allowed by
        uwsgi_allow_ips) says who the client is (REMOTE_ADDR), what it asked for
        and how (PATH_INFO, already percent-decoded by nginx; SERVER_PROTOCOL;
        HTTPS); what it leaves out comes from the connection, as for HTTP/1.1.
        HTTP_* vars repeated (a header line repeated) are joined as RFC 9110 §5.3
        joins field lines; any other var twice is refused."""
        cdef dict environ = PyDict_Copy(self.template)
        cdef Py_ssize_t i, size
        cdef UwsgiVar* var
        cdef PyObject* existing
        cdef object key, value, path, scheme
        cdef set replaced = None
        for i in range(packet.nvars):
            var = &packet.vars[i]
            if var.kind == UWSGI_VAR_SERVERS:
                continue   # the server's keys (wsgi.url_scheme is read below)
            key = PyUnicode_DecodeLatin1(buf + var.key.off, var.key.len, NULL)
            value = PyUnicode_DecodeLatin1(buf + var.value.off, var.value.len, NULL)
            size = PyDict_GET_SIZE(environ)
            existing = PyDict_SetDefault(environ, key, value)
            if PyDict_GET_SIZE(environ) != size:
                continue
            if var.kind == UWSGI_VAR_HTTP:
                PyDict_SetItem(environ, key, (<object>existing)
                               + (COOKIE_JOINER if key == K_HTTP_COOKIE else JOINER) + value)
                continue
            if PyDict_GetItem(self.template, key) == NULL:
                return self._refused(400, f"uwsgi var {key} given twice")
            # SCRIPT_NAME, SERVER_SOFTWARE, a raw_env variable: the front end's
            # value replaces the server's, once.
            if replaced is None:
                replaced = set()
            elif key in replaced:
                return self._refused(400, f"uwsgi var {key} given twice")
            replaced.add(key)
            PyDict_SetItem(environ, key, value)
        # What the front end did not say comes from the connection.
        PyDict_SetDefault(environ, K_QUERY_STRING, EMPTY)
        PyDict_SetDefault(environ, K_SERVER_PROTOCOL, HTTP_1_1)
        PyDict_SetDefault(environ, K_SERVER_NAME, self.default_server_name)
        PyDict_SetDefault(environ, K_SERVER_PORT, self.default_server_port)
        if <object>PyDict_SetDefault(environ, K_REMOTE_ADDR, remote_addr) is remote_addr:
            # (a client's port goes with its address, not with the front end's)
            PyDict_SetDefault(environ, K_REMOTE_PORT, remote_port)
        if packet.path_var < 0:
            self._uwsgi_path_from_uri(environ, environ[K_REQUEST_URI])
        elif packet.script_var < 0:
            # root_path as for HTTP/1.1, when the front end names no SCRIPT_NAME
            _mount(environ, <str>environ[K_PATH_INFO], self.root_path)
        if packet.uri_var >= 0:
            PyDict_SetItem(environ, K_RAW_URI, environ[K_REQUEST_URI])
        elif environ[K_QUERY_STRING]:
            PyDict_SetItem(environ, K_RAW_URI,
                           environ[K_PATH_INFO] + QUESTION_MARK + environ[K_QUERY_STRING])
        else:
            PyDict_SetItem(environ, K_RAW_URI, environ[K_PATH_INFO])
        scheme = self._uwsgi_scheme(packet, buf)
        if scheme is not None:
            PyDict_SetItem(environ, K_URL_SCHEME, scheme)
        return environ

    cdef void _uwsgi_path_from_uri(self, dict environ, str uri) except *:
        # No PATH_INFO: the path of REQUEST_URI, percent-decoded (PEP 3333).
        cdef bytes target = uri.partition(QUESTION_MARK)[0].encode("latin-1")
        _mount(environ, _percent_decoded(PyBytes_AS_STRING(target), len(target)), self.root_path)

    cdef object _uwsgi_scheme(self, UwsgiPacket packet, char* buf):
        cdef UwsgiVar* var
        cdef str value
        if packet.https_var >= 0:
            var = &packet.vars[packet.https_var]
            value = PyUnicode_DecodeLatin1(buf + var.value.off, var.value.len, NULL)
            if value.lower() in HTTPS_ON:
                return HTTPS
        for index in (packet.scheme_var, packet.request_scheme_var):
            if index >= 0:
                var = &packet.vars[<Py_ssize_t>index]
                value = PyUnicode_DecodeLatin1(buf + var.value.off, var.value.len, NULL)
                if value in SCHEMES:
                    return HTTPS if value == HTTPS else HTTP
        return None

    cdef dict built_or_raise(self, HeadParser head, char* buf, object remote_addr,
                             object remote_port, bint trusted_proxy):
        cdef dict environ = self.build(head, buf, remote_addr, remote_port, trusted_proxy)
        if environ is None:
            raise parser_module.ParseError(self.refusal_status, self.refusal_reason)
        return environ

    # Python-level entries, for tests, tools and the micro-benchmark.
    def environ_for(self, ParsedRequest request, remote_addr="127.0.0.1", remote_port="0",
                    trusted_proxy=False):
        """The environ for a request the Python-level parser produced."""
        return self.built_or_raise(request.head_parser, PyBytes_AS_STRING(request.head),
                                   remote_addr, str(remote_port), trusted_proxy)

    def environ_from_uwsgi(self, data, remote_addr="127.0.0.1", remote_port="0", **limits):
        """The environ for the uwsgi packet at the start of ``data``."""
        cdef UwsgiPacket packet = UwsgiPacket(**limits)
        cdef bytes packet_bytes = bytes(data)
        cdef Py_ssize_t size = packet.parse(PyBytes_AS_STRING(packet_bytes), len(packet_bytes))
        if size < 0:
            raise parser_module.ParseError(packet.error_status, packet.error_reason)
        if size == 0:
            raise ValueError("the uwsgi packet is incomplete")
        environ = self.build_uwsgi(packet, PyBytes_AS_STRING(packet_bytes), remote_addr,
                                   str(remote_port))
        if environ is None:
            raise parser_module.ParseError(self.refusal_status, self.refusal_reason)
        return environ

    def environ_from_head(self, HeadParser head, data, remote_addr="127.0.0.1", remote_port="0",
                          trusted_proxy=False):
        """The environ for the head ``head`` just parsed out of ``data`` (HeadParser.parse_bytes)."""
        return self.built_or_raise(head, data, remote_addr, remote_port, trusted_proxy)
