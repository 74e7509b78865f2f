"""SAP AI Core service keys: parsing, normalising, and keeping secrets out of every message.

A service key arrives as a file, a dict (a Kubernetes Secret's value), or SAP's environment
conventions (``AICORE_SERVICE_KEY``, else ``AICORE_CLIENT_ID`` & co.). Whatever the source, the
result is one :class:`ServiceKey` with a token URL ending in ``/oauth/token`` and an API base URL
ending in ``/v2``. Errors name the field that is missing or wrong, never its value.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from bulkterm.aiapi.errors import CredentialsError

TOKEN_PATH = "/oauth/token"
API_PREFIX = "/v2"


class ServiceKey(BaseModel):
    """Normalised credentials. ``repr``/``str`` never show secrets (pydantic ``SecretStr``)."""

    model_config = ConfigDict(frozen=True)

    client_id: str
    token_url: str
    api_url: str
    client_secret: SecretStr | None = None
    certificate: SecretStr | None = None
    private_key: SecretStr | None = None
    resource_group: str | None = None

    @property
    def uses_certificate(self) -> bool:
        return self.certificate is not None

    def require_https(self) -> None:
        """Refuse plain-HTTP URLs: the key's secret (or its certificate's signature) and every
        token would cross the network readable. Callers that allow plain HTTP (a simulator,
        tests) do not call this."""
        plain = [
            field
            for field, url in (("token URL", self.token_url), ("AI_API_URL", self.api_url))
            if url.lower().startswith("http://")
        ]
        if plain:
            raise CredentialsError(
                f"the service key's {' and '.join(plain)} use plain HTTP: the AI API and its "
                "token endpoint are used over HTTPS only (plain HTTP is for a local simulator "
                "and tests, where it must be allowed explicitly)"
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "service key") -> ServiceKey:
        """Parse SAP's service-key JSON (secret or x509 variant)."""
        if not isinstance(data, Mapping):
            raise CredentialsError(f"{source}: expected a JSON object, got {type(data).__name__}")
        client_id = _required_str(data, "clientid", source)
        serviceurls = data.get("serviceurls")
        if not isinstance(serviceurls, Mapping):
            raise CredentialsError(
                f"{source}: missing field 'serviceurls' (an object with AI_API_URL)"
            )
        api_url = _required_str(serviceurls, "AI_API_URL", source, prefix="serviceurls.")
        if "certificate" in data or "key" in data or "certurl" in data:
            certificate = _required_str(data, "certificate", source)
            private_key = _required_str(data, "key", source)
            auth_base = _required_str(data, "certurl", source)
            return cls(
                client_id=client_id,
                token_url=normalise_token_url(auth_base, field=f"{source}: certurl"),
                api_url=normalise_api_url(api_url, field=f"{source}: serviceurls.AI_API_URL"),
                certificate=SecretStr(certificate.replace("\\n", "\n")),
                private_key=SecretStr(private_key.replace("\\n", "\n")),
            )
        secret = _required_str(data, "clientsecret", source)
        auth_base = _required_str(data, "url", source)
        return cls(
            client_id=client_id,
            token_url=normalise_token_url(auth_base, field=f"{source}: url"),
            api_url=normalise_api_url(api_url, field=f"{source}: serviceurls.AI_API_URL"),
            client_secret=SecretStr(secret),
        )

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "service key") -> ServiceKey:
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            # The parser's message can quote the document; report only the position.
            where = (
                f" at line {exc.lineno} column {exc.colno}"
                if isinstance(exc, json.JSONDecodeError)
                else ""
            )
            raise CredentialsError(f"{source}: not valid JSON{where}") from None
        return cls.from_dict(data, source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ServiceKey:
        p = Path(path)
        try:
            text = p.read_bytes()
        except OSError as exc:
            raise CredentialsError(
                f"service key file {str(p)!r}: cannot read ({exc.strerror})"
            ) from None
        return cls.from_json(text, source=f"service key file {str(p)!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceKey:
        """SAP's conventions: ``AICORE_SERVICE_KEY`` (whole JSON) first, else ``AICORE_*`` fields."""
        env = os.environ if environ is None else environ
        resource_group = env.get("AICORE_RESOURCE_GROUP") or None
        if env.get("AICORE_SERVICE_KEY"):
            key = cls.from_json(env["AICORE_SERVICE_KEY"], source="AICORE_SERVICE_KEY")
            return key.model_copy(update={"resource_group": resource_group})
        names = ("AICORE_CLIENT_ID", "AICORE_CLIENT_SECRET", "AICORE_AUTH_URL", "AICORE_BASE_URL")
        if not any(env.get(n) for n in names):
            raise CredentialsError(
                "no credentials: set AICORE_SERVICE_KEY, or AICORE_CLIENT_ID, AICORE_CLIENT_SECRET, "
                "AICORE_AUTH_URL and AICORE_BASE_URL, or pass a service key file"
            )
        missing = [n for n in names if not env.get(n)]
        if missing:
            raise CredentialsError(f"environment: missing {', '.join(missing)}")
        return cls(
            client_id=env["AICORE_CLIENT_ID"],
            client_secret=SecretStr(env["AICORE_CLIENT_SECRET"]),
            token_url=normalise_token_url(env["AICORE_AUTH_URL"], field="AICORE_AUTH_URL"),
            api_url=normalise_api_url(env["AICORE_BASE_URL"], field="AICORE_BASE_URL"),
            resource_group=resource_group,
        )

    @classmethod
    def load(cls, value: ServiceKey | Mapping[str, Any] | str | os.PathLike[str]) -> ServiceKey:
        """Accept whatever callers hold: a key, a dict, a JSON string or a file path."""
        if isinstance(value, ServiceKey):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        if isinstance(value, str) and value.lstrip().startswith("{"):
            return cls.from_json(value)
        return cls.from_file(value)


def _required_str(data: Mapping[str, Any], field: str, source: str, *, prefix: str = "") -> str:
    value = data.get(field)
    if value is None:
        raise CredentialsError(f"{source}: missing field '{prefix}{field}'")
    if not isinstance(value, str) or not value.strip():
        raise CredentialsError(f"{source}: field '{prefix}{field}' must be a non-empty string")
    return value.strip()


def _check_url(url: str, field: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise CredentialsError(f"{field}: not an http(s) URL")
    return url.rstrip("/")


def normalise_token_url(url: str, *, field: str = "url") -> str:
    """``https://x.authentication…`` → ``https://x.authentication…/oauth/token`` (idempotent)."""
    url = _check_url(url, field)
    return url if url.endswith(TOKEN_PATH) else url + TOKEN_PATH


def normalise_api_url(url: str, *, field: str = "AI_API_URL") -> str:
    """``https://api.ai…`` → ``https://api.ai…/v2``; also accepts a URL already ending in ``/v2``
    or ``/v2/lm`` (as SAP's Python client is configured)."""
    url = _check_url(url, field)
    if url.endswith("/v2/lm"):
        url = url[: -len("/lm")]
    return url if url.endswith(API_PREFIX) else url + API_PREFIX
