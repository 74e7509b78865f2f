"""Tuning of the AI API client (:class:`ClientSettings`): timeouts, retries, pacing, paging, and
the CA bundle its TLS connections trust (:func:`load_ca_bundle`)."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ClientSettings(BaseModel):
    """Tuning of the client; defaults suit AI Core, tests shrink the delays."""

    model_config = ConfigDict(frozen=True)

    timeout_seconds: float = Field(default=30.0, gt=0)
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    #: Attempts per call, the first included: the retry budget.
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_initial_seconds: float = Field(default=0.5, ge=0)
    backoff_max_seconds: float = Field(default=30.0, ge=0)
    retry_after_cap_seconds: float = Field(default=120.0, ge=0)
    concurrency: int = Field(default=16, ge=1, le=256)
    rate_limit_per_second: float | None = Field(default=None, gt=0)
    page_size: int = Field(default=1000, ge=1, le=10000)
    #: PEM file of the CA certificates to trust for the AI API and its token endpoint, instead
    #: of the public ones (a corporate TLS-inspecting proxy, a private CA). ``None``: the public
    #: CAs (certifi). Either way certificates and host names are verified: no setting turns
    #: verification off. Read when each client is made (:func:`load_ca_bundle`), so a
    #: rotated file is picked up by the next run.
    ca_bundle: Path | None = None


class CaBundleError(ValueError):
    """A CA bundle that cannot be used; the message names the file and why."""


def load_ca_bundle(path: Path) -> ssl.SSLContext:
    """A client SSL context that trusts exactly the CA certificates in the PEM file ``path``.

    Exactly: the file replaces the public CAs, as ``curl --cacert``, ``pip --cert`` and
    ``REQUESTS_CA_BUNDLE`` do (to trust both, append the public bundle to the file).
    Certificates and host names are verified (``CERT_REQUIRED``, ``check_hostname``).
    Raises :class:`CaBundleError` for a missing, unreadable or empty file, or one holding no
    PEM certificate: at start-up, a clear error naming the file instead of a TLS failure on
    the first request.
    """
    if path.is_dir():
        raise CaBundleError(f"CA bundle {path}: is a directory, not a PEM file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CaBundleError(f"CA bundle {path}: no such file") from None
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise CaBundleError(f"CA bundle {path}: cannot read it ({reason})") from None
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise CaBundleError(
            f"CA bundle {path}: no PEM certificate in it "
            "(expected '-----BEGIN CERTIFICATE-----' blocks)"
        )
    try:
        # cadata given: the default (system) CAs are not loaded, only these.
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=data.decode("ascii"))
    except UnicodeDecodeError:
        raise CaBundleError(f"CA bundle {path}: not a PEM file (not ASCII text)") from None
    except (ssl.SSLError, ValueError) as error:
        detail = getattr(error, "reason", None) or "OpenSSL cannot parse a certificate in it"
        raise CaBundleError(
            f"CA bundle {path}: not a valid PEM certificate bundle ({detail})"
        ) from None
    if not context.cert_store_stats()["x509"]:
        raise CaBundleError(f"CA bundle {path}: no certificate could be loaded from it")
    return context
