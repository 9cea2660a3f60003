"""Replacing what the master runs without dropping a connection (gunicorn's ways):
HUP reloads the configuration and replaces the workers; USR2 execs a new master
from the current code on the same sockets, which takes over once the old master
is gone. The Arbiter's reload(), reexec() and maybe_promote_master() call these.
"""
from __future__ import annotations

import os
import time
import traceback
from typing import Any

from .errors import ConfigError, ConfigFileError
from .pidfile import Pidfile
from .process import set_proc_title
from .sockets import create_listeners
from .systemd import notify_socket, reloading_state, sd_notify
from .tls import ssl_context

# Environment a re-exec'd master (USR2) finds: the old master's pid and the listening fds.
ENV_MASTER_PID = "FASTWSGI_PID"
ENV_LISTEN_FDS = "FASTWSGI_FD"


def reload(arbiter: Any) -> None:
    """HUP: the configuration read again, new workers started with it, the old ones
    stopped; a broken configuration keeps the running one."""
    sd_notify(reloading_state(), arbiter.log)
    try:
        _reload(arbiter)
    finally:
        # Reloaded or not (a broken config keeps the running one), the service is up.
        arbiter.ready_pending = notify_socket() is not None


def _reload(arbiter: Any) -> None:
    old_address = arbiter.cfg.address
    for key in arbiter.cfg.env:
        if key in arbiter.cfg.env_orig:
            os.environ[key] = arbiter.cfg.env_orig[key]
        else:
            os.environ.pop(key, None)
    try:
        arbiter.app.reload()
    except ConfigFileError as e:
        # Unlike gunicorn (which exits), keep serving with the working config.
        arbiter.log.error("Reload failed, keeping the current configuration: %s", e.detail.rstrip())
        return
    except Exception as e:
        arbiter.log.error("Reload failed, keeping the current configuration: %s", e)
        return
    try:
        # Renewed certificate files are read now; broken ones keep the running ones.
        tls_context = ssl_context(arbiter.app.cfg) if arbiter.app.cfg.is_ssl else None
    except ConfigError as e:
        arbiter.log.error("Reload failed, keeping the current configuration: %s", e)
        arbiter.app.cfg = arbiter.cfg
        return
    arbiter.setup(arbiter.app, tls_context)
    arbiter.log.reopen_files()
    if old_address != arbiter.cfg.address and not arbiter.cfg.reuse_port:
        for listener in arbiter.listeners:
            listener.close()
        arbiter.listeners = create_listeners(arbiter.cfg, arbiter.log)
        arbiter.log.info("Listening at: %s", arbiter.listeners_str())
    arbiter.cfg.on_reload(arbiter)
    if arbiter.pidfile is not None:
        arbiter.pidfile.unlink()
    if arbiter.cfg.pidfile is not None:
        arbiter.pidfile = Pidfile(arbiter.cfg.pidfile)
        arbiter.pidfile.create(arbiter.pid)
    set_proc_title(f"master [{arbiter.proc_name}]")
    last_age = arbiter.worker_age
    for _ in range(arbiter.cfg.workers):
        arbiter.spawn_worker()
    # The old workers are now the oldest: manage_workers TERMs them.
    arbiter.manage_workers()
    deadline = time.monotonic() + arbiter.cfg.graceful_timeout
    while arbiter.workers and time.monotonic() < deadline:
        if min(w.age for w in arbiter.workers.values()) > last_age:
            break
        arbiter.reap_workers()
        time.sleep(0.05)


def reexec(arbiter: Any) -> None:
    """USR2: exec a new master from the current code on the same sockets."""
    if arbiter.reexec_pid != 0:
        arbiter.log.warning("USR2 signal ignored. Child exists.")
        return
    if arbiter.master_pid != 0:
        arbiter.log.warning("USR2 signal ignored. Parent exists.")
        return
    master_pid = os.getpid()
    arbiter.reexec_pid = os.fork()
    if arbiter.reexec_pid != 0:
        return
    try:
        arbiter.cfg.pre_exec(arbiter)
        environ = arbiter.cfg.env_orig.copy()
        environ[ENV_MASTER_PID] = str(master_pid)
        if arbiter.systemd:
            environ["LISTEN_PID"] = str(os.getpid())
            environ["LISTEN_FDS"] = str(len(arbiter.listeners))
        else:
            environ[ENV_LISTEN_FDS] = ",".join(str(listener.fileno()) for listener in arbiter.listeners)
        os.chdir(arbiter.start_ctx["cwd"])
        args = arbiter.start_ctx["args"]
        os.execvpe(args[0], args, environ)
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(1)


def promote_if_orphaned(arbiter: Any) -> None:
    """A re-exec'd master whose old master is gone takes over its name and pid file."""
    if arbiter.master_pid == 0 or arbiter.master_pid == os.getppid():
        return
    arbiter.log.info("Master has been promoted.")
    arbiter.master_name = "Master"
    arbiter.master_pid = 0
    arbiter.proc_name = arbiter.cfg.proc_name
    os.environ.pop(ENV_MASTER_PID, None)
    if arbiter.pidfile is not None:
        arbiter.pidfile.rename(arbiter.cfg.pidfile)
    # The old master held the control socket's path until it exited.
    arbiter.start_control_socket()
    set_proc_title(f"master [{arbiter.proc_name}]")
