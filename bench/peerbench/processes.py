"""Processes of the benchmark: ports, limits, the server's process group, CPU accounting."""
import os
import resource
import signal
import socket
import subprocess
import time

from . import HOST


def free_port():
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((HOST, 0))
        return s.getsockname()[1]


def raise_nofile(want=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in ((max(hard, want), max(hard, want)), (hard, hard)):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, limit)
            break
        except (ValueError, OSError):
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run_capture(cmd, **kw):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60, **kw)
        return (p.stdout + p.stderr).strip()
    except Exception as e:  # noqa: BLE001
        return f"<{e}>"


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).strip()
    except OSError:
        return ""


class Running:
    """A started server process group; always stopped via stop()."""

    def __init__(self, server, scenario, port, logpath, cpu):
        self.server, self.port, self.logpath = server, port, logpath
        self.cmd = ["taskset", "-c", str(cpu)] + server.command(scenario, port)
        self.logf = open(logpath, "w")
        self.logf.write("$ " + " ".join(self.cmd) + "\n")
        self.logf.flush()
        self.proc = subprocess.Popen(
            self.cmd, cwd=server.workdir, env=server.env(), stdin=subprocess.DEVNULL,
            stdout=self.logf, stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return f"exited with code {self.proc.returncode} before accepting connections"
            try:
                with socket.create_connection((HOST, self.port), timeout=0.5):
                    return None
            except OSError:
                time.sleep(0.05)
        return f"did not accept connections within {timeout:.0f} s"

    def stop(self):
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # Children (gunicorn/granian workers) may outlive the leader: sweep the group.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.logf.close()


_CLK = os.sysconf("SC_CLK_TCK")


def _group_stats(pgid):
    """(pid, fields of /proc/PID/stat after the command name) of the live processes of group pgid."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is state (field 3); pgrp is field 5, utime 14, stime 15
        if int(fields[2]) == pgid:
            yield int(entry), fields


def group_cpu_seconds(pgid):
    """user+system CPU seconds of all live processes in process group pgid."""
    return sum(int(fields[11]) + int(fields[12]) for _, fields in _group_stats(pgid)) / _CLK


def _rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def worker_rss_kib(pgid):
    """Resident memory of the process group's workers, in KiB: every process but the
    leader when it has others (a master and its worker), else the leader alone."""
    pids = [pid for pid, _ in _group_stats(pgid)]
    workers = [pid for pid in pids if pid != pgid] or pids
    return sum(_rss_kib(pid) for pid in workers)


def system_cpu():
    """Machine-wide CPU seconds (all cores) from /proc/stat: (process time, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]] + [0] * 8
    # user nice system idle iowait irq softirq steal
    # Tick-based accounting charges softirq time to the interrupted process as well,
    # so "busy" includes irq/softirq, and busy - server - wrk is the rest of the machine.
    return sum(v[0:3]) / _CLK + (v[5] + v[6]) / _CLK, (v[5] + v[6]) / _CLK, v[7] / _CLK


def children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime
