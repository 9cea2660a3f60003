"""A project's own worker classes, as gunicorn configs name them (-k workers.NAME)."""
from gunicorn.workers.gthread import ThreadWorker
from uvicorn.workers import UvicornWorker


class MyUvicornWorker(UvicornWorker):
    pass


class MyThreadWorker(ThreadWorker):
    pass


class NotAWorker:
    pass
