"""The emulator as the ``kubernetes`` client and raw HTTP see it."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import kmock
import kubernetes.client as k8s
import pytest
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from tests.kube import KubeApiError, KubeEmulator

GROUP, VERSION, PLURAL = "aiapi.bulkops.dev", "v1alpha1", "bulkterminations"
NS = "default"

# A permissive namespaced CRD with a status subresource and no immutability rules.
WIDGETS: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wd"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                            "status": {
                                "type": "object",
                                "x-kubernetes-preserve-unknown-fields": True,
                            },
                        },
                    }
                },
            }
        ],
    },
}


def bt(name: str | None = "bt1", *, generate: str | None = None, **spec: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} if name else {"generateName": generate}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BulkTermination",
        "metadata": meta,
        "spec": {"targets": [{"id": "d1234", "targetStatus": "STOPPED"}], **spec},
    }


def widget(name: str = "w1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name},
        "spec": {"size": 1, **spec},
    }


@pytest.fixture
def api(kube: KubeEmulator) -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(kube.api_client())


@pytest.fixture
def core(kube: KubeEmulator) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(kube.api_client())


@pytest.fixture
def widgets(kube: KubeEmulator) -> KubeEmulator:
    kube.install_crd(WIDGETS)
    return kube


# --- create / get / list ----------------------------------------------------------------------


def test_create_is_201_with_server_side_metadata_and_defaults(api: k8s.CustomObjectsApi) -> None:
    data, status, _ = api.create_namespaced_custom_object_with_http_info(
        GROUP, VERSION, NS, PLURAL, bt()
    )
    assert status == 201
    meta = data["metadata"]
    assert meta["namespace"] == NS
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["resourceVersion"].isdigit()
    assert meta["generation"] == 1
    assert data["spec"]["targets"] == [
        {"kind": "Deployment", "id": "d1234", "targetStatus": "STOPPED"}
    ]
    assert data["spec"]["batchSize"] == 100
    assert api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "bt1") == data


def test_generate_name(api: k8s.CustomObjectsApi) -> None:
    names = {
        api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, bt(None, generate="run-"))[
            "metadata"
        ]["name"]
        for _ in range(3)
    }
    assert len(names) == 3
    assert all(re.fullmatch(r"run-[a-z0-9]{5}", n) for n in names)


def test_name_clash_is_409(api: k8s.CustomObjectsApi) -> None:
    api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, bt())
    with pytest.raises(ApiException) as err:
        api.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, bt())
    assert err.value.status == 409
    assert json.loads(err.value.body)["reason"] == "AlreadyExists"


def test_missing_object_is_404(api: k8s.CustomObjectsApi) -> None:
    with pytest.raises(ApiException) as err:
        api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "nope")
    assert err.value.status == 404


def test_resource_versions_are_monotonic(kube: KubeEmulator) -> None:
    versions = [int(kube.create(bt(f"bt{i}"))["metadata"]["resourceVersion"]) for i in range(3)]
    versions.append(
        int(
            kube.patch("bt", "bt0", {"metadata": {"labels": {"a": "b"}}})["metadata"][
                "resourceVersion"
            ]
        )
    )
    assert versions == sorted(set(versions))


def test_list_has_kind_api_version_and_resource_version(
    api: k8s.CustomObjectsApi, kube: KubeEmulator
) -> None:
    kube.create(bt("a"))
    kube.create({**bt("b"), "metadata": {"name": "b", "labels": {"team": "ml"}}})
    kube.create(bt("c"), namespace="other")
    data = api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    assert data["kind"] == "BulkTerminationList"
    assert data["apiVersion"] == f"{GROUP}/{VERSION}"
    assert data["metadata"]["resourceVersion"].isdigit()
    assert [o["metadata"]["name"] for o in data["items"]] == ["a", "b"]
    everywhere = api.list_cluster_custom_object(GROUP, VERSION, PLURAL)
    assert [o["metadata"]["name"] for o in everywhere["items"]] == ["a", "b", "c"]
    by_label = api.list_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, label_selector="team=ml"
    )
    assert [o["metadata"]["name"] for o in by_label["items"]] == ["b"]
    by_field = api.list_cluster_custom_object(
        GROUP, VERSION, PLURAL, field_selector="metadata.namespace=other"
    )
    assert [o["metadata"]["name"] for o in by_field["items"]] == ["c"]


def test_list_pages(api: k8s.CustomObjectsApi, kube: KubeEmulator) -> None:
    for i in range(5):
        kube.create(bt(f"bt{i}"))
    first = api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, limit=2)
    assert len(first["items"]) == 2 and first["metadata"]["remainingItemCount"] == 3
    rest = api.list_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, limit=10, _continue=first["metadata"]["continue"]
    )
    assert [o["metadata"]["name"] for o in first["items"] + rest["items"]] == [
        f"bt{i}" for i in range(5)
    ]


def test_namespaces_list_and_are_created_on_first_use(
    core: k8s.CoreV1Api, kube: KubeEmulator
) -> None:
    kube.create(bt(), namespace="ml-team")
    names = [ns.metadata.name for ns in core.list_namespace().items]
    assert {"default", "kube-system", "ml-team"} <= set(names)
    assert core.read_namespace("ml-team").status.phase == "Active"


def test_namespaces_can_be_required(kube_factory: Callable[..., KubeEmulator]) -> None:
    from tests.plugins.kube import CRD_PATH

    strict = kube_factory(crds=[CRD_PATH], auto_namespaces=False)
    with pytest.raises(KubeApiError) as err:
        strict.create(bt(), namespace="missing")
    assert err.value.status == 404


# --- patch / put / status ---------------------------------------------------------------------


def test_status_subresource_isolation(kube: KubeEmulator) -> None:
    kube.create(bt())
    main = kube.patch("bt", "bt1", {"metadata": {"labels": {"x": "y"}}, "status": {"total": 9}})
    assert "status" not in main and main["metadata"]["labels"] == {"x": "y"}
    status = kube.patch(
        "bt",
        "bt1",
        {"spec": {"batchSize": 5}, "metadata": {"labels": None}, "status": {"total": 1}},
        subresource="status",
    )
    assert status["status"] == {"total": 1}
    assert status["spec"]["batchSize"] == 100
    assert status["metadata"]["labels"] == {"x": "y"}
    assert status["metadata"]["generation"] == 1


def test_create_drops_status(kube: KubeEmulator) -> None:
    created = kube.create({**bt(), "status": {"total": 5}})
    assert "status" not in created


def test_generation_moves_on_spec_changes_only(widgets: KubeEmulator) -> None:
    widgets.create(widget())
    assert (
        widgets.patch("widgets", "w1", {"metadata": {"labels": {"a": "b"}}})["metadata"][
            "generation"
        ]
        == 1
    )
    assert widgets.patch_status("widgets", "w1", {"ready": True})["metadata"]["generation"] == 1
    assert widgets.patch("widgets", "w1", {"spec": {"size": 2}})["metadata"]["generation"] == 2


def test_no_op_patch_keeps_the_resource_version(kube: KubeEmulator) -> None:
    before = kube.create(bt())
    after = kube.patch("bt", "bt1", {"spec": {"batchSize": 100}})
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_json_patch_with_test_op(kube: KubeEmulator) -> None:
    """What kopf does to add its finalizer: 422 on a stale resourceVersion."""
    obj = kube.create(bt())
    rv = obj["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/metadata/finalizers", "value": ["example.com/x"]},
    ]
    patched = kube.patch("bt", "bt1", ops, patch_type="json")
    assert patched["metadata"]["finalizers"] == ["example.com/x"]
    with pytest.raises(KubeApiError) as err:
        kube.patch("bt", "bt1", ops, patch_type="json")
    assert err.value.status == 422


def test_stale_resource_version_is_409(kube: KubeEmulator) -> None:
    old = kube.create(bt())
    kube.patch("bt", "bt1", {"metadata": {"labels": {"a": "b"}}})
    with pytest.raises(KubeApiError) as err:
        kube.patch(
            "bt",
            "bt1",
            {
                "metadata": {
                    "resourceVersion": old["metadata"]["resourceVersion"],
                    "labels": {"a": "c"},
                }
            },
        )
    assert err.value.status == 409


def test_put_replaces(api: k8s.CustomObjectsApi, widgets: KubeEmulator) -> None:
    obj = widgets.create(widget())
    obj["spec"] = {"size": 7}
    replaced = k8s.CustomObjectsApi(widgets.api_client()).replace_namespaced_custom_object(
        "example.com", "v1", NS, "widgets", "w1", obj
    )
    assert replaced["spec"] == {"size": 7}
    assert replaced["metadata"]["generation"] == 2
    with pytest.raises(ApiException) as err:  # now stale
        k8s.CustomObjectsApi(widgets.api_client()).replace_namespaced_custom_object(
            "example.com", "v1", NS, "widgets", "w1", obj
        )
    assert err.value.status == 409


def test_status_patch_through_the_client(api: k8s.CustomObjectsApi, kube: KubeEmulator) -> None:
    kube.create(bt())
    patched = api.patch_namespaced_custom_object_status(
        GROUP, VERSION, NS, PLURAL, "bt1", {"status": {"progress": "0/1"}}
    )
    assert patched["status"] == {"progress": "0/1"}


def test_strategic_merge_patch_on_custom_resources_is_415(kube: KubeEmulator) -> None:
    kube.create(bt())
    with pytest.raises(KubeApiError) as err:
        kube.request(
            "PATCH",
            kube.path("bt", "bt1"),
            body={"metadata": {}},
            content_type="application/strategic-merge-patch+json",
        )
    assert err.value.status == 415


def test_server_side_apply_creates_then_merges(widgets: KubeEmulator) -> None:
    widgets.patch("widgets", "w1", widget(), patch_type="apply")
    merged = widgets.patch("widgets", "w1", widget(colour="red"), patch_type="apply")
    assert merged["spec"] == {"size": 1, "colour": "red"}


# --- admission: defaults, pruning, validation, CEL ---------------------------------------------


def test_invalid_custom_resource_is_422_with_causes(kube: KubeEmulator) -> None:
    body = bt(batchSize=0, targets=[{"id": "ab", "targetStatus": "STOPPED"}])
    with pytest.raises(KubeApiError) as err:
        kube.create(body)
    assert err.value.status == 422
    fields = {c["field"] for c in err.value.body["details"]["causes"]}
    assert fields == {"spec.batchSize", "spec.targets[0].id"}


def test_duplicate_targets_are_rejected(kube: KubeEmulator) -> None:
    body = bt(
        targets=[
            {"id": "d1234", "targetStatus": "STOPPED"},
            {"kind": "Deployment", "id": "d1234", "targetStatus": "DELETED"},
        ]
    )
    with pytest.raises(KubeApiError) as err:
        kube.create(body)
    assert "Duplicate value" in err.value.body["message"]


def test_targets_are_immutable(kube: KubeEmulator) -> None:
    kube.create(bt())
    with pytest.raises(KubeApiError) as err:
        kube.patch("bt", "bt1", {"spec": {"targets": [{"id": "other", "targetStatus": "STOPPED"}]}})
    assert err.value.status == 422
    assert "targets are immutable" in err.value.body["message"]


def test_unknown_fields_are_pruned_or_refused_when_strict(kube: KubeEmulator) -> None:
    created = kube.create(bt(foo=1))
    assert "foo" not in created["spec"]
    with pytest.raises(KubeApiError) as err:
        kube.request(
            "POST", kube.path("bt"), body=bt("bt2", foo=1), params={"fieldValidation": "Strict"}
        )
    assert err.value.status == 400
    assert 'unknown field "spec.foo"' in err.value.body["message"]


def test_status_is_pruned_and_validated(kube: KubeEmulator) -> None:
    kube.create(bt())
    patched = kube.patch_status("bt", "bt1", {"total": 1, "kopf": {"progress": {}}})
    assert patched["status"] == {"total": 1}
    with pytest.raises(KubeApiError) as err:
        kube.patch_status("bt", "bt1", {"total": -1})
    assert err.value.status == 422


def test_validation_can_be_switched_off(kube_factory: Callable[..., KubeEmulator]) -> None:
    from tests.plugins.kube import CRD_PATH

    lax = kube_factory(crds=[CRD_PATH], validate=False)
    created = lax.create(bt(batchSize=0))
    assert created["spec"]["batchSize"] == 0
    assert created["spec"]["pollIntervalSeconds"] == 10  # still defaulted


# --- delete and finalizers ------------------------------------------------------------------------


def test_delete_without_finalizers(api: k8s.CustomObjectsApi, kube: KubeEmulator) -> None:
    kube.create(bt())
    _, status, _ = api.delete_namespaced_custom_object_with_http_info(
        GROUP, VERSION, NS, PLURAL, "bt1"
    )
    assert status == 200
    assert kube.get_or_none("bt", "bt1") is None


def test_finalizers_hold_deletion(api: k8s.CustomObjectsApi, kube: KubeEmulator) -> None:
    kube.create({**bt(), "metadata": {"name": "bt1", "finalizers": ["example.com/x"]}})
    data, status, _ = api.delete_namespaced_custom_object_with_http_info(
        GROUP, VERSION, NS, PLURAL, "bt1"
    )
    assert status == 200  # as the API server (202 only with orphanDependents=false)
    assert data["metadata"]["deletionTimestamp"]
    held = kube.get("bt", "bt1")
    assert held["metadata"]["deletionTimestamp"] == data["metadata"]["deletionTimestamp"]
    with pytest.raises(KubeApiError) as err:
        kube.patch("bt", "bt1", {"metadata": {"finalizers": ["example.com/x", "new/one"]}})
    assert err.value.status == 422
    kube.remove_finalizers("bt", "bt1")
    assert kube.get_or_none("bt", "bt1") is None


# --- watch ----------------------------------------------------------------------------------------


def _watch_lines(
    kube: KubeEmulator, params: dict[str, str], path: str | None = None
) -> Iterator[dict[str, Any]]:
    with httpx.stream(
        "GET", kube.url + (path or kube.path("bt")), params={"watch": "true", **params}, timeout=10
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        for line in response.iter_lines():
            if line:
                yield json.loads(line)


def test_watch_resumes_from_a_resource_version_and_times_out(kube: KubeEmulator) -> None:
    since = kube.request("GET", kube.path("bt"))["metadata"]["resourceVersion"]
    kube.create(bt())
    kube.patch("bt", "bt1", {"metadata": {"labels": {"a": "b"}}})
    kube.delete("bt", "bt1")
    events = list(_watch_lines(kube, {"resourceVersion": since, "timeoutSeconds": "1"}))
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert rvs == sorted(set(rvs))


def test_watch_sends_a_snapshot_then_live_changes(kube: KubeEmulator) -> None:
    kube.create(bt())
    stream = _watch_lines(kube, {"timeoutSeconds": "5"})
    first = next(stream)
    assert (first["type"], first["object"]["metadata"]["name"]) == ("ADDED", "bt1")
    kube.patch("bt", "bt1", {"metadata": {"labels": {"a": "b"}}})
    second = next(stream)
    assert second["type"] == "MODIFIED"
    assert second["object"]["metadata"]["labels"] == {"a": "b"}
    stream.close()


def test_watch_with_the_kubernetes_client(api: k8s.CustomObjectsApi, kube: KubeEmulator) -> None:
    listed = api.list_namespaced_custom_object(GROUP, VERSION, NS, PLURAL)
    done = threading.Event()

    def change() -> None:
        kube.create(bt())
        kube.patch_status("bt", "bt1", {"total": 1})
        done.set()

    threading.Timer(0.2, change).start()
    seen = []
    for event in watch.Watch().stream(
        api.list_namespaced_custom_object,
        GROUP,
        VERSION,
        NS,
        PLURAL,
        resource_version=listed["metadata"]["resourceVersion"],
        timeout_seconds=2,
    ):
        seen.append((event["type"], (event["object"].get("status") or {}).get("total")))
        if len(seen) == 2:
            break
    assert done.wait(5)
    assert seen == [("ADDED", None), ("MODIFIED", 1)]


def test_watch_of_a_compacted_resource_version_is_410(
    kube_factory: Callable[..., KubeEmulator],
) -> None:
    from tests.plugins.kube import CRD_PATH

    small = kube_factory(crds=[CRD_PATH], event_log_limit=10)
    small.create(bt())
    for i in range(20):
        small.patch("bt", "bt1", {"metadata": {"labels": {"i": str(i)}}})
    [event] = list(_watch_lines(small, {"resourceVersion": "3", "timeoutSeconds": "1"}))
    assert event["type"] == "ERROR" and event["object"]["code"] == 410


def test_watch_initial_events_end_with_a_bookmark(kube: KubeEmulator) -> None:
    kube.create(bt())
    params = {
        "sendInitialEvents": "true",
        "resourceVersionMatch": "NotOlderThan",
        "allowWatchBookmarks": "true",
        "timeoutSeconds": "1",
    }
    events = list(_watch_lines(kube, params))
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


# --- discovery, openapi, other resources ----------------------------------------------------------


def test_discovery(kube: KubeEmulator) -> None:
    assert kube.request("GET", "/api")["versions"] == ["v1"]
    assert kube.request("GET", "/api/v1")["groupVersion"] == "v1"
    groups = {g["name"]: g for g in kube.request("GET", "/apis")["groups"]}
    assert groups[GROUP]["preferredVersion"]["version"] == VERSION
    resources = {r["name"]: r for r in kube.request("GET", f"/apis/{GROUP}/{VERSION}")["resources"]}
    assert set(resources) == {PLURAL, f"{PLURAL}/status"}
    main = resources[PLURAL]
    assert (main["kind"], main["namespaced"], main["singularName"]) == (
        "BulkTermination",
        True,
        "bulktermination",
    )
    assert main["shortNames"] == ["bt", "bterm"]
    assert main["categories"] == ["aiapi"]
    assert "watch" in main["verbs"]


def test_a_new_crd_is_served_and_a_deleted_one_is_not(widgets: KubeEmulator) -> None:
    crd = widgets.get("customresourcedefinitions", "widgets.example.com")
    assert {c["type"]: c["status"] for c in crd["status"]["conditions"]} == {
        "NamesAccepted": "True",
        "Established": "True",
    }
    widgets.create(widget())
    widgets.delete("customresourcedefinitions", "widgets.example.com")
    with pytest.raises(KubeApiError) as err:
        widgets.request("GET", "/apis/example.com/v1")
    assert err.value.status == 404


def test_openapi(kube: KubeEmulator) -> None:
    root = kube.request("GET", "/openapi/v3")
    url = root["paths"][f"apis/{GROUP}/{VERSION}"]["serverRelativeURL"]
    doc = kube.request("GET", url.split("?")[0])
    schema = doc["components"]["schemas"][f"dev.bulkops.aiapi.{VERSION}.BulkTermination"]
    assert schema["x-kubernetes-group-version-kind"] == [
        {"group": GROUP, "version": VERSION, "kind": "BulkTermination"}
    ]
    patch = doc["paths"][f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}/{{name}}"][
        "patch"
    ]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    v2 = httpx.get(
        kube.url + "/openapi/v2",
        headers={"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"},
    )
    assert (v2.status_code, v2.content) == (200, b"")


def test_events_and_secrets(core: k8s.CoreV1Api) -> None:
    event = core.create_namespaced_event(
        NS,
        k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(generate_name="bt1."),
            reason="Started",
            message="hello",
            type="Normal",
            involved_object=k8s.V1ObjectReference(kind="BulkTermination", name="bt1", namespace=NS),
        ),
    )
    assert event.metadata.name.startswith("bt1.")
    patched = core.patch_namespaced_event(event.metadata.name, NS, {"count": 2})
    assert patched.count == 2
    core.create_namespaced_secret(
        NS, k8s.V1Secret(metadata=k8s.V1ObjectMeta(name="key"), string_data={"serviceKey": "{}"})
    )
    assert core.read_namespaced_secret("key", NS).string_data == {"serviceKey": "{}"}


def test_user_reactions_win_for_fault_injection(kube: KubeEmulator) -> None:
    kube.create(bt())
    resource = kmock.resource(GROUP, VERSION, PLURAL)
    kube.run(lambda e: e["patch", resource][:1] << 503)
    with pytest.raises(KubeApiError) as err:
        kube.patch_status("bt", "bt1", {"total": 1})
    assert err.value.status == 503
    assert kube.patch_status("bt", "bt1", {"total": 1})["status"] == {"total": 1}


def test_objects_are_in_kmocks_store(kube: KubeEmulator) -> None:
    kube.create(bt())
    kube.patch_status("bt", "bt1", {"total": 1})
    history = kube.run(
        lambda e: [
            dict(v) if v is not None else None
            for v in e.objects[f"{GROUP}/{VERSION}/{PLURAL}", NS, "bt1"].history
        ]
    )
    assert [("status" in v) for v in history if v is not None] == [False, True]
