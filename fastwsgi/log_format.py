"""The error log's line format, gunicorn's: the command's logger (glogging) and the
default handler of ``fastwsgi.run()`` write the same lines; run() takes them from
here without importing the access log's machinery."""

ERROR_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"
