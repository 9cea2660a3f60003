"""HUP with a config file that raises: the master logs why and keeps its running
config and workers (gunicorn exits here); a good config file is taken afterwards."""
from __future__ import annotations

import signal
import time

import pytest

BROKEN_CONFIGS = {
    "raises": 'raise RuntimeError("config file broken on purpose")\n',
    "syntax": "workers = (\n",
    "exits": "import sys\nsys.exit(1)\n",
}


@pytest.mark.parametrize("kind", sorted(BROKEN_CONFIGS))
def test_hup_with_broken_config_keeps_serving(serve, kind):
    if serve.name == "gunicorn":
        pytest.skip("gunicorn exits on a HUP whose config file raises")
    config = serve.dir / "conf.py"
    config.write_text("workers = 1\n")
    server = serve("-b", "127.0.0.1:0", "-c", str(config), "webapp").wait_ready()
    workers = server.worker_pids()

    config.write_text(BROKEN_CONFIGS[kind])
    server.signal(signal.SIGHUP)
    server.wait_for_log(r"\[ERROR\] Reload failed, keeping the current configuration: "
                        r"Failed to read config file: .*conf\.py", timeout=10)
    time.sleep(0.5)
    assert server.proc.poll() is None
    assert server.worker_pids() == workers
    assert server.request("/")[0] == 200

    config.write_text("workers = 2\n")
    server.signal(signal.SIGHUP)
    server.wait_until(lambda: len(server.worker_pids() - workers) == 2, timeout=15,
                      message="for two new workers")


def test_broken_config_file_at_start_exits_1(serve):
    (serve.dir / "conf.py").write_text(BROKEN_CONFIGS["raises"])
    server = serve("-b", "127.0.0.1:0", "-c", "conf.py", "webapp")
    assert server.wait_exit() == 1
    assert "Failed to read config file: conf.py" in server.log
    assert "RuntimeError: config file broken on purpose" in server.log
