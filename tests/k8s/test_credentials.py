"""Secret → service key: every way it fails has its own reason, and no message holds a value.

A Secret is used only if the author of the asking BulkTermination may use it
(:mod:`bulkterm.k8s.secret_use`, tested there); a key whose use is not verified is never even
parsed."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from bulkterm.aiapi.errors import AuthError, TransientError
from bulkterm.aiapi.models import Kind
from bulkterm.k8s.credentials import CredentialsProblem, check_accepted, read_service_key
from bulkterm.k8s.secret_bounds import SecretUse
from bulkterm.k8s.secret_use import (
    GRANT_ANNOTATION,
    AdmissionTrust,
    Requester,
    SecretProblem,
    check_secret_use,
)
from bulkterm.spec import SecretRef

NS = "ml-team"
TRUSTED = AdmissionTrust(datetime(2020, 1, 1, tzinfo=UTC))
UNTRUSTED = AdmissionTrust.untrusted("policy gone")
REQUESTER = Requester("cleanup", datetime(2026, 1, 1, tzinfo=UTC))
KEY = {
    "clientid": "sb-client",
    "clientsecret": "s3cr3t-value",
    "url": "https://tenant.authentication.example",
    "serviceurls": {"AI_API_URL": "https://api.ai.example"},
}


class Secrets:
    """One Secret, its use vouched for by ``trust``; ``grant`` is its name grant (the
    annotation's value; None: no annotation), which counts only with ``allow_name_grants``."""

    def __init__(
        self,
        value: bytes | None = None,
        problem: SecretProblem | None = None,
        *,
        trust: AdmissionTrust = TRUSTED,
        grant: str | None = None,
        allow_name_grants: bool = False,
    ) -> None:
        self.value = value
        self.problem = problem
        self.trust = trust
        self.allow_name_grants = allow_name_grants
        self.annotations = {} if grant is None else {GRANT_ANNOTATION: grant}
        self.asked_by: list[Requester | None] = []

    async def read_secret_value(
        self,
        namespace: str,
        name: str,
        key: str,
        *,
        requester: Requester | None = None,
        use: SecretUse | None = None,
    ) -> bytes:
        self.asked_by.append(requester)
        if self.problem is not None:
            raise self.problem
        check_secret_use(
            self.annotations,
            namespace,
            name,
            requester,
            use,
            trust=self.trust,
            allow_name_grants=self.allow_name_grants,
        )
        assert self.value is not None
        return self.value


async def problem_of(secrets: Secrets, ref: SecretRef | None) -> CredentialsProblem:
    with pytest.raises(CredentialsProblem) as caught:
        await read_service_key(secrets, NS, ref, REQUESTER)
    assert "s3cr3t-value" not in caught.value.message
    return caught.value


GOOD = json.dumps(KEY).encode()


async def test_a_good_secret_gives_the_service_key() -> None:
    key = await read_service_key(Secrets(GOOD), NS, SecretRef(name="k"), REQUESTER)
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


async def test_an_unverified_use_stalls_as_secret_use_unverified() -> None:
    problem = await problem_of(Secrets(GOOD, trust=UNTRUSTED), SecretRef(name="aicore"))
    assert problem.reason == "SecretUseUnverified"
    assert f"Secret {NS}/aicore" in problem.message
    assert "policy gone" in problem.message


async def test_a_key_whose_use_is_unverified_is_never_parsed() -> None:
    # Not JSON at all: a parse would stall as InvalidServiceKey, quoting nothing but a position.
    secrets = Secrets(b"not json s3cr3t-value", trust=UNTRUSTED)
    assert (await problem_of(secrets, SecretRef(name="k"))).reason == "SecretUseUnverified"


async def test_the_asking_bulktermination_is_passed_to_the_secret_reader() -> None:
    secrets = Secrets(GOOD)
    await read_service_key(secrets, NS, SecretRef(name="k"), REQUESTER)
    assert secrets.asked_by == [REQUESTER]


async def test_a_name_grant_serves_only_when_allowed() -> None:
    refused = Secrets(GOOD, trust=UNTRUSTED, grant="cleanup")
    assert (await problem_of(refused, SecretRef(name="k"))).reason == "SecretUseUnverified"
    allowed = Secrets(GOOD, trust=UNTRUSTED, grant="cleanup", allow_name_grants=True)
    assert (await read_service_key(allowed, NS, SecretRef(name="k"), REQUESTER)).client_id


async def test_own_namespace_named_explicitly_is_fine() -> None:
    ref = SecretRef(name="k", namespace=NS)
    assert (await read_service_key(Secrets(GOOD), NS, ref, REQUESTER)).client_id


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
