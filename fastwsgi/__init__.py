"""fastwsgi: a fast, strict WSGI server with gunicorn's command line."""
import sys

__version__ = "0.1.0"

if not sys.platform.startswith("linux"):
    raise ImportError(
        "fastwsgi runs on Linux only: its event loop is built on epoll "
        f"(this platform is {sys.platform!r})"
    )
