"""The scenarios of the peer benchmark: which app, how many connections, which wrk script."""
import apps  # bench/apps.py: the WSGI apps and expected bodies

# name -> description, app (key of apps.APPS), wrk connections, lua script, script args
SCENARIOS = {
    "hello": dict(
        desc="GET, 13-byte body, keep-alive, 50 connections",
        app="hello", conns=50, script=None),
    "pipeline16": dict(
        desc="GET hello, 16 requests pipelined per write, 50 connections",
        app="hello", conns=50, script="pipeline.lua", script_args=["16"]),
    "body64k": dict(
        desc="GET, 64 KiB response body, 50 connections",
        app="body_64k", conns=50, script=None),
    "body1m": dict(
        desc="GET, 1 MiB response body, 50 connections",
        app="body_1m", conns=50, script=None),
    "post16k": dict(
        desc="POST 16 KiB body, app reads wsgi.input fully, 50 connections",
        app="echo", conns=50, script="post.lua", script_args=[str(apps.POST_SIZE)]),
    "c1000": dict(
        desc="GET hello, 1,000 concurrent keep-alive connections",
        app="hello", conns=1000, script=None),
}
