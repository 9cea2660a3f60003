/* The lock of the loop <-> pool mailbox (loop/mailbox.pxi): one word, taken with an
 * atomic exchange and given back with a release store. Declared for Cython in
 * mailbox_lock.pxd.
 *
 * A mailbox section is a few loads and stores: it never blocks, allocates nothing
 * and runs no Python code, so a lock that only spins is enough. Under a GIL two
 * sections never overlap at all (each runs start to end holding the GIL); without
 * one they collide for a few nanoseconds at most. With a glibc pthread mutex in its
 * place, bench/callgrind.py's threads8 counted about 470 instructions a request in
 * pthread_mutex_trylock and _unlock (eight sections a request then, about 60 each);
 * this lock costs a handful.
 */
#ifndef FASTWSGI_MAILBOX_LOCK_H
#define FASTWSGI_MAILBOX_LOCK_H

#include <sched.h>

static inline int fastwsgi_try_lock(int *word)
{
    return __atomic_exchange_n(word, 1, __ATOMIC_ACQUIRE) == 0;
}

/* Spins until the word is free (a holder is inside a few stores), letting the CPU
 * go to others past a short while: a holder the kernel preempted mid-section
 * needs the CPU back to finish. */
static inline void fastwsgi_lock_wait(int *word)
{
    int spins = 0;
    for (;;) {
        while (__atomic_load_n(word, __ATOMIC_RELAXED)) {
            if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#elif defined(__aarch64__)
                __asm__ __volatile__("yield");
#endif
            } else {
                sched_yield();
            }
        }
        if (fastwsgi_try_lock(word))
            return;
    }
}

static inline void fastwsgi_unlock(int *word)
{
    __atomic_store_n(word, 0, __ATOMIC_RELEASE);
}

#endif
