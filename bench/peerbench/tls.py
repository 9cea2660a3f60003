"""The TLS rows' certificate: a throwaway self-signed one, made at run time in the run's temporary directory."""
from __future__ import annotations

import dataclasses
import os
import shutil
import ssl
import subprocess

from . import HOST


@dataclasses.dataclass(frozen=True)
class Certificate:
    certfile: str
    keyfile: str

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate alone and checks the host name."""
        return ssl.create_default_context(cafile=self.certfile)


def make_certificate(directory: str, timeout: float = 30) -> Certificate:
    """A P-256 key (PKCS#8, as granian requires) and a one-day certificate for HOST.

    Raises RuntimeError when openssl is missing or fails.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl not found (apt-get install -y openssl)")
    os.makedirs(directory, exist_ok=True)
    cert = Certificate(os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem"))
    cmd = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-days", "1", "-subj", f"/CN={HOST}", "-addext", f"subjectAltName=IP:{HOST}",
           "-keyout", cert.keyfile, "-out", cert.certfile]
    made = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if made.returncode != 0:
        raise RuntimeError(f"openssl failed: {made.stderr.strip()[-300:]}")
    return cert
