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
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeLatin1
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
# Hex digits a chunk size may have, leading zeros included: 16 hold any int64.
DEF MAX_CHUNK_SIZE_DIGITS = 16


class ParseError(Exception):
    """A request that must be refused: ``status`` is the answer, ``reason`` goes to the log."""

    def __init__(self, int status, str reason):
        super().__init__(status, reason)
        self.status = status
        self.reason = reason
        self.events = []

    def __str__(self):
        return f"{self.status} {self.reason}"


include "parser/limits.pxi"
include "parser/lexical.pxi"
include "parser/target.pxi"
include "parser/framing.pxi"
include "parser/head.pxi"
include "parser/body.pxi"
include "parser/uwsgi.pxi"
include "parser/python_api.pxi"
