# Keep-alive connections move to a free sibling while the app runs long. Included
# into _loop.pyx; the class is declared in _loop.pxd.
#
# Without threads a worker runs the app on its loop's thread, and a keep-alive
# client it holds waits for every app call the worker makes: behind a proxy that
# keeps upstream connections open (nginx's keepalive, a cloud load balancer), a fast
# request sent on a connection whose worker is busy in a 2 s call waits 2 s while
# its siblings sit idle. gunicorn's sync worker avoids it by closing after every
# request, so each request is a new connection that a free worker accepts.
#
# Here, once an app call has run long (AppWatch, loop/app_watch.pxi, calls
# give_waiting on its thread), the connections of the worker whose next request
# has arrived are passed (SCM_RIGHTS) to the channel all the master's workers
# share, and whichever worker is free first takes them in, as it takes new
# connections from the listener. Only connections between requests move, with
# nothing of theirs above the socket: no byte read, nothing queued to send, no TLS
# state, no PROXY header still to read. The next request's bytes are in the
# kernel, and the worker that takes the socket reads them as if it had accepted it.
# The master holds the channel too, so a connection passed while its taker
# restarts waits for the next worker; a stopping worker takes in what is left
# before it exits.


cdef class HandOff:

    def __cinit__(self, Server server, object channel):
        self.server = server
        self.channel = channel
        self.send_fd = channel[0].fileno()
        self.recv_fd = channel[1].fileno()
        self.listeners = list(server.listeners)
        self.handle = Handle.__new__(Handle)
        self.handle.kind = HANDLE_HANDOFF
        self.handle.fd = self.recv_fd

    # -- the loop's side ---------------------------------------------------

    cdef void register(self) except *:
        cdef epoll_event event
        if self.registered:
            return
        # Every free worker is woken, as for a shared listener; one takes the socket.
        event.events = EPOLLIN
        event.data.ptr = <void*>self.handle
        if epoll_ctl(self.server.epfd, EPOLL_CTL_ADD, self.recv_fd, &event) < 0:
            raise OSError(errno, os.strerror(errno))
        self.registered = True

    cdef void unregister(self) noexcept:
        if self.registered:
            epoll_ctl(self.server.epfd, EPOLL_CTL_DEL, self.recv_fd, NULL)
            self.registered = False

    cdef Py_ssize_t take(self, Py_ssize_t most) except -1:
        """Takes in up to ``most`` connections a sibling passed; returns how many."""
        cdef Server server = self.server
        cdef char payload[HANDOFF_PAYLOAD_MAX]
        cdef sockaddr_storage unknown
        cdef Connection conn
        cdef Listener listener
        cdef Py_ssize_t taken = 0, n, index
        cdef int fd
        memset(&unknown, 0, sizeof(unknown))
        if len(server.connections) >= server.worker_connections:
            # Full: left to a sibling. The channel is level-triggered, so it stops
            # being watched here until the tick finds room.
            self.unregister()
            return 0
        while taken < most and len(server.connections) < server.worker_connections:
            n = fastwsgi_recv_fd(self.recv_fd, payload, sizeof(payload), &fd)
            if n < 0:
                if errno != EAGAIN:
                    self.server.error_log.error("hand-off channel: %s", os.strerror(errno))
                return taken
            if fd < 0:
                self.server.error_log.error("hand-off channel: a message without its connection")
                continue
            fields = payload[:n].decode("ascii", "replace").split("\t")
            index = -1
            if len(fields) == 4 and fields[0].isdigit():
                index = int(fields[0])
            if not 0 <= index < len(self.listeners):
                self.server.error_log.error("hand-off channel: a malformed message")
                close(fd)
                continue
            listener = self.listeners[index]
            trusted, remote_addr, remote_port = fields[1] == "1", fields[2], fields[3]
            conn = server.add_connection(listener, fd, &unknown)
            if conn is None:
                continue
            # The peer as the worker that accepted it knew it (a PROXY header's
            # client included); the header, if any, was read there.
            conn.remote_addr = remote_addr
            conn.remote_port = remote_port
            conn.trusted_proxy = trusted
            conn.proxy_header_expected = False
            # (uwsgi_allow_ips: a connection refused would have been closed there)
            conn.uwsgi_allowed = True
            taken += 1
            # Its request is waiting: read it now rather than on the next round.
            try:
                server.protocol.on_readable(conn)
            except Exception:
                server.protocol.failed(conn)
        return taken

    cdef void give_waiting(self) except *:
        """On the watcher thread, with the GIL, while an app call runs long (AppWatch):
        passes the connections whose next request waits. The loop's epoll says which
        are readable (it is level-triggered, so the loop is told again of the rest):
        a look costs what is ready, not what is open."""
        cdef Server server = self.server
        cdef epoll_event events[WATCH_EVENTS]
        cdef Handle handle
        cdef Connection conn
        cdef int given = 0, count, i
        if server.stopping:
            # A stopping worker passes nothing: so the one take of the channel at the
            # end of its stop finds everything it ever passed (Server.drain_for_stop).
            return
        count = epoll_wait(server.epfd, events, WATCH_EVENTS, 0)
        for i in range(count):
            handle = <Handle>events[i].data.ptr
            if handle.kind != HANDLE_CONNECTION:
                continue
            conn = <Connection>handle
            if events[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR) or not events[i].events & EPOLLIN:
                continue   # gone or going: the loop closes it when it can
            if conn is server.driver.in_app or not self.movable(conn):
                continue
            if not self.give(conn):
                break      # the channel is full: the rest stay
            given += 1
        if given:
            self.given += given
            server.error_log.debug("passed %d waiting connection(s) to a free worker", given)

    cdef inline bint movable(self, Connection conn) noexcept:
        """Between requests with nothing above the socket (see the top of this file):
        kept alive and not yet read from, or answered in full this round (the answer
        AppWatch just sent; its iterable closed and its access line written) and
        about to be kept alive."""
        cdef Exchange exchange = conn.exchange
        if conn.rlen or conn.out_pending or conn.spool_fd >= 0 or conn.peer_closed:
            return False
        if conn.transport.tls is not None or conn.proxy_header_expected or conn.app_socket is not None:
            return False
        if conn.state == STATE_IDLE or conn.state == STATE_HEAD:
            return True
        return (conn.state == STATE_RESPONSE and exchange.response_done and exchange.keep_alive
                and exchange.file_remaining == 0 and exchange.result is None
                and exchange.file_obj is None)

    cdef bint give(self, Connection conn) except -1:
        """Passes one connection to the channel; False when the channel is full (it
        then stays here)."""
        # the listener by its index (every worker holds the master's, in its order)
        # and the peer's address: at most some 70 bytes (an IPv6 address is 45)
        cdef bytes payload = ("%d\t%d\t%s\t%s" % (
            self.listeners.index(conn.listener), conn.trusted_proxy, conn.remote_addr,
            conn.remote_port)).encode("ascii", "replace")[:HANDOFF_PAYLOAD_MAX]
        if fastwsgi_send_fd(self.send_fd, conn.fd, PyBytes_AS_STRING(payload),
                            PyBytes_GET_SIZE(payload)) < 0:
            return False
        # The socket lives on in the channel, then in the sibling: the connection
        # closes here as any other (its events, its counts, its objects), but its
        # descriptor without the shutdown that would end the socket for both. The
        # loop's thread is inside the app, so none of its events is handled between
        # the send and the close.
        conn.transport.passed = True
        self.server.protocol.close(conn)
        return True
