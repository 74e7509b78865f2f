"""Secret → service key: every way it fails has its own reason, and no message holds a value.

A Secret is used only if it grants its use to the asking BulkTermination (its annotation
``aiapi.bulkops.dev/allowed-bulkterminations``); an ungranted key is never even parsed."""

from __future__ import annotations

import json

import pytest

from bulkterm.aiapi.errors import AuthError, TransientError
from bulkterm.aiapi.models import Kind
from bulkterm.k8s.credentials import CredentialsProblem, check_accepted, read_service_key
from bulkterm.k8s.kubeapi import GRANT_ANNOTATION, SecretProblem, check_grant, check_secret_use
from bulkterm.k8s.secret_bounds import SecretUse
from bulkterm.spec import SecretRef

NS = "ml-team"
KEY = {
    "clientid": "sb-client",
    "clientsecret": "s3cr3t-value",
    "url": "https://tenant.authentication.example",
    "serviceurls": {"AI_API_URL": "https://api.ai.example"},
}


class Secrets:
    """One Secret, granted by ``grant`` (the annotation's value; None: no annotation)."""

    def __init__(
        self,
        value: bytes | None = None,
        problem: SecretProblem | None = None,
        *,
        grant: str | None = "*",
    ) -> None:
        self.value = value
        self.problem = problem
        self.annotations = {} if grant is None else {GRANT_ANNOTATION: grant}
        self.asked_by: list[str | None] = []

    async def read_secret_value(
        self,
        namespace: str,
        name: str,
        key: str,
        *,
        bulktermination: str | None = None,
        use: SecretUse | None = None,
    ) -> bytes:
        self.asked_by.append(bulktermination)
        if self.problem is not None:
            raise self.problem
        check_secret_use(self.annotations, namespace, name, bulktermination, use)
        assert self.value is not None
        return self.value


async def problem_of(
    secrets: Secrets, ref: SecretRef | None, bulktermination: str | None = "cleanup"
) -> CredentialsProblem:
    with pytest.raises(CredentialsProblem) as caught:
        await read_service_key(secrets, NS, ref, bulktermination)
    assert "s3cr3t-value" not in caught.value.message
    return caught.value


GOOD = json.dumps(KEY).encode()


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


async def test_a_secret_without_the_grant_stalls_as_secret_not_granted() -> None:
    problem = await problem_of(Secrets(GOOD, grant=None), SecretRef(name="aicore"))
    assert problem.reason == "SecretNotGranted"


async def test_the_refusal_names_the_secret_the_annotation_and_the_bulktermination() -> None:
    message = (await problem_of(Secrets(GOOD, grant=None), SecretRef(name="aicore"))).message
    assert f"Secret {NS}/aicore" in message
    assert f"BulkTermination {NS}/cleanup" in message
    assert (
        f"kubectl -n {NS} annotate secret aicore aiapi.bulkops.dev/allowed-bulkterminations=cleanup"
    ) in message


async def test_an_ungranted_key_is_never_parsed() -> None:
    # Not JSON at all: a parse would stall as InvalidServiceKey, quoting nothing but a position.
    problem = await problem_of(Secrets(b"not json s3cr3t-value", grant=None), SecretRef(name="k"))
    assert problem.reason == "SecretNotGranted"


async def test_the_name_of_the_bulktermination_is_passed_to_the_secret_reader() -> None:
    secrets = Secrets(GOOD)
    await read_service_key(secrets, NS, SecretRef(name="k"), "cleanup")
    assert secrets.asked_by == ["cleanup"]


@pytest.mark.parametrize(
    "grant",
    ["*", "cleanup", "other,cleanup", " other , cleanup ", "clean*", "other,*", "cleanu?"],
)
async def test_a_grant_naming_the_bulktermination_or_all_allows_it(grant: str) -> None:
    key = await read_service_key(Secrets(GOOD, grant=grant), NS, SecretRef(name="k"), "cleanup")
    assert key.client_id == "sb-client"


@pytest.mark.parametrize("grant", ["", " , ", "other", "cleanup-2", "Cleanup", "clean", "x*"])
async def test_a_grant_not_naming_the_bulktermination_refuses_it(grant: str) -> None:
    problem = await problem_of(Secrets(GOOD, grant=grant), SecretRef(name="k"))
    assert problem.reason == "SecretNotGranted"
    assert f"its annotation {GRANT_ANNOTATION} does not name it" in problem.message
    assert "adds 'cleanup' to that comma-separated list" in problem.message


async def test_without_the_name_of_the_bulktermination_only_a_grant_for_all_allows() -> None:
    assert await read_service_key(Secrets(GOOD, grant="*"), NS, SecretRef(name="k"))
    for grant in ("cleanup", "clean*"):
        problem = await problem_of(Secrets(GOOD, grant=grant), SecretRef(name="k"), None)
        assert problem.reason == "SecretNotGranted"
        assert "only '*' grants it" in problem.message


def test_the_grant_is_the_annotation_of_the_api_group() -> None:
    assert GRANT_ANNOTATION == "aiapi.bulkops.dev/allowed-bulkterminations"


def test_only_that_annotation_grants() -> None:
    with pytest.raises(SecretProblem):
        check_grant({"aiapi.bulkops.dev/allowed": "*"}, NS, "k", "cleanup")
    with pytest.raises(SecretProblem):
        check_grant(None, NS, "k", "cleanup")


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
