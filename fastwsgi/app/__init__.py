"""Resolve an app spec to the WSGI callable, as gunicorn's ``import_app`` does.

Specs: ``module`` (callable named ``application``), ``module:name``,
``pkg.mod:name``, ``module:factory()`` and ``module:factory('arg', key=1)`` —
arguments are literals only, parsed with ``ast.literal_eval``, never evaluated.

A spec that parses but names nothing callable raises AppImportError (the worker
exits 4, "App failed to load."); a module that fails to import raises its own
exception (the worker exits 3, "Worker failed to boot.").
"""
from __future__ import annotations

import ast
import importlib
import inspect
import logging
import os
import sys
import traceback
from typing import Any, Callable

from ..errors import AppImportError

DEFAULT_NAME = "application"


def _parse_target(spec: str) -> tuple[str, list | None, dict | None]:
    """'name' or 'factory(args)' → (name, args, kwargs); args is None for a plain name."""
    try:
        expression = ast.parse(spec, mode="eval").body
    except SyntaxError:
        raise AppImportError(f"Failed to parse {spec!r} as an attribute name or function call.") from None
    if isinstance(expression, ast.Name):
        return expression.id, None, None
    if not isinstance(expression, ast.Call):
        raise AppImportError(f"Failed to parse {spec!r} as an attribute name or function call.")
    if not isinstance(expression.func, ast.Name):
        raise AppImportError(f"Function reference must be a simple name: {spec!r}")
    try:
        args = [ast.literal_eval(arg) for arg in expression.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in expression.keywords}
    except ValueError:
        # literal_eval's own message does not say which spec was wrong.
        raise AppImportError(f"Failed to parse arguments as literal values: {spec!r}") from None
    return expression.func.id, args, kwargs


def _called_with_wrong_args(factory: Callable) -> bool:
    """Whether the TypeError being handled was raised by the call itself (bad
    arguments), not from inside the factory: then the traceback ends in this frame."""
    tb = sys.exc_info()[2]
    try:
        while tb is not None:
            if tb.tb_frame.f_code is getattr(factory, "__code__", None):
                return False
            tb = tb.tb_next
        return True
    finally:
        del tb


def import_app(spec: str) -> Callable:
    module_name, _, target = spec.partition(":")
    target = target or DEFAULT_NAME
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        if module_name.endswith(".py") and os.path.exists(module_name):
            raise ImportError(f"Failed to find application, did you mean "
                              f"'{module_name.rsplit('.', 1)[0]}:{target}'?") from None
        raise

    name, args, kwargs = _parse_target(target)
    try:
        app: Any = getattr(module, name)
    except AttributeError:
        if logging.root.level == logging.DEBUG:
            traceback.print_exc()
        raise AppImportError(f"Failed to find attribute {name!r} in {module_name!r}.") from None

    if args is not None:
        try:
            app = app(*args, **kwargs)
        except TypeError as e:
            if inspect.isfunction(app) and _called_with_wrong_args(app):
                raise AppImportError("".join(traceback.format_exception_only(TypeError, e)).strip()) from None
            raise

    if app is None:
        raise AppImportError(f"Failed to find application object: {target!r}")
    if not callable(app):
        raise AppImportError("Application object must be callable.")
    return app


def add_pythonpath(pythonpath: str | None) -> None:
    """--pythonpath a,b: put each directory first on sys.path (gunicorn's order)."""
    if not pythonpath:
        return
    for path in pythonpath.split(","):
        absolute = os.path.abspath(path)
        if absolute not in sys.path:
            sys.path.insert(0, absolute)


def load_paste_app(config_uri: str, global_conf: dict | None = None) -> Callable:
    """The app a PasteDeploy ini file names (``FILE`` or ``FILE#name``), loaded as
    gunicorn's --paste loads it: relative to the working directory, with
    --paste-global's variables as its global_conf."""
    try:
        from paste.deploy import loadapp
    except ImportError:
        raise AppImportError("--paste needs PasteDeploy, which is not installed: "
                             "pip install 'fastwsgi[paste]'") from None
    if ":" not in config_uri:
        config_uri = f"config:{config_uri}"
    return loadapp(config_uri, relative_to=os.getcwd(), global_conf=global_conf)


class AppLoader:
    """Loads the app once, on first use: in the master with --preload, else in each
    worker. ``paste``: the spec is a PasteDeploy ini's (load_paste_app), with this
    global_conf."""

    def __init__(self, spec: str, paste: bool = False, global_conf: dict | None = None) -> None:
        self.spec = spec
        self.paste = paste
        self.global_conf = global_conf
        self._app: Callable | None = None

    def wsgi(self) -> Callable:
        if self._app is None:
            if self.paste:
                self._app = load_paste_app(self.spec, self.global_conf)
            else:
                self._app = import_app(self.spec)
        return self._app

    @property
    def loaded(self) -> bool:
        return self._app is not None
