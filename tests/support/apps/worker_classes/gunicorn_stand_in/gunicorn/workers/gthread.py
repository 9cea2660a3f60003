class ThreadWorker:
    """gunicorn.workers.gthread.ThreadWorker, by name only."""
