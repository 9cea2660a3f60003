"""The uwsgi protocol from the tests' side: request packets built by hand, and nginx
running uwsgi_pass in front of a server (``Nginx``)."""
from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from support import ROOT
from support.processes import free_port


def packet(variables, body: bytes = b"", modifier1: int = 0, modifier2: int = 0) -> bytes:
    """A request packet: the 4-byte header, the vars (key, value) as given (bytes or
    str), then ``body``."""
    block = b""
    for key, value in variables:
        key = key.encode("latin-1") if isinstance(key, str) else key
        value = value.encode("latin-1") if isinstance(value, str) else value
        block += struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value
    return struct.pack("<BHB", modifier1, len(block), modifier2) + block + body


def request_vars(method: str = "GET", path: str = "/", query: str = "", body: bytes = b"",
                 **headers: str) -> list[tuple[str, str]]:
    """The vars nginx's uwsgi_params sends for a request, and its headers as HTTP_*."""
    found = [("QUERY_STRING", query), ("REQUEST_METHOD", method), ("CONTENT_TYPE", ""),
             ("CONTENT_LENGTH", str(len(body)) if body else ""),
             ("REQUEST_URI", path + ("?" + query if query else "")), ("PATH_INFO", path),
             ("DOCUMENT_ROOT", "/srv"), ("SERVER_PROTOCOL", "HTTP/1.1"),
             ("REQUEST_SCHEME", "http"), ("REMOTE_ADDR", "203.0.113.7"), ("REMOTE_PORT", "50123"),
             ("SERVER_PORT", "80"), ("SERVER_NAME", "example.com")]
    found += [("HTTP_" + name.upper(), value) for name, value in headers.items()]
    return found


# What nginx's own uwsgi_params file sets, written out (bench/uwsgi_nginx.py) so the
# test does not depend on where a distribution installs it.
sys.path.insert(0, str(ROOT / "bench"))
from uwsgi_nginx import UWSGI_PARAMS  # noqa: E402

NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    uwsgi_temp_path {dir}/uwsgi;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 16m;
    # Bodies both ways stay in memory: run as root, nginx's workers are nobody, who
    # cannot write temporary files in the test's private directory.
    client_body_buffer_size 1m;
    uwsgi_max_temp_file_size 0;
    proxy_max_temp_file_size 0;
    server {{
        listen 127.0.0.1:{port};
        server_name example.com;
        location / {{
            {pass_directive} {upstream};
{params}
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)


class Nginx:
    """nginx on a free loopback port, passing every request to ``upstream`` (host:port
    or unix:/path) with uwsgi_pass (``mode="uwsgi"``) or proxy_pass (``"http"``)."""

    def __init__(self, directory: Path, upstream: str, mode: str = "uwsgi") -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        if mode == "uwsgi":
            directive, params = "uwsgi_pass", UWSGI_PARAMS
        else:
            directive, params = "proxy_pass", "            proxy_http_version 1.1;\n"
            upstream = "http://" + upstream
        conf = self.dir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=self.dir, port=self.port, pass_directive=directive,
                                          upstream=upstream, params=params))
        self.proc = subprocess.Popen([nginx_binary(), "-c", str(conf), "-p", str(self.dir),
                                      "-g", "daemon off;"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        deadline = time.monotonic() + 10
        while not (self.dir / "nginx.pid").exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"nginx did not start: {self.proc.stderr.read().decode()}")
            time.sleep(0.05)

    @property
    def errors(self) -> str:
        path = self.dir / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc.stderr.close()


def corpus(kind: str) -> list[tuple[str, bytes, dict]]:
    """(name, packet with its body and what follows it, case) for every case of
    ``requests/uwsgi/<kind>`` (see requests/README.md)."""
    import json

    from support.corpus import REQUESTS_DIR, unescape

    cases = []
    for path in sorted((REQUESTS_DIR / "uwsgi" / kind).glob("*.json")):
        case = json.loads(path.read_text())
        if "raw" in case:
            data = unescape(case["raw"].encode("latin-1"), path.name)
        else:
            data = packet(case["vars"], case.get("body", "").encode("latin-1"),
                          case.get("modifier1", 0), case.get("modifier2", 0))
        data += unescape(case.get("rest", "").encode("latin-1"), path.name)
        cases.append((path.stem, data, case))
    return cases


# -- an independent reading of a packet (for the property test and the fuzzer) -------

TCHARS = set(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
FIELD_BYTES = set(range(0x20, 0x7F)) | {0x09} | set(range(0x80, 0x100))
READ_ONCE = {b"REQUEST_METHOD", b"PATH_INFO", b"REQUEST_URI", b"QUERY_STRING", b"SCRIPT_NAME",
             b"HTTPS", b"wsgi.url_scheme", b"REQUEST_SCHEME", b"CONTENT_LENGTH"}


def reference_reading(data: bytes):
    """What the packet at the start of ``data`` is, read plainly, as the parser must
    read it with gunicorn's default limits: (its size, its vars as (key, value) bytes),
    None for one to refuse, or 0 while it is incomplete."""
    if data[:1] not in (b"", b"\x00"):
        return None
    if len(data) < 4 or len(data) < 4 + int.from_bytes(data[1:3], "little"):
        return 0
    end = 4 + int.from_bytes(data[1:3], "little")
    pos, found, seen, headers, others = 4, [], set(), 0, 0
    while pos < end:
        if end - pos < 2:
            return None
        key_length = int.from_bytes(data[pos:pos + 2], "little")
        key = data[pos + 2:pos + 2 + key_length]
        pos += 2 + key_length
        if key_length == 0 or pos + 2 > end or not set(key) <= TCHARS:
            return None
        value_length = int.from_bytes(data[pos:pos + 2], "little")
        value = data[pos + 2:pos + 2 + value_length]
        pos += 2 + value_length
        if pos > end or not set(value) <= FIELD_BYTES:
            return None
        if key.startswith(b"HTTP_") and len(key) > 5:
            headers += 1
            if headers > 100 or len(key) - 5 + len(value) + 4 > 8190:
                return None
        else:
            others += 1
            if others > 64 or (key in READ_ONCE and key in seen):
                return None
            seen.add(key)
            if key == b"REQUEST_METHOD" and (not value or not set(value) <= TCHARS):
                return None
            if key == b"REQUEST_URI" and len(value) > 4094:
                return None
            if key == b"CONTENT_LENGTH" and (len(value) > 18 or not value.isdigit() and value):
                return None
        found.append((key, value))
    if b"REQUEST_METHOD" not in seen or not seen & {b"PATH_INFO", b"REQUEST_URI"}:
        return None
    return end, found
