"""The certificate of the HTTPS metrics endpoint: from a folder, or self-signed at start-up.

``--metrics-cert-dir DIR`` names a folder holding ``tls.crt`` and ``tls.key`` (PEM), the keys of
a ``kubernetes.io/tls`` Secret such as the one a cert-manager Certificate writes, mounted into
the pod. Kubernetes replaces a mounted Secret's files when it changes (cert-manager renews a
certificate at two thirds of its life), so :class:`CertificateFiles` loads them again when they
change, as controller-runtime's certwatcher does: a pod running for months never serves an
expired certificate.

Without a folder the operator makes a self-signed certificate when it starts, as
controller-runtime does since v0.16: the scrape is encrypted, and Prometheus, which cannot
verify such a certificate, skips the verification (the chart's ServiceMonitor says
``insecureSkipVerify`` then). The key never leaves the process: it is written to a private
temporary folder only for the moment OpenSSL reads it.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
#: A self-signed certificate lives as long as the process, and at most this long.
SELF_SIGNED_DAYS = 365
#: x509 key usages: the self-signed certificate signs the TLS handshake and itself.
KEY_USAGES = (
    "digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
    "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only",
)  # fmt: skip
SIGNS = {"digital_signature", "key_cert_sign"}


class CertificateProblem(ValueError):
    """A certificate or key that cannot be used; the message is one line naming the file."""


def server_context() -> ssl.SSLContext:
    """A server-side context without a certificate yet: TLS 1.2 or newer."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _no_password() -> bytes:
    # Without a callback OpenSSL would ask for an encrypted key's password on the terminal.
    return b""


def load_certificate(context: ssl.SSLContext, cert_dir: Path) -> None:
    """Load ``cert_dir``/tls.crt and tls.key into ``context``; :class:`CertificateProblem` with
    the file and the reason when they are missing, unreadable or not a matching pair."""
    if not cert_dir.is_dir():
        what = "no such folder" if not cert_dir.exists() else "not a folder"
        raise CertificateProblem(f"{cert_dir}: {what} (it must hold {CERT_FILE} and {KEY_FILE})")
    cert, key = cert_dir / CERT_FILE, cert_dir / KEY_FILE
    for path in (cert, key):
        try:
            path.read_bytes()
        except FileNotFoundError:
            raise CertificateProblem(f"{path}: no such file") from None
        except OSError as error:
            reason = error.strerror or type(error).__name__
            raise CertificateProblem(f"{path}: cannot read it ({reason})") from None
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except ssl.SSLError as error:
        detail = error.reason or str(error)
        raise CertificateProblem(
            f"{cert} and {key}: not a PEM certificate and its unencrypted private key ({detail})"
        ) from None


@dataclass
class CertificateFiles:
    """The certificate folder of a running endpoint, loaded again when its files change."""

    cert_dir: Path
    _seen: tuple[tuple[int, int, int], ...] = ()

    def _stamp(self) -> tuple[tuple[int, int, int], ...]:
        stamps = []
        for name in (CERT_FILE, KEY_FILE):
            # stat follows the symlinks of a mounted Secret (tls.crt -> ..data/tls.crt).
            info = os.stat(self.cert_dir / name)
            stamps.append((info.st_ino, info.st_mtime_ns, info.st_size))
        return tuple(stamps)

    def load(self, context: ssl.SSLContext) -> None:
        """The first load; raises :class:`CertificateProblem`."""
        load_certificate(context, self.cert_dir)
        self._seen = self._stamp()

    def reload_if_changed(self, context: ssl.SSLContext) -> bool:
        """Load the files again if they changed since the last load; True if they were. A
        pair that cannot be loaded (half written, mismatched) is logged and the previous one
        kept: connections made meanwhile get the old certificate."""
        try:
            stamp = self._stamp()
        except OSError as error:
            log.warning("metrics certificate in %s unreadable: %s", self.cert_dir, error.strerror)
            return False
        if stamp == self._seen:
            return False
        try:
            load_certificate(context, self.cert_dir)
        except CertificateProblem as problem:
            log.warning("metrics certificate not reloaded, the previous one stays: %s", problem)
            return False
        self._seen = stamp
        log.info("metrics certificate reloaded from %s", self.cert_dir)
        return True


def self_signed(context: ssl.SSLContext) -> bytes:
    """Make a self-signed certificate and key (P-256) and load them into ``context``; returns
    the certificate (PEM), which is public. Names: localhost, 127.0.0.1, ::1 and this host's
    name (a pod's name)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    host = socket.gethostname() or "localhost"
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"bulkterm-metrics@{host}"[:64])])
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    if host != "localhost":
        names.append(x509.DNSName(host))
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "::1")]
    now = datetime.datetime.now(datetime.UTC)
    usage = x509.KeyUsage(**{flag: flag in SIGNS for flag in KEY_USAGES})
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # Its own issuer: a client given this certificate as its CA can verify it.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # OpenSSL reads a key from a file only: a folder only this user can enter, gone at once.
    with tempfile.TemporaryDirectory(prefix="bulkterm-metrics-tls-") as folder:
        cert_path, key_path = Path(folder) / CERT_FILE, Path(folder) / KEY_FILE
        cert_path.write_bytes(cert_pem)
        descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(key_pem)
        context.load_cert_chain(cert_path, key_path)
    return cert_pem
