class UvicornWorker:
    """uvicorn.workers.UvicornWorker, by name only."""
