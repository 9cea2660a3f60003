"""--reload and an app saved mid-edit: the master stays, the workers answer 500 with
the error in the error log, and the app is served again once the file is fixed."""
from __future__ import annotations

import time

import pytest

GOOD = '''
def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"{word}"]
'''
BROKEN = {
    "syntax": ("def application(environ, start_response)\n    return []\n", "SyntaxError"),
    "import": ("import no_such_module_here\n" + GOOD.format(word="never"), "no_such_module_here"),
}


RELOADER_FIRST_PASS = 2.0


def _until(server, predicate, timeout=10.0):
    """The first (status, body) answer for which predicate holds, asked every 0.1 s."""
    deadline = time.monotonic() + timeout
    while True:
        answer = server.request("/")[:2]
        if predicate(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"last answer {answer!r}; log:\n{server.log}")
        time.sleep(0.1)


@pytest.mark.parametrize("breakage", sorted(BROKEN))
def test_broken_save_answers_500_until_fixed(serve, breakage):
    if serve.name == "gunicorn" and breakage == "import":
        pytest.skip("gunicorn keeps serving through a SyntaxError only; other import errors end it")
    app_file = serve.dir / "editable.py"
    app_file.write_text(GOOD.format(word="one"))
    server = serve("-b", "127.0.0.1:0", "--reload", "editable",
                   env={"PYTHONDONTWRITEBYTECODE": "1"}).wait_ready()
    assert server.request("/")[:2] == (200, b"one")
    # gunicorn's reloader thread takes the files' mtimes on its first pass, which
    # can come after the worker's first answer: a save before it is not a change to
    # it. (fastwsgi's takes them before serving.) An editor's save comes later; wait
    # past that first pass so both servers see the same edit.
    time.sleep(RELOADER_FIRST_PASS)

    source, logged = BROKEN[breakage]
    app_file.write_text(source)
    status, body = _until(server, lambda answer: answer[0] != 200)
    assert status == 500
    server.wait_for_log(logged)
    assert server.proc.poll() is None
    if serve.name == "fastwsgi":
        assert b"Traceback" not in body

    time.sleep(RELOADER_FIRST_PASS)   # the worker answering 500 has a reloader of its own
    app_file.write_text(GOOD.format(word="two"))
    assert _until(server, lambda answer: answer[0] == 200) == (200, b"two")
    assert server.proc.poll() is None


def test_broken_app_without_reload_still_stops_the_server(serve):
    (serve.dir / "editable.py").write_text(BROKEN["syntax"][0])
    server = serve("-b", "127.0.0.1:0", "editable")
    assert server.wait_exit() == 3
