# The loop's pieces seen from Python, for tests: what a behaviour test over sockets
# cannot pin down without timing. Included into _loop.pyx; nothing here is used by
# the loop itself.


def state_exits():
    """Connection.enter's table: {state: frozenset of the states it may become}, by name."""
    cdef int origin, target
    exits = {}
    for origin in range(STATE_COUNT):
        exits[STATE_NAMES[origin]] = frozenset([STATE_NAMES[target] for target in range(STATE_COUNT)
                                                if STATE_EXITS[origin] & (<unsigned int>1 << target)])
    return exits


cdef class MailboxProbe:
    """A Mailbox (loop/mailbox.pxi) with an eventfd of its own, driven from Python:
    push() is a pool thread's hand-over of body bytes, take() the loop's round-end
    take, so a test can drive the hand-off from many threads and check what the
    loop would see. Each producer has an exchange of its own."""
    cdef Mailbox mailbox
    cdef list exchanges
    cdef dict producer_of
    cdef int wake_fd

    def __cinit__(self, int producers):
        cdef Exchange exchange
        self.wake_fd = -1
        self.mailbox = Mailbox(1)
        self.exchanges = []
        self.producer_of = {}
        for index in range(producers):
            exchange = Exchange(None)
            exchange.chunks = []
            exchange.delivered = []
            exchange.pool_state = POOL_RUNNING
            self.exchanges.append(exchange)
            self.producer_of[id(exchange)] = index
        self.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)
        if self.wake_fd < 0:
            raise OSError(errno, os.strerror(errno))
        self.mailbox.open(self.wake_fd)

    def __dealloc__(self):
        if self.wake_fd >= 0:
            close(self.wake_fd)

    def fileno(self):
        """The eventfd the mailbox writes to wake the loop."""
        return self.wake_fd

    def push(self, int producer, bytes data):
        """From any thread: body bytes of ``producer``'s exchange, handed to the loop."""
        return self.mailbox.push(<Exchange>self.exchanges[producer], data)

    def read_wake(self):
        """The loop's read of the eventfd: the writes since the last read (0: none)."""
        cdef unsigned long long count = 0
        if read(self.wake_fd, &count, sizeof(count)) < 0:
            return 0
        return count

    def take(self):
        """The loop's take: [(producer, [bytes, ...]), ...] in the order posted."""
        cdef Exchange exchange = self.mailbox.take_posted()
        cdef Exchange following
        taken = []
        while exchange is not None:
            following = exchange.next_taken
            exchange.next_taken = None
            taken.append((self.producer_of[id(exchange)], list(exchange.delivered)))
            del exchange.delivered[:]
            exchange = following
        return taken

    def queued(self):
        """Exchanges posted and not yet taken, as the mailbox counts them now."""
        cdef int count
        self.mailbox.lock()
        count = self.mailbox.posted_count
        self.mailbox.unlock()
        return count

    @property
    def wakes(self):
        """eventfd writes so far: one per time the queue to the loop stopped being empty."""
        return self.mailbox.wakes

    @property
    def takes(self):
        """Takes that found something."""
        return self.mailbox.takes

    @property
    def hand_offs(self):
        return self.mailbox.handed_to_loop
