"""The pre-fork master: binds once, forks workers, watches them, obeys signals.

Signals (gunicorn's): HUP reload and replace workers gracefully; TERM graceful
stop within graceful_timeout; INT/QUIT fast stop; TTIN/TTOU one worker more/less;
USR1 reopen log files; USR2 start a new master from the new code (binary
upgrade) and WINCH stop this master's workers (daemonized only), as gunicorn.

Signal handlers only wake the main loop (``signal.set_wakeup_fd`` writes the
signal number into a pipe); everything is done from the loop, where logging
and forking are safe.  The same wait watches the /metrics endpoint (metrics.py)
and the control socket (control.py), each served without blocking.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import random
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING, Any, NoReturn

from . import __version__, upgrade
from .errors import HaltServer
from .glogging import Logger, logger_class
from .pidfile import Pidfile
from .process import set_proc_title
from .signal_pipe import SignalPipe
from .sockets import (
    SD_LISTEN_FDS_START,
    Listener,
    close_listeners,
    create_listeners,
    listen_fds,
    mark_closing_for_good,
)
from .systemd import notify_socket, sd_notify
from .tls import ssl_context
from .upgrade import ENV_LISTEN_FDS, ENV_MASTER_PID
from .worker import Worker

# A worker is a fork of the master: what the master has imported when it forks is
# resident in every worker. /metrics and the control socket (which starts after the
# first fork) are imported where they start. ssl (through .tls) is imported above even
# without TLS, on purpose: nearly every framework imports it, and loaded before the
# fork, OpenSSL's pages are shared by the workers instead of relocated again in each
# (1.5 MiB of RSS per Flask worker).
if TYPE_CHECKING:
    from .control import ControlServer
    from .metrics import MetricsServer

HANDLED_SIGNALS = {getattr(signal, f"SIG{name}"): name.lower()
                   for name in ["HUP", "QUIT", "INT", "TERM", "TTIN", "TTOU", "USR1", "USR2", "WINCH"]}

# Boot-loop back-off: a worker dying this soon after its fork counts as a failed
# boot; each one in a row doubles the pause before the next spawn, up to the cap.
BOOT_GRACE_SECONDS = 5.0
BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_MAX_SECONDS = 10.0


@dataclasses.dataclass
class ProcessCounts:
    """What the master counts for the control socket's "show stats", as gunicorn's
    arbiter counts it: every worker forked, every TERM or KILL sent to one, every reload."""
    started_at: float = 0.0
    workers_spawned: int = 0
    workers_killed: int = 0
    reloads: int = 0


class Arbiter:
    WORKER_BOOT_ERROR = 3
    APP_LOAD_ERROR = 4

    def __init__(self, app: Any) -> None:
        os.environ["SERVER_SOFTWARE"] = f"fastwsgi/{__version__}"
        self._num_workers: int | None = None
        self.log: Logger | None = None
        self.listeners: list[Listener] = []
        self.workers: dict[int, Worker] = {}
        self.signal_pipe = SignalPipe()
        self.pidfile: Pidfile | None = None
        self.systemd = False
        self.worker_age = 0
        self.reexec_pid = 0
        self.master_pid = 0
        self.master_name = "Master"
        self._spawn_times: dict[int, float] = {}
        self._failed_boots = 0
        self._next_spawn_at = 0.0
        self._last_logged_active_worker_count: int | None = None
        self.metrics: MetricsServer | None = None
        self.control: ControlServer | None = None
        self.counts = ProcessCounts()
        # Shared by every worker this master forks, and held here so that a
        # connection passed while its taker restarts waits for the next worker.
        self.handoff_channel = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # systemd (NOTIFY_SOCKET) is told READY=1 once the workers have loaded the app.
        self.ready_pending = notify_socket() is not None
        self._stopping_notified = False
        self.setup(app)
        self.start_ctx = {"args": app.restart_args(), "cwd": os.getcwd()}

    # gunicorn's names for the same things, read by users' hooks.
    @property
    def LISTENERS(self) -> list[Listener]:
        return self.listeners

    @property
    def WORKERS(self) -> dict[int, Worker]:
        return self.workers

    @property
    def num_workers(self) -> int | None:
        return self._num_workers

    @num_workers.setter
    def num_workers(self, value: int) -> None:
        old_value = self._num_workers
        self._num_workers = value
        self.cfg.nworkers_changed(self, value, old_value)

    def setup(self, app: Any, tls_context: Any = None) -> None:
        self.app = app
        self.cfg = app.cfg
        # Made here, before any worker forks, so workers share its session ticket keys.
        self.tls_context = tls_context or (ssl_context(self.cfg) if self.cfg.is_ssl else None)
        if self.log is None:
            self.log = logger_class(self.cfg.logger_class)(self.cfg)
        else:
            self.log.setup(self.cfg)
        if ENV_MASTER_PID in os.environ:
            self.log.reopen_files()
        self.address = self.cfg.address
        self.num_workers = self.cfg.workers
        self.timeout = self.cfg.timeout
        self.proc_name = self.cfg.proc_name
        self.log.debug("Current configuration:\n%s", "\n".join(f"  {line}" for line in str(self.cfg).splitlines()))
        for key, value in self.cfg.env.items():
            os.environ[key] = value
        if self.cfg.preload_app:
            self.app.wsgi()

    # --- start and main loop ------------------------------------------------
    def start(self) -> None:
        self.log.info("Starting fastwsgi %s", __version__)
        self.counts.started_at = time.time()
        if ENV_MASTER_PID in os.environ:
            self.master_pid = int(os.environ[ENV_MASTER_PID])
            self.proc_name += ".2"
            self.master_name = "Master.2"
        self.pid = os.getpid()
        if self.cfg.pidfile is not None:
            name = self.cfg.pidfile + (".2" if self.master_pid else "")
            self.pidfile = Pidfile(name)
            self.pidfile.create(self.pid)
        self.cfg.on_starting(self)
        self.init_signals()

        if not self.listeners:
            fds = None
            systemd_count = listen_fds()
            if systemd_count:
                self.systemd = True
                fds = range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + systemd_count)
            elif self.master_pid:
                fds = [int(fd) for fd in os.environ.pop(ENV_LISTEN_FDS, "").split(",") if fd]
            # With reuse_port every worker binds its own sockets (the kernel balances).
            if not self.cfg.reuse_port:
                self.listeners = create_listeners(self.cfg, self.log, fds)

        self.log.debug("Arbiter booted")
        self.log.info("Listening at: %s (%s)", self.listeners_str(), self.pid)
        self.log.info("Using worker: %s", self.cfg.worker_class_str)
        if self.cfg.metrics_bind and self.metrics is None:
            from .metrics import MetricsServer
            try:
                self.metrics = MetricsServer(self.cfg.metrics_bind, self.cfg.workers, self.log)
                self.log.info("Serving metrics at: %s/metrics", self.metrics)
            except OSError as e:
                # Metrics are no reason not to serve (a USR2 master finds the port still held).
                self.log.error("Not serving metrics: cannot bind %s: %s", self.cfg.metrics_bind, e)
        warning = self.cfg.unsupported_warning()
        if warning:
            self.log.warning("%s", warning)
        self.cfg.when_ready(self)

    def listeners_str(self) -> str:
        if self.listeners:
            return ",".join(str(listener) for listener in self.listeners)
        return ",".join(self.cfg.bind)

    def init_signals(self) -> None:
        self.log.close_on_exec()
        self.signal_pipe.install(list(HANDLED_SIGNALS) + [signal.SIGCHLD])

    def _read_signals(self, timeout: float) -> list[int]:
        """Waits for signals, serving the /metrics and control clients meanwhile."""
        endpoints = [endpoint for endpoint in (self.metrics, self.control) if endpoint is not None]
        signals, readable = self.signal_pipe.wait(timeout, endpoints)
        for endpoint in endpoints:
            if endpoint in readable:
                endpoint.handle()
            else:
                endpoint.sweep()
        return signals

    # --- the control socket (control.py, control_commands.py) ----------------------
    def start_control_socket(self) -> None:
        """Once the first workers are forked, as gunicorn does; a socket that cannot be
        made is no reason not to serve."""
        if self.cfg.control_socket_disable or self.control is not None or not self.cfg.control_socket:
            return
        if self.master_pid:
            return   # a USR2 master: the old master holds the path until it exits (promotion)
        path = os.path.join(self.start_ctx["cwd"], self.cfg.control_socket)
        from . import control_commands
        from .control import ControlServer
        try:
            self.control = ControlServer(path, self.cfg.control_socket_mode,
                                         lambda message: control_commands.execute(self, message), self.log)
        except OSError as e:
            self.log.warning("Failed to start control socket: %s", e)
            return
        self.log.info("Control socket listening at %s", path)

    def close_control_socket(self) -> None:
        if self.control is not None:
            self.control.close()
            self.control = None

    def run(self) -> NoReturn:
        self.start()
        set_proc_title(f"master [{self.proc_name}]")
        try:
            self.manage_workers()
            self.start_control_socket()
            while True:
                self.maybe_promote_master()
                # Waiting for the workers to boot, look often: systemd waits on READY=1.
                for sig in self._read_signals(0.02 if self.ready_pending else 1.0):
                    self._dispatch(sig)
                self.murder_workers()
                self.manage_workers()
                if self.ready_pending:
                    self._notify_ready_when_booted()
        except (StopIteration, KeyboardInterrupt):
            self.halt()
        except HaltServer as halt:
            self.halt(reason=halt.reason, exit_status=halt.exit_status)
        except SystemExit:
            raise
        except Exception:
            self.log.error("Unhandled exception in main loop", exc_info=True)
            self.stop(False)
            self.close_control_socket()
            if self.pidfile is not None:
                self.pidfile.unlink()
            sys.exit(-1)

    def _notify_ready_when_booted(self) -> None:
        if len(self.workers) < self.num_workers or not all(map(_booted, self.workers.values())):
            return
        self.ready_pending = False
        sd_notify(f"READY=1\nSTATUS=fastwsgi arbiter booted, {len(self.workers)} worker(s)"
                  f" at {self.listeners_str()}", self.log)

    def _dispatch(self, sig: int) -> None:
        if sig == signal.SIGCHLD:
            self.reap_workers()
            return
        name = HANDLED_SIGNALS.get(sig)
        if name is None:
            self.log.info("Ignoring unknown signal: %s", sig)
            return
        self.log.info("Handling signal: %s", name)
        getattr(self, f"handle_{name}")()

    # --- signal handlers -------------------------------------------------------
    def handle_hup(self) -> None:
        self.log.info("Hang up: %s", self.master_name)
        self.reload()

    def handle_term(self) -> None:
        raise StopIteration

    def handle_int(self) -> None:
        self.stop(False)
        raise StopIteration

    handle_quit = handle_int

    def handle_ttin(self) -> None:
        self.num_workers += 1
        self.manage_workers()

    def handle_ttou(self) -> None:
        if self.num_workers <= 1:
            return
        self.num_workers -= 1
        self.manage_workers()

    def handle_usr1(self) -> None:
        self.log.reopen_files()
        self.kill_workers(signal.SIGUSR1)

    def handle_usr2(self) -> None:
        self.reexec()

    def handle_winch(self) -> None:
        if self.cfg.daemon:
            self.log.info("graceful stop of workers")
            self.num_workers = 0
            self.kill_workers(signal.SIGTERM)
        else:
            self.log.debug("SIGWINCH ignored. Not daemonized")

    # --- stopping ----------------------------------------------------------------
    def halt(self, reason: str | None = None, exit_status: int = 0) -> NoReturn:
        self.stop()
        log = self.log.info if exit_status == 0 else self.log.error
        log("Shutting down: %s", self.master_name)
        if reason is not None:
            log("Reason: %s", reason)
        if self.pidfile is not None:
            self.pidfile.unlink()
        self.cfg.on_exit(self)
        if self.metrics is not None:
            self.metrics.close()
        self.close_control_socket()
        sys.exit(exit_status)

    def stop(self, graceful: bool = True) -> None:
        """Close the listeners, ask workers to stop, SIGKILL whoever outlives graceful_timeout."""
        if not self._stopping_notified:
            self._stopping_notified = True
            sd_notify("STOPPING=1", self.log)
        # The sockets of a new master (USR2), of systemd or of SO_REUSEPORT peers stay.
        unlink = self.reexec_pid == self.master_pid == 0 and not self.systemd and not self.cfg.reuse_port
        if unlink:
            # They end with this server: the last worker to let go takes in every
            # connection already begun rather than reset it.
            for listener in self.listeners:
                mark_closing_for_good(listener.sock)
        close_listeners(self.listeners, unlink)
        self.listeners = []
        self.kill_workers(signal.SIGTERM if graceful else signal.SIGQUIT)
        deadline = time.monotonic() + self.cfg.graceful_timeout
        quick = not graceful
        while self.workers and time.monotonic() < deadline:
            if not quick and any(s in (signal.SIGINT, signal.SIGQUIT) for s in self._read_signals(0)):
                self.log.info("Quick shutdown requested")
                quick = True
                self.kill_workers(signal.SIGQUIT)
                deadline = time.monotonic() + 2.0
            self.reap_workers(halting=True)
            if self.workers:
                time.sleep(0.05)
        self.kill_workers(signal.SIGKILL)
        # Reap what SIGKILL left, briefly: a zombie must not outlive us silently.
        deadline = time.monotonic() + 2.0
        while self.workers and time.monotonic() < deadline:
            self.reap_workers(halting=True)
            if self.workers:
                time.sleep(0.01)

    # --- reload and re-exec (fastwsgi/upgrade.py) ---------------------------------
    def reload(self) -> None:
        self.counts.reloads += 1   # tried, as gunicorn counts it, even if the config is broken
        upgrade.reload(self)

    def reexec(self) -> None:
        """USR2: exec a new master from the current code on the same sockets."""
        upgrade.reexec(self)

    def maybe_promote_master(self) -> None:
        upgrade.promote_if_orphaned(self)

    # --- workers ----------------------------------------------------------------
    def murder_workers(self) -> None:
        """Abort (then kill) workers whose heartbeat is older than timeout."""
        if not self.timeout:
            return
        now = time.monotonic()
        for pid, worker in list(self.workers.items()):
            try:
                if now - worker.tmp.last_update() <= self.timeout:
                    continue
            except (OSError, ValueError, TypeError):
                continue
            if not worker.aborted:
                self.log.critical("WORKER TIMEOUT (pid:%s)", pid)
                if self.metrics is not None:
                    self.metrics.worker_timed_out()
                worker.aborted = True
                self.kill_worker(pid, signal.SIGABRT)
            else:
                self.kill_worker(pid, signal.SIGKILL)

    def reap_workers(self, halting: bool = False) -> None:
        try:
            while True:
                wpid, status = os.waitpid(-1, os.WNOHANG)
                if not wpid:
                    break
                if wpid == self.reexec_pid:
                    self.reexec_pid = 0
                    continue
                worker = self.workers.pop(wpid, None)
                if worker is None:
                    continue  # not ours (we may be pid 1 and inherit orphans)
                if self.metrics is not None:
                    self.metrics.worker_exited(wpid, halting)
                self._report_exit(wpid, status, halting)
                worker.tmp.close()
                self.cfg.child_exit(self, worker)
        except ChildProcessError:
            pass

    def _report_exit(self, wpid: int, status: int, halting: bool) -> None:
        exitcode = os.waitstatus_to_exitcode(status)
        spawned_at = self._spawn_times.pop(wpid, None)
        if exitcode < 0:
            sig = -exitcode
            try:
                sig_name = signal.Signals(sig).name
            except ValueError:
                sig_name = f"signal {sig}"
            message = "Worker (pid:%s) was sent %s!"
            if sig == signal.SIGKILL:
                self.log.error(message + " Perhaps out of memory?", wpid, sig_name)
            elif sig == signal.SIGTERM:
                self.log.info(message, wpid, sig_name)
            else:
                self.log.warning(message, wpid, sig_name)
        elif exitcode != 0:
            self.log.error("Worker (pid:%s) exited with code %s.", wpid, exitcode)
        if halting:
            return
        if exitcode == self.WORKER_BOOT_ERROR:
            raise HaltServer("Worker failed to boot.", self.WORKER_BOOT_ERROR)
        if exitcode == self.APP_LOAD_ERROR:
            raise HaltServer("App failed to load.", self.APP_LOAD_ERROR)
        died_young = spawned_at is not None and time.monotonic() - spawned_at < BOOT_GRACE_SECONDS
        if exitcode != 0 and died_young:
            self._failed_boots += 1
            pause = min(BACKOFF_FIRST_SECONDS * 2 ** (self._failed_boots - 1), BACKOFF_MAX_SECONDS)
            self._next_spawn_at = time.monotonic() + pause
            self.log.warning("Worker (pid:%s) died %.1fs after it started; next worker in %.1fs",
                             wpid, time.monotonic() - spawned_at, pause)
        else:
            self._failed_boots = 0

    def manage_workers(self) -> None:
        if len(self.workers) < self.num_workers and time.monotonic() >= self._next_spawn_at:
            self.spawn_workers()
        by_age = sorted(self.workers.items(), key=lambda item: item[1].age)
        while len(by_age) > self.num_workers:
            pid, _ = by_age.pop(0)
            self.kill_worker(pid, signal.SIGTERM)
        # gunicorn's line and its statsd gauge, once per change of the count.
        active = len(by_age)
        if self._last_logged_active_worker_count != active:
            self._last_logged_active_worker_count = active
            self.log.debug("{0} workers".format(active),
                           extra={"metric": "gunicorn.workers", "value": active, "mtype": "gauge"})
        if self.cfg.enable_backlog_metric:
            backlog = sum(listener.get_backlog() or 0 for listener in self.listeners)
            if backlog >= 0:
                self.log.debug("socket backlog: {0}".format(backlog),
                               extra={"metric": "gunicorn.backlog", "value": backlog, "mtype": "histogram"})

    def spawn_workers(self) -> None:
        for _ in range(self.num_workers - len(self.workers)):
            self.spawn_worker()
            # Staggered, as gunicorn does, so workers do not all start in lockstep.
            time.sleep(0.1 * random.random())

    def spawn_worker(self) -> int:
        self.worker_age += 1
        worker = Worker(self.worker_age, self.pid, self.listeners, self.app, self.timeout / 2.0,
                        self.cfg, self.log)
        worker.tls_context = self.tls_context
        worker.handoff_channel = self.handoff_channel
        if self.metrics is not None:
            slot_index, worker.metrics_slot = self.metrics.slot_for_new_worker()
        self.cfg.pre_fork(self, worker)
        pid = os.fork()
        if pid != 0:
            if self.metrics is not None:
                self.metrics.worker_started(pid, slot_index)
            worker.pid = pid
            self.workers[pid] = worker
            self._spawn_times[pid] = time.monotonic()
            self.counts.workers_spawned += 1
            return pid
        worker.run_forked(self)

    def kill_workers(self, sig: int) -> None:
        for pid in list(self.workers):
            self.kill_worker(pid, sig)

    def kill_worker(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
            if sig in (signal.SIGTERM, signal.SIGKILL):
                self.counts.workers_killed += 1
        except OSError as e:
            if e.errno != errno.ESRCH:
                raise
            worker = self.workers.pop(pid, None)
            if worker is not None:
                if self.metrics is not None:
                    self.metrics.worker_exited(pid, halting=False)
                worker.tmp.close()
                self.cfg.worker_exit(self, worker)


def _booted(worker: Worker) -> bool:
    """The worker has loaded the app: its first heartbeat replaced the file's
    wall-clock creation time with a (much smaller) monotonic one."""
    try:
        return worker.tmp.last_update() <= time.monotonic() + 1.0
    except (OSError, ValueError, TypeError):
        return False
