"""Hangs in its request while a second thread, ``sidekick``, sleeps in a loop: the
worker timeout must log the stacks of both."""
import threading
import time


def _sidekick():
    while True:
        time.sleep(0.1)


def application(environ, start_response):
    threading.Thread(target=_sidekick, name="sidekick", daemon=True).start()
    while True:
        time.sleep(0.1)
