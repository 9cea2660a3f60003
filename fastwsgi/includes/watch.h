/* What the loop's thread and its app watcher share (loop/app_watch.pxi): a few
 * words read and written as sequentially consistent atomics (each side stores its
 * flag, then reads the other's, so at least one of them sees the other's store),
 * the watcher's sleep and its name. Declared for Cython in watch.pxd.
 */
#ifndef FASTWSGI_WATCH_H
#define FASTWSGI_WATCH_H

#include <pthread.h>
#include <time.h>

static inline int fastwsgi_load(const int *word)
{
    return __atomic_load_n(word, __ATOMIC_SEQ_CST);
}

static inline void fastwsgi_store(int *word, int value)
{
    __atomic_store_n(word, value, __ATOMIC_SEQ_CST);
}

/* Sleeps `ms` milliseconds (a signal's interruption ends it early: the caller
 * looks again either way). */
static inline void fastwsgi_sleep_ms(long ms)
{
    struct timespec ts;
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&ts, NULL);
}

/* Names the calling thread as ps -L, top -H and /proc/PID/task/TID/comm show it
 * (at most 15 bytes). */
static inline void fastwsgi_name_thread(const char *name)
{
    pthread_setname_np(pthread_self(), name);
}

#endif
