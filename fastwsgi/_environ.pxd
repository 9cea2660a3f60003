from fastwsgi._parser cimport HeadParser, Span, UwsgiPacket

# How many common header names _environ.pyx finds by hash (COMMON_HEADERS): the
# cached ones, then the secret ones. The counts size C arrays, so they are
# constants here; the module refuses to import when its lists say otherwise.
cdef enum:
    CACHED_COUNT = 36   # CACHED_HEADERS: values reused while they repeat
    SECRET_COUNT = 2    # SECRET_HEADERS: values never kept
    COMMON_COUNT = CACHED_COUNT + SECRET_COUNT


cdef enum:
    # Bytes of a request path long enough for most, short enough to compare at once.
    PATH_CACHED = 64


cdef class EnvironBuilder:
    cdef dict template
    cdef str root_path
    cdef str default_server_name
    cdef str default_server_port
    cdef str url_scheme
    cdef str scheme_port    # the default port of url_scheme, for a Host without one
    cdef dict secure_scheme_headers
    # why the last build() returned None: the status to answer and the reason to log
    cdef readonly int refusal_status
    cdef readonly str refusal_reason
    # which common-header slots, and which other keys, are secure_scheme_headers
    cdef bint secure_common[COMMON_COUNT]
    cdef frozenset secure_keys
    # per common header, the str made for its last value (values repeat across requests)
    cdef list value_cache
    # the Host value last split into SERVER_NAME / SERVER_PORT, and the split
    cdef object last_host
    # the raw bytes of the last path (when short) and its PATH_INFO: paths repeat too
    cdef char last_path[PATH_CACHED]
    cdef Py_ssize_t last_path_length
    cdef str last_path_info
    cdef object last_server_name
    cdef object last_server_port

    cdef dict build(self, HeadParser head, char* buf, object remote_addr, object remote_port,
                    bint trusted_proxy)
    cdef object _value_for(self, char* buf, Span value, Py_ssize_t common)
    cdef void _path_info(self, dict environ, char* buf, Span path) except *
    cdef void _server_address(self, dict environ, char* buf, HeadParser head, object host,
                              object scheme) except *
    cdef object _refused(self, int status, str reason)
    cdef bint _forwarded_script_name(self, dict environ, char* buf, Span path,
                                     object script_name) except -1
    cdef dict build_uwsgi(self, UwsgiPacket packet, char* buf, object remote_addr,
                          object remote_port)
    cdef void _uwsgi_path_from_uri(self, dict environ, str uri) except *
    cdef object _uwsgi_scheme(self, UwsgiPacket packet, char* buf)
    cdef dict built_or_raise(self, HeadParser head, char* buf, object remote_addr,
                             object remote_port, bint trusted_proxy)
