"""SECURITY.md states the defaults of the limits as the settings table has them."""
import re

from support import ROOT

from fastwsgi.settings import BY_NAME

SECURITY_MD = ROOT / "SECURITY.md"
ROW = re.compile(r"^\| `(\w+)` \| ([0-9.]+) ", re.MULTILINE)


def test_security_md_names_the_limits_with_their_defaults():
    rows = dict(ROW.findall(SECURITY_MD.read_text()))
    assert {"limit_request_line", "limit_request_body", "header_timeout", "min_upload_rate",
            "body_memory_limit", "worker_connections", "keepalive"} <= set(rows)
    for name, stated in rows.items():
        assert float(stated) == BY_NAME[name].default, (
            f"SECURITY.md says {name} defaults to {stated}, settings.py to {BY_NAME[name].default}")
