# What the loop does while the app runs long on its own thread (no threads): a
# watcher thread acts for it. Included into _loop.pyx; the class is declared in
# _loop.pxd.
#
# Without threads the loop's thread is inside the app for as long as a call runs,
# and two things would wait for the call to end that need not:
# - answers made earlier in the same round, held to leave together at its end
#   (Server.flush_queue): a fast answer must not wait out a slow neighbour;
# - keep-alive connections of this worker whose next request has arrived: with
#   siblings to take them (HandOff, loop/handoff.pxi) they move to a free one.
#
# The watcher sleeps between looks without the GIL and reads one word the loop
# writes around each app call (`calls`: odd while a call runs). Seeing the same
# odd value on two looks WATCH_MS apart, it takes the GIL (then, for the same
# call, only when the loop's epoll has something ready), which the loop's
# thread lets go only where the app lets it go (a blocking call, the interpreter's
# switch interval). What it touches then — the connections other than the one in
# the app, the round's held answers, the server's table of connections — the
# loop's thread touches only while holding the GIL and never from inside the app,
# so the GIL is the lock; and since the loop writes `calls` holding the GIL, an
# unchanged word read under it means the same call still runs. The watcher parks
# on an eventfd once WATCH_PARK_LOOKS looks pass without an app call, so an idle
# worker is not woken; the loop's next call wakes it.


cdef class AppWatch:

    def __cinit__(self, Server server):
        self.server = server
        self.wake_fd = -1

    def __dealloc__(self):
        if self.wake_fd >= 0:
            close(self.wake_fd)

    # -- the loop's side ---------------------------------------------------

    cdef void start(self) noexcept:
        """Starts the watcher, at the first app call made while the worker holds
        another connection: until then nothing could wait behind a call, and a
        process with a second thread pays for it in every system call (glibc's
        cancellation points take their multi-threaded path)."""
        import threading
        self.unavailable = True   # one try: a failure is logged once
        self.epfd = self.server.epfd
        try:
            self.wake_fd = eventfd(0, EFD_CLOEXEC)
            if self.wake_fd < 0:
                raise OSError(errno, os.strerror(errno))
            thread = threading.Thread(target=self.watch, name="fastwsgi-app-watch", daemon=True)
            thread.start()
        except Exception:
            self.server.error_log.exception("cannot start the app watcher: answers and keep-alive "
                                            "connections wait for long app calls")
            return
        self.thread = thread

    cdef void stop(self) except *:
        cdef unsigned long long one = 1
        if self.thread is None:
            return
        fastwsgi_store(&self.stopped, 1)
        write(self.wake_fd, &one, sizeof(one))
        self.thread.join(1.0)
        self.thread = None

    cdef inline void entered(self) noexcept:
        """The loop's thread is about to call into the app."""
        cdef unsigned long long one = 1
        if self.thread is None:
            if self.unavailable or PyDict_Size(self.server.connections) < 2:
                return
            self.start()
            if self.thread is None:
                return
        self.calls_by_loop = (self.calls_by_loop + 1) & CALLS_MASK
        fastwsgi_store(&self.calls, self.calls_by_loop)
        if fastwsgi_load(&self.parked):
            write(self.wake_fd, &one, sizeof(one))

    cdef inline void left(self) noexcept:
        """The app call is over (returned or raised)."""
        if self.thread is None:
            return
        self.calls_by_loop = (self.calls_by_loop + 1) & CALLS_MASK
        fastwsgi_store(&self.calls, self.calls_by_loop)

    # -- the watcher thread --------------------------------------------------

    def watch(self):
        cdef int calls, seen = 0, acted = 0, idle_looks = 0, ready
        cdef unsigned long long token
        cdef epoll_event events[WATCH_EVENTS]
        with nogil:
            fastwsgi_name_thread("fastwsgi-watch")
            while not fastwsgi_load(&self.stopped):
                fastwsgi_sleep_ms(WATCH_MS)
                calls = fastwsgi_load(&self.calls)
                if calls & 1:
                    idle_looks = 0
                    if calls == seen:
                        if calls != acted:
                            # The call has run a look's time: once, what the round
                            # holds goes, and what waits now moves.
                            acted = calls
                            with gil:
                                self.act(calls, True)
                        else:
                            # Later looks take the GIL only when epoll says something
                            # is ready (level-triggered: the loop is told again).
                            ready = epoll_wait(self.epfd, events, WATCH_EVENTS, 0)
                            if ready > 0:
                                with gil:
                                    self.act(calls, False)
                elif calls != seen:
                    idle_looks = 0
                else:
                    idle_looks += 1
                    if idle_looks >= WATCH_PARK_LOOKS:
                        fastwsgi_store(&self.parked, 1)
                        # The loop stores `calls`, then reads `parked`; this side the
                        # reverse: one of the two sees the other's store.
                        if fastwsgi_load(&self.calls) == calls and not fastwsgi_load(&self.stopped):
                            read(self.wake_fd, &token, sizeof(token))
                        fastwsgi_store(&self.parked, 0)
                        idle_looks = 0
                seen = calls

    cdef void act(self, int calls, bint first) noexcept:
        """With the GIL, on the watcher thread: the call seen on two looks may still
        run. Errors are logged; nothing may escape into the watcher's loop."""
        try:
            if fastwsgi_load(&self.calls) != calls:
                return
            if first:
                self.send_held()
            if self.server.handoff is not None:
                self.server.handoff.give_waiting()
        except BaseException:
            try:
                self.server.error_log.exception("while the app ran long")
            except BaseException:
                pass

    cdef void send_held(self) except *:
        """Sends what the round's earlier answers queued (what a flush of the round
        would send first); the round's end goes on with each connection as usual."""
        cdef Server server = self.server
        cdef Connection conn
        for conn in list(server.flush_queue):
            if (not conn.flush_scheduled or conn.state == STATE_CLOSED or conn is server.driver.in_app
                    or conn.spool_fd >= 0 or conn.exchange.file_remaining):
                continue   # sent already, or a file's or spool's bytes: those wait
            if conn.out_pending:
                conn.flush()   # blocked or failed: the round's end finds out again
