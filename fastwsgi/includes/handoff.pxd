# Passing a connection to a sibling worker: declared from handoff.h (named relative
# to the generated C, fastwsgi/<extension>.c).

cdef extern from "includes/handoff.h" nogil:
    int fastwsgi_send_fd(int channel, int fd, const char* payload, size_t length)
    ssize_t fastwsgi_recv_fd(int channel, char* payload, size_t capacity, int* fd)
