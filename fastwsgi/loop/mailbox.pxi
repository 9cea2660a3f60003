# threads > 1: the one place the loop and the pool threads hand each other work
# (gunicorn's gthread: a queue plus a pipe; granian: channels). Included into
# _loop.pyx; the class is declared in _loop.pxd.
#
# Everything both sides touch is here, under one lock of its own (not the GIL, so
# the hand-off stays correct without one): the exchanges waiting for a thread
# (loop → pool), the exchanges with news for the loop (pool → loop), the idle
# threads and the counts that decide whether one more is sent for, and the fields
# of an Exchange that cross over (posted, next_posted, outcome, chunks,
# chunk_bytes, interim, waiter, abandoned, thread) and of a PoolThread (job,
# counted). A section holds the lock around a few field and list operations that
# neither allocate a Python object, free one, nor run Python code, so a holder never
# waits for anything (includes/mailbox_lock.h).
#
# The loop is woken through the server's eventfd, written when the pool → loop queue
# goes from empty to non-empty and only then: one wake per batch. The loop reads the
# eventfd (in the round's events) before it takes the queue (at the round's end), so
# an exchange posted after the read either joins the batch that take empties, or
# finds the queue empty and writes again: it never waits while the loop sleeps.

from libc.stdlib cimport calloc
from fastwsgi.includes.mailbox_lock cimport fastwsgi_try_lock, fastwsgi_lock_wait, fastwsgi_unlock

cdef extern from "Python.h":
    # PyList_Append as it is, -1 with the exception set: a section unlocks first.
    int list_append "PyList_Append" (object items, object item)


cdef class Mailbox:

    def __cinit__(self, int size):
        self.wake_fd = -1
        self.size = size
        self.backlog = []
        # A stack of `size` borrowed pointers: a PoolThread lives as long as its
        # pool (AppPool.threads), and going idle or waking touches no refcount.
        self.idle = <void**>calloc(size if size > 0 else 1, sizeof(void*))
        if self.idle == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.idle)

    cdef inline void lock(self) noexcept:
        if not fastwsgi_try_lock(&self.lock_word):
            # Held by the other side (only without a GIL: with one, sections never
            # overlap). Wait without the GIL, should this thread hold one.
            with nogil:
                fastwsgi_lock_wait(&self.lock_word)

    cdef inline void unlock(self) noexcept:
        fastwsgi_unlock(&self.lock_word)

    # -- the loop's side -----------------------------------------------------

    cdef int submit(self, Exchange exchange) except -1:
        """An exchange whose request is complete goes to a thread: the idle one that
        went idle last, else the backlog. 1 when the caller is to start one more
        thread (counted already)."""
        cdef int start_one = 0
        # The loop's view, written before the hand-over: the lock orders it before
        # anything the thread that takes the exchange reads.
        exchange.pool_state = POOL_RUNNING
        self.lock()
        self.handed_to_pool += 1
        if self.idle_count and self.waking == 0:
            self.wake_idle(exchange)
        else:
            # A thread is already on its way (or none is free): the waiting ones are
            # taken in order by whichever thread comes for work next.
            if list_append(self.backlog, exchange) < 0:
                self.unlock()
                return -1
            start_one = self.baton()
        self.unlock()
        return start_one

    cdef Exchange take_posted(self):
        """The exchanges posted since the last take, oldest first and linked by
        next_taken, or None. What each thread handed over moves to the exchange's
        loop-owned fields (next_taken, delivered, delivered_interim, pool_state) in
        the same section, so the loop reads it without the lock."""
        cdef Exchange first
        cdef Exchange exchange
        cdef list swapped
        if fastwsgi_load(&self.posted_count) == 0:
            # A look without the lock (an atomic load): a count that is stale at 0
            # belongs to a post still in its section, which writes the eventfd for
            # the next round; it is never missed.
            return None
        self.lock()
        first = self.posted_head
        self.posted_head = None
        self.posted_tail = None
        fastwsgi_store(&self.posted_count, 0)
        if first is not None:
            self.takes += 1
        exchange = first
        while exchange is not None:
            exchange.posted = False
            exchange.next_taken = exchange.next_posted
            exchange.next_posted = None   # (the reference moved to next_taken)
            if exchange.outcome != POOL_RUNNING:
                exchange.pool_state = exchange.outcome
            if PyList_GET_SIZE(exchange.chunks):
                # (delivered is empty: send_posted empties it before the next take)
                swapped = exchange.delivered
                exchange.delivered = exchange.chunks
                exchange.chunks = swapped
                exchange.chunk_bytes = 0
                exchange.body_handed_over = True
            if exchange.interim is not None:
                exchange.delivered_interim = exchange.interim
                exchange.interim = None
            exchange = exchange.next_taken
        self.unlock()
        return first

    cdef bint room_made(self, Exchange exchange) noexcept:
        """The socket took what was queued: whether at most HIGH_WATERMARK bytes of the
        response wait now; if so, the thread waiting for room goes on. The waiter
        registers under the same lock (wait_registered), so it is never missed."""
        cdef PoolThread waiter
        cdef bint room
        self.lock()
        room = self.pending_locked(exchange) <= HIGH_WATERMARK
        waiter = exchange.waiter
        if room and waiter is not None:
            exchange.waiter = None   # (a PoolThread lives as long as the pool)
            waiter.wake()
        self.unlock()
        return room

    cdef void abandon(self, Exchange exchange) noexcept:
        """The connection closed under a running exchange: its thread stops at its next
        chunk or write(), or as soon as it wakes if it waits for room."""
        cdef PoolThread waiter
        self.lock()
        exchange.abandoned = True
        waiter = exchange.waiter
        if waiter is not None:
            exchange.waiter = None
            waiter.wake()
        self.unlock()

    cdef PoolThread thread_of(self, Exchange exchange):
        """The thread running ``exchange`` now, or None (for the long-request warning)."""
        cdef PoolThread pool_thread
        self.lock()
        pool_thread = exchange.thread
        self.unlock()
        return pool_thread

    cdef void open(self, int wake_fd) noexcept:
        self.lock()
        self.wake_fd = wake_fd
        self.unlock()

    cdef void close(self) noexcept:
        """No more exchanges: idle threads are woken to end, busy ones end after their
        exchange, and nothing writes the eventfd from here on (it is about to close)."""
        self.lock()
        self.closing = True
        self.wake_fd = -1
        while self.idle_count:
            self.idle_count -= 1
            (<PoolThread>self.idle[self.idle_count]).wake()
        self.unlock()

    # -- the pool threads' side -------------------------------------------------

    cdef Exchange look_for_work(self, PoolThread pool_thread, bint* wait, bint* start_one):
        """The exchange ``pool_thread`` is to run: the one it was woken with, else the
        oldest waiting; the baton is passed with it (``start_one``: the caller starts
        one more thread). None with ``wait`` set: it is idle now and sleeps until
        woken; None without: the pool is closing."""
        cdef Exchange job
        wait[0] = False
        start_one[0] = False
        self.lock()
        if pool_thread.counted:
            pool_thread.counted = False
            self.waking -= 1
        job = pool_thread.job
        if job is not None:
            pool_thread.job = None   # (the reference moved to `job`)
        elif self.backlog_head < PyList_GET_SIZE(self.backlog):
            job = self.next_waiting()
        if job is not None:
            job.thread = pool_thread
            # Starting an exchange, the thread sends for the next one: an app call
            # that blocks never holds back the ones behind it.
            start_one[0] = self.baton()
        elif not self.closing:
            self.idle[self.idle_count] = <void*>pool_thread
            self.idle_count += 1
            wait[0] = True
        self.unlock()
        return job

    cdef void thread_started(self) noexcept:
        self.lock()
        self.starting -= 1
        self.unlock()

    cdef void start_failed(self) noexcept:
        """A thread counted by baton() could not start: the pool is as large as it got."""
        self.lock()
        self.starting -= 1
        self.started -= 1
        self.size = self.started
        self.unlock()

    cdef void post(self, Exchange exchange, PoolState outcome) noexcept:
        """The exchange has news for the loop; ``outcome`` is POOL_RUNNING while its
        thread goes on, else what the thread ended with."""
        self.lock()
        self.post_locked(exchange, outcome)
        self.unlock()

    cdef Py_ssize_t push(self, Exchange exchange, bytes data) except -1:
        """Body bytes from the thread, handed over and posted; returns the bytes of the
        response handed over and not yet sent."""
        cdef Py_ssize_t pending
        self.lock()
        if list_append(exchange.chunks, data) < 0:
            self.unlock()
            return -1
        exchange.chunk_bytes += PyBytes_GET_SIZE(data)
        self.post_locked(exchange, POOL_RUNNING)
        pending = self.pending_locked(exchange)
        self.unlock()
        return pending

    cdef int push_interim(self, Exchange exchange, list hints) except -1:
        """A 103 Early Hints block (in a one-item list made by the caller, so that
        nothing is allocated under the lock), sent ahead of the headers."""
        self.lock()
        if exchange.interim is None:
            exchange.interim = hints
        else:
            if list_append(exchange.interim, <object>PyList_GET_ITEM(hints, 0)) < 0:
                self.unlock()
                return -1
        self.post_locked(exchange, POOL_RUNNING)
        self.unlock()
        return 0

    cdef bint wait_registered(self, Exchange exchange, PoolThread pool_thread) noexcept:
        """Backpressure: whether more than HIGH_WATERMARK bytes of the response wait;
        if so ``pool_thread`` is its waiter (room_made or abandon wake it)."""
        cdef bint wait
        self.lock()
        wait = not exchange.abandoned and self.pending_locked(exchange) > HIGH_WATERMARK
        if wait:
            exchange.waiter = pool_thread
        self.unlock()
        return wait

    # -- with the lock held -------------------------------------------------------

    cdef void post_locked(self, Exchange exchange, PoolState outcome) noexcept:
        cdef unsigned long long one = 1
        exchange.outcome = outcome
        self.handed_to_loop += 1
        if exchange.posted:
            return   # queued already: the loop takes this news with it
        exchange.posted = True
        if self.posted_tail is None:
            self.posted_head = exchange
            # Empty → non-empty: the loop is told once for the batch this begins.
            if self.wake_fd >= 0:
                write(self.wake_fd, &one, sizeof(one))
                self.wakes += 1
        else:
            self.posted_tail.next_posted = exchange
        self.posted_tail = exchange
        fastwsgi_store(&self.posted_count, self.posted_count + 1)

    cdef inline Py_ssize_t pending_locked(self, Exchange exchange) noexcept:
        """Bytes of the response handed over and not yet sent. The connection's count
        is the loop's, read here unlocked: the loop updates it before room_made, whose
        lock orders that before this read (a stale count delays nothing)."""
        if exchange.conn is None:
            return exchange.chunk_bytes
        return exchange.chunk_bytes + exchange.conn.out_pending

    cdef void wake_idle(self, Exchange job) noexcept:
        """Wakes the thread that went idle last, with ``job`` or to look for one."""
        cdef PoolThread pool_thread
        self.idle_count -= 1
        pool_thread = <PoolThread>self.idle[self.idle_count]
        pool_thread.job = job   # (it had none: look_for_work took it)
        pool_thread.counted = True
        self.waking += 1
        pool_thread.wake()

    cdef bint baton(self) noexcept:
        """While exchanges wait and no thread is on its way, one more is sent for: an
        idle one woken, else a new one (counted here; True: the caller starts it)
        while the pool is below its size. A thread starting an exchange asks too, so
        a burst of quick ones is not handed to a crowd of threads fighting for the
        GIL: each woken thread wakes the next only once it runs."""
        if self.waking or self.backlog_head >= PyList_GET_SIZE(self.backlog):
            return False
        if self.idle_count:
            self.wake_idle(None)
            return False
        if self.starting == 0 and self.started < self.size:
            self.starting += 1
            self.started += 1
            return True
        return False

    cdef Exchange next_waiting(self):
        """The oldest exchange submitted while every thread was busy (there is one)."""
        cdef Exchange exchange = <Exchange>PyList_GET_ITEM(self.backlog, self.backlog_head)
        # Its slot becomes None, which frees nothing: the reference is `exchange` now.
        self.backlog[self.backlog_head] = None
        self.backlog_head += 1
        if self.backlog_head == PyList_GET_SIZE(self.backlog):
            del self.backlog[:]   # only Nones left: nothing is freed under the lock
            self.backlog_head = 0
        return exchange
