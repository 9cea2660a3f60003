"""The peer benchmark behind ``bench/run.py``, one module per responsibility.

- ``scenarios``: the loads (app, connections, wrk script)
- ``peers``: how each server is installed, checked and started
- ``processes``: starting, pinning and stopping processes; their CPU time
- ``wrk``: wrk's command line and the parsing of its output
- ``cell``: one server x scenario measured: check, warm-up, runs, noise
- ``report``: the progress lines, results.md, results.png and path scrubbing

``bench/run.py`` is the command line that orchestrates them.  Everything here
is standard library only (matplotlib for the chart, when importable), so the
peers' interpreter can import ``report`` to draw the chart.
"""
import os

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH_DIR)
BENCH_HOME = os.environ.get(
    "FASTWSGI_BENCH_HOME", os.path.join(os.path.expanduser("~"), ".cache", "fastwsgi-bench")
)
HOST = "127.0.0.1"
