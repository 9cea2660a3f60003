"""The serving loop (``fastwsgi._loop`` and ``fastwsgi/loop/``) behind a real socket,
in a thread or in a process of its own, and ``fastwsgi.run``."""
