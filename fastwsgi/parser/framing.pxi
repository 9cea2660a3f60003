# What the parsed fields mean for the message (RFC 9112 §6, RFC 9110 §7.2,
# §7.6.1, §10.1.1): Host, how the body is framed, whether the connection stays
# open, an expectation. Run once the whole head is in. Included into _parser.pyx.


cdef int _check_framing(HeadParser head, char* buf) except -2:
    cdef Py_ssize_t i, hosts = 0, content_types = 0
    cdef bint has_length = False, has_te = False, chunked_last = False
    cdef bint close_token = False, keep_alive_token = False
    cdef int64_t length = -1
    cdef FieldSpan* field
    head.upgrade = False
    head.expect_continue = False
    head.host_field = -1
    for i in range(head.nfields):
        field = &head.fields[i]
        if _name_is(buf, field.name, "host"):
            hosts += 1
            head.host_field = i
        elif _name_is(buf, field.name, "content-length"):
            length = _content_length(head, buf, field.value, length)
            if length < 0:
                return PARSE_ERROR
            has_length = True
        elif _name_is(buf, field.name, "transfer-encoding"):
            if _transfer_coding(head, buf, field.value, &chunked_last) < 0:
                return PARSE_ERROR
            has_te = True
        elif _name_is(buf, field.name, "connection"):
            _connection_options(head, buf, field.value, &close_token, &keep_alive_token)
        elif _name_is(buf, field.name, "content-type"):
            content_types += 1
        elif _name_is(buf, field.name, "expect"):
            # RFC 9110 §10.1.1: 100-continue is the only expectation; it means
            # nothing in HTTP/1.0; any other MAY be answered with 417.
            if not equals_lowered(buf + field.value.off, field.value.len, "100-continue"):
                return head.fail(417, "unsupported expectation")
            head.expect_continue = head.version_minor == 1
    # RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host, never more than one,
    # and an invalid Host value is refused.
    if hosts > 1:
        return head.fail(400, "more than one Host header")
    if hosts == 0:
        if head.version_minor == 1:
            return head.fail(400, "missing Host header")
    else:
        field = &head.fields[head.host_field]
        if field.value.len and not _valid_authority(
                buf, field.value.off, field.value.off + field.value.len, False, False):
            return head.fail(400, "invalid Host header")
    # RFC 9110 §5.3: Content-Type is a singleton; two of them leave the content ambiguous.
    if content_types > 1:
        return head.fail(400, "more than one Content-Type header")
    head.body_kind = BODY_NONE
    head.content_length = 0
    if has_te:
        # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing;
        # §6.3: with Content-Length too, or not ending in chunked, it cannot be trusted.
        if head.version_minor == 0:
            return head.fail(400, "Transfer-Encoding in an HTTP/1.0 request")
        if has_length:
            return head.fail(400, "both Content-Length and Transfer-Encoding")
        if not chunked_last:
            return head.fail(400, "Transfer-Encoding does not end in chunked")
        head.body_kind = BODY_CHUNKED
        head.content_length = -1
    elif has_length:
        head.content_length = length
        if length > 0:
            head.body_kind = BODY_LENGTH
        if head.limits.body and length > head.limits.body:
            return head.fail(413, "request body larger than limit_request_body")
    if _method_is(buf, head.method, "CONNECT"):
        # RFC 9110 §9.3.6: after CONNECT the connection is a tunnel, never another request.
        head.keep_alive = False
    elif head.version_minor == 1:
        head.keep_alive = not close_token
    else:
        head.keep_alive = keep_alive_token and not close_token
    return 0

cdef int64_t _content_length(HeadParser head, char* buf, Span value, int64_t previous) except -2:
    # RFC 9110 §8.6: Content-Length = 1*DIGIT; repeats must agree (RFC 9112 §6.3).
    cdef int64_t length = 0
    cdef Py_ssize_t i
    cdef char c
    if value.len == 0:
        return head.fail(400, "empty Content-Length")
    for i in range(value.len):
        c = buf[value.off + i]
        if c < b'0' or c > b'9':
            return head.fail(400, "invalid Content-Length")
        if length > MAX_BODY_LENGTH // 10:
            return head.fail(400, "Content-Length too large")
        length = length * 10 + (c - 48)
        if length > MAX_BODY_LENGTH:
            return head.fail(400, "Content-Length too large")
    if previous >= 0 and previous != length:
        return head.fail(400, "conflicting Content-Length headers")
    return length

cdef int _transfer_coding(HeadParser head, char* buf, Span value, bint* chunked_last) except -2:
    # RFC 9112 §6.1: chunked MUST be final and MUST NOT be applied twice; a
    # coding the server does not know SHOULD be answered with 501.  Codings
    # before chunked are passed to the app undecoded, as gunicorn does.
    cdef Py_ssize_t pos = value.off, end = value.off + value.len, start, n
    while pos <= end:
        while pos < end and _is_ows(buf[pos]):
            pos += 1
        start = pos
        while pos < end and TCHAR[<unsigned char>buf[pos]]:
            pos += 1
        n = pos - start
        while pos < end and _is_ows(buf[pos]):
            pos += 1
        if pos < end and buf[pos] != b',':
            return head.fail(400, "invalid Transfer-Encoding")
        if n:
            if chunked_last[0]:
                return head.fail(400, "chunked is not the final transfer coding")
            if equals_lowered(buf + start, n, "chunked"):
                chunked_last[0] = True
            elif not (equals_lowered(buf + start, n, "gzip") or equals_lowered(buf + start, n, "deflate")
                      or equals_lowered(buf + start, n, "compress")
                      or equals_lowered(buf + start, n, "x-gzip")
                      or equals_lowered(buf + start, n, "x-compress")
                      or equals_lowered(buf + start, n, "identity")):
                return head.fail(501, "unsupported transfer coding")
        pos += 1
    return 0

cdef void _connection_options(HeadParser head, char* buf, Span value, bint* close_token,
                              bint* keep_alive_token) noexcept:
    # RFC 9110 §7.6.1: Connection = #connection-option, case-insensitive tokens.
    # An element is all between two commas, less its OWS: "keep-aliveX: keep-alive"
    # is one element that names no option, not two words of which one matches.
    cdef Py_ssize_t pos = value.off, end = value.off + value.len, start, token_end
    while pos < end:
        while pos < end and (_is_ows(buf[pos]) or buf[pos] == b','):
            pos += 1
        start = pos
        while pos < end and buf[pos] != b',':
            pos += 1
        token_end = pos
        while token_end > start and _is_ows(buf[token_end - 1]):
            token_end -= 1
        if equals_lowered(buf + start, token_end - start, "close"):
            close_token[0] = True
        elif equals_lowered(buf + start, token_end - start, "keep-alive"):
            keep_alive_token[0] = True
        elif equals_lowered(buf + start, token_end - start, "upgrade"):
            head.upgrade = True
