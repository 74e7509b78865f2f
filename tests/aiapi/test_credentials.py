"""Service keys: every accepted shape, and clear errors that never echo a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import CredentialsError

SECRET = "s3cr3t-value-that-must-not-leak"


def secret_key(**overrides: object) -> dict[str, object]:
    key: dict[str, object] = {
        "clientid": "sb-client!b1|aicore!b2",
        "clientsecret": SECRET,
        "url": "https://tenant.authentication.eu10.hana.ondemand.com",
        "identityzone": "tenant",
        "serviceurls": {"AI_API_URL": "https://api.ai.prod.eu-central-1.aws.ml.hana.ondemand.com"},
    }
    key.update(overrides)
    return key


def test_secret_key_gets_token_path_and_v2_prefix_appended() -> None:
    key = ServiceKey.from_dict(secret_key())
    assert key.token_url == "https://tenant.authentication.eu10.hana.ondemand.com/oauth/token"
    assert key.api_url == "https://api.ai.prod.eu-central-1.aws.ml.hana.ondemand.com/v2"
    assert key.client_secret is not None and key.client_secret.get_secret_value() == SECRET


def test_urls_already_normalised_are_left_alone() -> None:
    key = ServiceKey.from_dict(
        secret_key(
            url="https://a.example/oauth/token/", serviceurls={"AI_API_URL": "https://b.example/v2"}
        )
    )
    assert key.token_url == "https://a.example/oauth/token"
    assert key.api_url == "https://b.example/v2"


def test_api_url_given_as_sdk_style_v2_lm_is_accepted() -> None:
    key = ServiceKey.from_dict(secret_key(serviceurls={"AI_API_URL": "https://b.example/v2/lm"}))
    assert key.api_url == "https://b.example/v2"


def test_x509_key_uses_certurl_and_unescapes_pem_newlines() -> None:
    raw = {
        "clientid": "sb-x509",
        "certificate": "-----BEGIN CERTIFICATE-----\\nAAA\\n-----END CERTIFICATE-----",
        "key": "-----BEGIN PRIVATE KEY-----\\nBBB\\n-----END PRIVATE KEY-----",
        "certurl": "https://tenant.authentication.cert.eu10.hana.ondemand.com",
        "serviceurls": {"AI_API_URL": "https://api.example"},
    }
    key = ServiceKey.from_dict(raw)
    assert key.uses_certificate
    assert key.token_url.endswith(".cert.eu10.hana.ondemand.com/oauth/token")
    assert key.certificate is not None and "\n" in key.certificate.get_secret_value()


@pytest.mark.parametrize(
    ("remove", "named"),
    [("clientid", "clientid"), ("clientsecret", "clientsecret"), ("url", "url")],
)
def test_missing_field_is_named(remove: str, named: str) -> None:
    raw = secret_key()
    del raw[remove]
    with pytest.raises(CredentialsError, match=f"missing field '{named}'"):
        ServiceKey.from_dict(raw)


def test_missing_ai_api_url_is_named_with_its_path() -> None:
    with pytest.raises(CredentialsError, match=r"serviceurls\.AI_API_URL"):
        ServiceKey.from_dict(secret_key(serviceurls={}))


def test_x509_key_without_private_key_names_key() -> None:
    raw = {
        "clientid": "c",
        "certificate": "PEM",
        "certurl": "https://a.example",
        "serviceurls": {"AI_API_URL": "https://b.example"},
    }
    with pytest.raises(CredentialsError, match="missing field 'key'"):
        ServiceKey.from_dict(raw)


def test_non_http_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(CredentialsError) as err:
        ServiceKey.from_dict(secret_key(url="file:///etc/passwd"))
    assert "url" in str(err.value) and "/etc/passwd" not in str(err.value)


def test_invalid_json_error_never_quotes_the_document() -> None:
    text = '{"clientid": "c", "clientsecret": "' + SECRET + '", oops}'
    with pytest.raises(CredentialsError) as err:
        ServiceKey.from_json(text)
    assert "not valid JSON" in str(err.value)
    assert SECRET not in str(err.value)


def test_repr_of_a_key_hides_the_secret() -> None:
    key = ServiceKey.from_dict(secret_key())
    assert SECRET not in repr(key) and SECRET not in str(key)


def test_key_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps(secret_key()))
    assert ServiceKey.from_file(path).client_id == "sb-client!b1|aicore!b2"


def test_unreadable_key_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="cannot read"):
        ServiceKey.from_file(tmp_path / "absent.json")


def test_environment_service_key_json_wins_and_resource_group_is_read() -> None:
    env = {
        "AICORE_SERVICE_KEY": json.dumps(secret_key()),
        "AICORE_CLIENT_ID": "ignored",
        "AICORE_RESOURCE_GROUP": "team-a",
    }
    key = ServiceKey.from_env(env)
    assert key.client_id == "sb-client!b1|aicore!b2"
    assert key.resource_group == "team-a"


def test_environment_fields_are_normalised() -> None:
    env = {
        "AICORE_CLIENT_ID": "cid",
        "AICORE_CLIENT_SECRET": SECRET,
        "AICORE_AUTH_URL": "https://auth.example",
        "AICORE_BASE_URL": "https://api.example",
    }
    key = ServiceKey.from_env(env)
    assert (key.token_url, key.api_url) == (
        "https://auth.example/oauth/token",
        "https://api.example/v2",
    )


def test_environment_with_some_fields_names_the_missing_ones() -> None:
    env = {"AICORE_CLIENT_ID": "cid", "AICORE_CLIENT_SECRET": SECRET}
    with pytest.raises(CredentialsError, match="AICORE_AUTH_URL, AICORE_BASE_URL"):
        ServiceKey.from_env(env)


def test_empty_environment_explains_the_options() -> None:
    with pytest.raises(CredentialsError, match="AICORE_SERVICE_KEY"):
        ServiceKey.from_env({})
