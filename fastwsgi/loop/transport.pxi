# How bytes cross a client socket: the only code that calls recv, sendmsg,
# sendfile, shutdown and close on one. Included into _loop.pyx; the class is
# declared in _loop.pxd.
#
# Every call answers a byte count, IO_BLOCKED (try again when epoll says so) or
# IO_FAILED (the connection is lost); errno is read here and nowhere else.
# recv and sendmsg pass MSG_DONTWAIT: an app that took the socket over
# (gunicorn.socket) may have put the descriptor in blocking mode, which the loop
# must never wait on.
#
# A TLS connection (tls is its TLSSession, loop/tls.pxi) goes through the same
# calls: one branch, predicted the same way for every call of a connection.


cdef class Transport:

    def __cinit__(self, int fd):
        self.fd = fd
        self.can_sendfile = True

    cdef Py_ssize_t recv_into(self, char* buffer, Py_ssize_t size) except IO_RAISED:
        if self.tls is not None:
            return self.tls.recv_into(self.fd, buffer, size)
        return self.recv_raw(buffer, size)

    cdef Py_ssize_t recv_raw(self, char* buffer, Py_ssize_t size) except IO_RAISED:
        """The socket's bytes as they came, TLS or not (a PROXY header precedes TLS)."""
        return socket_recv(self.fd, buffer, size)

    cdef Py_ssize_t send_iov(self, iovec* iov, int count) except IO_RAISED:
        cdef msghdr msg
        cdef ssize_t sent
        if self.tls is not None:
            return self.tls.send_iov(self.fd, iov, count)
        msg.msg_name = NULL
        msg.msg_namelen = 0
        msg.msg_control = NULL
        msg.msg_controllen = 0
        msg.msg_flags = 0
        msg.msg_iov = iov
        msg.msg_iovlen = count
        while True:
            sent = sendmsg(self.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT)
            if sent >= 0:
                return sent
            if errno != EINTR:
                return IO_BLOCKED if errno == EAGAIN else IO_FAILED

    cdef Py_ssize_t send_file(self, int file_fd, long* offset, int64_t remaining) except IO_RAISED:
        """One sendfile() of at most SENDFILE_CHUNK bytes: the bytes sent (0 at
        the file's end), IO_BLOCKED or IO_FAILED."""
        cdef ssize_t sent
        cdef size_t chunk = SENDFILE_CHUNK if remaining > SENDFILE_CHUNK else <size_t>remaining
        if self.tls is not None:
            return self.tls.send_file(self.fd, file_fd, offset, remaining)
        while True:
            sent = sendfile(self.fd, file_fd, offset, chunk)
            if sent >= 0:
                return sent
            if errno != EINTR:
                return IO_BLOCKED if errno == EAGAIN else IO_FAILED

    cdef int send_raw(self, bytes data) except -1:
        """Bytes as they are, as far as the socket takes them now (an answer in plain
        HTTP to a client that spoke it to a TLS port)."""
        socket_send(self.fd, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        return 0

    cdef bint input_waiting(self) except -1:
        """Whether the peer's next bytes have arrived (without taking them)."""
        cdef char byte = 0
        if self.input_buffered():
            return True
        return recv(self.fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0

    cdef bint input_buffered(self) except -1:
        """Whether bytes already received wait above the socket (inside TLS), where
        epoll does not see them."""
        return self.tls is not None and self.tls.state >= TLS_OPEN and not self.tls.drained

    cdef int shutdown_write(self) except -1:
        if self.tls is not None:
            self.tls.close_notify(self.fd)
        shutdown(self.fd, SHUT_WR)
        self.write_shut = True
        return 0

    cdef void close(self) noexcept:
        if self.fd >= 0:
            if self.tls is not None and not self.write_shut:
                self.tls_goodbye()
            if not self.write_shut and not self.passed:
                # close() alone ends nothing while another descriptor shares the
                # socket (a child the app forked, a kept gunicorn.socket): the peer
                # would wait on a connection no one serves. shutdown() ends it.
                # A socket passed to a sibling is that sibling's to end.
                shutdown(self.fd, SHUT_RDWR)
            close(self.fd)
            self.fd = -1


    cdef void tls_goodbye(self) noexcept:
        """Our close_notify, on every close after the handshake (the answer to the
        peer's, RFC 8446 §6.1): OpenSSL keeps a session resumable only when its
        connection was shut down so."""
        if self.tls.state < TLS_OPEN:
            return
        try:
            self.tls.close_notify(self.fd)
        except Exception:
            pass   # the connection is closing: nothing more is owed to it


# The two calls TLS makes on the socket too (its ciphertext), so that errno is
# read in this file only.

cdef inline Py_ssize_t socket_recv(int fd, char* buffer, Py_ssize_t size) noexcept:
    """One recv() without waiting: the bytes read (0 at the peer's end of stream),
    IO_BLOCKED or IO_FAILED."""
    cdef ssize_t n = recv(fd, buffer, size, MSG_DONTWAIT)
    if n >= 0:
        return n
    # EINTR: the loop reads again on the next round (the socket stays readable)
    return IO_BLOCKED if errno == EAGAIN or errno == EINTR else IO_FAILED


cdef inline Py_ssize_t socket_send(int fd, const char* data, Py_ssize_t size) noexcept:
    """One send() without waiting (retried on EINTR): the bytes taken, IO_BLOCKED or
    IO_FAILED."""
    cdef ssize_t sent
    while True:
        sent = send(fd, data, size, MSG_NOSIGNAL | MSG_DONTWAIT)
        if sent >= 0:
            return sent
        if errno != EINTR:
            return IO_BLOCKED if errno == EAGAIN else IO_FAILED
