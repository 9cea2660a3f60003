"""Build the Cython extensions; metadata lives in pyproject.toml.

An sdist carries the generated C, so building from it needs no Cython: when a
.pyx is absent or Cython is not installed, the .c beside it is compiled.
"""
import os
import sys

from setuptools import Extension, setup

if not sys.platform.startswith("linux"):
    sys.exit("fastwsgi builds on Linux only: its event loop is built on epoll.")

EXTENSIONS = [name for name in ("_parser", "_environ", "_loop") if os.path.exists(f"fastwsgi/{name}.pyx") or os.path.exists(f"fastwsgi/{name}.c")]
DEBUG = os.environ.get("FASTWSGI_DEBUG_BUILD") == "1"
COMPILE_ARGS = ["-O0", "-g"] if DEBUG else ["-O3", "-fno-strict-aliasing"]
DIRECTIVES = {
    "language_level": "3",
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
    "embedsignature": True,
}


def _extensions():
    here = os.path.dirname(os.path.abspath(__file__))
    sources_exist = all(
        os.path.exists(os.path.join(here, "fastwsgi", f"{name}.pyx")) for name in EXTENSIONS
    )
    try:
        from Cython.Build import cythonize
    except ImportError:
        cythonize = None
    suffix = ".pyx" if sources_exist and cythonize else ".c"
    extensions = [
        Extension(
            f"fastwsgi.{name}",
            [f"fastwsgi/{name}{suffix}"],
            extra_compile_args=COMPILE_ARGS,
        )
        for name in EXTENSIONS
    ]
    if suffix == ".c":
        return extensions
    return cythonize(extensions, compiler_directives=DIRECTIVES, annotate=DEBUG)


setup(ext_modules=_extensions())
