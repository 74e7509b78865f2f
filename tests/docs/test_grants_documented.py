"""What the docs say the chart grants, and which objects it makes, against what it renders.

docs/security.md's table of every grant is written from the rendering by
charts/bulk-termination-operator/hack/grants_table.py (tests/chart/test_rbac.py fails when it is
stale). The other statements about grants are prose and tables written by hand: docs/helm.md's
roles per scope, the controller and leases roles and the users' aggregated roles, and the
README's account of what stays cluster-wide. Those are read here and compared with `helm
template` of the chart, so a grant added, dropped or renamed fails until the docs say so; and
every object name the docs give (`<release>-leases`, `<fullname>-admission`) must be one the
chart makes.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.chart.conftest import NAMESPACE, RELEASE, Helm
from tests.docs.test_limits_table import table
from tests.plugins.helm import CHART, ROOT

pytestmark = pytest.mark.helm

HELM_DOC = ROOT / "docs" / "helm.md"
README = ROOT / "README.md"
FULLNAME = f"{RELEASE}-bulk-termination-operator"
NAMED = {"watchNamespaces": ["a", "b"]}
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
#: Value sets that between them make every object the chart can make.
EVERYTHING = [
    {},
    {"watchNamespaces": ["a"], "replicaCount": 2, "ttl": {"enabled": True}},
    {"replicaCount": 2, "metrics": {"serviceMonitor": {"enabled": True}, "readers": [
        {"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}]},
     "prometheusRule": {"enabled": True}, "grafana": {"dashboard": {"enabled": True}}},
]  # fmt: skip
#: How the docs write the names of the chart's objects (`<release>` is the full name, except
#: where they spell the full name out as `<release>-bulk-termination-operator`).
OBJECT_NAME = re.compile(
    r"(?:<release>-bulk-termination-operator|<release fullname>|<fullname>|<release>)"
    r"(-[a-z0-9-]*[a-z0-9])?"
)
Binding = tuple[str, str, str]  # role kind, name after the full name, namespace ("" cluster)


@pytest.fixture(scope="module")
def render(helm_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    helm = Helm(helm_bin, tmp_path_factory.mktemp("grants"))

    @functools.cache
    def rendered(values: str) -> list[dict[str, Any]]:
        proc = helm.template_with("docs", yaml.safe_load(values))
        assert proc.returncode == 0, proc.stderr
        return [d for d in yaml.safe_load_all(proc.stdout) if d]

    return lambda values: rendered(yaml.safe_dump(values))


def bound_to_the_operator(docs: list[dict[str, Any]]) -> set[Binding]:
    out = set()
    for doc in docs:
        if doc["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = doc.get("subjects") or []
        if any(s["kind"] == "ServiceAccount" and s["name"] == FULLNAME for s in subjects):
            name = doc["roleRef"]["name"].removeprefix(FULLNAME)
            out.add((doc["roleRef"]["kind"], name, doc["metadata"].get("namespace", "")))
    return out


def role(docs: list[dict[str, Any]], kind: str, suffix: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == FULLNAME + suffix]
    return found


def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(r, v) for rule in rules for r in rule["resources"] for v in rule["verbs"]}


def words(cell: str) -> list[str]:
    return [w.strip(" `*") for w in re.split(r",| and ", cell) if w.strip(" `*")]


def test_the_helm_doc_names_the_roles_the_operator_is_bound_to_in_each_scope(render: Any) -> None:
    rows = table(HELM_DOC.read_text(), "| `watchNamespaces` | operator flags |")
    assert [r["`watchNamespaces`"] for r in rows] == ["`[]` (default)", "`[a, b]`"]
    for row, values in zip(rows, ({}, NAMED), strict=True):
        docs = render(values)
        documented = set()
        for kind, name, where in re.findall(
            r"(ClusterRole|Role) `<release>(-[\w-]+)`(?: \(([^)]*)\))?", row["the operator's roles"]
        ):
            places = [NAMESPACE] if where == "release namespace" else words(where) or [""]
            documented |= {(kind, name, place) for place in places}
        assert documented == bound_to_the_operator(docs), row
        (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        scope = [a for a in args if a.startswith(("--namespace", "--all-namespaces"))]
        assert scope == row["operator flags"].strip("`").split(), row


def documented_grants(title: str) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(always, only with ttl.enabled) of a resource | verbs table after ``title``."""
    text = HELM_DOC.read_text()
    rows = table(text[text.index(title) :], "| resource | verbs |")
    always: set[tuple[str, str]] = set()
    ttl: set[tuple[str, str]] = set()
    for row in rows:
        pairs = {(row["resource"].split()[0].strip("`"), v) for v in words(row["verbs"])}
        (ttl if "ttl.enabled=true" in row["why"] else always).update(pairs)
    return always, ttl


def test_the_helm_doc_lists_what_the_controller_role_grants(render: Any) -> None:
    always, ttl = documented_grants("The controller role:")
    assert grants(role(render({}), "ClusterRole", "-controller")["rules"]) == always
    with_ttl = role(render({"ttl": {"enabled": True}}), "ClusterRole", "-controller")
    assert grants(with_ttl["rules"]) == always | ttl


def test_the_helm_doc_lists_what_the_leases_role_grants(render: Any) -> None:
    always, ttl = documented_grants("The leases role")
    assert ttl == set()
    assert grants(role(render(NAMED), "Role", "-leases")["rules"]) == always


def test_the_helm_doc_lists_what_the_aggregated_roles_grant(render: Any) -> None:
    docs = render({})
    rows = table(HELM_DOC.read_text(), "| ClusterRole | labels")
    for row in rows:
        suffix = row["ClusterRole"].strip("`").removeprefix("<release>")
        made = role(docs, "ClusterRole", suffix)
        labels = {k.removeprefix(AGGREGATE) for k in made["metadata"]["labels"] if AGGREGATE in k}
        assert labels == set(words(row["labels `rbac.authorization.k8s.io/aggregate-to-*`"]))
        documented = set()
        for part in row["rules"].split(";"):
            resources, _, verbs = part.partition(":")
            documented |= {(r, v) for r in words(resources) for v in words(verbs)}
        assert grants(made["rules"]) == documented, row


def names_between(text: str, start: str, end: str) -> set[str]:
    sentence = text[text.index(start) : text.index(end, text.index(start))]
    return {m[1] for m in OBJECT_NAME.finditer(sentence)}


def test_the_readme_names_the_cluster_roles_the_chart_makes(render: Any) -> None:
    docs = render(NAMED)
    bound = {name for kind, name, _ in bound_to_the_operator(docs) if kind == "ClusterRole"}
    others = {d["metadata"]["name"].removeprefix(FULLNAME) for d in docs
              if d["kind"] == "ClusterRole"} - bound  # fmt: skip
    text = README.read_text()
    assert names_between(text, "Cluster-wide in either scope", "The chart also") == bound
    assert names_between(text, "The chart also creates ClusterRoles", "Every grant") == others


@pytest.mark.parametrize(
    "doc",
    [README, CHART / "README.md", *sorted((ROOT / "docs").glob("*.md"))],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_every_object_name_a_document_gives_is_one_the_chart_makes(render: Any, doc: Path) -> None:
    made = {d["metadata"]["name"] for values in EVERYTHING for d in render(values)}
    named = {FULLNAME + (m[1] or "") for m in OBJECT_NAME.finditer(doc.read_text())}
    named |= {FULLNAME + m for m in re.findall(r"bulkterm-bulk-termination-operator(-[\w-]*\w)",
                                              doc.read_text())}  # fmt: skip
    assert sorted(named - made) == []
