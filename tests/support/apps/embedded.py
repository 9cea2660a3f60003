"""``fastwsgi.run`` called as an embedding script calls it, on port 0 of a given host.

    python support/apps/embedded.py HOST
"""
import sys

import fastwsgi


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"embedded"]


if __name__ == "__main__":
    fastwsgi.run(app, host=sys.argv[1], port=0)
