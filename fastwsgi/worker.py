"""One worker process: settings in, the Cython serving loop run, hooks called.

The master forks, then calls ``init_process``; it returns when the loop stops
(graceful stop, max_requests, a reload) and the master's spawn code exits the
process with the right status.
"""
from __future__ import annotations

import datetime
import logging
import os
import random
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, NoReturn

from . import settings
from .errors import AppImportError
from .glogging import Logger
from .heartbeat import Heartbeat
from .hook_views import RequestView, ResponseView
from .options import ServerHooks, ServerOptions
from .process import set_owner_process, set_proc_title
from .reloader import Reloader
from .sockets import create_listeners
from .statsd import Statsd


def server_options(cfg: Any, max_requests: int) -> ServerOptions:
    """gunicorn's settings, as the loop names them."""
    return ServerOptions(
        limit_request_line=cfg.limit_request_line,
        limit_request_fields=cfg.limit_request_fields,
        limit_request_field_size=cfg.limit_request_field_size,
        limit_request_body=cfg.limit_request_body,
        keepalive=float(cfg.keepalive),
        header_timeout=float(cfg.header_timeout),
        io_timeout=float(cfg.io_timeout),
        min_upload_rate=cfg.min_upload_rate,
        spool_threshold=cfg.spool_threshold,
        body_memory_limit=cfg.body_memory_limit,
        graceful_timeout=float(cfg.graceful_timeout),
        worker_connections=cfg.worker_connections,
        threads=cfg.worker_model.threads,
        timeout=float(cfg.timeout),
        max_requests=max_requests,
        root_path=cfg.root_path,
        sendfile=cfg.sendfile,
        spool_dir=cfg.tmp_upload_dir,
        header_map=cfg.header_map,
        strip_header_spaces=cfg.strip_header_spaces,
        permit_obsolete_folding=cfg.permit_obsolete_folding,
        permit_unconventional_http_method=cfg.permit_unconventional_http_method,
        casefold_http_method=cfg.casefold_http_method,
        permit_unconventional_http_version=cfg.permit_unconventional_http_version,
        forwarded_allow_ips=tuple(cfg.forwarded_allow_ips),
        secure_scheme_headers=dict(cfg.secure_scheme_headers),
        forwarder_headers=tuple(cfg.forwarder_headers),
        proxy_protocol=cfg.proxy_protocol != "off",
        proxy_allow_ips=tuple(cfg.proxy_allow_ips),
        protocol=cfg.protocol,
        uwsgi_allow_ips=tuple(cfg.uwsgi_allow_ips),
        suppress_ragged_eofs=cfg.suppress_ragged_eofs,
        multiprocess=cfg.workers > 1,
    )


def thread_stacks(main_frame: Any) -> str:
    """Every thread's Python stack, most recent call last; the main thread's as it
    was when the signal came (``main_frame``), not inside the signal handler."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    main = threading.main_thread().ident
    parts = []
    for ident, frame in sys._current_frames().items():
        if ident == main and main_frame is not None:
            frame = main_frame
        stack = "".join(traceback.format_stack(frame))
        parts.append(f"Thread {names.get(ident, '?')} ({ident}), most recent call last:\n{stack}")
    return "\n".join(parts).rstrip("\n")


LOAD_FAILED_BODY = b"Internal Server Error\nThe application failed to load; the error log says why.\n"


def load_failed_app(environ: dict, start_response: Callable) -> list[bytes]:
    # The traceback goes to the error log only: the wire never carries one.
    start_response("500 Internal Server Error", [("Content-Type", "text/plain"),
                                                 ("Content-Length", str(len(LOAD_FAILED_BODY)))])
    return [LOAD_FAILED_BODY]


def _load_server_class() -> Callable[..., Any]:
    from ._loop import Server  # imported late: the master never needs the loop
    return Server


class Worker:
    """The object hooks receive as ``worker`` (gunicorn's attribute names)."""

    def __init__(self, age: int, ppid: int, sockets: list, app: Any, timeout: float,
                 cfg: Any, log: Any) -> None:
        # Runs in the master, before the fork: nothing process-wide here.
        self.age = age
        self.pid: Any = "[booting]"
        self.ppid = ppid
        self.sockets = sockets
        self.app = app
        self.timeout = timeout
        self.cfg = cfg
        self.log = log
        self.booted = False
        self.aborted = False
        self.alive = True
        self.nr = 0
        self.max_requests = cfg.max_requests + random.randint(0, cfg.max_requests_jitter) \
            if cfg.max_requests > 0 else 0
        self.tmp = Heartbeat(cfg.worker_tmp_dir, cfg.umask, cfg.uid, cfg.gid)
        self.server: Any = None
        # This worker's slot of the master's shared metrics (--metrics-bind), or None.
        self.metrics_slot: Any = None
        # The master's ssl.SSLContext when TLS is configured (fastwsgi.tls), else None.
        self.tls_context: Any = None
        # The master's hand-off socketpair (ServerOptions.handoff_channel), or None.
        self.handoff_channel: Any = None
        self.server_class: Callable[..., Any] | None = None
        self.wsgi: Callable | None = None
        self.reloader: Reloader | None = None
        self._last_reload_check = 0.0
        # Set by the master's spawn code in the child: logs "Worker exiting", runs the
        # worker_exit hook and ends the process without unwinding into the master's code.
        self.exit_process: Callable[[int], Any] = os._exit

    def __str__(self) -> str:
        return f"<Worker {self.pid}>"

    def notify(self) -> None:
        self.tmp.notify()

    # --- in the child ---------------------------------------------------------
    def run_forked(self, arbiter: Any) -> NoReturn:
        """The child's whole life, from the master's fork; it ends in os._exit and
        never returns to the master's loop."""
        arbiter.signal_pipe.close()
        if arbiter.metrics is not None:
            arbiter.metrics.close_in_child()
        if arbiter.control is not None:
            arbiter.control.close_in_child()
        for sibling in arbiter.workers.values():
            sibling.tmp.close()
        self.pid = os.getpid()
        self.exit_process = lambda code: self._exit_forked(arbiter, code)
        exit_code = 0
        try:
            set_proc_title(f"worker [{arbiter.proc_name}]")
            self.log.info("Booting worker with pid: %s", self.pid)
            if self.cfg.reuse_port:
                self.sockets = create_listeners(self.cfg, self.log)
            self.cfg.post_fork(arbiter, self)
            self.init_process()
        except SystemExit as e:
            exit_code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except AppImportError as e:
            self.log.debug("Exception while loading the application", exc_info=True)
            print(str(e), file=sys.stderr)
            exit_code = arbiter.APP_LOAD_ERROR
        except BaseException as e:
            self.log.exception("Exception in worker process")
            print(str(e), file=sys.stderr)
            exit_code = arbiter.WORKER_BOOT_ERROR if not self.booted else 255
        self._exit_forked(arbiter, exit_code)

    def _exit_forked(self, arbiter: Any, code: int) -> NoReturn:
        try:
            self.log.info("Worker exiting (pid: %s)", self.pid)
            self.tmp.close()
            self.cfg.worker_exit(arbiter, self)
        except BaseException:
            self.log.warning("Exception during worker exit:\n%s", traceback.format_exc())
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            flush_log(self.log)
            os._exit(code)

    def init_process(self) -> None:
        for key, value in self.cfg.env.items():
            os.environ[key] = value
        set_owner_process(self.cfg.uid, self.cfg.gid, initgroups=self.cfg.initgroups)
        random.seed()
        # The app's subprocesses must not hold our listening sockets or heartbeat.
        for listener in self.sockets:
            os.set_inheritable(listener.fileno(), False)
        os.set_inheritable(self.tmp.fileno(), False)
        self.log.close_on_exec()
        self.init_signals()
        if self.cfg.reload:
            self.log.warning("Reloader is on. Use in development only!")
        # Before booted: a broken build is a boot error (exit 3), not a crash loop.
        self.server_class = _load_server_class()
        broken_files = self.load_wsgi()
        if self.cfg.reload:
            self.reloader = Reloader(list(self.cfg.reload_extra_files) + broken_files)
        self.cfg.post_worker_init(self)
        self.booted = True
        self.run()

    def load_wsgi(self) -> list[str]:
        """Loads the app. Under --reload an app that fails to import (a typo saved
        mid-edit) does not end the worker: it answers 500 and the files of the
        failure are watched, so that the fix reloads it. Returns those files."""
        try:
            self.wsgi = self.app.wsgi()
            return []
        except Exception as e:
            if not self.cfg.reload:
                raise
            self.log.exception(e)
            self.wsgi = load_failed_app
            files = [frame.filename for frame in traceback.extract_tb(e.__traceback__)]
            if isinstance(e, SyntaxError) and e.filename:
                files.append(e.filename)
            return [path for path in dict.fromkeys(files) if os.path.isfile(path)]

    def run(self) -> None:
        options = server_options(self.cfg, self.max_requests)
        options.metrics = self.metrics_slot
        options.ssl_context = self.tls_context
        options.handoff_channel = self.handoff_channel
        self.server = self.server_class(self.wsgi, [listener.sock for listener in self.sockets],
                                        options, self.server_hooks())
        self.notify()
        if self.alive:  # a TERM during boot means: do not start serving at all
            self.server.run()
        # The loop itself logs "Autorestarting worker after current request." at max_requests.
        self.nr = self.server.requests_served

    def server_hooks(self) -> ServerHooks:
        cfg = self.cfg
        log = self.log
        error_log = getattr(log, "error_log", None) or logging.getLogger("gunicorn.error")
        hooks = ServerHooks(on_tick=self.on_tick, error_log=error_log)
        # Calling a hook costs a view object per request: skip the default no-ops.
        if cfg.pre_request is not settings.pre_request or error_log.isEnabledFor(logging.DEBUG):
            hooks.pre_request = lambda environ: cfg.pre_request(self, RequestView(environ))
        if cfg.post_request is not settings.post_request:
            def post_request(environ: dict, status: str, headers: list, sent: int, seconds: float) -> None:
                cfg.post_request(self, RequestView(environ), environ, ResponseView(status, headers, sent))
            hooks.post_request = post_request
        if isinstance(log, Logger) and type(log).access is Logger.access:
            # The built-in line: formatted from the environ, no resp/req objects.
            hooks.access_log, hooks.flush_access_log = log.access_hooks()
        else:
            # A logger_class of the user's own is called as gunicorn calls it, for
            # every request (it decides what to write): two view objects and a
            # timedelta per request.
            def access_log(environ: dict, status: str, headers: list, sent: int, seconds: float) -> None:
                log.access(ResponseView(status, headers, sent), RequestView(environ), environ,
                           datetime.timedelta(seconds=seconds))
            hooks.access_log = access_log
            hooks.flush_access_log = getattr(log, "flush_access", None)
        statsd = getattr(log, "statsd", None)
        if isinstance(statsd, Statsd):
            hooks.request_metrics = statsd.requests
        return hooks

    def on_tick(self) -> None:
        self.notify()
        flush_log(self.log)
        if self.ppid != os.getppid():
            # The master died: nobody would replace or stop us.
            self.log.info("Parent changed, shutting down: %s", self)
            self.stop(graceful=True)
            return
        if self.reloader is not None:
            now = time.monotonic()
            if now - self._last_reload_check >= 1.0:
                self._last_reload_check = now
                changed = self.reloader.changed()
                if changed:
                    self.log.info("Worker reloading: %s modified", changed)
                    self.cfg.worker_int(self)
                    # Gracefully: a request accepted in this last moment is answered,
                    # and the next ones wait in the backlog for the new worker.
                    self.stop(graceful=True)

    def stop(self, graceful: bool) -> None:
        self.alive = False
        if self.server is not None:
            self.server.stop(graceful=graceful)

    # --- signals ----------------------------------------------------------------
    def init_signals(self) -> None:
        for sig in (signal.SIGHUP, signal.SIGUSR2, signal.SIGCHLD, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGQUIT, self.handle_quit)
        signal.signal(signal.SIGINT, self.handle_quit)
        signal.signal(signal.SIGTERM, self.handle_exit)
        signal.signal(signal.SIGWINCH, self.handle_winch)
        signal.signal(signal.SIGUSR1, self.handle_usr1)
        signal.signal(signal.SIGABRT, self.handle_abort)
        # A TERM or USR1 must not fail a request's blocking read/write with EINTR.
        signal.siginterrupt(signal.SIGTERM, False)
        signal.siginterrupt(signal.SIGUSR1, False)

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.stop(graceful=True)

    def handle_quit(self, sig: int, frame: Any) -> None:
        self.alive = False
        self.cfg.worker_int(self)
        if self.server is None:
            self.exit_process(0)
        self.server.stop(graceful=False)

    def handle_abort(self, sig: int, frame: Any) -> None:
        # The master's timeout kill: the app is stuck; say where, answer the request
        # it is stuck in as gunicorn does, then go.
        self.alive = False
        environs = self.server.abort_app_calls() if self.server is not None else []
        what = ", ".join(f"{environ.get('REQUEST_METHOD')} {environ.get('RAW_URI')}"
                         for environ in environs) or "(no request in the app)"
        self.log.error("Error handling request %s: worker timeout (pid:%s); the stack of every "
                       "thread:\n%s", what, self.pid, thread_stacks(frame))
        self.cfg.worker_abort(self)
        # Exit from here: an exception raised into the stuck app could be caught by it.
        self.exit_process(1)

    def handle_usr1(self, sig: int, frame: Any) -> None:
        self.log.reopen_files()

    def handle_winch(self, sig: int, frame: Any) -> None:
        self.log.debug("worker: SIGWINCH ignored.")


def flush_log(log: Any) -> None:
    """Writes out what the log holds (a logger_class without flush() holds nothing)."""
    flush = getattr(log, "flush", None)
    if flush is not None:
        flush()
