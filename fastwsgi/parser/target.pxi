# The request-target (RFC 9112 §3.2) and the authority it or Host names
# (RFC 3986 §3.2, RFC 9110 §7.2): which form it has, where its path and query
# are. Included into _parser.pyx.


cdef bint _valid_reg_name(const char* buf, Py_ssize_t pos, Py_ssize_t end, bint colon) noexcept:
    # reg-name = *( unreserved / pct-encoded / sub-delims ), userinfo adds ":"
    cdef unsigned char c
    while pos < end:
        c = <unsigned char>buf[pos]
        if c == b'%':
            if (end - pos < 3 or not HEXDIG[<unsigned char>buf[pos + 1]]
                    or not HEXDIG[<unsigned char>buf[pos + 2]]):
                return False
            pos += 3
            continue
        if not (AUTHORITY_CHAR[c] or (colon and c == b':')):
            return False
        pos += 1
    return True


cdef bint _valid_authority(const char* buf, Py_ssize_t pos, Py_ssize_t end,
                           bint allow_userinfo, bint require_port) noexcept:
    # RFC 3986 §3.2: authority = [ userinfo "@" ] host [ ":" port ]
    #   host = IP-literal / IPv4address / reg-name;  port = *DIGIT
    # RFC 9110 §7.2: Host = uri-host [ ":" port ], without userinfo.
    cdef Py_ssize_t i, at = -1
    cdef unsigned char c
    if allow_userinfo:
        for i in range(pos, end):
            if buf[i] == b'@':
                at = i
        if at >= 0:
            # userinfo = *( unreserved / pct-encoded / sub-delims / ":" )
            if not _valid_reg_name(buf, pos, at, True):
                return False
            pos = at + 1
    if pos < end and buf[pos] == b'[':
        # IP-literal = "[" ( IPv6address / IPvFuture ) "]"; a zone id may follow as %25.
        i = pos + 1
        while i < end and buf[i] != b']':
            c = <unsigned char>buf[i]
            if not (AUTHORITY_CHAR[c] or c == b':' or c == b'%'):
                return False
            i += 1
        if i == end or i == pos + 1:
            return False
        pos = i + 1
    else:
        i = pos
        while i < end and buf[i] != b':':
            i += 1
        if i == pos or not _valid_reg_name(buf, pos, i, False):
            return False
        pos = i
    if pos == end:
        return not require_port
    if buf[pos] != b':':
        return False
    pos += 1
    if require_port and pos == end:
        return False
    while pos < end:
        if not (b'0' <= buf[pos] <= b'9'):
            return False
        pos += 1
    return True


cdef int _split_target(HeadParser head, char* buf) except -2:
    # RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT), asterisk-form.
    cdef Py_ssize_t start = head.target.off
    cdef Py_ssize_t end = start + head.target.len
    cdef Py_ssize_t pos = start, authority
    cdef char c
    cdef bint connect = _method_is(buf, head.method, "CONNECT")
    head.query.off = end
    head.query.len = 0
    if connect:
        # §3.2.3: authority-form = uri-host ":" port, only for CONNECT; it has no path.
        if not _valid_authority(buf, start, end, False, True):
            return head.fail(400, "invalid authority-form target")
        head.path.off = end
        head.path.len = 0
        return 0
    if buf[start] == b'*' and head.target.len == 1:
        # §3.2.4: asterisk-form, only for OPTIONS.
        if not _method_is(buf, head.method, "OPTIONS"):
            return head.fail(400, "asterisk-form target outside OPTIONS")
        head.path.off = start
        head.path.len = 1
        return 0
    if buf[start] != b'/':
        # §3.2.2: absolute-form = scheme ":" "//" authority path-abempty [ "?" query ]
        while pos < end:
            c = buf[pos]
            if not (b'a' <= c <= b'z' or b'A' <= c <= b'Z' or (pos > start and (
                    b'0' <= c <= b'9' or c == b'+' or c == b'-' or c == b'.'))):
                break
            pos += 1
        if (pos == start or end - pos < 3 or buf[pos] != b':' or buf[pos + 1] != b'/'
                or buf[pos + 2] != b'/'):
            return head.fail(400, "invalid request target")
        pos += 3
        authority = pos
        while pos < end and buf[pos] != b'/' and buf[pos] != b'?' and buf[pos] != b'#':
            pos += 1
        if not _valid_authority(buf, authority, pos, True, False):
            return head.fail(400, "invalid authority in absolute-form target")
    head.path.off = pos
    while pos < end and buf[pos] != b'?' and buf[pos] != b'#':
        pos += 1
    head.path.len = pos - head.path.off
    if pos < end and buf[pos] == b'?':
        pos += 1
        head.query.off = pos
        while pos < end and buf[pos] != b'#':
            pos += 1
        head.query.len = pos - head.query.off
    return 0
