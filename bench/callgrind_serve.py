"""The server process that ``callgrind.py`` runs under valgrind.

One fastwsgi loop in this process (``fastwsgi.run``, no master, no fork) on a
loopback port chosen by the kernel, serving one app of ``apps.py``.  It prints
the port on stdout once it listens, then stops by itself after a given number
of requests (``max_requests``), so that start-up and shutdown are the same in
every run and only the request count differs.

Usage: callgrind_serve.py APP MAX_REQUESTS [OPTIONS_JSON]
"""
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apps  # bench/apps.py, the apps every benchmark serves

import fastwsgi


def load_app(name):
    """A key of apps.APPS, or MODULE:CALLABLE (the framework apps beside this file)."""
    if ":" not in name:
        return apps.APPS[name][0]
    module, attribute = name.split(":")
    return getattr(__import__(module), attribute)


def access_log_hooks():
    """The hooks a worker gets for `--access-logfile access.log` (the default format)."""
    from fastwsgi.config import Config
    from fastwsgi.glogging import Logger
    from fastwsgi.options import ServerHooks

    cfg = Config()
    cfg.set("accesslog", "access.log")
    access_log, flush_access_log = Logger(cfg).access_hooks()
    return ServerHooks(access_log=access_log, flush_access_log=flush_access_log)


def main(argv):
    app_name, max_requests = argv[0], int(argv[1])
    options = json.loads(argv[2]) if len(argv) > 2 else {}
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(2048)   # c1000 opens its 1,000 connections at once
    certificate = options.pop("certificate", None)
    if certificate is not None:
        # TLS scenarios: a certificate and key in one PEM file the harness made.
        import ssl
        options["ssl_context"] = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        options["ssl_context"].load_cert_chain(certificate)
    hooks = access_log_hooks() if options.pop("access_log", False) else None
    print(listener.getsockname()[1], flush=True)
    try:
        fastwsgi.run(load_app(app_name), sock=listener, max_requests=max_requests, hooks=hooks,
                     **options)
    finally:
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
