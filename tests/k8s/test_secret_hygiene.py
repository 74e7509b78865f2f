"""The objects that hold a service key or a token never show either in ``repr()``/``str()``,
nor in the exceptions and dumps made of them: these end up in tracebacks, debug logs and
``kopf``'s handler errors, which reach logs that many people read."""

from __future__ import annotations

import json

import pytest

from bulkterm.aiapi.auth import TokenProvider
from bulkterm.aiapi.client import AiApiClient
from bulkterm.aiapi.credentials import ServiceKey
from bulkterm.aiapi.errors import AuthError
from bulkterm.k8s.credentials import CredentialsProblem, read_service_key
from bulkterm.k8s.secret_use import AdmissionTrust, Requester
from bulkterm.simulator import Simulator
from bulkterm.spec import SecretRef
from tests.k8s.support import NS, REF, FakeKube

REQUESTER = Requester(REF.name, REF.created)


def shows(obj: object, *needles: str) -> list[str]:
    """The needles found in ``repr(obj)`` or ``str(obj)``."""
    text = repr(obj) + str(obj)
    return [n for n in needles if n in text]


async def test_a_service_key_read_from_a_secret_hides_its_secret(
    simulator: Simulator, kube: FakeKube
) -> None:
    key = await read_service_key(kube, NS, SecretRef(name="aicore"), REQUESTER)
    secret = simulator.config.client_secret
    assert key.client_secret is not None and key.client_secret.get_secret_value() == secret
    assert shows(key, secret) == []
    assert secret not in json.dumps(key.model_dump(mode="json"))
    assert secret not in key.model_dump_json()


def test_an_x509_key_hides_its_certificate_and_private_key() -> None:
    key = ServiceKey.from_dict(
        {
            "clientid": "c",
            "certificate": "-----BEGIN CERTIFICATE-----\\nCERTBODY\\n-----END CERTIFICATE-----",
            "key": "-----BEGIN PRIVATE KEY-----\\nKEYBODY\\n-----END PRIVATE KEY-----",
            "certurl": "https://tenant.authentication.cert.example",
            "serviceurls": {"AI_API_URL": "https://api.ai.example"},
        }
    )
    assert shows(key, "KEYBODY", "CERTBODY") == []


async def test_the_token_provider_and_the_client_hide_the_token_and_the_secret(
    simulator: Simulator,
) -> None:
    key = ServiceKey.from_dict(simulator.service_key())
    async with AiApiClient(key) as client:
        await client.meta()
        token = await client.tokens.token()
        assert token  # a real token is cached now
        secret = simulator.config.client_secret
        assert shows(client.tokens, token, secret) == []
        assert "token=cached" in repr(client.tokens)  # says what it holds, not the value
        assert shows(client, token, secret) == []
        assert shows(vars(client), token, secret) == []  # what a debugger's dump shows first


async def test_a_refused_secret_is_not_in_the_error(simulator: Simulator) -> None:
    raw = {**simulator.service_key(), "clientsecret": "refused-0d5e1f"}
    async with AiApiClient(ServiceKey.from_dict(raw)) as client:
        with pytest.raises(AuthError) as caught:
            await client.meta()
    assert shows(caught.value, "refused-0d5e1f") == []


async def test_credentials_problems_hide_the_value_they_are_about(simulator: Simulator) -> None:
    kube = FakeKube(simulator)
    raw = {**simulator.service_key(), "clientsecret": "hidden-9a8b7c"}
    del raw["url"]
    kube.put_secret("aicore", "serviceKey", raw)
    with pytest.raises(CredentialsProblem) as caught:
        await read_service_key(kube, NS, SecretRef(name="aicore"), REQUESTER)
    assert caught.value.reason == "InvalidServiceKey"
    assert shows(caught.value, "hidden-9a8b7c") == []
    kube.trust = AdmissionTrust.untrusted("no policy")
    with pytest.raises(CredentialsProblem) as caught:
        await read_service_key(kube, NS, SecretRef(name="aicore"), REQUESTER)
    assert caught.value.reason == "SecretUseUnverified"
    assert shows(caught.value, "hidden-9a8b7c") == []


def test_a_token_provider_without_a_token_says_so() -> None:
    key = ServiceKey.from_dict(
        {
            "clientid": "c",
            "clientsecret": "never-shown-1",
            "url": "https://tenant.authentication.example",
            "serviceurls": {"AI_API_URL": "https://api.ai.example"},
        }
    )
    provider = TokenProvider(key, http=None)  # type: ignore[arg-type]
    assert repr(provider) == (
        "TokenProvider(client_id='c', token_url='https://tenant.authentication.example"
        "/oauth/token', token=none, fetches=0)"
    )
