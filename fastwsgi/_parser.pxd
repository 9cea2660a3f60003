# The request parser's map: its structs, enums and classes, and the C-level
# methods the loop and the environ builder call. The code is woven into one
# extension from fastwsgi/parser/*.pxi (included by _parser.pyx), so calls
# between the parts stay direct C calls:
#   parser/limits.pxi      gunicorn's limit settings, normalized into Limits
#   parser/lexical.pxi     whitespace, field content, names and methods compared,
#                          the HTTP-version
#   parser/target.pxi      the request-target's forms and the authority (RFC 9112
#                          §3.2, RFC 3986 §3.2)
#   parser/head.pxi        HeadParser: the head's lines and their limits, the request
#                          line when it ends, the field lines when the head does
#   parser/framing.pxi     what the fields mean: Host, body framing, keep-alive, Expect
#   parser/body.pxi        BodyDecoder: Content-Length and chunked bodies, in place
#   parser/uwsgi.pxi       UwsgiPacket: the uwsgi protocol's request packet, its vars as spans
#   parser/python_api.pxi  RequestParser, ParsedRequest and character_class, for Python
# Character classes and compares come from includes/http_chars.h.

cimport cython

cdef extern from *:
    ctypedef long long int64_t

ctypedef struct Span:
    Py_ssize_t off
    Py_ssize_t len

ctypedef struct FieldSpan:
    Span name
    Span value
    # A name with '_' the environ decides on by the peer's trust (a Forwarded value):
    # one that forwarder_headers names, or any with header_map "dangerous".
    unsigned char forwarded

# Outcome of a parse step.
cdef enum:
    PARSE_ERROR = -1
    PARSE_INCOMPLETE = 0

# How a request body is delimited (RFC 9112 §6.3).
cdef enum BodyKind:
    BODY_NONE = 0
    BODY_LENGTH = 1
    BODY_CHUNKED = 2

# What the environ does with a field name containing '_' (FieldSpan.forwarded),
# by the peer's trust: gunicorn's forwarder_headers for trusted peers, else header_map.
cdef enum Forwarded:
    NOT_FORWARDED = 0       # no '_' (or dropped by the parser already)
    FORWARDED_OR_DROPPED    # forwarder_headers names it: kept from a trusted peer, else dropped
    FORWARDED_OR_REFUSED    # ... else the request is refused (header_map "refuse")
    FORWARDED_ALWAYS        # header_map "dangerous": kept from any peer

# What header_map does with a field name containing '_'.
cdef enum UnderscoreMode:
    UNDERSCORE_DROP = 0
    UNDERSCORE_REFUSE = 1
    UNDERSCORE_PASS = 2

# Chunked decoder states (RFC 9112 §7.1).  The states before CHUNK_SIZE_LF are
# the chunk-size line: chunk-size [ chunk-ext ] CR.
cdef enum ChunkState:
    CHUNK_SIZE = 0              # 1*HEXDIG
    CHUNK_SIZE_BWS = 1          # BWS after the size: only ";" may follow
    CHUNK_EXT_BWS_NAME = 2      # ";" BWS, before chunk-ext-name
    CHUNK_EXT_NAME = 3          # chunk-ext-name = token
    CHUNK_EXT_BWS_EQUALS = 4    # BWS after the name: "=" or ";" may follow
    CHUNK_EXT_BWS_VALUE = 5     # "=" BWS, before chunk-ext-val
    CHUNK_EXT_TOKEN = 6         # chunk-ext-val = token
    CHUNK_EXT_QUOTED = 7        # chunk-ext-val = quoted-string
    CHUNK_EXT_QUOTED_PAIR = 8   # after a backslash in the quoted-string
    CHUNK_EXT_VALUE_END = 9     # right after a value: BWS, ";" or CR
    CHUNK_EXT_BWS_AFTER = 10    # BWS after a value: only ";" may follow
    CHUNK_SIZE_LF = 11
    CHUNK_DATA = 12
    CHUNK_DATA_CR = 13
    CHUNK_DATA_LF = 14
    CHUNK_TRAILER_START = 15
    CHUNK_TRAILER_NAME = 16
    CHUNK_TRAILER_VALUE = 17
    CHUNK_TRAILER_LF = 18
    CHUNK_END_LF = 19
    CHUNK_DONE = 20


# What the configuration allows a request, as the parsers enforce it: made once
# from gunicorn's settings by normalize_limits(), copied into each parser.
ctypedef struct Limits:
    Py_ssize_t request_line     # bytes of the request line before its CRLF
    Py_ssize_t fields           # header fields of a head; trailer fields of a chunked body
    Py_ssize_t field_size       # one field line with its CRLF, folded lines included
    int64_t body                # body bytes; 0: no limit
    UnderscoreMode underscore_mode
    bint strip_header_spaces
    bint permit_obsolete_folding
    bint permit_unconventional_method
    bint casefold_method                # casefold_http_method
    bint permit_unconventional_version  # permit_unconventional_http_version

cdef int normalize_limits(Limits* limits, object options) except -1


@cython.final
cdef class HeadParser:
    cdef Limits limits
    # forwarder_headers, upper-case ("*": every name), or None: none configured
    cdef frozenset forwarder_names

    # incremental scan state while the head is incomplete
    cdef Py_ssize_t scan_pos
    cdef Py_ssize_t line_start
    cdef Py_ssize_t lines_seen
    cdef Py_ssize_t fields_start

    # the request line, valid from the end of its line (lines_seen > 0) on
    cdef Span method
    cdef Span target
    cdef Span path
    cdef Span query
    cdef int version_minor
    # the HTTP-version as received: 1 and the minor, unless permit_unconventional_http_version
    # let another major through (SERVER_PROTOCOL then says what was sent)
    cdef int version_major
    cdef int version_minor_sent
    # the request line, in the form of an HTTP/1 one, asks for HEAD: set as it is
    # parsed (even when it is then refused), so a refusal knows; reset() clears it
    cdef bint head_request

    # results, valid after parse() returned a head length
    cdef FieldSpan* fields
    # False when ``fields`` is the caller's (configure_shared)
    cdef bint owns_fields
    cdef Py_ssize_t nfields
    cdef int body_kind
    cdef int64_t content_length
    cdef bint keep_alive
    cdef bint expect_continue
    cdef bint upgrade
    cdef Py_ssize_t host_field

    # why the last parse failed
    cdef int error_status
    cdef str error_reason

    cdef int configure(self, const Limits* limits) except -1
    cdef void configure_shared(self, const Limits* limits, FieldSpan* fields) noexcept
    cdef void reset(self) noexcept
    cdef Py_ssize_t parse(self, char* buf, Py_ssize_t length) except -2
    cdef int fail(self, int status, str reason) except -2
    cdef Py_ssize_t _check_partial_line(self, Py_ssize_t partial) except -2
    cdef Py_ssize_t _parse_head(self, char* buf, Py_ssize_t head_end) except -2
    cdef int _parse_request_line(self, char* buf, Py_ssize_t pos) except -2
    cdef int _unconventional_version(self, int major) except -2
    cdef int _refuse_request_line(self, char* buf, Py_ssize_t eol, Py_ssize_t length) except -2
    cdef int _parse_fields(self, char* buf, Py_ssize_t pos, Py_ssize_t head_end) except -2
    cdef bint _is_forwarder(self, char* buf, Py_ssize_t start, Py_ssize_t end) except -1
    cdef Py_ssize_t _fold_line(self, char* buf, Py_ssize_t pos, bint onto_dropped,
                               Py_ssize_t* field_size) except -2


@cython.final
cdef class BodyDecoder:
    cdef int kind
    cdef int64_t remaining
    cdef int64_t received
    cdef Limits limits
    cdef int chunk_state
    cdef Py_ssize_t line_length
    cdef Py_ssize_t trailer_fields
    # the start of the trailer field name being read: room for the longest name refused
    cdef char trailer_name[24]
    cdef Py_ssize_t trailer_name_length
    cdef int error_status
    cdef str error_reason

    cdef void configure(self, const Limits* limits) noexcept
    cdef void start(self, int kind, int64_t content_length) noexcept
    cdef bint done(self) noexcept
    cdef Py_ssize_t decode(self, char* buf, Py_ssize_t length, Py_ssize_t* out_length) except -2
    cdef int fail(self, int status, str reason) except -2
    cdef Py_ssize_t _decode_chunked(self, char* buf, Py_ssize_t length, Py_ssize_t* out_length) except -2
    cdef int _size_line_byte(self, int state, unsigned char c) except -2
    cdef int _end_size_line(self) except -2
    cdef int _trailer_byte(self, int state, unsigned char c) except -2


cdef class ParsedRequest:
    cdef readonly bytes head
    cdef readonly HeadParser head_parser

    cdef bytes _span(self, Span span)


# What a uwsgi var is, by its key.
cdef enum UwsgiVarKind:
    UWSGI_VAR_CGI = 0       # a CGI variable (REQUEST_METHOD, PATH_INFO, ...)
    UWSGI_VAR_HTTP = 1      # HTTP_*: a request header's line, as the front end got it
    UWSGI_VAR_SERVERS = 2   # wsgi.*, gunicorn.*, fastwsgi.*: the server's own keys

# One var of a uwsgi packet: spans of its key and value in the packet's buffer.
ctypedef struct UwsgiVar:
    Span key
    Span value
    unsigned char kind      # UwsgiVarKind


@cython.final
cdef class UwsgiPacket:
    cdef Limits limits
    # results, valid after parse() returned the packet's size
    cdef UwsgiVar* vars
    cdef Py_ssize_t nvars
    cdef Py_ssize_t capacity
    # where the variables the server reads are (-1: not sent)
    cdef Py_ssize_t method_var
    cdef Py_ssize_t path_var
    cdef Py_ssize_t uri_var
    cdef Py_ssize_t query_var
    cdef Py_ssize_t script_var
    cdef Py_ssize_t https_var
    cdef Py_ssize_t scheme_var
    cdef Py_ssize_t request_scheme_var
    cdef Py_ssize_t length_var
    cdef int64_t content_length
    cdef bint head_request
    # why the last parse failed
    cdef int error_status
    cdef str error_reason

    cdef int configure(self, const Limits* limits) except -1
    cdef void reset(self) noexcept
    cdef Py_ssize_t parse(self, const char* buf, Py_ssize_t length) except -2
    cdef int fail(self, int status, str reason) except -2
    cdef int _unsupported(self, unsigned char modifier1) except -2
    cdef int _cgi_var(self, const char* key, Py_ssize_t n) except -2
    cdef int _check_cgi_value(self, const char* buf, const char* key, Py_ssize_t n,
                              Py_ssize_t value_at, Py_ssize_t value_length) except -2
