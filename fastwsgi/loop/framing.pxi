# How a response's body is delimited on the wire (RFC 9112 §6.3), decided in one
# place: queue_headers() asks, the body writers obey.

# The Framing enum is declared in _loop.pxd.

cdef inline Framing response_framing(int code, bint is_head, bint has_length,
                                     int version_minor) noexcept:
    if is_head or code < 200 or code == 204 or code == 304:
        return FRAMING_NONE
    if has_length:
        return FRAMING_LENGTH
    if version_minor >= 1:
        return FRAMING_CHUNKED
    return FRAMING_CLOSE


FRAMING_NAMES = {FRAMING_NONE: "none", FRAMING_LENGTH: "length",
                 FRAMING_CHUNKED: "chunked", FRAMING_CLOSE: "close"}


def framing_of(int code, bint is_head, bint has_length, int version_minor):
    """The framing of a response, by name, for tests that check the rule without a socket."""
    return FRAMING_NAMES[response_framing(code, is_head, has_length, version_minor)]
