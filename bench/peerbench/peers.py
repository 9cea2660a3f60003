"""The servers under test: how each one is found, checked, versioned and started."""
import os
import shutil
import subprocess

import apps  # bench/apps.py: the WSGI apps and expected bodies

from . import BENCH_DIR, HOST, REPO
from .processes import run_capture

OURS = "fastwsgi"
REFERENCE = {"nginx"}          # not a peer: the C reference
ALL_SERVERS = ["fastwsgi", "bjoern", "granian", "gunicorn", "waitress", "pypi-fastwsgi", "nginx"]
DEFAULT_SERVERS = ["fastwsgi", "bjoern", "granian", "gunicorn", "pypi-fastwsgi", "nginx"]


class Server:
    """How to start one server kind for a given app on a given port."""

    def __init__(self, name, kind, python=None, bindir=None, dist=None):
        self.name, self.kind, self.python, self.bindir, self.dist = name, kind, python, bindir, dist
        self.extra_pythonpath = []
        self.workdir = None   # set by the harness (a temp dir, never the repo root)
        self.nginx_dir = None

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
    def command(self, app, port):
        py_run = {
            "fastwsgi": f"import apps, fastwsgi; fastwsgi.run(apps.{app}, host={HOST!r}, port={port})",
            "pypi-fastwsgi": f"import apps, fastwsgi; fastwsgi.run(apps.{app}, host={HOST!r}, port={port})",
            "bjoern": f"import apps, bjoern; bjoern.run(apps.{app}, {HOST!r}, {port})",
            # waitress: default 4 threads; connection_limit raised from 100 so that
            # the c1000 scenario is not refused by configuration.
            "waitress": (f"import apps, waitress; waitress.serve(apps.{app}, host={HOST!r}, port={port}, "
                         "_quiet=True, connection_limit=2000, backlog=2048)"),
        }
        if self.kind in py_run:
            return [self.python, "-c", py_run[self.kind]]
        if self.kind == "granian":
            return [os.path.join(self.bindir, "granian"), "--interface", "wsgi", "--workers", "1",
                    "--host", HOST, "--port", str(port), "--log-level", "warning",
                    "--no-ws", f"apps:{app}"]
        if self.kind == "gunicorn":
            # default (sync) worker, one worker process
            return [os.path.join(self.bindir, "gunicorn"), "-w", "1", "-b", f"{HOST}:{port}",
                    "--log-level", "warning", "--backlog", "2048", f"apps:{app}"]
        if self.kind == "nginx":
            conf = self.write_nginx_conf(app, port)
            return [self.nginx_bin(), "-p", self.nginx_dir, "-c", conf]
        raise ValueError(self.kind)

    def write_nginx_conf(self, app, port):
        d = self.nginx_dir
        os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
        files = {"body_64k": ("body64k.bin", apps.BODY_64K), "body_1m": ("body1m.bin", apps.BODY_1M)}
        if app in files:
            fname, data = files[app]
            with open(os.path.join(d, fname), "wb") as f:
                f.write(data)
            location = (f"root {d};\n            default_type application/octet-stream;\n"
                        f"            try_files /{fname} =404;")
        else:
            body = apps.APPS[app][1].decode()
            location = f'default_type text/plain;\n            return 200 "{body}";'
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
        listen {HOST}:{port} backlog=2048;
        location / {{
            {location}
        }}
    }}
}}
"""
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        return path


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
