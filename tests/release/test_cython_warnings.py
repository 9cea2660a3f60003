"""Cython's extra warnings (unused entries, variables read before they are set) stay
silent for the three extensions: dead declarations do not pile up."""
import subprocess
import sys

import pytest
from support import ROOT

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("extension", ["_parser", "_environ", "_loop"])
def test_cython_warning_extra_is_silent(extension, tmp_path):
    pytest.importorskip("Cython")
    generated = subprocess.run(
        [sys.executable, "-m", "cython", "--warning-extra", "-3", "-I", str(ROOT),
         str(ROOT / "fastwsgi" / f"{extension}.pyx"), "-o", str(tmp_path / f"{extension}.c")],
        capture_output=True, text=True, timeout=300, check=False)
    assert generated.returncode == 0, generated.stderr
    assert "warning" not in generated.stderr, generated.stderr
