"""The loop <-> pool hand-off (loop/mailbox.pxi), driven from many threads.

MailboxProbe is the mailbox with an eventfd of its own: push() is what a pool
thread does with a body chunk, take() what the loop does at the end of a round.
The test plays the loop: it sleeps in poll() on the eventfd as the loop sleeps in
epoll_wait, so an exchange left in the queue without a wake would show as a poll
that times out with something queued. Every wait is bounded.
"""
from __future__ import annotations

import select
import threading
import time

from fastwsgi._loop import MailboxProbe

PRODUCERS = 32
HAND_OFFS = 10_000
DEADLINE_SECONDS = 120
# A poll this long with something queued means the loop would have slept past news.
POLL_MS = 5_000


def produce(probe: MailboxProbe, producer: int, start: threading.Barrier) -> None:
    start.wait(timeout=DEADLINE_SECONDS)
    for sequence in range(HAND_OFFS):
        probe.push(producer, sequence.to_bytes(4, "little"))


def test_every_hand_off_from_32_threads_arrives_once_in_order_and_wakes_the_loop():
    probe = MailboxProbe(PRODUCERS)
    start = threading.Barrier(PRODUCERS + 1)
    producers = [threading.Thread(target=produce, args=(probe, index, start), daemon=True)
                 for index in range(PRODUCERS)]
    for thread in producers:
        thread.start()
    received: list[list[int]] = [[] for _ in range(PRODUCERS)]
    wakes_read = 0
    batches = 0
    total = 0
    poller = select.poll()
    poller.register(probe.fileno(), select.POLLIN)
    deadline = time.monotonic() + DEADLINE_SECONDS
    start.wait(timeout=DEADLINE_SECONDS)
    try:
        while total < PRODUCERS * HAND_OFFS:
            assert time.monotonic() < deadline, f"only {total} hand-offs arrived in time"
            if not poller.poll(POLL_MS):
                # Nothing woke the loop: then nothing may be waiting for it.
                assert probe.queued() == 0, "exchanges queued with no wake: the loop would sleep past them"
                continue
            # The loop's order: the eventfd is read in the round's events, the queue
            # taken at the round's end. One write however many posts came: they
            # joined the batch its first one began.
            assert probe.read_wake() == 1
            wakes_read += 1
            batch = probe.take()
            assert batch, "a wake with nothing behind it"
            batches += 1
            for producer, chunks in batch:
                received[producer].extend(int.from_bytes(chunk, "little") for chunk in chunks)
                total += len(chunks)
    finally:
        for thread in producers:
            thread.join(timeout=DEADLINE_SECONDS)
    assert not any(thread.is_alive() for thread in producers)
    assert probe.take() == [] and probe.queued() == 0
    for producer in range(PRODUCERS):
        assert received[producer] == list(range(HAND_OFFS)), f"producer {producer}'s hand-offs"
    assert probe.hand_offs == PRODUCERS * HAND_OFFS
    # One eventfd write per batch, each seen by the loop.
    assert probe.read_wake() == 0
    assert probe.wakes == wakes_read == batches == probe.takes


def test_a_post_into_a_queue_holding_news_joins_its_batch_without_a_second_wake():
    probe = MailboxProbe(2)
    probe.push(0, b"a")
    probe.push(1, b"b")
    probe.push(0, b"c")
    assert probe.wakes == 1 and probe.queued() == 2
    assert probe.read_wake() == 1
    assert probe.take() == [(0, [b"a", b"c"]), (1, [b"b"])]
    assert probe.take() == [] and probe.read_wake() == 0
    # The next post begins the next batch: one more wake.
    probe.push(1, b"d")
    assert probe.wakes == 2 and probe.read_wake() == 1
    assert probe.take() == [(1, [b"d"])]
