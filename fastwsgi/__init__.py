"""fastwsgi: a fast, strict WSGI server with gunicorn's command line."""
import sys

__version__ = "0.1.0"

if not sys.platform.startswith("linux"):
    raise ImportError(
        "fastwsgi runs on Linux only: its event loop is built on epoll "
        f"(this platform is {sys.platform!r})"
    )


def run(app, host="127.0.0.1", port=8000, **options):
    """Serves ``app`` on host:port in this process until SIGINT/SIGTERM (graceful)."""
    from .serve import run as _run

    return _run(app, host, port, **options)


__all__ = ["run", "__version__"]
