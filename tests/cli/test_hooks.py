"""Server hooks from a config file, called at gunicorn's moments with gunicorn's arguments."""
from __future__ import annotations

import signal

from support import apps


def test_hooks_run_at_their_moments(serve):
    apps.install("recording_hooks", serve.dir, "gunicorn.conf.py")
    server = serve("webapp").wait_ready(workers=2)
    assert server.request("/hooked")[0] == 200
    log = serve.dir / "hooks.log"
    server.wait_until(lambda: "post_request GET /hooked 200" in log.read_text(), message="for post_request")
    server.signal(signal.SIGHUP)
    server.wait_until(lambda: "on_reload" in log.read_text(), message="for on_reload")
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    lines = log.read_text().splitlines()
    assert lines[0] == "nworkers_changed 2 None"
    assert lines.index("when_ready 1") < lines.index("pre_fork 1")
    assert lines.count("post_fork True") >= 4 and lines.count("post_worker_init True") >= 4
    assert "pre_request GET /hooked" in lines
    assert lines.count("worker_exit True") >= 4
    assert lines.count("child_exit True") >= 4
    assert lines[-1] == "on_exit"
