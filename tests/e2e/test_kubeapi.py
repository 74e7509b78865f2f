"""``KubeApi`` against a real kube-apiserver: Secrets read as bytes, each way a Secret
can be unusable named by its own reason (an ungranted one included), status written through
the subresource."""

from __future__ import annotations

import base64
import json

import pytest
from kubernetes.client.exceptions import ApiException

from bulkterm.k8s.kubeapi import GRANT_ANNOTATION, KubeApi, SecretProblem
from tests.kube import Kube

KEY = {"clientid": "c", "clientsecret": "s3cr3t", "url": "http://127.0.0.1:9"}


@pytest.fixture
def api(kube: Kube, monkeypatch: pytest.MonkeyPatch) -> KubeApi:
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig_path))
    return KubeApi()  # configured as the operator configures it: from KUBECONFIG


def put_secret(
    kube: Kube, namespace: str, data: dict[str, str], *, grant: str | None = "*"
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


async def test_secret_value_is_decoded_from_base64(
    kube: Kube, namespace: str, api: KubeApi
) -> None:
    put_secret(kube, namespace, ENCODED)
    assert json.loads(await api.read_secret_value(namespace, "aicore", "serviceKey")) == KEY


async def test_a_secret_granted_by_name_is_read_for_that_bulktermination_only(
    kube: Kube, namespace: str, api: KubeApi
) -> None:
    put_secret(kube, namespace, ENCODED, grant="cleanup, retire-*")
    for name in ("cleanup", "retire-q3"):
        raw = await api.read_secret_value(namespace, "aicore", "serviceKey", bulktermination=name)
        assert json.loads(raw) == KEY
    with pytest.raises(SecretProblem) as err:
        await api.read_secret_value(namespace, "aicore", "serviceKey", bulktermination="other")
    assert err.value.reason == "SecretNotGranted"
    assert f"BulkTermination {namespace}/other" in err.value.message


async def test_a_secret_without_the_annotation_is_not_granted_without_its_value(
    kube: Kube, namespace: str, api: KubeApi
) -> None:
    put_secret(kube, namespace, ENCODED, grant=None)
    with pytest.raises(SecretProblem) as err:
        await api.read_secret_value(namespace, "aicore", "serviceKey", bulktermination="job")
    assert err.value.reason == "SecretNotGranted"
    assert f"Secret {namespace}/aicore" in err.value.message
    assert "s3cr3t" not in str(err.value) and "s3cr3t" not in repr(err.value)


async def test_the_grant_is_checked_before_the_key_is_looked_up(
    kube: Kube, namespace: str, api: KubeApi
) -> None:
    # Whether a key exists is not revealed to a BulkTermination the Secret does not trust.
    put_secret(kube, namespace, ENCODED, grant="someone-else")
    with pytest.raises(SecretProblem) as err:
        await api.read_secret_value(namespace, "aicore", "absent", bulktermination="job")
    assert err.value.reason == "SecretNotGranted"


async def test_missing_secret_is_secret_not_found(namespace: str, api: KubeApi) -> None:
    with pytest.raises(SecretProblem) as err:
        await api.read_secret_value(namespace, "absent", "serviceKey")
    assert err.value.reason == "SecretNotFound" and f"{namespace}/absent" in err.value.message


async def test_missing_key_is_secret_key_not_found_without_the_values(
    kube: Kube, namespace: str, api: KubeApi
) -> None:
    put_secret(kube, namespace, {"other": base64.b64encode(b"s3cr3t").decode()})
    with pytest.raises(SecretProblem) as err:
        await api.read_secret_value(namespace, "aicore", "serviceKey")
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
