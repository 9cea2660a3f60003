# C-level interface of the HTTP/1.1 request parser, for the loop and the environ builder.

cdef extern from *:
    ctypedef long long int64_t

ctypedef struct Span:
    Py_ssize_t off
    Py_ssize_t len

ctypedef struct FieldSpan:
    Span name
    Span value

# Outcome of a parse step.
cdef enum:
    PARSE_ERROR = -1
    PARSE_INCOMPLETE = 0

# How a request body is delimited (RFC 9112 §6.3).
cdef enum BodyKind:
    BODY_NONE = 0
    BODY_LENGTH = 1
    BODY_CHUNKED = 2

# What header_map does with a field name containing '_'.
cdef enum UnderscoreMode:
    UNDERSCORE_DROP = 0
    UNDERSCORE_REFUSE = 1
    UNDERSCORE_PASS = 2

# Chunked decoder states (RFC 9112 §7.1).
cdef enum ChunkState:
    CHUNK_SIZE = 0
    CHUNK_EXT = 1
    CHUNK_SIZE_LF = 2
    CHUNK_DATA = 3
    CHUNK_DATA_CR = 4
    CHUNK_DATA_LF = 5
    CHUNK_TRAILER_START = 6
    CHUNK_TRAILER_NAME = 7
    CHUNK_TRAILER_VALUE = 8
    CHUNK_TRAILER_LF = 9
    CHUNK_END_LF = 10
    CHUNK_DONE = 11


cdef class HeadParser:
    # limits, from configuration
    cdef Py_ssize_t limit_line
    cdef Py_ssize_t limit_fields
    cdef Py_ssize_t limit_field_size
    cdef int64_t limit_body
    cdef int underscore_mode
    cdef bint strip_header_spaces
    cdef bint permit_obsolete_folding

    # incremental scan state while the head is incomplete
    cdef Py_ssize_t scan_pos
    cdef Py_ssize_t line_start
    cdef Py_ssize_t lines_seen

    # results, valid after parse() returned a head length
    cdef Py_ssize_t head_start
    cdef Span method
    cdef Span target
    cdef Span path
    cdef Span query
    cdef int version_minor
    cdef FieldSpan* fields
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

    cdef void reset(self) noexcept
    cdef Py_ssize_t parse(self, char* buf, Py_ssize_t length) except -2
    cdef int fail(self, int status, str reason) except -2
    cdef Py_ssize_t _skip_leading_empty_lines(self, char* buf, Py_ssize_t length) except -2
    cdef Py_ssize_t _check_partial_line(self, Py_ssize_t partial) except -2
    cdef Py_ssize_t _parse_head(self, char* buf, Py_ssize_t head_end) except -2
    cdef Py_ssize_t _parse_request_line(self, char* buf) except -2
    cdef int _split_target(self, char* buf) except -2
    cdef Py_ssize_t _skip_scheme_and_authority(self, char* buf, Py_ssize_t pos, Py_ssize_t end) noexcept
    cdef int _parse_fields(self, char* buf, Py_ssize_t pos, Py_ssize_t head_end) except -2
    cdef Py_ssize_t _fold_line(self, char* buf, Py_ssize_t pos, bint onto_dropped) except -2
    cdef int _check_framing(self, char* buf) except -2
    cdef int64_t _content_length(self, char* buf, Span value, int64_t previous) except -2
    cdef int _transfer_coding(self, char* buf, Span value, bint* chunked_last) except -2
    cdef void _connection_options(self, char* buf, Span value, bint* close_token, bint* keep_alive_token) noexcept


cdef class BodyDecoder:
    cdef int kind
    cdef int64_t remaining
    cdef int64_t received
    cdef int64_t limit_body
    cdef int chunk_state
    cdef Py_ssize_t line_length
    cdef Py_ssize_t limit_line
    cdef Py_ssize_t trailer_fields
    cdef Py_ssize_t limit_fields
    cdef Py_ssize_t limit_field_size
    cdef bint seen_digit
    cdef int error_status
    cdef str error_reason

    cdef void start(self, int kind, int64_t content_length) noexcept
    cdef bint done(self) noexcept
    cdef Py_ssize_t decode(self, char* buf, Py_ssize_t length, Py_ssize_t* out_length) except -2
    cdef int fail(self, int status, str reason) except -2
    cdef Py_ssize_t _decode_chunked(self, char* buf, Py_ssize_t length, Py_ssize_t* out_length) except -2
    cdef int _count_line_byte(self) except -2
    cdef int _end_size_line(self) except -2
    cdef int _trailer_byte(self, unsigned char c) except -2


cdef class ParsedRequest:
    cdef readonly bytes head
    cdef readonly HeadParser head_parser

    cdef bytes _span(self, Span span)
