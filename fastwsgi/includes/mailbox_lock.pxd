# The mailbox's lock word (loop/mailbox.pxi): declared from mailbox_lock.h (named
# relative to the generated C, fastwsgi/<extension>.c).

cdef extern from "includes/mailbox_lock.h" nogil:
    bint fastwsgi_try_lock(int* word)
    void fastwsgi_lock_wait(int* word)
    void fastwsgi_unlock(int* word)
