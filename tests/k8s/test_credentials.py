"""Secret → service key: every way it fails has its own reason, and no message holds a value."""

from __future__ import annotations

import json

import pytest

from bulkterm.aiapi.errors import AuthError, TransientError
from bulkterm.aiapi.models import Kind
from bulkterm.k8s.credentials import CredentialsProblem, check_accepted, read_service_key
from bulkterm.k8s.kubeapi import SecretProblem
from bulkterm.spec import SecretRef

NS = "ml-team"
KEY = {
    "clientid": "sb-client",
    "clientsecret": "s3cr3t-value",
    "url": "https://tenant.authentication.example",
    "serviceurls": {"AI_API_URL": "https://api.ai.example"},
}


class Secrets:
    def __init__(self, value: bytes | None = None, problem: SecretProblem | None = None) -> None:
        self.value = value
        self.problem = problem

    async def read_secret_value(self, namespace: str, name: str, key: str) -> bytes:
        if self.problem is not None:
            raise self.problem
        assert self.value is not None
        return self.value


async def problem_of(secrets: Secrets, ref: SecretRef | None) -> CredentialsProblem:
    with pytest.raises(CredentialsProblem) as caught:
        await read_service_key(secrets, NS, ref)
    assert "s3cr3t-value" not in caught.value.message
    return caught.value


async def test_a_good_secret_gives_the_service_key() -> None:
    key = await read_service_key(Secrets(json.dumps(KEY).encode()), NS, SecretRef(name="k"))
    assert key.client_id == "sb-client"


@pytest.mark.parametrize(
    ("ref", "secrets", "reason"),
    [
        (None, Secrets(b"{}"), "SecretRefMissing"),
        (
            SecretRef(name="k", namespace="kube-system"),
            Secrets(b"{}"),
            "CrossNamespaceSecretRefused",
        ),
        (
            SecretRef(name="k"),
            Secrets(problem=SecretProblem("SecretNotFound", "gone")),
            "SecretNotFound",
        ),
        (
            SecretRef(name="k"),
            Secrets(problem=SecretProblem("SecretForbidden", "RBAC")),
            "SecretForbidden",
        ),
        (SecretRef(name="k"), Secrets(b"not json s3cr3t-value"), "InvalidServiceKey"),
        (
            SecretRef(name="k"),
            Secrets(json.dumps({**KEY, "url": None}).encode()),
            "InvalidServiceKey",
        ),
    ],
)
async def test_each_problem_has_its_reason(
    ref: SecretRef | None, secrets: Secrets, reason: str
) -> None:
    assert (await problem_of(secrets, ref)).reason == reason


async def test_own_namespace_named_explicitly_is_fine() -> None:
    ref = SecretRef(name="k", namespace=NS)
    assert (await read_service_key(Secrets(json.dumps(KEY).encode()), NS, ref)).client_id


class Api:
    def __init__(self, error: Exception | None) -> None:
        self.error = error

    async def count(self, kind: Kind, **_: object) -> int:
        if self.error is not None:
            raise self.error
        return 0


async def test_the_probe_stalls_only_on_refused_credentials() -> None:
    await check_accepted(Api(None))  # type: ignore[arg-type]
    await check_accepted(Api(TransientError("HTTP 503")))  # type: ignore[arg-type]
    with pytest.raises(CredentialsProblem) as caught:
        await check_accepted(Api(AuthError("HTTP 403 wrong group", status_code=403)))  # type: ignore[arg-type]
    assert caught.value.reason == "Unauthorized"
