# The worker's counters for the master's /metrics, in a slot of shared memory.
# Included into _loop.pyx; the class is declared in _loop.pxd. The layout is
# fastwsgi/metrics.py's (METRICS_LAYOUT below is compared with it by the tests): each slot is written by one worker
# only, as aligned int64s, and read by the master.

DEF M_OPEN_CONNECTIONS = 0
DEF M_IN_FLIGHT = 1
DEF M_BYTES_IN = 2
DEF M_BYTES_OUT = 3
DEF M_DURATION_SUM_US = 4
DEF M_DURATION_BUCKETS = 8      # one per bound of DURATION_BOUNDS, then +Inf
DEF M_DURATION_BOUND_COUNT = 13
DEF M_REQUESTS = 24             # [method][status class]
DEF M_STATUS_CLASSES = 5
DEF M_REFUSED = 64              # by status, 400 to 599
DEF M_REFUSED_FIRST = 400
DEF M_REFUSED_COUNT = 200
DEF M_SLOT_SIZE = 264

# Requests are counted by method (includes/http_chars.h: method_index, METHOD_COUNT).

cdef double DURATION_BOUNDS[13]
DURATION_BOUNDS[:] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]

METRICS_LAYOUT = dict(
    open_connections=M_OPEN_CONNECTIONS, in_flight=M_IN_FLIGHT, bytes_in=M_BYTES_IN,
    bytes_out=M_BYTES_OUT, duration_sum_us=M_DURATION_SUM_US, duration_buckets=M_DURATION_BUCKETS,
    duration_bounds=[DURATION_BOUNDS[i] for i in range(M_DURATION_BOUND_COUNT)],
    requests=M_REQUESTS, methods=METHOD_COUNT,
    method_names=[method_names[i].decode("ascii") for i in range(METHOD_OTHER)] + ["other"],
    status_classes=M_STATUS_CLASSES, refused=M_REFUSED,
    refused_first=M_REFUSED_FIRST, refused_count=M_REFUSED_COUNT, slot_size=M_SLOT_SIZE,
)


cdef class MetricsSlot:
    """Holds the shared memory a Server counts into (a writable buffer of int64s)."""

    def __cinit__(self, buffer):
        cdef int64_t[::1] view = memoryview(buffer).cast("B").cast("q")
        if view.shape[0] < M_SLOT_SIZE:
            raise ValueError(f"a metrics slot holds {M_SLOT_SIZE} int64 counters")
        self.buffer = view
        self.counters = &view[0]


cdef inline void count_request(int64_t* counters, int method, int code, double seconds) noexcept:
    cdef int status_class = code // 100 - 1
    cdef int i = 0
    if status_class < 0 or status_class >= M_STATUS_CLASSES:
        status_class = M_STATUS_CLASSES - 1
    counters[M_REQUESTS + method * M_STATUS_CLASSES + status_class] += 1
    counters[M_DURATION_SUM_US] += <int64_t>(seconds * 1e6)
    while i < M_DURATION_BOUND_COUNT and seconds > DURATION_BOUNDS[i]:
        i += 1
    counters[M_DURATION_BUCKETS + i] += 1


cdef inline void count_refusal(int64_t* counters, int status) noexcept:
    if M_REFUSED_FIRST <= status < M_REFUSED_FIRST + M_REFUSED_COUNT:
        counters[M_REFUSED + status - M_REFUSED_FIRST] += 1
