"""Stand-ins with the module paths of uvicorn's and gunicorn's worker classes, and a
project's own subclasses of them (``workers``), so that resolving a worker class by
its bases is checked without installing either; a test puts this directory and
``gunicorn_stand_in`` first on the served process's path."""
