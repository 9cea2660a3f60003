"""App spec resolution, with gunicorn's messages for each mistake."""
from __future__ import annotations

import sys

import pytest

from fastwsgi.app import AppLoader, add_pythonpath, import_app
from fastwsgi.errors import AppImportError

APP = """
def application(environ, start_response):
    return [b"default"]

def app(environ, start_response):
    return [b"named"]

def create_app(greeting="hi", key=0):
    def made(environ, start_response):
        return [f"{greeting}:{key}".encode()]
    return made

def broken_factory():
    raise TypeError("raised inside the factory")

def returns_none():
    return None

not_callable = 3
"""


@pytest.fixture
def hello(project):
    project.write("hello.py", APP)
    project.write("pkg/__init__.py", "")
    project.write("pkg/web.py", APP)
    return project


def body(app):
    return b"".join(app({}, None))


@pytest.mark.parametrize("spec, expected", [
    ("hello", b"default"),
    ("hello:app", b"named"),
    ("pkg.web:app", b"named"),
    ("hello:create_app()", b"hi:0"),
    ("hello:create_app('yo', key=1)", b"yo:1"),
    ("hello:create_app(greeting=\"a b\", key=-2)", b"a b:-2"),
])
def test_valid_specs(hello, spec, expected):
    assert body(import_app(spec)) == expected


@pytest.mark.parametrize("spec, message", [
    ("hello:nope", "Failed to find attribute 'nope' in 'hello'."),
    ("hello:not_callable", "Application object must be callable."),
    ("hello:returns_none()", "Failed to find application object: 'returns_none()'"),
    ("hello:1+", "Failed to parse '1+' as an attribute name or function call."),
    ("hello:a.b", "Failed to parse 'a.b' as an attribute name or function call."),
    ("hello:create_app(x)", "Failed to parse arguments as literal values: 'create_app(x)'"),
    ("hello:create_app(__import__('os'))", "Failed to parse arguments as literal values"),
    ("hello:create_app(1, 2, 3)", "TypeError: create_app() takes from 0 to 2 positional arguments but 3 were given"),
])
def test_app_load_errors(hello, spec, message):
    with pytest.raises(AppImportError) as error:
        import_app(spec)
    assert message in str(error.value)


def test_type_error_inside_factory_propagates(hello):
    with pytest.raises(TypeError, match="raised inside the factory"):
        import_app("hello:broken_factory()")


def test_missing_module_is_an_import_error_not_app_load_error(hello):
    with pytest.raises(ImportError) as error:
        import_app("nosuchmodule")
    assert not isinstance(error.value, AppImportError)
    assert "No module named 'nosuchmodule'" in str(error.value)


def test_file_name_instead_of_module_gets_a_hint(hello):
    with pytest.raises(ImportError, match="did you mean 'hello:application'"):
        import_app("hello.py")


def test_pythonpath_goes_first(hello, tmp_path):
    extra = tmp_path / "lib"
    extra.mkdir()
    (extra / "elsewhere.py").write_text(APP)
    add_pythonpath(str(extra))
    try:
        assert sys.path[0] == str(extra)
        assert body(import_app("elsewhere:app")) == b"named"
    finally:
        sys.path.remove(str(extra))


def test_loader_loads_once(hello):
    loader = AppLoader("hello:app")
    assert not loader.loaded
    assert loader.wsgi() is loader.wsgi()
    assert loader.loaded
