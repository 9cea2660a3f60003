"""The PEP 517 backend: setuptools, asking for Cython only where C must be generated.

An sdist carries the C generated when it was made (see MANIFEST.in and
setup.py), so a wheel built from it (what ``pip install fastwsgi-X.tar.gz``
and ``python -m build`` do) needs a C compiler and no Cython. A source
checkout has no C, and making an sdist generates it: both need Cython.
"""
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # the hooks not overridden below are setuptools' own

CYTHON = "Cython>=3.0"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
GENERATED_C = ("_parser.c", "_environ.c", "_loop.c")


def _is_unpacked_sdist() -> bool:
    # PKG-INFO at the top is what an unpacked sdist has and a checkout lacks.
    return (PROJECT_ROOT / "PKG-INFO").is_file() and all(
        (PROJECT_ROOT / "fastwsgi" / name).is_file() for name in GENERATED_C
    )


def get_requires_for_build_sdist(config_settings=None):
    return _setuptools.get_requires_for_build_sdist(config_settings) + [CYTHON]


def get_requires_for_build_wheel(config_settings=None):
    cython = [] if _is_unpacked_sdist() else [CYTHON]
    return _setuptools.get_requires_for_build_wheel(config_settings) + cython


def get_requires_for_build_editable(config_settings=None):
    return _setuptools.get_requires_for_build_editable(config_settings) + [CYTHON]
