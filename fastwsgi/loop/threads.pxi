# threads > 1: the app runs on a pool of threads while the loop keeps every socket
# (gunicorn's gthread hand-off, in compiled code). Included into _loop.pyx; the
# classes are declared in _loop.pxd, whose header states what each side may touch.
#
# The loop reads the request whole, builds the environ and submits the exchange;
# a pool thread calls the app, pulls its body and calls its close(), posting the
# exchange back with the chunks it produced; the loop frames and writes them.
# Everything the two sides hand each other goes through the Mailbox
# (loop/mailbox.pxi), under its own lock: the thread sleeps on its PoolThread lock
# (idle, or waiting for room in the socket) and the loop on epoll_wait, woken by
# the eventfd the mailbox writes when news arrives for it.

import socket as socket_module
import threading
import traceback

from cpython.pythread cimport (PyThread_allocate_lock, PyThread_free_lock, PyThread_acquire_lock,
                               PyThread_release_lock, WAIT_LOCK, NOWAIT_LOCK)


cdef class ConnectionSocket:
    """environ["gunicorn.socket"] (gunicorn gives apps the connection's socket):
    websocket libraries take the connection over with it. The socket object is
    made on the first attribute the app asks for — a duplicate of the loop's
    descriptor, in blocking mode, as a gunicorn thread's socket is — and from then
    on the connection is the app's: the loop does no more I/O on it but the
    response the app may still return, and closes its own descriptor after."""

    def __cinit__(self, Connection conn):
        self.conn = conn

    def __getattr__(self, name):
        if self.sock is None:
            self.take()
        return getattr(self.sock, name)

    def take(self):
        cdef Connection conn = self.conn
        if conn is None or conn.state == STATE_CLOSED:
            raise OSError(errno_module.EBADF, "the connection is closed")
        sock = socket_module.socket(fileno=os.dup(conn.fd))
        # The descriptors share their file status: the loop's own calls on it pass
        # MSG_DONTWAIT from here on (Transport), so blocking mode is the app's alone.
        sock.setblocking(True)
        conn.exchange.socket_taken = True
        self.sock = sock

    def __repr__(self):
        return f"<fastwsgi connection socket {self.sock!r}>"


cdef class PoolThread:

    def __cinit__(self, AppPool pool):
        self.pool = pool
        self.mailbox = pool.mailbox
        self.lock = PyThread_allocate_lock()
        if self.lock == NULL:
            raise MemoryError()
        # Held whenever the thread is not asleep on it: the loop's release wakes it.
        PyThread_acquire_lock(self.lock, NOWAIT_LOCK)

    def __dealloc__(self):
        # Only once its thread is gone: the thread's run() holds this object.
        if self.lock != NULL:
            PyThread_free_lock(self.lock)

    def run(self):
        """The thread's life: an exchange at a time until the pool stops."""
        cdef Exchange exchange
        cdef bint start_one
        self.ident = threading.get_ident()
        self.pool.by_ident[self.ident] = self
        self.mailbox.thread_started()
        while True:
            exchange = self.next_job(&start_one)
            if exchange is None:
                return
            if start_one:
                self.pool.start_thread()
            self.serve(exchange)

    cdef Exchange next_job(self, bint* start_one):
        cdef Exchange job
        cdef bint wait
        while True:
            job = self.mailbox.look_for_work(self, &wait, start_one)
            if not wait:
                return job   # None: the pool is closing
            self.sleep()

    cdef void sleep(self) noexcept:
        """Until the loop wakes this thread: with a job, room, or the pool's end."""
        with nogil:
            PyThread_acquire_lock(self.lock, WAIT_LOCK)

    cdef void wake(self) noexcept:
        PyThread_release_lock(self.lock)

    cdef void serve(self, Exchange exchange) except *:
        """Runs the app for one exchange and posts it back, done or failed."""
        cdef AppDriver driver = self.pool.driver
        cdef object result
        cdef PoolState outcome = POOL_DONE
        if exchange.abandoned:
            # Its client left while it waited for a thread: the app is not called
            # (or, parked, its iterable goes no further).
            if exchange.iterator is not None:
                exchange.close_iterable()
            self.mailbox.post(exchange, POOL_FAILED)
            return
        self.current = exchange
        try:
            if exchange.iterator is not None:
                # Submitted again after it parked: only the body is left to pull.
                if self.pull_body(exchange):
                    outcome = POOL_PARKED
            else:
                if driver.pre_request is not None:
                    driver.run_hook(driver.pre_request, (exchange.environ,))
                result = driver.app(exchange.environ, exchange.responder)
                exchange.result = result
                if type(result) is list or type(result) is tuple:
                    pass   # the loop frames it with its length, as without threads
                elif not (driver.may_sendfile(exchange, result)
                          and probe_regular_file(exchange, <FileWrapper>result)):
                    exchange.iterator = iter(result)
                    if self.pull_body(exchange):
                        outcome = POOL_PARKED
        except BaseException as error:
            # BaseException too: a thread cannot end the worker (SystemExit) the way
            # an app on the loop's thread would; it fails this request alone.
            outcome = POOL_FAILED
            if exchange.socket_taken and (isinstance(error, StopIteration) or exchange.abandoned):
                # The app ended the connection itself (Flask-Sock raises StopIteration,
                # as gunicorn's worker expects): nothing more goes on the wire.
                outcome = POOL_TAKEN
                driver.error_log.debug("closing a connection taken by the app: %r", error)
            elif exchange.abandoned:
                driver.error_log.debug("client went away during the app: %r", error)
            else:
                log_app_error(driver.error_log, exchange)
            if exchange.result is not None:
                exchange.close_iterable()
        self.current = None
        self.mailbox.post(exchange, outcome)

    cdef bint pull_body(self, Exchange exchange) except -1:
        """Iterates the app's body into the exchange (the loop sends what is handed
        over) and calls the iterable's close() at its end. Returns True, leaving the
        iterable open, once more than HIGH_WATERMARK bytes wait for the client: the
        thread is not held by a slow reader (the exchange parks, AppPool.resume)."""
        cdef object chunk
        cdef object iterator = exchange.iterator
        cdef bint parked = False
        try:
            for chunk in iterator:
                if exchange.push_from_thread(chunk, False) > HIGH_WATERMARK:
                    parked = True
                    break
                if exchange.abandoned:
                    break
        finally:
            if not parked:
                exchange.close_iterable()
        return parked

    cdef void wait_for_room(self, Exchange exchange) except *:
        """Backpressure: the thread sleeps while more than HIGH_WATERMARK bytes of
        this response wait to be sent; the loop wakes it as the socket drains."""
        while self.mailbox.wait_registered(exchange, self):
            self.sleep()


cdef class AppPool:

    def __cinit__(self, Server server, int size):
        self.server = server
        self.driver = server.driver
        self.mailbox = Mailbox(size)
        self.threads = []
        self.by_ident = {}

    cdef void start_thread(self) except *:
        """One more thread (counted by the mailbox), which takes the oldest waiting
        exchange. Threads start on demand, as gunicorn's gthread pool (a
        ThreadPoolExecutor) grows, so a large pool (a gevent config's
        worker_connections) costs nothing until the load needs it."""
        cdef PoolThread pool_thread = PoolThread(self)
        self.threads.append(pool_thread)
        # Daemon threads: a worker past its graceful timeout exits with an app
        # call still running, as gunicorn's gthread worker does.
        pool_thread.thread = threading.Thread(target=pool_thread.run, daemon=True,
                                              name=f"fastwsgi-app-{PyList_GET_SIZE(self.threads)}")
        try:
            pool_thread.thread.start()
        except BaseException:
            self.threads.remove(pool_thread)
            self.mailbox.start_failed()
            if PyList_GET_SIZE(self.threads) == 0:
                raise
            # No more threads to be had (RLIMIT_NPROC, memory): the ones running
            # take the backlog in turn.
            self.server.error_log.warning("Could not start app thread %d (%s): serving with %d",
                                          PyList_GET_SIZE(self.threads) + 1, sys.exc_info()[1],
                                          PyList_GET_SIZE(self.threads))

    cdef void submit(self, Exchange exchange) except *:
        if self.mailbox.submit(exchange):
            self.start_thread()

    cdef void take_completed(self) except *:
        """On the loop, at a round's end: what the threads posted since the last take.
        What they post from here on wakes the next round (the mailbox writes the
        eventfd for it)."""
        cdef Exchange exchange = self.mailbox.take_posted()
        cdef Exchange following
        while exchange is not None:
            following = exchange.next_taken
            exchange.next_taken = None
            try:
                self.take(exchange)
            except Exception:
                if exchange.conn is None:
                    raise
                self.server.protocol.failed(exchange.conn)
            exchange = following

    cdef void take(self, Exchange exchange) except *:
        cdef Connection conn = exchange.conn
        cdef PoolState state = exchange.pool_state
        if exchange.abandoned or conn is None or conn.state == STATE_CLOSED:
            if exchange.delivered is not None and PyList_GET_SIZE(exchange.delivered):
                del exchange.delivered[:]
            exchange.delivered_interim = None
            if state != POOL_RUNNING:
                if state == POOL_DONE and exchange.result is not None:
                    # The thread left a sequence or a file for the loop to send, and
                    # the connection closed first: PEP 3333's close() is the loop's.
                    exchange.close_iterable()
                exchange.release_abandoned()
            return
        if state == POOL_PARKED:
            # The loop's until the socket has taken what was produced (resume).
            exchange.thread = None
        elif state != POOL_RUNNING:
            # The thread is done with it: from here on it is the loop's alone.
            exchange.thread = None
            exchange.pool_state = POOL_NONE
            conn.enter(STATE_RESPONSE)
        try:
            self.send_posted(conn, exchange, state)
        except Exception:
            self.driver.app_failed(conn)
        if conn.state != STATE_CLOSED:
            self.server.protocol.drive(conn)

    cdef void send_posted(self, Connection conn, Exchange exchange, PoolState state) except *:
        """Queues what the thread handed over: interim responses, body chunks and,
        once it is done, the rest of the response as the loop would without threads."""
        cdef AppDriver driver = self.driver
        cdef list chunks
        if exchange.delivered_interim is not None:
            chunks = exchange.delivered_interim
            exchange.delivered_interim = None
            if not exchange.headers_queued:
                for chunk in chunks:
                    conn.queue(chunk)
        if PyList_GET_SIZE(exchange.delivered):
            # Emptied whatever add_body says: the next take swaps this list back in.
            try:
                for chunk in exchange.delivered:
                    exchange.add_body(chunk)
            finally:
                del exchange.delivered[:]
        if state == POOL_RUNNING or state == POOL_PARKED:
            return
        if exchange.socket_taken:
            # The app had the socket: whatever it returns, the connection is not
            # reused (the app may have read from it or changed its mode).
            exchange.keep_alive = False
        if state == POOL_DONE:
            if exchange.file_fd >= 0:
                driver.send_file(conn, <FileWrapper>exchange.result)
                driver.finish_response(conn)
            elif exchange.result is None:
                # streamed and closed on the thread
                driver.finish_response(conn)
            else:
                driver.produce(conn, driver.sequence_length(exchange.result))
        elif state == POOL_TAKEN:
            # The app ended the connection itself: close it, sending nothing.
            self.server.requests_served += 1
            exchange.keep_alive = False
            exchange.response_done = True
            self.server.protocol.close(conn)
        else:
            driver.answer_app_error(conn)

    cdef void resume(self, Exchange exchange) except *:
        """A parked exchange whose output the socket has taken: a thread pulls on."""
        exchange.app_started = self.server.now
        self.submit(exchange)

    cdef void stop(self) except *:
        """No more exchanges: idle threads end now, busy ones after their exchange."""
        self.mailbox.close()

    cdef void report_long_request(self, Connection conn) except *:
        """A request has been in the app for `timeout` seconds: say so, with the stack
        of its thread. (gunicorn's gthread keeps its heartbeat while a thread hangs,
        so nothing else would ever show it; the request goes on.)"""
        cdef Exchange exchange = conn.exchange
        cdef PoolThread pool_thread = self.mailbox.thread_of(exchange)
        exchange.long_warned = True
        conn.deadline = conn.app_deadline()
        stack = "(not started yet: every thread is busy)"
        if pool_thread is not None:
            frame = sys._current_frames().get(pool_thread.ident)
            if frame is not None:
                stack = "".join(traceback.format_stack(frame)).rstrip("\n")
        environ = exchange.environ or {}
        self.server.error_log.warning(
            "Request %s %s from %s still running after %.0fs on thread %s; its stack, most "
            "recent call last:\n%s", environ.get("REQUEST_METHOD"), environ.get("RAW_URI"),
            conn.remote_addr, self.server.now - exchange.app_started,
            pool_thread.thread.name if pool_thread is not None else "-", stack)
