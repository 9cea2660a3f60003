"""The one table of settings, under gunicorn's names, flags and defaults.

Everything else is generated from ``SETTINGS``: the argparse parser and the
config-file / env-var loading (``config.py``), ``--print-config``, and the
Markdown table in ``docs/settings.md`` (``python -m fastwsgi.config --markdown``).

``support`` says what fastwsgi does with a setting:
  SUPPORTED  honoured as gunicorn honours it;
  IGNORED    accepted so a gunicorn config keeps working, and named in a start-up
             warning when set to anything but its default; only where ignoring it
             cannot change what a deployment does, and its ``note`` says why (it is
             read only by a feature that is refused here, or gunicorn ignores it too);
  REFUSED    accepted only at its default (or its ``honoured`` values): serving
             while ignoring it would be wrong, so start-up fails with a message that
             names it and says, in its ``note``, what to do instead.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

from . import validators as v

SUPPORTED = "supported"
IGNORED = "accepted, ignored with a warning"
REFUSED = "refused unless default"


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    section: str
    cli: tuple[str, ...]  # empty: config file only
    validator: Callable[[Any], Any]
    default: Any
    doc: str
    meta: str | None = None
    action: str = "store"  # argparse action: store, store_true, store_const, append
    cli_type: Callable[[str], Any] | None = None  # argparse type, where gunicorn has one
    nargs: str | None = None
    const: Any = None
    # Computed when a Config is made, for defaults that read the environment.
    default_factory: Callable[[], Any] | None = None
    support: str = SUPPORTED
    # Which values of a partly supported setting are honoured (None: all of them).
    honoured: Callable[[Any], bool] | None = None
    # For a REFUSED setting that is refused only together with others: whether the
    # resolved values (name -> value) are refused.
    refused_with: Callable[[dict[str, Any]], bool] | None = None
    # IGNORED: why ignoring it is harmless; REFUSED: what to do instead.
    note: str = ""

    def initial(self) -> Any:
        raw = self.default_factory() if self.default_factory else self.default
        return self.validator(raw) if raw is not None else raw


# Default hooks: no-ops with gunicorn's signatures, except pre_request, which logs
# the request at debug level as gunicorn's does.
def on_starting(server): pass  # noqa: E704
def on_reload(server): pass  # noqa: E704
def when_ready(server): pass  # noqa: E704
def pre_fork(server, worker): pass  # noqa: E704
def post_fork(server, worker): pass  # noqa: E704
def post_worker_init(worker): pass  # noqa: E704
def worker_int(worker): pass  # noqa: E704
def worker_abort(worker): pass  # noqa: E704
def pre_exec(server): pass  # noqa: E704
def post_request(worker, req, environ, resp): pass  # noqa: E704
def child_exit(server, worker): pass  # noqa: E704
def worker_exit(server, worker): pass  # noqa: E704
def nworkers_changed(server, new_value, old_value): pass  # noqa: E704
def on_exit(server): pass  # noqa: E704
def ssl_context(config, default_ssl_context_factory): return default_ssl_context_factory()  # noqa: E704
def on_dirty_starting(arbiter): pass  # noqa: E704
def dirty_post_fork(arbiter, worker): pass  # noqa: E704
def dirty_worker_init(worker): pass  # noqa: E704
def dirty_worker_exit(arbiter, worker): pass  # noqa: E704


def pre_request(worker, req):
    worker.log.debug("%s %s", req.method, req.path)


# gunicorn's default hooks are methods of its Setting classes, and --print-config shows
# them by qualified name (<Postfork.post_fork()>); ours read the same.
_GUNICORN_HOOK_CLASSES = {
    on_starting: "OnStarting", on_reload: "OnReload", when_ready: "WhenReady", pre_fork: "Prefork",
    post_fork: "Postfork", post_worker_init: "PostWorkerInit", worker_int: "WorkerInt",
    worker_abort: "WorkerAbort", pre_exec: "PreExec", pre_request: "PreRequest",
    post_request: "PostRequest", child_exit: "ChildExit", worker_exit: "WorkerExit",
    nworkers_changed: "NumWorkersChanged", on_exit: "OnExit", ssl_context: "NewSSLContext",
    on_dirty_starting: "OnDirtyStarting", dirty_post_fork: "DirtyPostFork",
    dirty_worker_init: "DirtyWorkerInit", dirty_worker_exit: "DirtyWorkerExit",
}
for _hook, _class_name in _GUNICORN_HOOK_CLASSES.items():
    _hook.__qualname__ = f"{_class_name}.{_hook.__name__}"
del _hook, _class_name


def _bind_default() -> list[str]:
    # Heroku-style platforms give the port in $PORT and expect every interface.
    port = os.environ.get("PORT")
    return [f"0.0.0.0:{port}"] if port else ["127.0.0.1:8000"]


def default_control_socket() -> str:
    # gunicorn 27's default, so that gunicornc without -s finds a fastwsgi master too.
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return os.path.join(runtime, "gunicorn.ctl")
    return os.path.join(os.path.expanduser("~"), ".gunicorn", "gunicorn.ctl")


# The front ends trusted by default: the local host only.
LOCAL_ADDRESSES = "127.0.0.1,::1"


def _without_h2(value: Any) -> bool:
    return "h2" not in value


def _dirty_arbiter_wanted(values: dict[str, Any]) -> bool:
    # gunicorn's arbiter starts its dirty arbiter only with both set (arbiter.py).
    return bool(values["dirty_apps"]) and values["dirty_workers"] > 0


HTTP2_ONLY = ("read only by gunicorn's HTTP/2 code, which runs only when http_protocols "
              "includes h2, and that is refused here")
ASGI_ONLY = ("read only by gunicorn's ASGI worker, and ASGI worker classes are refused here "
             "(see worker_class)")
DIRTY_ONLY = ("read only by gunicorn's dirty arbiter, which runs only with dirty_apps and "
              "dirty_workers set, and that is refused here")
DIRTY_REFUSED = ("gunicorn's dirty arbiter (dirty_apps with dirty_workers > 0) is not run by "
                 "fastwsgi, and an app would fail at its first dirty call: run the dirty apps "
                 "as a service of their own, or serve this app with gunicorn")


S = Setting
HOOKS = "Server Hooks"
SETTINGS: list[Setting] = [
    # --- Config File ---
    S("config", "Config File", ("-c", "--config"), v.string, "./gunicorn.conf.py",
      "The config file: PATH, file:PATH or python:MODULE. Default: ./fastwsgi.conf.py "
      "if present, else ./gunicorn.conf.py if present.", meta="CONFIG"),
    S("wsgi_app", "Config File", (), v.string, None,
      "The WSGI app spec, MODULE:VARIABLE, when none is given on the command line.", meta="STRING"),
    # --- Server Socket ---
    S("bind", "Server Socket", ("-b", "--bind"), v.string_list, None,
      "A socket to bind, repeatable: HOST, HOST:PORT, [IPv6]:PORT, unix:PATH, fd://FD. "
      "Default 127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set.",
      meta="ADDRESS", action="append", default_factory=_bind_default),
    S("backlog", "Server Socket", ("--backlog",), v.pos_int, 2048,
      "The maximum number of pending connections.", meta="INT", cli_type=int),
    # --- Worker Processes ---
    S("workers", "Worker Processes", ("-w", "--workers"), v.pos_int, 1,
      "The number of worker processes. Default: $WEB_CONCURRENCY, else 1.", meta="INT", cli_type=int,
      default_factory=lambda: int(os.environ.get("WEB_CONCURRENCY", 1))),
    S("worker_class", "Worker Processes", ("-k", "--worker-class"), v.worker_class, "sync",
      "The type of workers. Every fastwsgi worker is an event loop that owns the sockets: "
      "sync and gthread are served as they are (sync with threads > 1 is gthread); gevent, "
      "eventlet and tornado keep their concurrency with a pool of up to 1,000 threads per "
      "worker sized from worker_connections, without monkey-patching (a start-up warning "
      "says so); ASGI classes (asgi, uvicorn) and classes fastwsgi cannot run are refused.",
      meta="STRING"),
    S("threads", "Worker Processes", ("--threads",), v.pos_int, 1,
      "The number of threads per worker that run the app (gunicorn's gthread). With more "
      "than 1 the event loop reads each request whole and hands it to a thread, and writes "
      "what the app returns; with 1 the app runs on the loop's own thread.",
      meta="INT", cli_type=int),
    S("worker_connections", "Worker Processes", ("--worker-connections",), v.pos_int, 1000,
      "The maximum number of simultaneous connections per worker.", meta="INT", cli_type=int),
    S("max_requests", "Worker Processes", ("--max-requests",), v.pos_int, 0,
      "Requests a worker serves before it is recycled gracefully; 0 disables recycling.",
      meta="INT", cli_type=int),
    S("max_requests_jitter", "Worker Processes", ("--max-requests-jitter",), v.pos_int, 0,
      "A random 0..N added to max_requests per worker, so workers do not recycle together.",
      meta="INT", cli_type=int),
    S("timeout", "Worker Processes", ("-t", "--timeout"), v.pos_int, 30,
      "Workers silent for more than this many seconds are killed and replaced; 0 disables. "
      "With threads > 1 the event loop keeps the heartbeat while the app runs (as gunicorn's "
      "gthread does), and a request still in the app after this many seconds is logged, "
      "once, with its thread's stack.",
      meta="INT", cli_type=int),
    S("graceful_timeout", "Worker Processes", ("--graceful-timeout",), v.pos_int, 30,
      "Seconds in-flight requests get after a graceful stop before workers are killed.",
      meta="INT", cli_type=int),
    S("keepalive", "Worker Processes", ("--keep-alive",), v.pos_int, 2,
      "Seconds to wait for the next request on a keep-alive connection.", meta="INT", cli_type=int),
    # --- Security ---
    S("limit_request_line", "Security", ("--limit-request-line",), v.pos_int, 4094,
      "The maximum size of the request line in bytes.", meta="INT", cli_type=int),
    S("limit_request_fields", "Security", ("--limit-request-fields",), v.pos_int, 100,
      "The maximum number of header fields in a request.", meta="INT", cli_type=int),
    S("limit_request_field_size", "Security", ("--limit-request-field_size",), v.pos_int, 8190,
      "The maximum size of one request header field in bytes.", meta="INT", cli_type=int),
    # Beyond gunicorn, which has none of these: limits on bodies and slow clients.
    S("limit_request_body", "Security", ("--limit-request-body",), v.pos_int, 1024 ** 3,
      "The largest request body accepted, in bytes (413 above it); 0 means no limit.",
      meta="INT", cli_type=int),
    S("header_timeout", "Security", ("--header-timeout",), v.pos_number, 30,
      "Seconds a client has to send a complete request head (408 after it).",
      meta="SECONDS", cli_type=float),
    S("io_timeout", "Security", ("--io-timeout",), v.pos_number, 30,
      "Seconds a request body or a response write may go without progress before the "
      "connection is closed.", meta="SECONDS", cli_type=float),
    S("min_upload_rate", "Security", ("--min-upload-rate",), v.pos_int, 500,
      "A request body must arrive within --io-timeout plus one second per this many bytes "
      "received (as Apache's mod_reqtimeout MinRate); a client trickling a body is dropped "
      "with a 408. 0 disables the rate.", meta="BYTES", cli_type=int),
    S("spool_threshold", "Security", ("--spool-threshold",), v.pos_int, 1024 * 1024,
      "Request bodies larger than this many bytes are spooled to a file in tmp_upload_dir.",
      meta="INT", cli_type=int),
    S("body_memory_limit", "Security", ("--body-memory-limit",), v.pos_int, 64 * 1024 * 1024,
      "Request bodies one worker holds in memory at once, in bytes; past it, new bodies are "
      "spooled to a file from their first byte. 0 means no bound.", meta="INT", cli_type=int),
    # --- Debugging ---
    S("reload", "Debugging", ("--reload",), v.boolean, False,
      "Restart workers when a loaded module or an extra file changes. Development only.",
      action="store_true"),
    S("reload_engine", "Debugging", ("--reload-engine",), v.reload_engine, "auto",
      "The reloader implementation; fastwsgi always polls file modification times.", meta="STRING",
      note="every engine polls"),
    S("reload_extra_files", "Debugging", ("--reload-extra-file",), v.file_list, [],
      "Extra files (or glob patterns) whose change triggers a reload.", meta="FILES", action="append"),
    S("spew", "Debugging", ("--spew",), v.boolean, False,
      "Trace every executed line of Python code to stdout, as module:line: source "
      "(gunicorn's debugging aid), from the master and, inherited, its workers.",
      action="store_true"),
    S("check_config", "Debugging", ("--check-config",), v.boolean, False,
      "Check the configuration and that the app loads, then exit 0 (or 1 on error).",
      action="store_true"),
    S("print_config", "Debugging", ("--print-config",), v.boolean, False,
      "Print the fully resolved settings, then act as --check-config.", action="store_true"),
    # --- Server Mechanics ---
    S("preload_app", "Server Mechanics", ("--preload",), v.boolean, False,
      "Load the app in the master before forking workers.", action="store_true"),
    S("sendfile", "Server Mechanics", ("--no-sendfile",), v.boolean, None,
      "Disable sendfile(2) for file responses (also: SENDFILE=0 in the environment).",
      action="store_const", const=False),
    S("reuse_port", "Server Mechanics", ("--reuse-port",), v.boolean, False,
      "Set SO_REUSEPORT and give each worker its own listening socket.", action="store_true"),
    S("chdir", "Server Mechanics", ("--chdir",), v.chdir, None,
      "Change to this directory before loading the app.", default_factory=os.getcwd),
    S("daemon", "Server Mechanics", ("-D", "--daemon"), v.boolean, False,
      "Detach from the terminal and run in the background.", action="store_true"),
    S("raw_env", "Server Mechanics", ("-e", "--env"), v.string_list, [],
      "Set an environment variable, KEY=VALUE, repeatable.", meta="ENV", action="append"),
    S("pidfile", "Server Mechanics", ("-p", "--pid"), v.string, None,
      "Write the master's PID to this file.", meta="FILE"),
    S("worker_tmp_dir", "Server Mechanics", ("--worker-tmp-dir",), v.string, None,
      "Directory for the workers' heartbeat files (use a tmpfs such as /dev/shm).", meta="DIR"),
    S("user", "Server Mechanics", ("-u", "--user"), v.user, None,
      "Run workers as this user (name or uid).", meta="USER", default_factory=os.geteuid),
    S("group", "Server Mechanics", ("-g", "--group"), v.group, None,
      "Run workers as this group (name or gid).", meta="GROUP", default_factory=os.getegid),
    S("umask", "Server Mechanics", ("-m", "--umask"), v.octal_int, 0,
      "The umask for files fastwsgi creates (unix sockets, pid file, heartbeat files).",
      meta="INT", cli_type=str),
    S("initgroups", "Server Mechanics", ("--initgroups",), v.boolean, False,
      "Give workers the supplementary groups of --user.", action="store_true"),
    S("tmp_upload_dir", "Server Mechanics", (), v.string, None,
      "Directory where large request bodies are spooled.", meta="DIR"),
    S("secure_scheme_headers", "Server Mechanics", (), v.dictionary,
      {"X-FORWARDED-PROTOCOL": "ssl", "X-FORWARDED-PROTO": "https", "X-FORWARDED-SSL": "on"},
      "Headers (and values) by which a trusted proxy says the request came over HTTPS."),
    S("forwarded_allow_ips", "Server Mechanics", ("--forwarded-allow-ips",), v.address_list,
      LOCAL_ADDRESSES,
      "Proxies (IPs, networks or *) trusted for X-Forwarded-* headers. "
      f"Default: $FORWARDED_ALLOW_IPS, else {LOCAL_ADDRESSES}.", meta="STRING",
      default_factory=lambda: os.environ.get("FORWARDED_ALLOW_IPS", LOCAL_ADDRESSES)),
    # --- Logging ---
    S("accesslog", "Logging", ("--access-logfile",), v.string, None,
      "The access log file; '-' is stdout. No access log by default.", meta="FILE"),
    S("disable_redirect_access_to_syslog", "Logging", ("--disable-redirect-access-to-syslog",),
      v.boolean, False, "Do not send access logs to syslog.", action="store_true"),
    S("access_log_format", "Logging", ("--access-logformat",), v.string,
      '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
      "The access log format, with gunicorn's atoms.", meta="STRING"),
    S("errorlog", "Logging", ("--error-logfile", "--log-file"), v.string, "-",
      "The error log file; '-' is stderr.", meta="FILE"),
    S("loglevel", "Logging", ("--log-level",), v.string, "info",
      "The error log level: debug, info, warning, error, critical.", meta="LEVEL"),
    S("capture_output", "Logging", ("--capture-output",), v.boolean, False,
      "Redirect stdout/stderr into the error log file.", action="store_true"),
    S("logger_class", "Logging", ("--logger-class",), v.worker_class, "gunicorn.glogging.Logger",
      "The logger class, made as Logger(cfg): a 'package.module.Class' path or a class "
      "(gunicorn's default and 'simple' are fastwsgi.glogging.Logger). A custom class "
      "gets gunicorn's calls, access(resp, req, environ, request_time) for every request "
      "included; subclass fastwsgi.glogging.Logger to keep the built-in handlers.",
      meta="STRING"),
    S("logconfig", "Logging", ("--log-config",), v.string, None,
      "A logging.config.fileConfig file.", meta="FILE"),
    S("logconfig_dict", "Logging", (), v.dictionary, {},
      "A logging.config.dictConfig dictionary, merged over the defaults."),
    S("logconfig_json", "Logging", ("--log-config-json",), v.string, None,
      "A JSON file holding a dictConfig dictionary.", meta="FILE"),
    S("syslog_addr", "Logging", ("--log-syslog-to",), v.string, "udp://localhost:514",
      "The syslog address: unix://PATH[#dgram|#stream], udp://HOST:PORT, tcp://HOST:PORT.", meta="SYSLOG_ADDR"),
    S("syslog", "Logging", ("--log-syslog",), v.boolean, False,
      "Send the error and access logs to syslog (gunicorn's entry format).", action="store_true"),
    S("syslog_prefix", "Logging", ("--log-syslog-prefix",), v.string, None,
      "The program name in syslog entries.", meta="SYSLOG_PREFIX"),
    S("syslog_facility", "Logging", ("--log-syslog-facility",), v.string, "user",
      "The syslog facility.", meta="SYSLOG_FACILITY"),
    S("enable_stdio_inheritance", "Logging", ("-R", "--enable-stdio-inheritance"), v.boolean, False,
      "With --daemon, keep stdout/stderr instead of sending them to /dev/null.",
      action="store_true"),
    S("statsd_host", "Logging", ("--statsd-host",), v.statsd_address, None,
      "The StatsD server to send metrics to: HOST:PORT (port 8125 if left out), [IPv6]:PORT "
      "or unix:PATH.", meta="STATSD_ADDR"),
    S("dogstatsd_tags", "Logging", ("--dogstatsd-tags",), v.string, "",
      "Comma-separated dogstatsd tags (tag1:value1,tag2:value2) appended to every metric.",
      meta="DOGSTATSD_TAGS"),
    S("statsd_prefix", "Logging", ("--statsd-prefix",), v.string, "",
      "A prefix for StatsD metric names (a trailing '.' is added).", meta="STATSD_PREFIX"),
    S("enable_backlog_metric", "Logging", ("--enable-backlog-metric",), v.boolean, False,
      "Send the listeners' accept backlog as the gunicorn.backlog histogram (Linux).",
      action="store_true"),
    S("metrics_bind", "Logging", ("--metrics-bind",), v.string, None,
      "Serve Prometheus metrics, summed over all workers, at /metrics on this address "
      "(HOST:PORT, [IPv6]:PORT or unix:PATH), from the master. Off by default; fastwsgi only.",
      meta="ADDRESS"),
    # --- Process Naming ---
    S("proc_name", "Process Naming", ("-n", "--name"), v.string, None,
      "The process title base (needs the setproctitle package for the full title).",
      meta="STRING"),
    S("default_proc_name", "Process Naming", (), v.string, "gunicorn",
      "The process title base when proc_name is unset: the app spec (or the --paste ini), "
      "else gunicorn's default, gunicorn, which syslog entries then carry as "
      "gunicorn.gunicorn.error, as gunicorn's do."),
    S("pythonpath", "Server Mechanics", ("--pythonpath",), v.string, None,
      "Comma-separated directories to put first on sys.path.", meta="STRING"),
    S("paste", "Server Mechanics", ("--paste", "--paster"), v.string, None,
      "Load the app from a PasteDeploy ini file (`FILE` or `FILE#name`; needs "
      "`pip install 'fastwsgi[paste]'`); its logging sections configure the logs.",
      meta="STRING"),
    # --- Server Hooks ---
    S("on_starting", HOOKS, (), v.hook(1), on_starting, "on_starting(server): before the master initialises."),
    S("on_reload", HOOKS, (), v.hook(1), on_reload, "on_reload(server): on SIGHUP, before new workers start."),
    S("when_ready", HOOKS, (), v.hook(1), when_ready, "when_ready(server): once the sockets listen."),
    S("pre_fork", HOOKS, (), v.hook(2), pre_fork, "pre_fork(server, worker): before a worker is forked."),
    S("post_fork", HOOKS, (), v.hook(2), post_fork, "post_fork(server, worker): in the worker, just after the fork."),
    S("post_worker_init", HOOKS, (), v.hook(1), post_worker_init,
      "post_worker_init(worker): in the worker, once the app is loaded."),
    S("worker_int", HOOKS, (), v.hook(1), worker_int, "worker_int(worker): a worker got SIGINT or SIGQUIT."),
    S("worker_abort", HOOKS, (), v.hook(1), worker_abort,
      "worker_abort(worker): a worker got SIGABRT (the master's timeout kill)."),
    S("pre_exec", HOOKS, (), v.hook(1), pre_exec, "pre_exec(server): before a new master is exec'd (USR2)."),
    S("pre_request", HOOKS, (), v.hook(2), pre_request, "pre_request(worker, req): before the app is called."),
    S("post_request", HOOKS, (), v.post_request_hook, post_request,
      "post_request(worker, req, environ, resp): after the response (2 to 4 arguments)."),
    S("child_exit", HOOKS, (), v.hook(2), child_exit, "child_exit(server, worker): in the master, a worker exited."),
    S("worker_exit", HOOKS, (), v.hook(2), worker_exit, "worker_exit(server, worker): in the worker, as it exits."),
    S("nworkers_changed", HOOKS, (), v.hook(3), nworkers_changed,
      "nworkers_changed(server, new_value, old_value): the worker count changed."),
    S("on_exit", HOOKS, (), v.hook(1), on_exit, "on_exit(server): just before the master exits."),
    S("ssl_context", HOOKS, (), v.hook(2), ssl_context,
      "ssl_context(config, default_ssl_context_factory): returns the ssl.SSLContext to serve "
      "TLS with; called in the master at start and on each HUP."),
    # --- Proxies and protocols ---
    S("proxy_protocol", "Server Mechanics", ("--proxy-protocol",), v.proxy_protocol, "off",
      "Accept the PROXY protocol (off, v1, v2, auto) from proxy_allow_ips.",
      meta="MODE", nargs="?", const="auto"),
    S("proxy_allow_ips", "Server Mechanics", ("--proxy-allow-from",), v.address_list, LOCAL_ADDRESSES,
      "Front ends (IPs, networks or *) allowed to send a PROXY header."),
    S("protocol", "Server Mechanics", ("--protocol",), v.choice("http", "uwsgi"), "http",
      "What the sockets speak: http (HTTP/1.x), or uwsgi, the uwsgi protocol's request "
      "packets from a front end such as nginx's uwsgi_pass (include uwsgi_params): the "
      "environ is the packet's vars, as uWSGI makes it.", meta="STRING"),
    S("uwsgi_allow_ips", "Server Mechanics", ("--uwsgi-allow-from",), v.address_list, LOCAL_ADDRESSES,
      "Front ends (IPs, networks or *) allowed to send uwsgi packets; any other peer gets "
      "403. Unix socket peers are always allowed."),
    # --- SSL ---
    S("keyfile", "SSL", ("--keyfile",), v.string, None,
      "The TLS private key file (PEM); left out, the key is read from certfile.", meta="FILE"),
    S("certfile", "SSL", ("--certfile",), v.string, None,
      "The TLS certificate chain file (PEM). Set, every bound socket speaks HTTPS: the "
      "handshake runs inside the event loop, ALPN offers http/1.1, and the files are read "
      "again when a HUP starts new workers.", meta="FILE"),
    S("ssl_version", "SSL", ("--ssl-version",), v.ssl_version, v.PROTOCOL_TLS,
      "Deprecated and ignored, as in gunicorn: set a minimum version in the ssl_context "
      "hook (context.minimum_version).", support=IGNORED,
      note="gunicorn ignores it too: deprecated since its release 21"),
    S("cert_reqs", "SSL", ("--cert-reqs",), v.pos_int, 0,
      "Whether a client certificate is asked for: 0 none, 1 optional, 2 required "
      "(ssl.CERT_NONE / CERT_OPTIONAL / CERT_REQUIRED), checked against ca_certs.",
      meta="INT", cli_type=int),
    S("ca_certs", "SSL", ("--ca-certs",), v.string, None,
      "The CA certificates (PEM) client certificates are checked against.", meta="FILE"),
    S("suppress_ragged_eofs", "SSL", ("--suppress-ragged-eofs",), v.boolean, True,
      "A client that closes without TLS close_notify ends its stream as if it had sent it.",
      action="store_true"),
    S("do_handshake_on_connect", "SSL", ("--do-handshake-on-connect",), v.boolean, False,
      "Accepted for gunicorn configs: fastwsgi always completes the handshake in the event "
      "loop, before the first request is read, whatever its value.", action="store_true"),
    S("ciphers", "SSL", ("--ciphers",), v.string, None,
      "The TLS 1.2 cipher list, in OpenSSL's format (TLS 1.3 suites are OpenSSL's defaults).",
      meta="CIPHERS"),
    # --- HTTP/2 ---
    S("http_protocols", "HTTP/2", ("--http-protocols",), v.comma_list, "h1",
      "HTTP versions to offer; fastwsgi serves HTTP/1.x only, so a list with h2 is refused.",
      meta="STRING", support=REFUSED, honoured=_without_h2,
      note="HTTP/2 is not served: leave h2 out (http_protocols = 'h1'), or terminate HTTP/2 "
           "in a proxy in front"),
    S("http2_cleartext", "HTTP/2", ("--http2-cleartext",), v.string, "off", "HTTP/2 over cleartext.",
      meta="STRING", support=IGNORED, note=HTTP2_ONLY),
    S("http2_max_concurrent_streams", "HTTP/2", ("--http2-max-concurrent-streams",), v.pos_int, 100,
      "HTTP/2 stream limit.", meta="INT", cli_type=int, support=IGNORED, note=HTTP2_ONLY),
    S("http2_initial_window_size", "HTTP/2", ("--http2-initial-window-size",), v.pos_int, 65535,
      "HTTP/2 initial window.", meta="INT", cli_type=int, support=IGNORED, note=HTTP2_ONLY),
    S("http2_max_frame_size", "HTTP/2", ("--http2-max-frame-size",), v.pos_int, 16384,
      "HTTP/2 frame size.", meta="INT", cli_type=int, support=IGNORED, note=HTTP2_ONLY),
    S("http2_max_header_list_size", "HTTP/2", ("--http2-max-header-list-size",), v.pos_int, 65536,
      "HTTP/2 header list size.", meta="INT", cli_type=int, support=IGNORED, note=HTTP2_ONLY),
    S("raw_paste_global_conf", "Server Mechanics", ("--paste-global",), v.string_list, [],
      "PasteDeploy global variables (`KEY=VALUE`) for --paste.", meta="CONF", action="append"),
    # --- HTTP parsing ---
    S("permit_obsolete_folding", "Server Mechanics", ("--permit-obsolete-folding",), v.boolean, False,
      "Accept obsolete line folding in header fields.", action="store_true"),
    S("strip_header_spaces", "Server Mechanics", ("--strip-header-spaces",), v.boolean, False,
      "Strip spaces between a header name and the colon (unsafe).", action="store_true"),
    S("permit_unconventional_http_method", "Server Mechanics", ("--permit-unconventional-http-method",),
      v.boolean, False, "Accept any RFC 9110 token as a method. By default, as in gunicorn, "
      "a method has 3 to 20 characters with no lower-case letter and no '#' (400 otherwise).",
      action="store_true"),
    S("permit_unconventional_http_version", "Server Mechanics", ("--permit-unconventional-http-version",),
      v.boolean, False, "Accept any single-digit HTTP version (HTTP/0.9, HTTP/2.0, ...), as "
      "gunicorn does; SERVER_PROTOCOL says the version received, and the request is read "
      "with HTTP/1.1's framing from major 2 on, HTTP/1.0's below. By default a major other "
      "than 1 is refused (505).", action="store_true"),
    S("casefold_http_method", "Server Mechanics", ("--casefold-http-method",), v.boolean, False,
      "Upper-case the received method once it is checked, as gunicorn does; a lower-case "
      "method then also needs permit_unconventional_http_method (RFC 9110 §9.1: methods are "
      "case-sensitive, so this is off by default).", action="store_true"),
    S("forwarder_headers", "Server Mechanics", ("--forwarder-headers",), v.comma_list,
      "SCRIPT_NAME,PATH_INFO",
      "Upper-case header names with '_' that a trusted proxy (forwarded_allow_ips) may send "
      "into the environ whatever header_map says; a SCRIPT_NAME header mounts the app there "
      "(a path outside it is a 500, as in gunicorn). From other peers header_map applies.",
      meta="STRING"),
    S("header_map", "Server Mechanics", ("--header-map",), v.choice("drop", "refuse", "dangerous"),
      "drop", "Header names with '_': drop them, refuse the request (400), or pass them (dangerous)."),
    # --- ASGI ---
    S("asgi_loop", "Worker Processes", ("--asgi-loop",), v.choice("auto", "asyncio", "uvloop"), "auto",
      "ASGI event loop.", meta="STRING", support=IGNORED, note=ASGI_ONLY),
    S("asgi_lifespan", "Worker Processes", ("--asgi-lifespan",), v.choice("auto", "on", "off"), "auto",
      "ASGI lifespan.", meta="STRING", support=IGNORED, note=ASGI_ONLY),
    S("asgi_disconnect_grace_period", "Worker Processes", ("--asgi-disconnect-grace-period",),
      v.pos_int, 3, "ASGI disconnect grace period.", meta="INT", cli_type=int, support=IGNORED,
      note=ASGI_ONLY),
    S("websocket_max_message_size", "Worker Processes", ("--websocket-max-message-size",),
      v.pos_int, 16777216, "Largest WebSocket message.", meta="INT", cli_type=int, support=IGNORED,
      note=ASGI_ONLY),
    S("http_parser", "Worker Processes", ("--http-parser",), v.choice("auto", "fast", "python"), "auto",
      "The HTTP parser; fastwsgi always uses its own.", meta="STRING", support=IGNORED,
      note="it picks between gunicorn's two parsers, which accept the same requests (the fast "
           "one only without the compatibility flags); fastwsgi's own parser applies gunicorn's "
           "rules and those flags whatever this says"),
    S("root_path", "Server Mechanics", ("--root-path",), v.string, "",
      "The SCRIPT_NAME prefix the app is mounted under (also: SCRIPT_NAME in the environment).",
      meta="STRING"),
    # --- Dirty arbiters ---
    S("dirty_apps", "Dirty Arbiters", ("--dirty-app",), v.string_list, [], "Dirty-pool apps.",
      meta="STRING", action="append", support=REFUSED, refused_with=_dirty_arbiter_wanted,
      note=DIRTY_REFUSED),
    S("dirty_workers", "Dirty Arbiters", ("--dirty-workers",), v.pos_int, 0, "Dirty workers.",
      meta="INT", cli_type=int, support=REFUSED, refused_with=_dirty_arbiter_wanted,
      note=DIRTY_REFUSED),
    S("dirty_timeout", "Dirty Arbiters", ("--dirty-timeout",), v.pos_int, 300, "Dirty task timeout.",
      meta="INT", cli_type=int, support=IGNORED, note=DIRTY_ONLY),
    S("dirty_threads", "Dirty Arbiters", ("--dirty-threads",), v.pos_int, 1, "Dirty worker threads.",
      meta="INT", cli_type=int, support=IGNORED, note=DIRTY_ONLY),
    S("dirty_graceful_timeout", "Dirty Arbiters", ("--dirty-graceful-timeout",), v.pos_int, 30,
      "Dirty graceful timeout.", meta="INT", cli_type=int, support=IGNORED, note=DIRTY_ONLY),
    S("on_dirty_starting", "Dirty Arbiter Hooks", (), v.hook(1), on_dirty_starting, "Dirty hook.",
      support=IGNORED, note=DIRTY_ONLY),
    S("dirty_post_fork", "Dirty Arbiter Hooks", (), v.hook(2), dirty_post_fork, "Dirty hook.",
      support=IGNORED, note=DIRTY_ONLY),
    S("dirty_worker_init", "Dirty Arbiter Hooks", (), v.hook(1), dirty_worker_init, "Dirty hook.",
      support=IGNORED, note=DIRTY_ONLY),
    S("dirty_worker_exit", "Dirty Arbiter Hooks", (), v.hook(2), dirty_worker_exit, "Dirty hook.",
      support=IGNORED, note=DIRTY_ONLY),
    # --- Control socket ---
    S("control_socket", "Control", ("--control-socket",), v.string, None,
      "The Unix socket of the master's control interface, which gunicornc (gunicorn 27's "
      "client) and fastwsgic speak to: show workers/stats/config/listeners, worker "
      "add/remove/kill, reload, reopen, shutdown. Default: $XDG_RUNTIME_DIR/gunicorn.ctl "
      "when that directory exists, else ~/.gunicorn/gunicorn.ctl (its directory made 0700), "
      "as gunicorn; a relative path is taken from the working directory. A socket left by a "
      "master that died is replaced; one a running server answers on is left alone (this "
      "master then runs without one, with a warning).",
      meta="PATH", default_factory=default_control_socket),
    S("control_socket_mode", "Control", ("--control-socket-mode",), v.octal_int, 0o600,
      "The control socket's permission bits (0600: its owner only; 0660 lets the group in). "
      "A leading 0 is octal.", meta="INT", cli_type=str),
    S("control_socket_disable", "Control", ("--no-control-socket",), v.boolean, False,
      "Run no control socket.", action="store_true"),
]

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
