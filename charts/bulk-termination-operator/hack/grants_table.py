#!/usr/bin/env python3
"""Write docs/security.md's table of what the operator may do in Kubernetes, from the chart.

The table is what ``helm template`` renders for the operator's own Roles and ClusterRoles
(the aggregated view/edit/admin roles are for users), in the chart's main shapes: every
namespace watched, named namespaces, with ``ttl.enabled``, with ``replicaCount > 1`` and with
``rbac.secretResourceNames``. Every grant must have a reason in :data:`WHY`: a grant the chart
gains without one fails this script, so the document cannot leave it out.
tests/chart/test_rbac.py fails when the document's table is not what this script writes.

    python charts/bulk-termination-operator/hack/grants_table.py          # rewrite the table
    python charts/bulk-termination-operator/hack/grants_table.py --check  # exit 1 if stale
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parents[1]
ROOT = CHART.parents[1]
DOC = ROOT / "docs" / "security.md"
START = "<!-- grants-table:start (charts/bulk-termination-operator/hack/grants_table.py) -->"
END = "<!-- grants-table:end -->"
#: The release's namespace in the renderings: never one of the watched ones.
RELEASE_NAMESPACE = "ops"

#: The chart's shapes, and how the table names them.
SHAPES: dict[str, list[str]] = {
    "all namespaces": [],
    "named namespaces": ["--set", "watchNamespaces={team-a}"],
    "`ttl.enabled`": ["--set", "ttl.enabled=true"],
    "`replicaCount > 1`": ["--set", "replicaCount=2"],
    "named namespaces with `replicaCount > 1`": [
        "--set",
        "watchNamespaces={team-a}",
        "--set",
        "replicaCount=2",
    ],
    "`rbac.secretResourceNames`": ["--set", "rbac.secretResourceNames={aicore-service-key}"],
    "named namespaces with `ttl.enabled`": [
        "--set",
        "watchNamespaces={team-a}",
        "--set",
        "ttl.enabled=true",
    ],
    "named namespaces with `rbac.secretResourceNames`": [
        "--set",
        "watchNamespaces={team-a}",
        "--set",
        "rbac.secretResourceNames={aicore-service-key}",
    ],
}
#: Why the operator holds each (resource, verb) grant.
WHY: dict[tuple[str, str], str] = {
    ("bulkterminations", "list"): "kopf lists and watches them",
    ("bulkterminations", "watch"): "kopf lists and watches them",
    ("bulkterminations", "patch"): "kopf's finalizer and progress annotations",
    ("bulkterminations", "delete"): "`ttlSecondsAfterFinished`",
    ("bulkterminations/status", "patch"): "progress and conditions",
    ("secrets", "get"): "the service key a BulkTermination references; never list or watch",
    ("events", "create"): "Events on BulkTerminations",
    ("leases", "get"): "one Lease per run: two operators never both send for one run",
    ("leases", "create"): "one Lease per run: two operators never both send for one run",
    ("leases", "update"): "one Lease per run: two operators never both send for one run",
    ("leases", "delete"): "one Lease per run: two operators never both send for one run",
    ("leases", "list"): "the sweep of Leases a crashed operator left behind",
    ("validatingadmissionpolicies", "get"): (
        "the policy that checks who may `use` a Secret: verified before any Secret is used"
    ),
    ("validatingadmissionpolicybindings", "get"): (
        "the policy that checks who may `use` a Secret: verified before any Secret is used"
    ),
    ("tokenreviews", "create"): "who is scraping `/metrics` (`metrics.secure`)",
    ("subjectaccessreviews", "create"): "whether they may `get /metrics` (`metrics.secure`)",
    ("customresourcedefinitions", "list"): "kopf notices the CRD being (re)installed",
    ("customresourcedefinitions", "watch"): "kopf notices the CRD being (re)installed",
    ("clusterkopfpeerings", "list"): "kopf peering (hot standby)",
    ("clusterkopfpeerings", "watch"): "kopf peering (hot standby)",
    ("clusterkopfpeerings", "patch"): "kopf peering: its own keep-alive",
    ("kopfpeerings", "list"): "kopf peering (hot standby)",
    ("kopfpeerings", "watch"): "kopf peering (hot standby)",
    ("kopfpeerings", "patch"): "kopf peering: its own keep-alive",
}
AGGREGATE_LABEL = "rbac.authorization.k8s.io/aggregate-to-"


def helm() -> str:
    local = ROOT / ".venv" / "bin" / "helm"
    found = str(local) if local.exists() else shutil.which("helm")
    if found is None:
        sys.exit("grants_table: no helm (make install puts one into .venv/bin)")
    return found


def render(args: list[str]) -> list[dict[str, Any]]:
    out = subprocess.run(
        [helm(), "template", "rel", str(CHART), "--namespace", RELEASE_NAMESPACE, *args],
        capture_output=True, text=True, check=True, env={**os.environ, "HELM_NO_PLUGINS": "1"},
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def grants(docs: list[dict[str, Any]]) -> set[tuple[str, str, str, str]]:
    """(scope, resource, verb, names) of the operator's roles (not the aggregated ones)."""
    out: set[tuple[str, str, str, str]] = set()
    for doc in docs:
        if doc.get("kind") not in ("Role", "ClusterRole"):
            continue
        labels = doc["metadata"].get("labels") or {}
        if any(key.startswith(AGGREGATE_LABEL) for key in labels):
            continue
        if str(doc["metadata"]["name"]).endswith("-metrics-reader"):
            continue  # for Prometheus to be bound to, not the operator
        if doc["kind"] == "ClusterRole":
            scope = "cluster"
        elif doc["metadata"].get("namespace") == RELEASE_NAMESPACE:
            scope = "the release's namespace"
        else:
            scope = "each watched namespace"
        for rule in doc.get("rules") or []:
            names = "by name" if rule.get("resourceNames") else ""
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((scope, resource, verb, names))
    return out


def table() -> str:
    shapes: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for shape, args in SHAPES.items():
        for grant in grants(render(args)):
            shapes[grant].append(shape)
    missing = sorted({(r, v) for _, r, v, _ in shapes} - WHY.keys())
    if missing:
        sys.exit(f"grants_table: no reason in WHY for {missing}: say why the operator holds it")
    in_scope: dict[str, set[str]] = defaultdict(set)
    for (scope, *_), where in shapes.items():
        in_scope[scope].update(where)
    rows: dict[tuple[str, str, str, str], list[str]] = defaultdict(list)
    for (scope, resource, verb, names), where in shapes.items():
        if set(where) == set(SHAPES):
            text = "always"
        elif set(where) == {shape for shape in SHAPES if "named namespaces" not in shape}:
            text = "all namespaces watched (no `watchNamespaces`)"
        elif set(where) == in_scope[scope]:
            text = "always"
        elif set(where) == {w for w in in_scope[scope] if "secretResourceNames" not in w}:
            text = "without `rbac.secretResourceNames`"
        elif set(where) == {
            w for w in SHAPES if "named namespaces" not in w and "secretResourceNames" not in w
        }:
            text = "all namespaces watched, without `rbac.secretResourceNames`"
        else:
            text = "; ".join(where)
        rows[(resource, scope, names, text)].append(verb)
    lines = [
        "| resource | verbs | scope | when (chart values) | why |",
        "|---|---|---|---|---|",
    ]
    for (resource, scope, names, where), verbs in sorted(rows.items()):
        order = ["get", "list", "watch", "create", "update", "patch", "delete", "use"]
        verbs.sort(key=order.index)
        whys = dict.fromkeys(WHY[(resource, v)] for v in verbs)
        scope_text = scope + (f", {names}" if names else "")
        lines.append(
            f"| `{resource}` | {', '.join(verbs)} | {scope_text} | {where} | {'; '.join(whys)} |"
        )
    return "\n".join(lines)


def rewritten(doc: str, body: str) -> str:
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{body}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is stale")
    args = parser.parse_args(argv)
    doc = DOC.read_text()
    new = rewritten(doc, table())
    if args.check:
        return 0 if new == doc else 1
    DOC.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
