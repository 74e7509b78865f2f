"""How many targets the ways users apply manifests carry, on the real API server.

Two limits bound a BulkTermination, neither of them the CRD's own:

* client-side ``kubectl apply`` (Argo CD's default) copies the whole manifest into the
  ``kubectl.kubernetes.io/last-applied-configuration`` annotation, and all annotations together
  may hold 256 KiB;
* server-side apply (Flux; Argo CD with ``ServerSideApply=true``) records in ``managedFields``
  every key it owns: each (kind, id) key of the ``spec.targets`` list-map, each id of a
  set-typed list; the object must fit etcd's request limit (1.5 MiB by default).

The numbers here are the ones the CRD's descriptions and the README state.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Any

import yaml

from bulkterm.manifest import load_manifests
from bulkterm.split import split_manifest
from tests.crd.samples import valid_cr
from tests.kube import Kube
from tests.plugins.kube import Kubectl

#: AI Core's ids are 16 characters ("d5cdb5bcc7d1fd0b"); the CRD allows up to 64.
AI_CORE_ID_LENGTH = 16


def _ids(prefix: str, count: int, length: int) -> list[str]:
    return [f"{prefix}{i:0{length - 1}x}" for i in range(count)]


def _listed(name: str, count: int, length: int) -> dict[str, Any]:
    body = valid_cr(
        targets=[
            {"kind": "Deployment", "id": id_, "targetStatus": "DELETED"}
            for id_ in _ids("d", count, length)
        ]
    )
    body["metadata"] = {"name": name}
    return body


def _compact(name: str, count: int, length: int) -> dict[str, Any]:
    body = valid_cr()
    body["metadata"] = {"name": name}
    del body["spec"]["targets"]
    half = count // 2
    body["spec"]["deployments"] = {"targetStatus": "STOPPED", "ids": _ids("d", half, length)}
    body["spec"]["executions"] = {
        "targetStatus": "DELETED",
        "ids": _ids("e", count - half, length),
    }
    return body


def _apply(kubectl: Kubectl, namespace: str, body: dict[str, Any], *flags: str) -> str:
    """``kubectl apply`` of ``body`` from stdin; the error output if it was refused."""
    result = kubectl(
        "apply", "-n", namespace, "-f", "-", *flags, input=yaml.safe_dump(body), timeout=120
    )
    return "" if result.returncode == 0 else result.stderr


def _stored_targets(kube: Kube, namespace: str, name: str) -> int:
    spec = kube.get("bt", name, namespace=namespace)["spec"]
    if "targets" in spec:
        return len(spec["targets"])
    return sum(len(spec[kind]["ids"]) for kind in ("deployments", "executions") if kind in spec)


def test_server_side_apply_carries_ten_thousand_compact_ids_of_the_longest_kind(
    kube: Kube, kubectl: Kubectl, namespace: str
) -> None:
    body = _compact("ssa-compact", 10_000, 64)
    assert _apply(kubectl, namespace, body, "--server-side") == ""
    assert _stored_targets(kube, namespace, "ssa-compact") == 10_000


def test_client_side_apply_carries_ten_thousand_compact_ai_core_ids(
    kube: Kube, kubectl: Kubectl, namespace: str
) -> None:
    body = _compact("csa-compact", 10_000, AI_CORE_ID_LENGTH)
    assert _apply(kubectl, namespace, body) == ""
    assert _stored_targets(kube, namespace, "csa-compact") == 10_000


def test_server_side_apply_carries_five_thousand_listed_targets_of_the_longest_ids(
    kube: Kube, kubectl: Kubectl, namespace: str
) -> None:
    body = _listed("ssa-listed", 5_000, 64)
    assert _apply(kubectl, namespace, body, "--server-side") == ""
    assert _stored_targets(kube, namespace, "ssa-listed") == 5_000


def test_client_side_apply_carries_three_thousand_five_hundred_listed_ai_core_targets(
    kube: Kube, kubectl: Kubectl, namespace: str
) -> None:
    body = _listed("csa-listed", 3_500, AI_CORE_ID_LENGTH)
    assert _apply(kubectl, namespace, body) == ""
    assert _stored_targets(kube, namespace, "csa-listed") == 3_500


def test_client_side_apply_of_four_thousand_listed_targets_hits_the_annotation_limit(
    kubectl: Kubectl, namespace: str
) -> None:
    """Why the documented client-side maximum of ``spec.targets`` is 3,500, not the CRD's
    5,000: the refusal is the API server's, about the annotation kubectl adds."""
    refused = _apply(kubectl, namespace, _listed("csa-too-many", 4_000, AI_CORE_ID_LENGTH))
    assert "metadata.annotations: Too long: may not be more than 262144 bytes" in refused


def test_more_than_one_cr_holds_is_split_into_parts_server_side_apply_takes(
    kube: Kube, kubectl: Kubectl, namespace: str
) -> None:
    big = _listed("huge", 25_000, AI_CORE_ID_LENGTH)
    (manifest,) = load_manifests(yaml.safe_dump(big), unbounded=True)
    parts = split_manifest(manifest)
    result = kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-",
        input=yaml.safe_dump_all(parts), timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    stored = [_stored_targets(kube, namespace, f"huge-{n}") for n in (1, 2, 3)]
    assert stored == [10_000, 10_000, 5_000]


def _restore_status(count: int, configurations: int, length: int) -> dict[str, Any]:
    """A finished run's status whose restore record holds every target, each of
    ``configurations`` configurations, one in seven of them not running before."""
    from bulkterm.aiapi.models import Kind, Status
    from bulkterm.engine.restore_points import RestorePoint, restore_record

    # Hashes, not counters: AI Core's configuration ids are random hex, which compresses
    # as poorly as this.
    names = [f"c{sha256(str(i).encode()).hexdigest()[: length - 1]}" for i in range(configurations)]
    points = {
        i: RestorePoint(Kind.DEPLOYMENT, "unused", names[i % configurations],
                        Status.STOPPED if i % 7 == 0 else Status.RUNNING)
        for i in range(count)
    }  # fmt: skip
    record = restore_record(points)
    assert record is not None
    return {"total": count, "succeeded": count, "restore": record.model_dump(by_alias=True)}


def test_the_restore_record_of_ten_thousand_targets_each_its_own_configuration_fits_the_status(
    kube: Kube, kubectl: Kubectl, namespace: str
) -> None:
    """The worst case of a record grouped by configuration: none shared (docs/limits.md),
    with the compact spec server-side applied, as Flux applies it."""
    body = _compact("restore-record", 10_000, AI_CORE_ID_LENGTH)
    assert _apply(kubectl, namespace, body, "--server-side") == ""
    status = _restore_status(10_000, 10_000, AI_CORE_ID_LENGTH)
    assert len(status["restore"]["points"]) > 150_000  # the worst case, not a small one
    stored = kube.patch_status("bt", "restore-record", status, namespace=namespace)
    assert stored["status"]["restore"]["points"] == status["restore"]["points"]
