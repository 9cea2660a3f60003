"""The servers under test: how each one is found, checked, versioned and started."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

from . import BENCH_DIR, HOST, REPO
from .processes import run_capture
from .scenarios import Scenario, app_callable, app_module
from .tls import Certificate

OURS = "fastwsgi"
REFERENCE = {"nginx"}          # not a peer: the C reference
ALL_SERVERS = ["fastwsgi", "bjoern", "granian", "gunicorn", "waitress", "pypi-fastwsgi", "nginx"]
DEFAULT_SERVERS = ["fastwsgi", "bjoern", "granian", "gunicorn", "pypi-fastwsgi", "nginx"]
RSS_SERVERS = ("fastwsgi", "gunicorn", "bjoern")   # whose worker RSS the rows with rss=True record


class Server:
    """How to start one server kind for a given app on a given port."""

    def __init__(self, name, kind, python=None, bindir=None, dist=None):
        self.name, self.kind, self.python, self.bindir, self.dist = name, kind, python, bindir, dist
        self.extra_pythonpath = []
        self.workdir = None   # set by the harness (a temp dir, never the repo root)
        self.nginx_dir = None
        self.certificate: Certificate | None = None   # set by the harness for the TLS rows

    # ---- availability / version
    def check(self):
        """Return None if usable, else a reason string."""
        if self.kind == "nginx":
            return None if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx") else "nginx not installed"
        if not self.python or not os.path.exists(self.python):
            return f"interpreter not found: {self.python}"
        if self.kind in ("granian", "gunicorn") and not os.path.exists(os.path.join(self.bindir, self.kind)):
            return f"{self.kind} not installed in {self.bindir}"
        probe = {"fastwsgi": "import fastwsgi; fastwsgi.run",
                 "pypi-fastwsgi": "import fastwsgi; fastwsgi.run",
                 "bjoern": "import bjoern", "waitress": "import waitress",
                 "granian": "import granian", "gunicorn": "import gunicorn"}[self.kind]
        p = subprocess.run([self.python, "-c", probe], cwd=self.workdir, env=self.env(),
                           capture_output=True, text=True)
        if p.returncode:
            return (p.stderr.strip().splitlines() or ["import failed"])[-1]
        return None

    def version(self):
        if self.kind == "nginx":
            return run_capture([self.nginx_bin(), "-v"]).replace("nginx version: ", "")
        code = ("import importlib.metadata as m\n"
                f"try: print(m.version({self.dist!r}))\n"
                "except Exception:\n"
                "  import fastwsgi; print(getattr(fastwsgi, '__version__', '?'))")
        return run_capture([self.python, "-c", code], cwd=self.workdir, env=self.env())

    def env(self):
        env = dict(os.environ)
        env.pop("PYTHONHOME", None)
        env["PYTHONPATH"] = os.pathsep.join([BENCH_DIR] + self.extra_pythonpath)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return env

    def nginx_bin(self):
        return shutil.which("nginx") or "/usr/sbin/nginx"

    # ---- command line
    def command(self, scenario: Scenario, port: int) -> list[str]:
        module, app = app_module(scenario), app_callable(scenario)
        if self.kind == "fastwsgi" and (scenario.threads is not None or scenario.tls):
            return self.fastwsgi_cli(scenario, port)
        waitress_threads = "" if scenario.threads is None else f", threads={scenario.threads}"
        py_run = {
            "fastwsgi": f"import {module}, fastwsgi; fastwsgi.run({module}.{app}, host={HOST!r}, port={port})",
            "pypi-fastwsgi": f"import {module}, fastwsgi; fastwsgi.run({module}.{app}, host={HOST!r}, port={port})",
            "bjoern": f"import {module}, bjoern; bjoern.run({module}.{app}, {HOST!r}, {port})",
            # waitress: default 4 threads; connection_limit raised from 100 so that
            # the c1000 scenario is not refused by configuration.
            "waitress": (f"import {module}, waitress; waitress.serve({module}.{app}, host={HOST!r}, port={port}, "
                         f"_quiet=True, connection_limit=2000, backlog=2048{waitress_threads})"),
        }
        if self.kind in py_run:
            return [self.python, "-c", py_run[self.kind]]
        if self.kind == "granian":
            return self.granian_cli(scenario, port)
        if self.kind == "gunicorn":
            return self.gunicorn_cli(scenario, port)
        if self.kind == "nginx":
            conf = self.write_nginx_conf(scenario, port)
            return [self.nginx_bin(), "-p", self.nginx_dir, "-c", conf]
        raise ValueError(self.kind)

    def fastwsgi_cli(self, scenario: Scenario, port: int) -> list[str]:
        """Ours through its command line, one worker: the rows with threads or TLS."""
        cmd = [self.python, "-m", "fastwsgi", "-w", "1", "-b", f"{HOST}:{port}",
               "--log-level", "warning", "--backlog", "2048"]
        if scenario.threads is not None:
            cmd += ["--threads", str(scenario.threads)]
        if scenario.tls:
            cmd += ["--certfile", self.certificate.certfile, "--keyfile", self.certificate.keyfile]
        return cmd + [scenario.app]

    def granian_cli(self, scenario: Scenario, port: int) -> list[str]:
        cmd = [os.path.join(self.bindir, "granian"), "--interface", "wsgi", "--workers", "1",
               "--host", HOST, "--port", str(port), "--log-level", "warning", "--no-ws"]
        if scenario.threads is not None:
            cmd += ["--blocking-threads", str(scenario.threads)]
        if scenario.tls:
            cmd += ["--ssl-certificate", self.certificate.certfile,
                    "--ssl-keyfile", self.certificate.keyfile]
        return cmd + [scenario.app]

    def gunicorn_cli(self, scenario: Scenario, port: int) -> list[str]:
        # One worker process; the sync worker (its default) closes every connection,
        # so the rows with threads or TLS, which keep connections alive, run gthread.
        cmd = [os.path.join(self.bindir, "gunicorn"), "-w", "1", "-b", f"{HOST}:{port}",
               "--log-level", "warning", "--backlog", "2048"]
        if scenario.threads is not None or scenario.tls:
            cmd += ["-k", "gthread", "--threads", str(scenario.threads or 1)]
        if scenario.tls:
            cmd += ["--certfile", self.certificate.certfile, "--keyfile", self.certificate.keyfile]
        return cmd + [scenario.app]

    def write_nginx_conf(self, scenario: Scenario, port: int) -> str:
        d = self.nginx_dir
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        body = scenario.expected_body
        if len(body) > NGINX_RETURN_MAX:
            # Large bodies are files sent with sendfile, as nginx serves static files.
            fname = f"{scenario.name}.bin"
            with open(os.path.join(d, fname), "wb") as f:
                f.write(body)
            location = (f"root {d};\n            default_type {scenario.content_type};\n"
                        f"            try_files /{fname} =404;")
        else:
            location = (f"default_type \"{scenario.content_type}\";\n"
                        f"            return 200 {nginx_string(body)};")
        listen = f"{HOST}:{port} backlog=2048"
        tls = ""
        if scenario.tls:
            listen += " ssl"
            # nginx before 1.23.4 leaves TLS 1.3 out of its default ssl_protocols: the
            # other servers speak it, so nginx is told to as well.
            tls = (f"ssl_certificate {self.certificate.certfile};\n"
                   f"        ssl_certificate_key {self.certificate.keyfile};\n"
                   f"        ssl_protocols TLSv1.2 TLSv1.3;\n        ")
        t = os.path.join(d, "tmp")
        conf = f"""# generated by bench/run.py
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid {d}/nginx.pid;
error_log stderr warn;
events {{
    worker_connections 4096;
    multi_accept on;
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 100000000;
    client_max_body_size 16m;
    client_body_temp_path {t}/body;
    proxy_temp_path {t}/proxy;
    fastcgi_temp_path {t}/fastcgi;
    uwsgi_temp_path {t}/uwsgi;
    scgi_temp_path {t}/scgi;
    server {{
        listen {listen};
        {tls}location / {{
            {location}
        }}
    }}
}}
"""
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        return path


NGINX_RETURN_MAX = 4096   # bodies up to this size are answered by `return 200`, larger ones from a file


def nginx_string(body: bytes) -> str:
    """body as a quoted nginx configuration string: backslash, quote and newline escaped."""
    text = body.decode("ascii").replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


# What our command line says when a setting a scenario needs is not served: a
# ConfigError that refuses it, or the warning that lists the settings it ignores.
_UNSERVED_SETTING = re.compile(
    r"^.*(?:does not support |ignores these settings:.*?\b)(?:threads|certfile|keyfile)=.*$", re.MULTILINE)


def unserved_setting(server: Server, log_text: str) -> str | None:
    """The line of ours's log that says a setting of the scenario is not served, if any."""
    if server.kind != OURS:
        return None
    found = _UNSERVED_SETTING.search(log_text)
    if found is None:
        return None
    return re.sub(r"^(?:\[[^\]]*\]\s*)+|^Error:\s*", "", found.group(0).strip())   # the log line's prefix


def build_servers(args, workdir):
    peers_bin = os.path.join(args.peers_venv, "bin")
    peers_py = os.path.join(peers_bin, "python")
    pypi_py = os.path.join(args.pypi_fastwsgi_venv, "bin", "python")
    servers = {
        "fastwsgi": Server("fastwsgi", "fastwsgi", python=args.ours_python, dist="fastwsgi"),
        "bjoern": Server("bjoern", "bjoern", python=peers_py, dist="bjoern"),
        "granian": Server("granian", "granian", python=peers_py, bindir=peers_bin, dist="granian"),
        "gunicorn": Server("gunicorn", "gunicorn", python=peers_py, bindir=peers_bin, dist="gunicorn"),
        "waitress": Server("waitress", "waitress", python=peers_py, dist="waitress"),
        "pypi-fastwsgi": Server("pypi-fastwsgi", "pypi-fastwsgi", python=pypi_py, dist="fastwsgi"),
        "nginx": Server("nginx", "nginx"),
    }
    for s in servers.values():
        s.workdir = workdir
        s.nginx_dir = os.path.join(workdir, "nginx")
    ours = servers["fastwsgi"]
    # Ours: use the installed package if the interpreter has one (pip install [-e] .);
    # otherwise fall back to the source tree (python setup.py build_ext --inplace).
    if args.ours_pythonpath is not None:
        ours.extra_pythonpath = [p for p in args.ours_pythonpath.split(os.pathsep) if p]
    elif ours.check() is not None:
        ours.extra_pythonpath = [REPO]
    return servers
