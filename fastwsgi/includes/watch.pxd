# The words the loop's thread shares with its app watcher, its sleep and its name:
# declared from watch.h (named relative to the generated C, fastwsgi/<extension>.c).

cdef extern from "includes/watch.h" nogil:
    int fastwsgi_load(const int* word)
    void fastwsgi_store(int* word, int value)
    void fastwsgi_sleep_ms(long ms)
    void fastwsgi_name_thread(const char* name)
