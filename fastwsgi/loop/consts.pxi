# The loop's numbers, each with the reason it has its value. Included into
# _loop.pyx before everything else.

cdef enum:
    # Events one epoll_wait() returns: more than a busy worker's ready connections
    # in one round, few enough for the array to stay on the stack (3 KiB).
    MAX_EVENTS = 256
    # Buffers one sendmsg() takes: a pipelined batch of responses (3-4 items each)
    # leaves in one call; far below the kernel's IOV_MAX (1024).
    IOV_BATCH = 64
    # A request with a body of a few tens of KiB arrives in one recv(); untouched
    # pages of an idle connection's buffer cost no memory.
    READ_BUFFER_INITIAL = 65536
    # Connections one wake-up accepts: many when this worker is the listener's only
    # one (fewer epoll_wait rounds under a connection storm); one when workers share
    # it, since the app runs on the loop: a worker that took a burst would serve it
    # one by one while its siblings sat idle (the listener is level-triggered, so it
    # is reported again on the next round, between the requests this worker serves).
    ACCEPT_BATCH = 64
    ACCEPT_BATCH_SHARED = 1
    # TCP_DEFER_ACCEPT with a shared listener: the kernel's wait for a silent client's
    # first bytes before handing it over anyway.
    DEFER_ACCEPT_SECONDS = 1
    # Microseconds an answer may wait for the end of its round (Server.answers_overdue):
    # long enough for a round of fast answers to leave together (a round of 256 hello
    # requests takes about a millisecond), short enough that an app call that blocks
    # never holds answers already made.
    ANSWER_HOLD_US = 500
    # Bytes queued for one connection before the app's iterable is asked for more.
    HIGH_WATERMARK = 262144
    # Bytes one sendfile() is asked for: large enough to fill any socket buffer,
    # small enough that one file does not hold the loop while the socket keeps taking.
    SENDFILE_CHUNK = 1048576
    # Seconds a closing connection is drained so the peer reads our last response.
    LINGER_SECONDS = 2
    # Seconds a connection accepted before a graceful stop has to send its first request.
    STOP_FIRST_REQUEST_GRACE = 1
    # Milliseconds kept clear before the end of the graceful timeout: a stopping worker
    # begins no app call that would run into them (AppDriver.too_late_to_call) and
    # answers 503 (Connection: close) instead. The master counts the timeout from its
    # TERM, the worker from its handler, a little later.
    STOP_REFUSE_MARGIN_MS = 500
    # Milliseconds accepting pauses after EMFILE/ENFILE, so the loop does not spin.
    ACCEPT_BACKOFF_MS = 500
    # Milliseconds between scans for connections to shed at capacity: a scan sorts
    # every connection, so an attack cannot make the loop do it for each accept.
    SHED_RESCAN_MS = 100
    # At capacity, an upload below min_upload_rate may be shed once it has had this
    # many seconds to show its rate (a connection's first second says little about it).
    SLOW_UPLOAD_GRACE = 1
    # Milliseconds epoll_wait() sleeps at most: the one-second tick (deadlines, the
    # Date header, hooks) needs a wake-up per second; a graceful stop checks its
    # drain ten times a second.
    WAIT_MS = 1000
    WAIT_MS_STOPPING = 100
    # Milliseconds a listener that closes for good goes on taking in the connections
    # whose handshakes were in flight when it stopped starting new ones (a round
    # trip, and a client's first request: a LAN's is well under this), and how
    # often meanwhile.
    HANDSHAKE_LINGER_MS = 50
    WAIT_MS_LINGER = 5
    # Milliseconds between the app watcher's looks at the loop (loop/app_watch.pxi):
    # an app call seen on two looks in a row has run at least this long; answers
    # held for the round's end then leave, and connections whose next request
    # waits move to a free sibling, so neither waits more than about twice this
    # behind a slow call.
    WATCH_MS = 2
    # Ready events one look of the watcher takes from the loop's epoll.
    WATCH_EVENTS = 64
    # Looks without an app call before the watcher sleeps until the next one.
    WATCH_PARK_LOOKS = 20
    # Bytes of a hand-off message: a listener's index, a flag and an IP address and port.
    HANDOFF_PAYLOAD_MAX = 128
    # The app-call word wraps here; odd means a call runs.
    CALLS_MASK = 0x3fffffff
