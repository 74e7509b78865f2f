"""A throwaway PKI for TLS tests: a CA and a server certificate for 127.0.0.1, made by openssl.

The simulator serves HTTPS with the server pair (``--tls-cert``/``--tls-key``); a client trusts
it only when given ``ca`` (``--ca-bundle``). Keys are P-256 (fast to make) and live one day.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER_EXTENSIONS = """\
subjectAltName = IP:127.0.0.1, DNS:localhost
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
"""


@dataclass(frozen=True)
class Pki:
    #: The CA certificate (PEM): the bundle a client must be given.
    ca: Path
    #: The server's certificate, signed by the CA, for IP 127.0.0.1 and localhost.
    cert: Path
    key: Path
    #: A second CA that signed nothing here: a bundle that does not help.
    other_ca: Path


def _openssl(*args: str, cwd: Path) -> None:
    proc = subprocess.run(
        ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    assert proc.returncode == 0, f"openssl {' '.join(args)}: {proc.stderr}"


def _ca(directory: Path, name: str) -> tuple[Path, Path]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key.name, "-out", cert.name, "-days", "1", "-subj", f"/CN=bulkterm test {name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    return cert, key


def make_test_pki(directory: Path) -> Pki:
    if shutil.which("openssl") is None:  # pragma: no cover - openssl is on every project machine
        pytest.fail("the TLS tests need the openssl command", pytrace=False)
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca(directory, "ca")
    other_ca, _ = _ca(directory, "other-ca")
    (directory / "server.ext").write_text(SERVER_EXTENSIONS)
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", ca.name, "-CAkey", ca_key.name,
        "-set_serial", str(secrets.randbits(63)), "-days", "1", "-out", "server.pem",
        "-extfile", "server.ext",
        cwd=directory,
    )  # fmt: skip
    return Pki(
        ca=ca, cert=directory / "server.pem", key=directory / "server.key", other_ca=other_ca
    )
