"""helm lint/template over the value variants; rendered objects are valid Kubernetes; bad
values are rejected by values.schema.json with a message naming the key."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from .conftest import CHART, KUBE_VERSION, NAMESPACE, RELEASE, ROOT, VARIANTS, Helm, Rendering

pytestmark = pytest.mark.helm

# Kinds of custom resources whose schemas kubernetes-validate does not have; they are
# checked by dedicated tests instead.
CUSTOM_GROUPS = ("monitoring.coreos.com/", "kopf.dev/", "aiapi.bulkops.dev/")
K8S_VALIDATE_VERSION = KUBE_VERSION.rsplit(".", 1)[0]
VARIANTS_WATCHED = {name: set(v.get("watchNamespaces", [])) for name, v in VARIANTS.items()}


def test_helm_lint_strict(helm: Helm, variant: str) -> None:
    values = helm.values_file(variant, VARIANTS[variant])
    proc = helm.run(
        "lint",
        "--strict",
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        "--values",
        str(values),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


def test_rendered_builtin_kinds_are_valid(rendered: Rendering) -> None:
    checked = 0
    for doc in rendered.docs:
        if doc["apiVersion"].startswith(CUSTOM_GROUPS):
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VALIDATE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(
                f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at "
                f"{'/'.join(map(str, exc.path))}"
            )
        checked += 1
    assert checked >= 4


def test_rendered_objects_are_namespaced_to_the_release(rendered: Rendering) -> None:
    cluster_scoped = {
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterKopfPeering",
        "CustomResourceDefinition",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
    watched = VARIANTS_WATCHED.get(rendered.path.stem.removeprefix("rendered-"), set())
    for doc in rendered.docs:
        ns = doc["metadata"].get("namespace")
        if doc["kind"] in cluster_scoped:
            assert ns is None, doc["kind"]
        elif doc["kind"] in {"Role", "RoleBinding"} and doc["metadata"]["name"].endswith("-leases"):
            assert ns == NAMESPACE, (doc["kind"], ns)  # the runs' Leases: the release's own
        elif doc["kind"] in {"Role", "RoleBinding", "KopfPeering"}:
            assert ns in watched, (doc["kind"], ns)
        else:
            assert ns == NAMESPACE, (doc["kind"], ns)


def test_crds_folder_holds_only_kopf_peering_crds(helm: Helm) -> None:
    """crds/ is install-only and shared: only kopf's peering CRDs, which the chart's peering
    objects need to exist before the release's templates are sent (docs/helm.md)."""
    with_crds = helm.render("default", include_crds=True).of_kind("CustomResourceDefinition")
    without = helm.render("default").of_kind("CustomResourceDefinition")
    from_folder = [c for c in with_crds if c not in without]
    names = sorted(c["metadata"]["name"] for c in from_folder)
    assert names == ["clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"]
    for crd in with_crds:
        kubernetes_validate.validate(crd, K8S_VALIDATE_VERSION, strict=True)


# --- values.schema.json -----------------------------------------------------------------

BAD_VALUES = [
    pytest.param({"replicaCunt": 2}, "replicaCunt", id="typo-top-level"),
    pytest.param({"image": {"tga": "1.0"}}, "tga", id="typo-nested"),
    pytest.param({"metrics": {"serviceMonitor": {"enable": True}}}, "enable", id="typo-deep"),
    pytest.param(
        {"securityContext": {"runAsNonroot": True}}, "runAsNonroot", id="typo-security-context"
    ),
    pytest.param({"replicaCount": -1}, "replicaCount", id="negative-replicas"),
    pytest.param({"replicaCount": "two"}, "replicaCount", id="replicas-wrong-type"),
    pytest.param({"watchNamespaces": "team-a"}, "watchNamespaces", id="namespaces-not-a-list"),
    pytest.param({"watchNamespaces": ["Team_A"]}, "watchNamespaces", id="namespace-invalid"),
    pytest.param({"logLevel": "TRACE"}, "logLevel", id="log-level-enum"),
    pytest.param({"logFormat": "xml"}, "logFormat", id="log-format-enum"),
    pytest.param({"metrics": {"port": 70000}}, "port", id="port-range"),
    pytest.param({"ttl": {"enabled": "yes"}}, "enabled", id="bool-wrong-type"),
    pytest.param({"aiApi": {"concurrency": 0}}, "concurrency", id="concurrency-zero"),
    pytest.param(
        {"statusWriteIntervalSeconds": 0}, "statusWriteIntervalSeconds", id="status-interval-zero"
    ),
    pytest.param({"image": {"digest": "latest"}}, "digest", id="digest-format"),
]


@pytest.mark.parametrize(("values", "named"), BAD_VALUES)
def test_bad_values_fail_with_the_key_named(helm: Helm, values: dict[str, Any], named: str) -> None:
    proc = helm.template_with("bad", values)
    assert proc.returncode != 0, f"accepted bad values {values}"
    assert "schema" in proc.stderr, proc.stderr
    assert named in proc.stderr, proc.stderr


def test_bad_values_fail_lint(helm: Helm) -> None:
    values = helm.values_file("bad-lint", {"replicaCunt": 2})
    proc = helm.run("lint", "--strict", str(CHART), "--values", str(values))
    assert proc.returncode != 0
    assert "replicaCunt" in proc.stdout + proc.stderr


def test_default_ttl_requires_ttl_enabled(helm: Helm) -> None:
    proc = helm.template_with("ttl-no-rbac", {"ttl": {"defaultSecondsAfterFinished": 60}})
    assert proc.returncode != 0
    assert "ttl.enabled" in proc.stderr


def test_duplicate_namespaces_rejected(helm: Helm) -> None:
    proc = helm.template_with("dup-ns", {"watchNamespaces": ["a", "a"]})
    assert proc.returncode != 0
    assert "watchNamespaces" in proc.stderr


SCHEMA = json.loads((CHART / "values.schema.json").read_text())
# Objects deliberately passed through to Kubernetes (validated by the API server, and
# here by kubernetes-validate on the rendered Deployment).
PASSTHROUGH = {
    "/global",
    "/affinity/nodeAffinity",
    "/affinity/podAffinity",
    "/affinity/podAntiAffinity",
    "/extraEnv/items/valueFrom/configMapKeyRef",
    "/extraEnv/items/valueFrom/fieldRef",
    "/extraEnv/items/valueFrom/fileKeyRef",
    "/extraEnv/items/valueFrom/resourceFieldRef",
    "/extraEnv/items/valueFrom/secretKeyRef",
}


def _object_schemas(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    types = node.get("type")
    if types == "object" or (isinstance(types, list) and "object" in types):
        found.append((path, node))
    for name, sub in node.get("properties", {}).items():
        found += _object_schemas(sub, f"{path}/{name}")
    if isinstance(node.get("items"), dict):
        found += _object_schemas(node["items"], f"{path}/items")
    if isinstance(node.get("additionalProperties"), dict):
        found += _object_schemas(node["additionalProperties"], f"{path}/*")
    for index, alternative in enumerate(node.get("oneOf", [])):
        found += _object_schemas(alternative, f"{path}/oneOf{index}")
    for name, sub in node.get("definitions", {}).items():
        found += _object_schemas(sub, f"#/definitions/{name}")
    return found


def test_schema_closes_every_object() -> None:
    open_objects = [
        path
        for path, node in _object_schemas(SCHEMA)
        if path not in PASSTHROUGH
        and node.get("additionalProperties") is not False
        and not isinstance(node.get("additionalProperties"), dict)
    ]
    assert open_objects == []


def test_values_yaml_matches_schema_and_every_key_is_described() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft7Validator(SCHEMA).validate(values)
    top = SCHEMA["properties"]
    assert set(values) == set(top) - {"global"}
    for key, sub in top.items():
        assert sub.get("description"), f"{key} has no description in values.schema.json"


def render_notes(helm: Helm, values: dict[str, Any]) -> str:
    """NOTES.txt as `helm install` would print it. `helm template` skips NOTES.txt and
    Helm 3's `install --dry-run=client` still dials the cluster, so render a copy of the
    chart in which NOTES.txt is an ordinary template."""
    chart = helm.workdir / "notes-chart"
    if not chart.exists():
        shutil.copytree(CHART, chart)
        (chart / "templates" / "NOTES.txt").rename(chart / "notes.txt")
        (chart / "templates" / "zz-notes.yaml").write_text(
            'notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n'
        )
    values_file = helm.values_file("notes", values)
    proc = helm.run(
        "template",
        RELEASE,
        str(chart),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
        "--values",
        str(values_file),
        "--show-only",
        "templates/zz-notes.yaml",
    )
    assert proc.returncode == 0, proc.stderr
    return str(yaml.safe_load(proc.stdout)["notes"])


def test_notes_explain_secret_cr_and_wait(helm: Helm) -> None:
    notes = render_notes(helm, {"watchNamespaces": ["ml-team"]})
    assert (
        "kubectl create secret generic aicore-service-key "
        "--from-file=serviceKey=key.json -n ml-team"
    ) in notes
    assert (
        'rules: [{apiGroups: [""], resources: [secrets], resourceNames: [aicore-service-key], '
        "verbs: [use]}]"
    ) in notes
    assert "allowed-bulkterminations" not in notes  # name grants are off by default
    assert "kubectl wait --for=condition=Complete bt/cleanup -n ml-team" in notes
    # The BulkTermination shown in the notes must be a valid object for the CRD.
    example = notes.split("cat <<EOF | kubectl apply -n ml-team -f -", 1)[1].split("  EOF", 1)[0]
    obj = yaml.safe_load("\n".join(line[2:] for line in example.splitlines()))
    crd = yaml.safe_load((ROOT / "crds" / "bulktermination.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1")
    assert obj["apiVersion"] == f"{crd['spec']['group']}/v1alpha1"
    assert obj["kind"] == crd["spec"]["names"]["kind"]
    spec_schema = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    jsonschema.Draft7Validator(_closed(spec_schema)).validate(obj["spec"])


def _closed(schema: Any) -> Any:
    """A CRD structural schema as plain JSON schema: unknown fields rejected, as the API
    server prunes/rejects them; Kubernetes extensions dropped."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _closed(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if (
        out.get("type") == "object"
        and "properties" in out
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out.setdefault("additionalProperties", False)
    return out


# --- yamllint ---------------------------------------------------------------------------


def yamllint_config(max_line: int | None) -> str:
    return json.dumps(
        {
            "extends": "default",
            "rules": {
                "document-start": "disable",
                "line-length": {"max": max_line} if max_line else "disable",
                # toYaml emits sequences unindented, hand-written templates indent them.
                "indentation": {"spaces": 2, "indent-sequences": "whatever"},
            },
        }
    )


def yamllint(*paths: Path, max_line: int | None = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "yamllint",
            "--strict",
            "-d",
            yamllint_config(max_line),
            *map(str, paths),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_yamllint_chart_sources() -> None:
    proc = yamllint(
        CHART / "values.yaml", CHART / "Chart.yaml", CHART / "crds" / "kopf-peering.yaml"
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_yamllint_rendered(rendered: Rendering) -> None:
    # Line length is the user's business here (image digests, long values).
    proc = yamllint(rendered.path, max_line=None)
    assert proc.returncode == 0, proc.stdout + proc.stderr
