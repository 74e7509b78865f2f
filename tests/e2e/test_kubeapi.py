"""``KubeApi`` against a real kube-apiserver: Secrets read as bytes, each way a Secret
can be unusable named by its own reason (one whose use is not verified included), the
admission policy read and trusted, status written through the subresource."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from kubernetes.client.exceptions import ApiException

from bulkterm.k8s.kubeapi import KubeApi
from bulkterm.k8s.secret_use import GRANT_ANNOTATION, AdmissionNames, Requester, SecretProblem
from tests.kube import Kube

KEY = {"clientid": "c", "clientsecret": "s3cr3t", "url": "http://127.0.0.1:9"}


@pytest.fixture
def api(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> KubeApi:
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig_path))
    return KubeApi()  # configured as the operator configures it: from KUBECONFIG


def put_secret(
    kube: Kube, namespace: str, data: dict[str, str], *, grant: str | None = None
) -> None:
    annotations = {} if grant is None else {GRANT_ANNOTATION: grant}
    kube.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "aicore", "namespace": namespace, "annotations": annotations},
            "data": data,
        }
    )


ENCODED = {"serviceKey": base64.b64encode(json.dumps(KEY).encode()).decode()}


def now() -> Requester:
    """A BulkTermination created now: after the ``kube`` fixture's admission policy."""
    return Requester("job", datetime.now(UTC))


async def test_secret_value_is_decoded_from_base64(
    kube: Kube, namespace: str, api: KubeApi
) -> None:
    put_secret(kube, namespace, ENCODED)
    raw = await api.read_secret_value(namespace, "aicore", "serviceKey", requester=now())
    assert json.loads(raw) == KEY


async def test_the_admission_policy_in_force_is_trusted(api: KubeApi) -> None:
    trust = await api.admission_trust()
    assert trust.since is not None, trust.problem


async def test_a_bulktermination_older_than_the_policy_gets_no_value(
    kube: Kube, namespace: str, api: KubeApi
) -> None:
    put_secret(kube, namespace, ENCODED)
    old = Requester("job", datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(SecretProblem) as err:
        await api.read_secret_value(namespace, "aicore", "serviceKey", requester=old)
    assert err.value.reason == "SecretUseUnverified"
    assert f"Secret {namespace}/aicore" in err.value.message
    assert "s3cr3t" not in str(err.value) and "s3cr3t" not in repr(err.value)


async def test_without_the_policy_use_is_unverified_and_names_grant_only_when_allowed(
    kube: Kube, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig_path))
    absent = AdmissionNames("absent-policy", "absent-policy")
    put_secret(kube, namespace, ENCODED, grant="cleanup, retire-*")
    strict = KubeApi(admission=absent)
    with pytest.raises(SecretProblem) as err:
        await strict.read_secret_value(namespace, "aicore", "serviceKey", requester=now())
    assert err.value.reason == "SecretUseUnverified"
    assert "ValidatingAdmissionPolicy absent-policy is not installed" in err.value.message
    by_name = KubeApi(admission=absent, allow_name_grants=True)
    for name in ("cleanup", "retire-q3"):
        requester = Requester(name, datetime.now(UTC))
        raw = await by_name.read_secret_value(
            namespace, "aicore", "serviceKey", requester=requester
        )
        assert json.loads(raw) == KEY
    with pytest.raises(SecretProblem) as err:
        await by_name.read_secret_value(
            namespace, "aicore", "serviceKey", requester=Requester("other", datetime.now(UTC))
        )
    assert err.value.reason == "SecretNotGranted"
    assert f"BulkTermination {namespace}/other" in err.value.message


async def test_the_use_is_checked_before_the_key_is_looked_up(
    kube: Kube, namespace: str, api: KubeApi
) -> None:
    # Whether a key exists is not revealed to a BulkTermination whose use is not verified.
    put_secret(kube, namespace, ENCODED)
    old = Requester("job", datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(SecretProblem) as err:
        await api.read_secret_value(namespace, "aicore", "absent", requester=old)
    assert err.value.reason == "SecretUseUnverified"


async def test_missing_secret_is_secret_not_found(namespace: str, api: KubeApi) -> None:
    with pytest.raises(SecretProblem) as err:
        await api.read_secret_value(namespace, "absent", "serviceKey")
    assert err.value.reason == "SecretNotFound" and f"{namespace}/absent" in err.value.message


async def test_missing_key_is_secret_key_not_found_without_the_values(
    kube: Kube, namespace: str, api: KubeApi
) -> None:
    put_secret(kube, namespace, {"other": base64.b64encode(b"s3cr3t").decode()})
    with pytest.raises(SecretProblem) as err:
        await api.read_secret_value(namespace, "aicore", "serviceKey", requester=now())
    assert err.value.reason == "SecretKeyNotFound" and "s3cr3t" not in err.value.message


async def test_the_served_resource_is_found_by_discovery(api: KubeApi) -> None:
    assert await api.resource_served()


async def test_status_is_written_through_the_status_subresource(
    kube: Kube, namespace: str, api: KubeApi
) -> None:
    kube.create(
        {
            "apiVersion": "aiapi.bulkops.dev/v1alpha1",
            "kind": "BulkTermination",
            "metadata": {"name": "job", "namespace": namespace},
            "spec": {
                "connection": {"secretRef": {"name": "aicore"}},
                "targets": [{"id": "dep-0001", "targetStatus": "STOPPED"}],
            },
        }
    )
    await api.patch_status(namespace, "job", {"total": 1, "progress": "0/1"})
    obj = kube.get("bt", "job", namespace=namespace)
    assert obj["status"]["progress"] == "0/1"
    assert obj["metadata"]["generation"] == 1  # a status write is not a spec change


async def test_a_status_write_answers_the_generation_and_can_be_conditional(
    kube: Kube, namespace: str, api: KubeApi
) -> None:
    """The answer names the spec's generation when the write landed (how a run learns of a
    spec change while it runs); with a resourceVersion, a write decided on a view of the CR
    that is no longer current is refused (409) instead of landing."""
    created = kube.create(
        {
            "apiVersion": "aiapi.bulkops.dev/v1alpha1",
            "kind": "BulkTermination",
            "metadata": {"name": "job", "namespace": namespace},
            "spec": {
                "connection": {"secretRef": {"name": "aicore"}},
                "targets": [{"id": "dep-0001", "targetStatus": "STOPPED"}],
            },
        }
    )
    assert await api.patch_status(namespace, "job", {"total": 1}) == 1
    with pytest.raises(ApiException) as conflict:
        await api.patch_status(
            namespace, "job", {"total": 2}, resource_version=created["metadata"]["resourceVersion"]
        )
    assert conflict.value.status == 409
    current = kube.get("bt", "job", namespace=namespace)["metadata"]["resourceVersion"]
    assert await api.patch_status(namespace, "job", {"total": 2}, resource_version=current) == 1
    assert kube.get("bt", "job", namespace=namespace)["status"]["total"] == 2
