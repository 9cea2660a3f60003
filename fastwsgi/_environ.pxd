from fastwsgi._parser cimport HeadParser, Span


cdef class EnvironBuilder:
    cdef dict template
    cdef bytes root_path
    cdef str default_server_name
    cdef str default_server_port
    cdef str url_scheme
    cdef bint trust_forwarded
    cdef list secure_scheme_headers

    cdef dict build(self, HeadParser head, char* buf, object remote_addr, object remote_port,
                    bint trusted_proxy)
    cdef object _key_for(self, char* buf, Span name)
    cdef str _path_info(self, char* buf, Span path)
    cdef void _server_address(self, dict environ, char* buf, HeadParser head) except *
    cdef void _apply_secure_scheme(self, dict environ) except *
