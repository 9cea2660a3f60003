# TLS inside the loop: each connection's ssl.SSLObject works on two memory BIOs, so
# OpenSSL never touches the socket. The transport receives ciphertext, feeds it in
# and takes plaintext out; it encrypts what the output queue holds and sends the
# ciphertext. Nothing here blocks: a record that is not complete waits for the next
# readable event, ciphertext the socket did not take waits for the next writable one.
# Included into _loop.pyx; the classes are declared in _loop.pxd.

from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.buffer cimport PyBUF_READ, PyBUF_WRITE


cdef enum:
    # Ciphertext one recv() takes, and plaintext one write() encrypts when it gathers
    # several small items: four full TLS records (RFC 8446 §5.1: 16 KiB of plaintext
    # each), so a pipelined batch of responses goes out as few records.
    TLS_SCRATCH = 65536
    # Plaintext one write() encrypts from a single large item: the ciphertext a
    # connection holds unsent stays within this (and HIGH_WATERMARK of plaintext).
    TLS_BATCH = 262144
    # Reads of at most this many bytes decrypt into the shared scratch (a request
    # head's size); larger ones straight into the connection's buffer.
    TLS_SMALL_READ = 4096


cdef class TLSContext:

    def __cinit__(self, object ssl_context, bint suppress_ragged_eofs):
        # Imported here: a server without TLS does not load OpenSSL at all.
        import ssl
        self.ssl_context = ssl_context
        self.suppress_ragged_eofs = suppress_ragged_eofs
        self.scratch = <char*>malloc(TLS_SCRATCH)
        if self.scratch == NULL:
            raise MemoryError()
        # Plaintext of small reads lands here first: one view for all of them.
        self.scratch_view = PyMemoryView_FromMemory(self.scratch, TLS_SCRATCH, PyBUF_WRITE)
        self.memory_bio = ssl.MemoryBIO
        self.want_read = ssl.SSLWantReadError
        self.want_write = ssl.SSLWantWriteError
        self.zero_return = ssl.SSLZeroReturnError
        self.eof_error = ssl.SSLEOFError
        self.ssl_error = ssl.SSLError

    def __dealloc__(self):
        free(self.scratch)

    cdef TLSSession session(self):
        cdef TLSSession session = TLSSession.__new__(TLSSession)
        session.context = self
        session.incoming = self.memory_bio()
        session.outgoing = self.memory_bio()
        session.sslobj = self.ssl_context.wrap_bio(session.incoming, session.outgoing,
                                                   server_side=True)
        # The C object behind ssl.SSLObject: the same read/write/do_handshake/pending,
        # without a Python-level wrapper call each (what uvloop's sslproto avoids too);
        # its bound methods are looked up once per connection, not once per call.
        session.engine = getattr(session.sslobj, "_sslobj", session.sslobj)
        session.engine_read = session.engine.read
        session.engine_write = session.engine.write
        session.engine_pending = session.engine.pending
        session.bio_write = session.incoming.write
        session.bio_read = session.outgoing.read
        session.drained = True
        return session


cdef class TLSSession:

    # -- the handshake -------------------------------------------------------

    cdef int handshake(self, int fd) except -2:
        """One step of the server handshake (RFC 8446 §4): what it needs next."""
        cdef TLSContext context = self.context
        cdef Py_ssize_t n
        cdef int step
        if self.cipher is not None:
            step = self.send_handshake(fd)
            if step != HANDSHAKE_DONE:
                return step
        while self.state < TLS_OPEN:
            try:
                self.engine.do_handshake()
                self.state = TLS_OPEN
            except context.want_read:
                if self.take_outgoing():
                    step = self.send_handshake(fd)
                    if step != HANDSHAKE_DONE:
                        return step
                n = socket_recv(fd, context.scratch, TLS_SCRATCH)
                if n == IO_BLOCKED:
                    return HANDSHAKE_WANTS_READ
                if n == IO_FAILED:
                    return HANDSHAKE_FAILED
                if n == 0:
                    self.error = "the client closed the connection during the handshake"
                    return HANDSHAKE_FAILED
                if self.state == TLS_AWAITING_HELLO:
                    self.state = TLS_HANDSHAKING
                    # A TLS connection opens with a handshake record (0x16) or an
                    # SSLv2-style hello (high bit set); a request line opens with a
                    # method's first letter.
                    if b'A' <= context.scratch[0] <= b'Z':
                        return HANDSHAKE_PLAINTEXT
                self.feed(context.scratch, n)
            except context.ssl_error as error:
                self.error = error
                # The alert OpenSSL made is sent as far as the socket takes it.
                if self.take_outgoing():
                    self.send_cipher(fd)
                return HANDSHAKE_FAILED
        # TLS 1.3 sends its session tickets right after the handshake.
        if self.take_outgoing():
            return self.send_handshake(fd)
        return HANDSHAKE_DONE

    cdef int send_handshake(self, int fd) except -2:
        """The handshake's unsent ciphertext, as far as the socket takes it:
        HANDSHAKE_DONE once all of it is out, else what the handshake waits for."""
        cdef int outcome = self.send_cipher(fd)
        if outcome == FLUSH_BLOCKED:
            return HANDSHAKE_WANTS_WRITE
        if outcome == FLUSH_FAILED:
            return HANDSHAKE_FAILED
        return HANDSHAKE_DONE

    # -- reading ---------------------------------------------------------------

    cdef Py_ssize_t recv_into(self, int fd, char* buffer, Py_ssize_t size) except IO_RAISED:
        """Plaintext into ``buffer``: what the records already received hold, else
        what one recv() of ciphertext brings. 0 at the end of the peer's stream."""
        cdef Py_ssize_t n
        if not self.drained:
            n = self.decrypt_into(buffer, size)
            if n != 0:
                return n
        if self.state == TLS_PEER_DONE:
            return 0
        n = socket_recv(fd, self.context.scratch, TLS_SCRATCH)
        if n < 0:
            return n
        if n == 0:
            self.incoming.write_eof()
        else:
            self.feed(self.context.scratch, n)
        n = self.decrypt_into(buffer, size)
        if n == 0 and self.state != TLS_PEER_DONE:
            # A record not complete yet, or one with no application data in it (a
            # key update may need an answer).
            if self.take_outgoing() and self.send_cipher(fd) == FLUSH_FAILED:
                return IO_FAILED
            return IO_BLOCKED
        return n

    cdef Py_ssize_t decrypt_into(self, char* buffer, Py_ssize_t size) except IO_RAISED:
        cdef TLSContext context = self.context
        cdef Py_ssize_t total = 0, n, room
        self.drained = True
        while total < size:
            room = size - total
            try:
                if room <= TLS_SMALL_READ:
                    # A request head: into the shared scratch, then copied (cheaper
                    # than a view over the connection's buffer for a few hundred bytes).
                    n = self.engine_read(room, context.scratch_view)
                    memcpy(buffer + total, context.scratch, n)
                else:
                    n = self.engine_read(room, PyMemoryView_FromMemory(buffer + total, room, PyBUF_WRITE))
            except context.want_read:
                break
            except context.zero_return:
                self.state = TLS_PEER_DONE   # close_notify (RFC 8446 §6.1)
                break
            except context.ssl_error as error:
                if isinstance(error, context.eof_error) and context.suppress_ragged_eofs:
                    self.state = TLS_PEER_DONE   # closed without close_notify
                    break
                return IO_FAILED
            if n == 0:
                self.state = TLS_PEER_DONE
                break
            total += n
            # SSL_read stops at a record's end: less than asked for means this record
            # is used up, and only whole records still in the BIO can follow.
            if total < size and self.incoming.pending == 0:
                return total
        # Stopped with the buffer full, or by the end of the stream: more may be inside.
        self.drained = False
        return total

    cdef int feed(self, const char* data, Py_ssize_t n) except -1:
        """Ciphertext received (or that came after a PROXY header) into the TLS engine."""
        self.bio_write(PyMemoryView_FromMemory(<char*>data, n, PyBUF_READ))
        self.drained = False
        return 0

    cdef bint buffered(self) except -1:
        """Whether ciphertext or plaintext waits inside the engine: epoll cannot tell."""
        return self.incoming.pending > 0 or self.engine_pending() > 0

    # -- writing ---------------------------------------------------------------

    cdef Py_ssize_t send_iov(self, int fd, iovec* iov, int count) except IO_RAISED:
        """The output queue's next bytes, encrypted and sent: how many of them are
        on the wire now, or IO_BLOCKED / IO_FAILED."""
        cdef char* scratch = self.context.scratch
        cdef Py_ssize_t n = 0, take
        cdef int i = 0
        if self.cipher is not None:
            n = self.finish_batch(fd)
            if n != 0:
                return n
        if count == 1 or <Py_ssize_t>iov[0].iov_len >= TLS_SCRATCH:
            # One item (or a large one) is encrypted where it lies.
            n = min(<Py_ssize_t>iov[0].iov_len, <Py_ssize_t>TLS_BATCH)
            return self.encrypt_and_send(fd, <const char*>iov[0].iov_base, n)
        # Several small items (a header block, body chunks, pipelined responses)
        # become one run of records.
        while i < count and n < TLS_SCRATCH:
            take = min(<Py_ssize_t>iov[i].iov_len, TLS_SCRATCH - n)
            memcpy(scratch + n, iov[i].iov_base, take)
            n += take
            i += 1
        return self.encrypt_and_send(fd, scratch, n)

    cdef Py_ssize_t send_file(self, int fd, int file_fd, long* offset, int64_t remaining) except IO_RAISED:
        """sendfile(2) cannot encrypt: the file's next bytes are read and sent as
        records. Same answers as Transport.send_file; *offset moves as they go out."""
        cdef Py_ssize_t n
        if self.cipher is not None:
            n = self.finish_batch(fd)
            if n > 0:
                offset[0] += n
            if n != 0:
                return n
        n = pread(file_fd, self.context.scratch,
                  <size_t>(TLS_SCRATCH if remaining > TLS_SCRATCH else remaining), offset[0])
        if n <= 0:
            return 0 if n == 0 else IO_FAILED
        n = self.encrypt_and_send(fd, self.context.scratch, n)
        if n > 0:
            offset[0] += n
        return n

    cdef Py_ssize_t finish_batch(self, int fd) except IO_RAISED:
        """Sends the rest of the unsent ciphertext: the plaintext count of the batch it
        completes, 0 when it carried none (an alert, a ticket), or IO_BLOCKED/FAILED."""
        cdef Py_ssize_t n
        cdef int outcome = self.send_cipher(fd)
        if outcome != FLUSH_DONE:
            return IO_BLOCKED if outcome == FLUSH_BLOCKED else IO_FAILED
        n = self.batch_plain
        self.batch_plain = 0
        return n

    cdef Py_ssize_t encrypt_and_send(self, int fd, const char* data, Py_ssize_t n) except IO_RAISED:
        cdef int outcome
        self.engine_write(PyMemoryView_FromMemory(<char*>data, n, PyBUF_READ))
        self.take_outgoing()
        outcome = self.send_cipher(fd)
        if outcome == FLUSH_DONE:
            return n
        if outcome == FLUSH_FAILED:
            return IO_FAILED
        self.batch_plain = n
        return IO_BLOCKED

    cdef int take_outgoing(self) except -1:
        """Moves what the engine wrote to its outgoing BIO behind the unsent ciphertext."""
        cdef bytes made = self.bio_read()
        if PyBytes_GET_SIZE(made) == 0:
            return 0
        if self.cipher is None:
            self.cipher = made
            self.cipher_sent = 0
        else:
            self.cipher = self.cipher[self.cipher_sent:] + made
            self.cipher_sent = 0
        return 1

    cdef int send_cipher(self, int fd) except -1:
        cdef Py_ssize_t length = PyBytes_GET_SIZE(self.cipher)
        cdef Py_ssize_t sent
        while self.cipher_sent < length:
            sent = socket_send(fd, PyBytes_AS_STRING(self.cipher) + self.cipher_sent,
                               length - self.cipher_sent)
            if sent < 0:
                return FLUSH_BLOCKED if sent == IO_BLOCKED else FLUSH_FAILED
            self.cipher_sent += sent
        self.cipher = None
        return FLUSH_DONE

    # -- closing ---------------------------------------------------------------

    cdef void close_notify(self, int fd) except *:
        """RFC 8446 §6.1: say this side is done, as far as the socket takes it now."""
        if self.state < TLS_OPEN or self.cipher is not None:
            return
        try:
            self.sslobj.unwrap()
        except (self.context.want_read, self.context.ssl_error, ValueError):
            pass   # the peer's close_notify is not waited for
        if self.take_outgoing():
            self.send_cipher(fd)
