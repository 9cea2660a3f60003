"""How gunicorn's worker classes and concurrency settings map onto fastwsgi's worker.

fastwsgi has one kind of worker: an epoll loop that owns every socket and calls the
app either on its own thread (threads = 1) or on a pool of threads (threads > 1,
gunicorn's gthread). Every gunicorn worker class is resolved here to one of:

- sync, gthread: served as they are. As in gunicorn, sync with threads > 1 is gthread.
- gevent, eventlet, tornado: their concurrency is kept by a pool of threads sized
  from worker_connections (a user's --threads > 1 wins); nothing is monkey-patched,
  so the app's blocking calls simply block their own thread.
- ASGI classes (uvicorn's, gunicorn's asgi), gevent-websocket's worker and anything
  else fastwsgi cannot run: refused at start-up, since serving it would answer every
  request (or every websocket upgrade) wrongly.

A class given by path (or as a class object, from a config file) that is neither
of these is imported and resolved by its bases: a project's subclass of gthread's
ThreadWorker is served as gthread (its own code is not run, which the start-up
warning says); a subclass of uvicorn's worker is refused as ASGI.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
from typing import Any

from .errors import ConfigError

SYNC = "sync"
GTHREAD = "gthread"
GREEN = "green"
ASGI = "asgi"
GEVENT_WEBSOCKET = "gevent-websocket"

# Threads for a gevent/eventlet/tornado config: worker_connections (gunicorn's bound
# on the greenlets a worker runs at once, 1,000 by default), at most this many. The
# pool starts a thread only when a request finds every started one busy, so the
# bound costs nothing at rest; under load each thread holds its stack pages and
# interpreter state (about 40 KiB of RSS after a small app call, more after a deep
# one: 1,000 busy threads are some 40 MB a worker), and all of them share the
# worker's one GIL. A config past this is waiting on I/O that greenlets would have
# multiplexed: more workers serve it better than more threads.
GREEN_THREADS_CAP = 1000

_ALIASES = {
    "sync": SYNC,
    "fastwsgi": SYNC,
    "gunicorn.workers.sync.SyncWorker": SYNC,
    "gthread": GTHREAD,
    "gunicorn.workers.gthread.ThreadWorker": GTHREAD,
    "gevent": GREEN,
    "gevent_wsgi": GREEN,
    "gevent_pywsgi": GREEN,
    "gunicorn.workers.ggevent.GeventWorker": GREEN,
    "gunicorn.workers.ggevent.GeventPyWSGIWorker": GREEN,
    "eventlet": GREEN,
    "gunicorn.workers.geventlet.EventletWorker": GREEN,
    "tornado": GREEN,
    "gunicorn.workers.gtornado.TornadoWorker": GREEN,
    "asgi": ASGI,
    "gunicorn.workers.gasgi.ASGIWorker": ASGI,
    "uvicorn.workers.UvicornWorker": ASGI,
    "uvicorn.workers.UvicornH11Worker": ASGI,
    "uvicorn_worker.UvicornWorker": ASGI,
    "uvicorn_worker.UvicornH11Worker": ASGI,
}

# The short name the green kinds are known by, for messages.
_GREEN_NAMES = ("gevent", "eventlet", "tornado")


@dataclasses.dataclass(frozen=True)
class WorkerModel:
    """What a config's worker class becomes in fastwsgi."""
    kind: str            # SYNC, GTHREAD or GREEN (ASGI and unknown classes are refused)
    threads: int         # app threads per worker; 1: the app runs on the loop's thread
    note: str = ""       # why the config's class is served differently, for the warning


def _name(worker_class: Any) -> str:
    if inspect.isclass(worker_class):
        return f"{worker_class.__module__}.{worker_class.__qualname__}"
    name = str(worker_class)
    if name.startswith("egg:"):
        # egg:gunicorn#gevent names gunicorn's entry point
        name = name.rsplit("#", 1)[-1] if "#" in name else "sync"
    return name.lstrip("#")


def _kind_by_name(name: str) -> str | None:
    if name in _ALIASES:
        return _ALIASES[name]
    package = name.split(".", 1)[0]
    if package in ("uvicorn", "uvicorn_worker"):
        return ASGI
    if package == "geventwebsocket":
        return GEVENT_WEBSOCKET
    return None


def _load(name: str) -> Any:
    module_name, _, attribute = name.rpartition(".")
    if not module_name:
        raise ConfigError(f"worker_class={name!r} is not a worker class fastwsgi knows "
                          f"(sync, gthread, gevent, eventlet, tornado)")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except Exception as error:
        raise ConfigError(f"worker_class={name!r} cannot be loaded ({error}); fastwsgi serves "
                          f"sync, gthread, gevent, eventlet and tornado configs") from None


def _kind_by_bases(worker_class: Any) -> tuple[str | None, str]:
    """The kind of the first base of a class fastwsgi knows, and that base's name."""
    for base in inspect.getmro(worker_class):
        base_name = f"{base.__module__}.{base.__qualname__}"
        kind = _kind_by_name(base_name)
        if kind is not None:
            return kind, base_name
    return None, ""


def worker_model(worker_class: Any, threads: int, worker_connections: int) -> WorkerModel:
    """The worker model for these settings; ConfigError for a class fastwsgi cannot run."""
    name = _name(worker_class)
    kind = _kind_by_name(name)
    note = ""
    if kind is None:
        loaded = worker_class if inspect.isclass(worker_class) else _load(name)
        kind, base = _kind_by_bases(loaded) if inspect.isclass(loaded) else (None, "")
        if kind is None:
            raise ConfigError(f"worker_class={name!r} is not a worker class fastwsgi can run: "
                              f"it serves sync, gthread, gevent, eventlet and tornado configs")
        if kind != ASGI:
            note = f"a subclass of {base}: served as that class; its own code is not run"
    if kind == ASGI:
        # Serving an ASGI app through WSGI would answer every request with a 500.
        raise ConfigError(f"fastwsgi serves WSGI apps only; worker_class={name!r} runs an ASGI app")
    if kind == GEVENT_WEBSOCKET:
        # Its handler hands the app a gevent websocket (environ["wsgi.websocket"])
        # driven by the worker's gevent hub; with no hub, every upgrade would be a 500.
        raise ConfigError(
            f"worker_class={name!r} serves websockets through gevent-websocket's own gevent "
            f"server, which fastwsgi does not run. Serve them on threads instead: --threads N "
            f"(or -k gthread) with Flask-SocketIO's SocketIO(app, async_mode='threading') and "
            f"simple-websocket installed, or Flask-Sock; they take the connection from "
            f"environ['gunicorn.socket']")
    if kind == GREEN:
        green_name = next((n for n in _GREEN_NAMES if n in name.lower()), name)
        if threads > 1:
            count, source = threads, f"threads={threads}"
        else:
            count = min(worker_connections, GREEN_THREADS_CAP)
            source = f"worker_connections={worker_connections}, at most {GREEN_THREADS_CAP}"
        note = "; ".join(filter(None, [note, (
            f"{green_name}'s concurrency is kept by {count} threads per worker ({source}); "
            f"nothing is monkey-patched: the app's blocking calls block their own thread")]))
        return WorkerModel(GREEN, count, note)
    if kind == SYNC and threads > 1:
        kind = GTHREAD   # gunicorn's rule: sync with threads > 1 is gthread
    return WorkerModel(kind, max(threads, 1), note)
