# The PROXY protocol (HAProxy, versions 1 and 2): a load balancer's header in
# front of the first request that names the real client.  Included into
# _loop.pyx; the class is declared in _loop.pxd.
#
# Only connections from proxy_allow_ips may send one; from them it is
# detected, as gunicorn does: a connection that starts otherwise is plain HTTP.

import ipaddress

from libc.string cimport memcmp

# Version 1 is one text line of at most 107 bytes, CRLF included.
DEF PROXY_V1_MAX = 107
DEF PROXY_V2_HEADER = 16
# What opens a version 1 header, and the 12-byte signature that opens a version 2
# header (its fixed part then holds the version and command, the family and the
# address block's length: bytes 12, 13 and 14-15).
cdef bytes PROXY_V1_PREFIX = b"PROXY "
cdef bytes PROXY_V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


cdef int _prefix_state(const char* buf, Py_ssize_t length, bytes prefix) noexcept:
    """1: ``buf`` starts with ``prefix``; 0: it is a start of it, shorter; -1: neither."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(prefix)
    cdef Py_ssize_t compared = length if length < n else n
    if memcmp(buf, PyBytes_AS_STRING(prefix), compared) != 0:
        return -1
    return 1 if length >= n else 0


cdef class ProxyHeader:
    """The outcome of reading a PROXY header: bytes consumed and the client it names."""


cdef ProxyHeader parse_proxy_header(const char* buf, Py_ssize_t length):
    """Returns None for 'need more bytes'; a header with consumed == 0 means
    the connection does not start with one."""
    cdef ProxyHeader header = ProxyHeader.__new__(ProxyHeader)
    cdef int v1 = _prefix_state(buf, length, PROXY_V1_PREFIX)
    cdef int v2 = _prefix_state(buf, length, PROXY_V2_SIGNATURE)
    if v1 == 1:
        return _parse_v1(header, buf, length)
    if v2 == 1:
        return _parse_v2(header, buf, length)
    if v1 == 0 or v2 == 0:
        return None
    header.consumed = 0
    return header


cdef ProxyHeader _parse_v1(ProxyHeader header, const char* buf, Py_ssize_t length):
    # "PROXY" SP ( "TCP4" | "TCP6" | "UNKNOWN" ) [SP src SP dst SP sport SP dport] CRLF
    cdef Py_ssize_t end = 0
    while end < length and end < PROXY_V1_MAX and buf[end] != b'\n':
        end += 1
    if end >= PROXY_V1_MAX:
        header.error = "PROXY v1 header too long"
        return header
    if end >= length:
        return None
    if end == 0 or buf[end - 1] != b'\r':
        header.error = "PROXY v1 header not ended by CRLF"
        return header
    header.consumed = end + 1
    parts = buf[PyBytes_GET_SIZE(PROXY_V1_PREFIX):end - 1].decode("ascii", "replace").split(" ")
    if parts[0] == "UNKNOWN":
        return header
    if len(parts) != 5 or parts[0] not in ("TCP4", "TCP6") or "%" in parts[1] or "%" in parts[2]:
        # A scope id ("fe80::1%eth0") names an interface of the proxy's host, not
        # a client; ipaddress would accept any bytes after the '%', control
        # characters included, and they would reach REMOTE_ADDR and the logs.
        header.error = "invalid PROXY v1 header"
        return header
    try:
        source = ipaddress.ip_address(parts[1])
        ipaddress.ip_address(parts[2])
        ports = [int(p) for p in parts[3:5] if p.isdigit() and len(p) <= 5]
    except ValueError:
        ports = []
        source = None
    if source is None or len(ports) != 2 or not all([0 <= p <= 65535 for p in ports]) or \
            (source.version == 4) != (parts[0] == "TCP4"):
        header.error = "invalid PROXY v1 header"
        return header
    header.client_addr = str(source)
    header.client_port = str(ports[0])
    return header


cdef ProxyHeader _parse_v2(ProxyHeader header, const char* buf, Py_ssize_t length):
    cdef Py_ssize_t body_length, total
    cdef unsigned char version_command, family
    if length < PROXY_V2_HEADER:
        return None
    version_command = <unsigned char>buf[12]
    family = <unsigned char>buf[13]
    body_length = (<unsigned char>buf[14] << 8) | <unsigned char>buf[15]
    total = PROXY_V2_HEADER + body_length
    if version_command >> 4 != 2 or (version_command & 0x0F) > 1:
        header.error = "invalid PROXY v2 header"
        return header
    if length < total:
        return None
    header.consumed = total
    if (version_command & 0x0F) == 0:
        # LOCAL: the proxy's own health check; the peer address stands.
        return header
    body = buf[PROXY_V2_HEADER:total]
    if family == 0x11 and body_length >= 12:      # TCP over IPv4
        header.client_addr = str(ipaddress.IPv4Address(body[0:4]))
        header.client_port = str(int.from_bytes(body[8:10], "big"))
    elif family == 0x21 and body_length >= 36:    # TCP over IPv6
        header.client_addr = str(ipaddress.IPv6Address(body[0:16]))
        header.client_port = str(int.from_bytes(body[32:34], "big"))
    elif family >> 4 == 0:                         # UNSPEC: keep the peer address
        pass
    elif family not in (0x11, 0x21):
        # UDP or UNIX stream sources carry no address a WSGI app can use.
        pass
    else:
        header.error = "truncated PROXY v2 address block"
    return header
