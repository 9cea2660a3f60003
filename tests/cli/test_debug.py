"""fastwsgi.debug's line tracer (--spew) on code with and without a module file."""
from __future__ import annotations

import linecache
import sys

from fastwsgi.debug import LineTracer


def traced(function, capsys) -> list[str]:
    sys.settrace(LineTracer())
    try:
        function()
    finally:
        sys.settrace(None)
    return capsys.readouterr().out.splitlines()


def test_lines_of_a_module_name_it_and_its_source(capsys):
    def add():
        total = 1 + 1
        return total
    lines = traced(add, capsys)
    assert any(line.startswith(f"{__name__}:") and line.endswith("total = 1 + 1") for line in lines)


def test_exec_d_code_is_traced_from_its_cached_source(capsys):
    # Code without __file__ in its globals (attrs and dataclasses generate such
    # code): the source comes from inspect, the module is [unknown] (gunicorn's).
    filename = "<generated-for-spew>"
    source = "def generated():\n    x = 1\n    return x\n"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {"__name__": "generated_module"}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102
    lines = traced(namespace["generated"], capsys)
    assert "[unknown]:2:     x = 1" in lines
    assert "[unknown]:3:     return x" in lines
