# The small pieces of RFC 9112 the head parser reads with: whitespace, field
# content (eight bytes at a time), names compared case-insensitively, methods
# compared exactly, the HTTP-version. Character classes come from
# includes/http_chars.h. Included into _parser.pyx.


cdef inline bint _is_ows(char c) noexcept:
    return c == SP or c == HTAB


cdef extern from *:
    """
    /* Index of the first byte flagged in a SWAR mask (its high bit set), on a
       little-endian machine; -1 elsewhere, where the caller reads byte by byte. */
    static inline int fastwsgi_first_flagged(unsigned long long mask) {
    #if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        return __builtin_ctzll(mask) >> 3;
    #else
        (void)mask;
        return -1;
    #endif
    }
    """
    int fastwsgi_first_flagged(uint64_t mask) noexcept


cdef inline Py_ssize_t _skip_field_content(const char* buf, Py_ssize_t pos,
                                           Py_ssize_t end) noexcept:
    # Eight bytes at a time: (x - 0x20..) & ~x & 0x80.. flags the bytes below 0x20
    # (CTLs, CR among them), and the same on x ^ 0x7F.. flags DEL.  The lowest flag
    # is always a true one (borrows only run upwards), so it is where the field
    # content stops, unless it is an HTAB.  The byte loop does the last few bytes,
    # never reading past ``end``.
    # word is filled by memcpy before it is read
    cdef uint64_t word = 0, deletes, flags
    cdef int first
    while pos + 8 <= end:
        memcpy(&word, buf + pos, 8)
        deletes = word ^ 0x7F7F7F7F7F7F7F7FULL
        flags = (((word - 0x2020202020202020ULL) & ~word)
                 | ((deletes - 0x0101010101010101ULL) & ~deletes)) & 0x8080808080808080ULL
        if flags == 0:
            pos += 8
            continue
        first = fastwsgi_first_flagged(flags)
        if first < 0:
            break
        pos += first
        if buf[pos] != HTAB:
            return pos
        pos += 1
    while FIELD_CONTENT[<unsigned char>buf[pos]]:
        pos += 1
    return pos


cdef inline bint _name_is(const char* buf, Span name, const char* lowered) noexcept:
    return equals_lowered(buf + name.off, name.len, lowered)


cdef void _http_version(const char* buf, Py_ssize_t pos, int* major, int* minor) noexcept:
    # RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT CRLF, case-sensitive;
    # major is -1 when the bytes at pos are not one. The line is known to end in
    # CRLF, and each byte is read only after the one before it matched, so the
    # reads stay inside the line.
    major[0] = minor[0] = -1
    if (buf[pos] != b'H' or buf[pos + 1] != b'T' or buf[pos + 2] != b'T'
            or buf[pos + 3] != b'P' or buf[pos + 4] != b'/'):
        return
    if not (b'0' <= buf[pos + 5] <= b'9') or buf[pos + 6] != b'.':
        return
    if not (b'0' <= buf[pos + 7] <= b'9') or buf[pos + 8] != CR or buf[pos + 9] != LF:
        return
    major[0] = buf[pos + 5] - 48
    minor[0] = buf[pos + 7] - 48


cdef inline bint _unconventional_method(const char* method, Py_ssize_t length) noexcept:
    # gunicorn's default on top of RFC 9110's token: 3 to 20 characters, no lower-case
    # letter and no '#', which every IANA-registered method meets; a name a proxy
    # might fold or read differently is refused (permit_unconventional_http_method
    # lifts it).
    cdef Py_ssize_t i
    if length < 3 or length > 20:
        return True
    for i in range(length):
        if (b'a' <= method[i] <= b'z') or method[i] == b'#':
            return True
    return False


cdef void _upper_case(char* method, Py_ssize_t length) noexcept:
    # casefold_http_method (gunicorn: after the method is checked, so lower-case
    # letters still need permit_unconventional_http_method). Bytes already upper-case
    # are not written: a head parsed twice (python_api) is not changed the second time.
    cdef Py_ssize_t i
    for i in range(length):
        if b'a' <= method[i] <= b'z':
            method[i] = method[i] - 32


cdef inline bint _method_is(const char* buf, Span method, const char* name) noexcept:
    # RFC 9110 §9.1: the method token is case-sensitive.
    return equals_exactly(buf + method.off, method.len, name)
