"""What the tests share: one in-thread server harness, one process launcher, one h11
client and reference reader, the parser corpora, the fixtures and the apps they serve.

Standard library only at import, here and in ``processes``: the wheel smoke test
(``release/smoke_wheel.py``) imports them in a venv that holds nothing but fastwsgi.
"""
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
