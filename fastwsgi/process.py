"""Process-wide changes: title, user/group, daemonizing."""
from __future__ import annotations

import os
import pwd
import sys

try:
    from setproctitle import setproctitle as _setproctitle
except ImportError:  # optional, as in gunicorn
    _setproctitle = None

def set_proc_title(title: str) -> None:
    """'fastwsgi: master [app]' with setproctitle installed; else at least the
    kernel's 15-byte comm name, which ps -o comm and top show."""
    full = f"fastwsgi: {title}"
    if _setproctitle is not None:
        _setproctitle(full)
        return
    # Writing /proc/self/comm is prctl(PR_SET_NAME) for the main thread, without
    # loading ctypes and libffi into every worker for it.
    try:
        with open("/proc/self/comm", "wb") as comm:
            comm.write(full.encode()[:15])
    except OSError:
        pass


def set_owner_process(uid: int, gid: int, initgroups: bool = False) -> None:
    """Drop to the configured user and group; groups first, since after setuid we could not."""
    if initgroups and uid:
        try:
            os.initgroups(pwd.getpwuid(uid).pw_name, gid)
        except KeyError:
            pass
    if gid and gid != os.getgid():
        os.setgid(gid)
    if uid and uid != os.getuid():
        os.setuid(uid)


def daemonize(enable_stdio_inheritance: bool = False) -> None:
    """Double fork into a session of our own; stdio to /dev/null unless inherited."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.umask(0o22)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    if not enable_stdio_inheritance:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    if devnull > 2:
        os.close(devnull)
