"""Build the Cython extensions; metadata lives in pyproject.toml.

Two ways in:
- a source checkout: the .pyx are cythonized, so Cython>=3.0 is needed (the
  in-tree backend, _build/fastwsgi_build.py, asks for it);
- an sdist: it carries the C generated when it was made (MANIFEST.in), and
  with Cython absent that C is compiled as it is, so only a C compiler is
  needed (the backend does not ask for Cython there).
"""
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.command.sdist import sdist

if not sys.platform.startswith("linux"):
    sys.exit("fastwsgi builds on Linux only: its event loop is built on epoll.")

HERE = os.path.dirname(os.path.abspath(__file__))
EXTENSIONS = ("_parser", "_environ", "_loop")
# What a .pyx may pull in: a change to any of them makes its C stale (a C header,
# includes/*.h, is compiled into it too).
CYTHON_SOURCE_SUFFIXES = (".pyx", ".pxd", ".pxi", ".h")
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


def _source(name, suffix):
    # setuptools wants source paths relative to the project root.
    return f"fastwsgi/{name}{suffix}"


def _exists(relative_path):
    return os.path.exists(os.path.join(HERE, relative_path))


def _newest_cython_source():
    newest = 0.0
    for directory, _, files in os.walk(os.path.join(HERE, "fastwsgi")):
        for file_name in files:
            if file_name.endswith(CYTHON_SOURCE_SUFFIXES):
                newest = max(newest, os.path.getmtime(os.path.join(directory, file_name)))
    return newest


def _warn_if_stale(c_sources):
    """Without Cython, C older than a .pyx/.pxd/.pxi of a checkout is compiled anyway: say so."""
    if _exists("PKG-INFO"):
        return
    newest = _newest_cython_source()
    stale = [c for c in c_sources if _exists(c) and os.path.getmtime(os.path.join(HERE, c)) < newest]
    if stale:
        print(f"warning: Cython is not installed and {', '.join(stale)} are older than the "
              "Cython sources: they are compiled as they are (pip install 'Cython>=3.0')",
              file=sys.stderr)


def _cythonize():
    """Cython's cythonize when it can run here (Cython installed, .pyx present), else None."""
    try:
        from Cython.Build import cythonize
    except ImportError:
        return None
    return cythonize if all(_exists(_source(name, ".pyx")) for name in EXTENSIONS) else None


def _c_headers():
    # The C every extension includes: a change to one makes every .so stale.
    directory = os.path.join(HERE, "fastwsgi", "includes")
    return sorted(f"fastwsgi/includes/{name}" for name in os.listdir(directory) if name.endswith(".h"))


def _extension(name, suffix):
    return Extension(f"fastwsgi.{name}", [_source(name, suffix)], depends=_c_headers(),
                     extra_compile_args=COMPILE_ARGS)


def _extensions(cythonize):
    if cythonize is not None:
        extensions = [_extension(name, ".pyx") for name in EXTENSIONS]
        return cythonize(extensions, compiler_directives=DIRECTIVES, annotate=DEBUG)
    return [_extension(name, ".c") for name in EXTENSIONS]


def _missing_c(extensions):
    return [source for extension in extensions for source in extension.sources if not _exists(source)]


class BuildExt(build_ext):
    """Compiles the extensions in parallel, and says what is missing when there is no C."""

    def finalize_options(self):
        super().finalize_options()
        if self.parallel is None:
            self.parallel = os.cpu_count() or 1

    def run(self):
        missing = _missing_c(self.extensions)
        if missing:
            raise SystemExit(
                f"fastwsgi: {', '.join(missing)} missing: building from a source checkout "
                "needs Cython>=3.0 (pip install 'Cython>=3.0'); an sdist carries the C."
            )
        if CYTHONIZE is None:
            _warn_if_stale([source for extension in self.extensions for source in extension.sources])
        super().run()


class Sdist(sdist):
    """Makes an sdist only with C freshly generated from its .pyx: it must build without Cython."""

    def run(self):
        if CYTHONIZE is None and not _exists("PKG-INFO"):
            raise SystemExit(
                "fastwsgi: making an sdist needs Cython>=3.0, which generates the C it carries "
                "(pip install 'Cython>=3.0')."
            )
        super().run()


CYTHONIZE = _cythonize()
setup(ext_modules=_extensions(CYTHONIZE), cmdclass={"build_ext": BuildExt, "sdist": Sdist})
