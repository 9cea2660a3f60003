"""The .pyi stubs of the compiled modules name what the modules hold (PEP 561)."""
from __future__ import annotations

import ast
import importlib
import inspect
import types
from pathlib import Path

import pytest
from support import ROOT

PACKAGE = ROOT / "fastwsgi"
COMPILED = ["_parser", "_environ", "_loop"]


def stub_names(tree: ast.Module) -> dict:
    """Top-level name -> set of member names (None for a non-class)."""
    names = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            members = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    members.add(item.name)
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
            names[node.name] = members
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names[node.name] = None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = None
    return names


def public(names) -> set:
    return {name for name in names if not name.startswith("_")}


@pytest.mark.parametrize("module_name", COMPILED)
def test_the_stub_names_every_public_object_and_member(module_name):
    module = importlib.import_module(f"fastwsgi.{module_name}")
    assert Path(module.__file__).suffix == ".so"
    stub = stub_names(ast.parse((PACKAGE / f"{module_name}.pyi").read_text()))
    held = {name for name in public(dir(module))
            if not isinstance(getattr(module, name), types.ModuleType)}
    assert public(stub) == held
    for name, members in stub.items():
        if members is None:
            continue
        cls = getattr(module, name)
        assert inspect.isclass(cls), name
        assert public(vars(cls)) <= members, name
        # ParseError's attributes are set per instance, in __init__
        owner = cls(400, "reason") if issubclass(cls, BaseException) else cls
        for member in public(members):
            assert hasattr(owner, member), f"{name}.{member}"


def test_the_package_is_marked_typed():
    assert (PACKAGE / "py.typed").exists()
