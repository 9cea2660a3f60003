"""The server's TLS context, made from gunicorn's SSL settings as gunicorn makes it.

The master makes it when it starts and again on HUP, and the workers it forks
inherit it: every worker of one generation shares its session ticket keys, so a
client resumes its session whichever worker it reaches, and renewed certificate
files are read by the next generation of workers, as gunicorn's are.
"""
from __future__ import annotations

import ssl
from typing import Any

from .errors import ConfigError

# What this server speaks over TLS, offered by ALPN (RFC 7301).
ALPN_PROTOCOLS = ["http/1.1"]


def ssl_context(cfg: Any) -> ssl.SSLContext:
    """gunicorn's context (sock.ssl_context): its default factory, passed to the
    config's ``ssl_context(config, default_ssl_context_factory)`` hook."""

    def default_ssl_context_factory() -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=cfg.ca_certs)
        context.load_cert_chain(certfile=cfg.certfile, keyfile=cfg.keyfile)
        context.verify_mode = cfg.cert_reqs
        if cfg.ciphers:
            context.set_ciphers(cfg.ciphers)
        context.set_alpn_protocols(ALPN_PROTOCOLS)
        return context

    try:
        context = cfg.ssl_context(cfg, default_ssl_context_factory)
    except (OSError, ssl.SSLError, ValueError) as error:
        raise ConfigError(f"cannot set up TLS from certfile={cfg.certfile!r}, "
                          f"keyfile={cfg.keyfile!r}: {error}") from None
    if not isinstance(context, ssl.SSLContext):
        raise ConfigError(f"the ssl_context hook returned {type(context).__name__}, "
                          f"not an ssl.SSLContext")
    return context
